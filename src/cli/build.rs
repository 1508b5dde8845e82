//! `pbsimage build job.sh`: the image in an OCI layout, and the Job that runs it.

use anyhow::{Context as _, Result};

use super::{
    Printer,
    args::{BuildArgs, RegistryArgs},
    parse_script,
};
use crate::config::Config;
use crate::image::ImageRef;
use crate::kube::Emitter;

pub fn run(args: &BuildArgs, config: Config, printer: &Printer) -> Result<()> {
    let job = parse_script(&args.script, printer)?;
    let (layout, run_as) =
        layout_and_run_as(args.output.as_deref(), args.run_as.as_deref(), &config)?;
    let target = push_target(&args.registry, &config, args.offline)?;
    let lock = match args.locked {
        true => {
            let path = args.lock.clone().unwrap_or_else(|| {
                args.script
                    .script
                    .with_file_name(crate::resolve::lock::LOCK_FILE)
            });
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "--locked: cannot read `{}` (write it with `pbsimage resolve --lock {} {}`)",
                    path.display(),
                    path.display(),
                    args.script.script.display()
                )
            })?;
            let lock: crate::resolve::lock::Lock = toml::from_str(&text)
                .with_context(|| format!("`{}` is not a pbsimage lock file", path.display()))?;
            Some((path, lock))
        }
        false => None,
    };
    let ctx = super::context(config, args.offline, printer)?;
    let started = std::time::Instant::now();
    let (_needs, built) = ctx.build(&job, &layout, lock.as_ref().map(|(p, l)| (p.as_path(), l)))?;
    for c in &built.layers.conflicts {
        printer.warn(&format!("file conflict: {c}"));
    }
    let s = &ctx.config.settings;
    let mut timings = built.timings.clone();
    let (reference, pushed) = match target {
        Some(t) => {
            let clock = std::time::Instant::now();
            let (r, report) = ctx.push(&built, &t.host, t.plain_http, t.credentials)?;
            timings.insert("push", clock.elapsed().as_secs_f64());
            (r, Some(report))
        }
        None => (built.reference.clone(), None),
    };
    let beside = |ext: &str| {
        let stem = args
            .script
            .script
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job".into());
        args.script.script.with_file_name(format!("{stem}.{ext}"))
    };
    let out = args
        .manifest_out
        .clone()
        .unwrap_or_else(|| beside("k8s.yaml"));
    let sbom_out = args.sbom_out.clone().unwrap_or_else(|| beside("spdx.json"));
    write_outputs(
        s,
        &job,
        &built,
        &reference,
        args.kind.unwrap_or(s.kube.kind),
        run_as,
        &out,
        &sbom_out,
    )?;
    if args.json {
        let layers = &built.layers.layers;
        printer.data(&serde_json::to_string_pretty(&serde_json::json!({
            "reference": reference,
            "manifest_digest": built.image.manifest_digest,
            "config_digest": built.image.config_digest,
            "layout": built.layout,
            "tag": built.tag,
            "manifest_out": out,
            "sbom_out": sbom_out,
            "packages": built.layers.packages.len(),
            "layers": layers.iter().map(|l| serde_json::json!({
                "label": l.label, "digest": l.layer.digest, "size": l.layer.size, "cached": l.cached,
            })).collect::<Vec<_>>(),
            "layers_reused": layers.iter().filter(|l| l.cached).count(),
            "layers_new": layers.iter().filter(|l| !l.cached).count(),
            "pushed": pushed,
            "bytes_pushed": pushed.as_ref().map_or(0, |p| p.bytes),
            "timings": timings,
            "seconds": started.elapsed().as_secs_f64(),
        }))?);
    } else {
        printer.data(&reference);
    }
    Ok(())
}

/// The OCI layout to write (`--output`, else `oci/` in the cache) and who the pods run as
/// (`--run-as`, else `[kube]`).
pub(super) fn layout_and_run_as(
    output: Option<&std::path::Path>,
    run_as: Option<&str>,
    config: &Config,
) -> Result<(std::path::PathBuf, crate::kube::RunAs)> {
    let layout = output
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| config.cache_dir().join("oci"));
    let run_as = super::manifest::resolve_run_as(
        run_as,
        config.settings.kube.run_as_user,
        config.settings.kube.run_as_group,
    )?;
    Ok((layout, run_as))
}

/// Where a build pushes, if anywhere.
pub(super) struct PushTarget {
    pub host: String,
    pub plain_http: bool,
    pub credentials: Option<crate::registry::auth::Found>,
}

/// `--push` or `[registry] host`, with `--plain-http` and the `--password-stdin` password
/// (read now, before any work). `--offline` builds cannot push.
pub(super) fn push_target(
    args: &RegistryArgs,
    config: &Config,
    offline: bool,
) -> Result<Option<PushTarget>> {
    let Some(host) = args
        .push
        .clone()
        .or_else(|| config.settings.registry.host.clone())
    else {
        return Ok(None);
    };
    if offline {
        anyhow::bail!(
            "--offline cannot push to `{host}`: drop --offline, or --push and [registry] host"
        );
    }
    Ok(Some(PushTarget {
        host,
        plain_http: args.plain_http,
        credentials: read_credentials(args.username.as_deref())?,
    }))
}

/// The Kubernetes manifest and the SPDX SBOM of a built job, written atomically.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_outputs(
    s: &crate::config::Settings,
    job: &crate::job::JobSpec,
    built: &crate::pipeline::Built,
    reference: &str,
    kind: crate::config::KubeKind,
    run_as: crate::kube::RunAs,
    manifest_path: &std::path::Path,
    sbom_path: &std::path::Path,
) -> Result<()> {
    let image = ImageRef::parse(reference)
        .context("the configured [image] repository does not make a valid reference")?;
    let manifest = Emitter {
        settings: &s.kube,
        job_dir: &s.image.job_dir,
        kind,
        run_as,
    }
    .emit(job, &image)?;
    crate::cache::write_file_atomic(manifest_path, manifest.to_yaml()?.as_bytes())
        .with_context(|| format!("cannot write `{}`", manifest_path.display()))?;
    let sbom = crate::image::packages::spdx(
        &crate::image::packages::SbomSubject {
            name: job.name.as_str(),
            repository: reference.split_once('@').map_or(reference, |(r, _)| r),
            manifest_digest: &built.image.manifest_digest,
            created: built.layers.options.epoch,
        },
        &built.layers.packages,
    );
    crate::cache::write_file_atomic(
        sbom_path,
        &serde_json::to_vec_pretty(&sbom).expect("serializable"),
    )
    .with_context(|| format!("cannot write `{}`", sbom_path.display()))
}

/// `--username` with the password read from standard input.
pub(super) fn read_credentials(
    username: Option<&str>,
) -> Result<Option<crate::registry::auth::Found>> {
    use crate::registry::auth::{Credentials, Found, Secret};
    let Some(user) = username else {
        return Ok(None);
    };
    let mut password = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(
        !password.is_empty(),
        "--password-stdin: standard input is empty"
    );
    Ok(Some(Found {
        credentials: Credentials::Password {
            username: user.to_owned(),
            password: Secret::new(password),
        },
        source: "--username and --password-stdin".into(),
    }))
}
