//! `pbsimage manifest job.sh --image REF`: print the Job or Pod.

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
    let manifest = emitter.emit(&job, &image).map_err(|e| {
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
    env.printer.data(manifest.to_yaml()?.trim_end());
    Ok(())
}
