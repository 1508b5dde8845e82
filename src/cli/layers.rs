//! `pbsimage layers job.sh`: fetch the packages and build the image's layers.

use super::args::LayersArgs;
use super::{Env, Result};
use crate::layer::plan::BuiltLayer;

/// `layers --json`.
#[derive(serde::Serialize)]
struct LayersReport<'a> {
    layers: Vec<LayerRow<'a>>,
    conflicts: &'a [String],
    /// Accounts added to the image's /etc/passwd and /etc/group.
    accounts: &'a [String],
}

#[derive(serde::Serialize)]
struct LayerRow<'a> {
    label: &'a str,
    digest: &'a oci_spec::image::Digest,
    diff_id: &'a oci_spec::image::Digest,
    size: u64,
    media_type: &'a oci_spec::image::MediaType,
    packages: &'a [String],
    cached: bool,
    path: &'a std::path::Path,
}

impl<'a> From<&'a BuiltLayer> for LayerRow<'a> {
    fn from(l: &'a BuiltLayer) -> Self {
        LayerRow {
            label: &l.label,
            digest: &l.layer.digest,
            diff_id: &l.layer.diff_id,
            size: l.layer.size,
            media_type: &l.layer.media_type,
            packages: &l.layer.packages,
            cached: l.cached,
            path: &l.path,
        }
    }
}

pub(super) fn exec(args: &LayersArgs, env: &Env<'_>) -> Result<()> {
    let job = env.parse_script(&args.script)?;
    let ctx = env.context(args.offline)?;
    let r = crate::ops::resolve::resolve_job(&ctx, &job)?;
    for w in &r.resolution.warnings {
        env.printer.warn(w);
    }
    let k = &ctx.config.settings.kube;
    let run_as =
        crate::kube::RunAs::resolve(args.run_as.as_deref(), k.run_as_user, k.run_as_group)?;
    let user = crate::kube::JobUser::new(k, run_as);
    let layers =
        crate::ops::layers::layers(&ctx, &job, &r.needs, &r.resolution, None, Some(&user))?;
    for c in &layers.conflicts {
        env.printer.warn(&format!("file conflict: {c}"));
    }
    for a in &layers.accounts {
        env.printer
            .note(&format!("account added (no scriptlet runs): {a}"));
    }
    if args.json {
        env.printer.json(&LayersReport {
            layers: layers.stack.iter().map(LayerRow::from).collect(),
            conflicts: &layers.conflicts,
            accounts: &layers.accounts,
        });
        return Ok(());
    }
    let mut out: Vec<String> = layers
        .stack
        .iter()
        .map(|l| {
            let cached = if l.cached { "  (cached)" } else { "" };
            format!(
                "{}  {:>10}  {}{cached}",
                l.layer.digest, l.layer.size, l.label
            )
        })
        .collect();
    let total: u64 = layers.stack.iter().map(|l| l.layer.size).sum();
    out.push(format!(
        "{} layers, {:.1} MiB",
        layers.stack.len(),
        total as f64 / 1048576.0
    ));
    env.printer.data(&out.join("\n"));
    Ok(())
}
