//! `pbsimage cache verify|gc|dir`.

use anyhow::{Result, bail};

use super::{Printer, args::CacheCommand};
use crate::cache::Cache;
use crate::config::Config;

pub fn run(cmd: &CacheCommand, config: Config, printer: &Printer) -> Result<()> {
    let cache = Cache::new(config.cache_dir());
    match cmd {
        CacheCommand::Dir => printer.data(&cache.root().display().to_string()),
        CacheCommand::Verify => {
            let v = cache.verify()?;
            for b in &v.bad {
                printer.data(&format!("bad: {b}"));
            }
            printer.data(&format!(
                "{} entries checked, {} bad",
                v.checked,
                v.bad.len()
            ));
            if !v.bad.is_empty() {
                bail!(
                    "the cache at `{}` has {} damaged entries (remove them, or run `pbsimage cache gc`)",
                    cache.root().display(),
                    v.bad.len()
                );
            }
        }
        CacheCommand::Gc => {
            let (n, bytes) = cache.gc()?;
            printer.data(&format!(
                "removed {n} unreferenced blobs, {:.1} MiB",
                bytes as f64 / 1048576.0
            ));
        }
    }
    Ok(())
}
