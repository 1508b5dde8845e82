//! `pbsimage manifest job.sh --image REF`: print the Job or Pod.

use anyhow::{Context, Result, bail};

use super::{Printer, args::ManifestArgs, parse_script};
use crate::config::{Config, RunAs as ConfigRunAs};
use crate::image::ImageRef;
use crate::kube::{Emitter, RunAs};

pub fn run(args: &ManifestArgs, config: &Config, printer: &Printer) -> Result<()> {
    let image = ImageRef::parse(&args.image)?;
    let job = parse_script(&args.script, printer)?;
    let s = &config.settings;
    let run_as = resolve_run_as(
        args.run_as.as_deref(),
        s.kube.run_as_user,
        s.kube.run_as_group,
    )?;
    let emitter = Emitter {
        settings: &s.kube,
        job_dir: &s.image.job_dir,
        kind: args.kind.unwrap_or(s.kube.kind),
        run_as,
    };
    let manifest = emitter.emit(&job, &image).with_context(|| {
        format!(
            "cannot make a manifest for `{}`",
            args.script.script.display()
        )
    })?;
    for w in &manifest.warnings {
        printer.warn(&format!("{}: {w}", args.script.script.display()));
    }
    printer.data(manifest.to_yaml()?.trim_end());
    Ok(())
}

/// `--run-as UID[:GID]`, else the config, else the invoking user.
pub(super) fn resolve_run_as(
    flag: Option<&str>,
    user: ConfigRunAs,
    group: ConfigRunAs,
) -> Result<RunAs> {
    if let Some(f) = flag {
        let (u, g) = match f.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (f, None),
        };
        let parse = |s: &str| -> Result<u32> {
            s.parse()
                .with_context(|| format!("--run-as `{f}`: `{s}` is not a numeric id"))
        };
        let uid = parse(u)?;
        let gid = match g {
            Some(g) => parse(g)?,
            None => uid,
        };
        return Ok(RunAs { uid, gid });
    }
    let uid = match user {
        ConfigRunAs::Id(u) => u,
        ConfigRunAs::Invoking => rustix::process::getuid().as_raw(),
    };
    let gid = match group {
        ConfigRunAs::Id(g) => g,
        ConfigRunAs::Invoking => rustix::process::getgid().as_raw(),
    };
    if uid > i32::MAX as u32 || gid > i32::MAX as u32 {
        bail!("uid/gid {uid}:{gid} is out of range for Kubernetes");
    }
    Ok(RunAs { uid, gid })
}
