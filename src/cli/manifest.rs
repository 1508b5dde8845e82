//! `pbsimage manifest job.sh --image REF [--output FILE]`: print (or write) the Job or Pod.

use super::args::ManifestArgs;
use super::{Env, Report, Result};
use crate::image::ImageRef;
use crate::kube::{Emitter, RunAs};

pub(super) fn exec(args: &ManifestArgs, env: &Env<'_>) -> Result<()> {
    let image = ImageRef::parse(&args.image)?;
    let job = env.parse_script(&args.script)?;
    let config = env.config()?;
    let k = &config.settings.kube;
    let run_as = RunAs::resolve(args.object.run_as.as_deref(), k.run_as_user, k.run_as_group)?;
    let emitter = Emitter {
        settings: k,
        job_dir: &config.settings.image.job_dir,
        kind: args.object.kind.map_or(k.kind, Into::into),
        run_as,
        naming: args.object.naming(),
    };
    let mut manifest = emitter.emit(&job, &image).map_err(|e| {
        let hints = crate::hint::Hint::hint(&e).into_iter().collect();
        let error = anyhow::Error::new(e).context(format!(
            "cannot make a manifest for `{}`",
            args.script.script.display()
        ));
        Report { error, hints }
    })?;
    for w in &manifest.warnings {
        env.printer
            .warn(&format!("{}: {w}", args.script.script.display()));
    }
    match &args.output {
        Some(path) => {
            crate::ops::outputs::write_manifest(path, &mut manifest)?;
            env.printer.note(&format!("wrote {}", path.display()));
        }
        // Secrets are never printed.
        None if manifest.has_secret() => {
            return Err(Report {
                error: anyhow::anyhow!(
                    "the manifest of `{}` holds the job's ssh private key (a Secret: [kube] mpi = \"ssh\"); pbsimage does not print secrets",
                    args.script.script.display()
                ),
                hints: vec![
                    "pass --output FILE: the file is written owner-readable only, and written \
                     again it keeps the job's key"
                        .into(),
                ],
            });
        }
        None => env.printer.data(manifest.to_yaml()?.trim_end()),
    }
    Ok(())
}
