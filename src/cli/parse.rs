//! `pbsimage parse job.sh`: show the job spec.

use super::args::ParseArgs;
use super::{Env, Result};

pub(super) fn exec(args: &ParseArgs, env: &Env<'_>) -> Result<()> {
    let job = env.parse_script(&args.script)?;
    if args.json {
        env.printer.json(&job);
        return Ok(());
    }
    let r = &job.resources;
    let mut lines = vec![format!("name: {}", job.name)];
    let opt = |k: &str, v: Option<String>| v.map(|v| format!("{k}: {v}"));
    lines.extend(opt("shell", job.shell.clone().or(job.shebang.clone())));
    lines.extend(opt(
        "binary",
        job.binary.as_ref().map(|b| b.display().to_string()),
    ));
    lines.extend(opt("queue", job.queue.clone()));
    lines.extend(opt(
        "nodes",
        r.nodes
            .as_ref()
            .map(|n| format!("{} ({} slots)", n.node_count(), n.slots())),
    ));
    lines.extend(opt(
        "select",
        r.select
            .as_ref()
            .map(|s| format!("{} chunks ({} slots)", s.node_count(), s.slots())),
    ));
    lines.extend(opt("procs", r.procs.map(|p| p.to_string())));
    lines.extend(opt("mem", r.mem.map(|m| m.to_string())));
    lines.extend(opt("pmem", r.pmem.map(|m| m.to_string())));
    lines.extend(opt("walltime", r.walltime.map(|w| w.to_string())));
    lines.extend(opt(
        "array",
        job.array.as_ref().map(|a| format!("{} elements", a.len())),
    ));
    for e in &job.env {
        lines.push(format!("env: {}={}", e.name, e.value));
    }
    env.printer.data(&lines.join("\n"));
    Ok(())
}
