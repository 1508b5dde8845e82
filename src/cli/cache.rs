//! `pbsimage cache dir|verify|gc`.

use super::args::CacheCommand;
use super::{Env, Result};
use crate::cache::Cache;

pub(super) fn exec(cmd: &CacheCommand, env: &Env<'_>) -> Result<()> {
    let cache = Cache::new(env.config()?.cache_dir());
    let p = &env.printer;
    match cmd {
        CacheCommand::Dir => p.data(&cache.root().display().to_string()),
        CacheCommand::Verify { json } => {
            let v = crate::ops::cache::verify(&cache)?;
            if *json {
                p.json(&v);
            } else {
                for b in &v.bad {
                    p.data(&format!("bad: {b}"));
                }
                p.data(&format!(
                    "{} entries checked, {} bad",
                    v.checked,
                    v.bad.len()
                ));
            }
            if !v.bad.is_empty() {
                return Err(anyhow::anyhow!(
                    "the cache at `{}` has {} damaged entries (remove them, or run `pbsimage cache gc`)",
                    cache.root().display(),
                    v.bad.len()
                )
                .into());
            }
        }
        CacheCommand::Gc { json } => {
            let c = crate::ops::cache::gc(&cache)?;
            if *json {
                p.json(&c);
            } else {
                p.data(&format!(
                    "removed {} unreferenced blobs, {:.1} MiB; {} damaged entries",
                    c.blobs,
                    c.bytes as f64 / 1048576.0,
                    c.damaged
                ));
            }
        }
    }
    Ok(())
}
