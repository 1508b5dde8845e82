//! `pbsimage needs job.sh`: what the job needs, and why.

use super::args::NeedsArgs;
use super::{Env, Result};

pub(super) fn exec(args: &NeedsArgs, env: &Env<'_>) -> Result<()> {
    let job = env.parse_script(&args.script)?;
    let config = env.config()?;
    let needs = crate::ops::resolve::needs_for(&config, &job)?;
    if args.json {
        env.printer.json(&needs);
        return Ok(());
    }
    let mut out = vec![format!(
        "arch: {} (kubernetes.io/arch={}){}",
        needs.arch,
        needs.kube_arch,
        if needs.static_binary {
            ", static binary"
        } else {
            ""
        }
    )];
    let width = needs
        .needs
        .iter()
        .map(|n| n.kind.to_string().len())
        .max()
        .unwrap_or(0)
        .min(48);
    for n in &needs.needs {
        let kind = n.kind.to_string();
        let opt = if n.optional { " (optional)" } else { "" };
        out.push(format!("{kind:width$}  <- {}{opt}", n.origins.join("; ")));
    }
    for b in &needs.bundled {
        out.push(format!(
            "bundled: {} ({}, needed by {} via {})",
            b.path.display(),
            b.soname,
            b.needed_by,
            b.via
        ));
    }
    for h in &needs.host_provided {
        out.push(format!(
            "host-provided: {} (needed by {})",
            h.soname, h.needed_by
        ));
    }
    for n in &needs.notes {
        out.push(format!("note: {n}"));
    }
    env.printer.data(&out.join("\n"));
    Ok(())
}
