//! `pbsimage resolve job.sh`: the packages the job's image will hold, and why.

use anyhow::{Context as _, Result};

use super::{Printer, args::ResolveArgs, parse_script};
use crate::config::Config;
use crate::resolve::lock::Lock;

pub fn run(args: &ResolveArgs, config: Config, printer: &Printer) -> Result<()> {
    let job = parse_script(&args.script, printer)?;
    let ctx = super::context(config, args.offline, printer)?;
    let (needs, repos, res) = ctx.resolve_job(&job)?;
    for w in &res.warnings {
        printer.warn(w);
    }
    if let Some(path) = &args.lock {
        let lock = Lock::new(&args.script.script.display().to_string(), &repos, &res);
        crate::cache::write_file_atomic(path, lock.to_toml().as_bytes())
            .with_context(|| format!("cannot write the lock file `{}`", path.display()))?;
    }
    if args.json {
        printer.data(&serde_json::to_string_pretty(&serde_json::json!({
            "job": job.name,
            "arch": needs.arch,
            "packages": res.packages,
            "warnings": res.warnings,
            "repos": repos.iter().map(|r| serde_json::json!({
                "id": r.source.id, "revision": r.index.revision, "repomd_sha256": r.index.repomd_sha256,
            })).collect::<Vec<_>>(),
        }))?);
        return Ok(());
    }
    let width = res
        .packages
        .iter()
        .map(|p| p.nevra.len())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for p in &res.packages {
        let base = if p.base { "  [base]" } else { "" };
        out.push(format!("{:width$}  {}{base}", p.nevra, p.repo));
        if args.explain {
            out.push(format!("    why: {}", p.why));
            for s in p.satisfies.iter().skip(1).take(5) {
                out.push(format!("    also: {s}"));
            }
        }
    }
    let download: u64 = res.packages.iter().map(|p| p.size).sum();
    let installed: u64 = res.packages.iter().map(|p| p.installed_size).sum();
    out.push(format!(
        "{} packages, {:.1} MiB to download, {:.1} MiB installed",
        res.packages.len(),
        download as f64 / 1048576.0,
        installed as f64 / 1048576.0
    ));
    printer.data(&out.join("\n"));
    Ok(())
}
