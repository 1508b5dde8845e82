//! `pbsimage build job.sh`: the image in an OCI layout, and the Job that runs it.

use anyhow::{Context as _, Result};

use super::{Printer, args::BuildArgs, parse_script};
use crate::config::Config;
use crate::image::ImageRef;
use crate::kube::Emitter;

pub fn run(args: &BuildArgs, config: Config, printer: &Printer) -> Result<()> {
    let job = parse_script(&args.script, printer)?;
    let layout = args
        .output
        .clone()
        .unwrap_or_else(|| config.cache_dir().join("oci"));
    let run_as = super::manifest::resolve_run_as(
        args.run_as.as_deref(),
        config.settings.kube.run_as_user,
        config.settings.kube.run_as_group,
    )?;
    let push_host = args
        .push
        .clone()
        .or_else(|| config.settings.registry.host.clone());
    if args.offline && push_host.is_some() {
        anyhow::bail!(
            "--offline cannot push to `{}`: drop --offline, or --push and [registry] host",
            push_host.unwrap_or_default()
        );
    }
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
    let (reference, pushed) = match &push_host {
        Some(host) => {
            let clock = std::time::Instant::now();
            let (r, report) = ctx.push(&built, host, args.plain_http, credentials(args)?)?;
            timings.insert("push", clock.elapsed().as_secs_f64());
            (r, Some(report))
        }
        None => (built.reference.clone(), None),
    };
    let image = ImageRef::parse(&reference)
        .context("the configured [image] repository does not make a valid reference")?;
    let manifest = Emitter {
        settings: &s.kube,
        job_dir: &s.image.job_dir,
        kind: args.kind.unwrap_or(s.kube.kind),
        run_as,
    }
    .emit(&job, &image)?;
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
    crate::cache::write_file_atomic(&out, manifest.to_yaml()?.as_bytes())
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    let sbom_out = args.sbom_out.clone().unwrap_or_else(|| beside("spdx.json"));
    let repository = reference
        .split_once('@')
        .map_or(reference.as_str(), |(r, _)| r);
    let sbom = crate::image::packages::spdx(
        &crate::image::packages::SbomSubject {
            name: job.name.as_str(),
            repository,
            manifest_digest: &built.image.manifest_digest,
            created: built.layers.options.epoch,
        },
        &built.layers.packages,
    );
    crate::cache::write_file_atomic(
        &sbom_out,
        &serde_json::to_vec_pretty(&sbom).expect("serializable"),
    )
    .with_context(|| format!("cannot write `{}`", sbom_out.display()))?;
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

/// `--username` with the password from standard input (one line, newline dropped).
fn credentials(args: &BuildArgs) -> Result<Option<crate::registry::auth::Found>> {
    read_credentials(args.username.as_deref())
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
