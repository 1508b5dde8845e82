//! `pbsimage layers job.sh`: fetch the packages and build the image's layers.

use anyhow::Result;

use super::{Printer, args::LayersArgs, parse_script};
use crate::config::Config;

pub fn run(args: &LayersArgs, config: Config, printer: &Printer) -> Result<()> {
    let job = parse_script(&args.script, printer)?;
    let ctx = super::context(config, args.offline, printer)?;
    let (needs, _repos, res) = ctx.resolve_job(&job)?;
    for w in &res.warnings {
        printer.warn(w);
    }
    let layers = ctx.layers(&job, &needs, &res, None)?;
    for c in &layers.conflicts {
        printer.warn(&format!("file conflict: {c}"));
    }
    if args.json {
        let v: Vec<serde_json::Value> = layers
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "label": l.label, "digest": l.layer.digest, "diff_id": l.layer.diff_id,
                    "size": l.layer.size, "media_type": l.layer.media_type,
                    "packages": l.layer.packages, "cached": l.cached, "path": l.path,
                })
            })
            .collect();
        printer.data(&serde_json::to_string_pretty(
            &serde_json::json!({ "layers": v, "conflicts": layers.conflicts }),
        )?);
        return Ok(());
    }
    let mut out = Vec::new();
    for l in &layers.layers {
        out.push(format!(
            "{}  {:>10}  {}{}",
            l.layer.digest,
            l.layer.size,
            l.label,
            if l.cached { "  (cached)" } else { "" }
        ));
    }
    let total: u64 = layers.layers.iter().map(|l| l.layer.size).sum();
    out.push(format!(
        "{} layers, {:.1} MiB",
        layers.layers.len(),
        total as f64 / 1048576.0
    ));
    printer.data(&out.join("\n"));
    Ok(())
}
