//! `pbsimage resolve job.sh`: the packages the job's image will hold, and why.

use super::args::ResolveArgs;
use super::{Env, Result};
use crate::resolve::lock::Lock;

/// `resolve --json`.
#[derive(serde::Serialize)]
struct ResolveReport<'a> {
    job: &'a crate::job::JobName,
    arch: crate::elf::Arch,
    packages: &'a [crate::resolve::Chosen],
    warnings: &'a [String],
    repos: Vec<RepoRow<'a>>,
}

#[derive(serde::Serialize)]
struct RepoRow<'a> {
    id: &'a str,
    revision: &'a Option<String>,
    repomd_sha256: &'a str,
}

pub(super) fn exec(args: &ResolveArgs, env: &Env<'_>) -> Result<()> {
    let job = env.parse_script(&args.script)?;
    let ctx = env.context(args.offline)?;
    let r = crate::ops::resolve::resolve_job(&ctx, &job)?;
    let r = leave_to_exit(r);
    let res = &r.resolution;
    for w in &res.warnings {
        env.printer.warn(w);
    }
    if let Some(path) = &args.lock {
        let lock = Lock::new(&args.script.script.display().to_string(), &r.repos, res);
        crate::ops::outputs::write_lock(path, &lock)?;
    }
    if args.json {
        env.printer.json(&ResolveReport {
            job: &job.name,
            arch: r.needs.arch,
            packages: &res.packages,
            warnings: &res.warnings,
            repos: r
                .repos
                .iter()
                .map(|x| RepoRow {
                    id: x.source.id.as_str(),
                    revision: &x.index.revision,
                    repomd_sha256: &x.index.repomd_sha256,
                })
                .collect(),
        });
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
    env.printer.data(&out.join("\n"));
    Ok(())
}

/// The repositories a one-job command loaded (thousands of decoded packages, mapped
/// indexes) are left for the process's exit to free: dropping them one by one took an
/// eighth of a warm run. The command returns right after.
pub(super) fn leave_to_exit<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}
