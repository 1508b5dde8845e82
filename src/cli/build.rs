//! `pbsimage build job.sh`: the image in an OCI layout (pushed if asked), the Job that runs
//! it and the SBOM beside the script; prints the digest-pinned reference.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::args::{BuildArgs, RegistryArgs};
use super::{Env, Result};
use crate::config::Config;
use crate::ops::outputs::{ManifestChoice, OutputPaths};
use crate::ops::push::PushTarget;

/// `build --json`.
#[derive(serde::Serialize)]
struct BuildReport<'a> {
    reference: &'a str,
    manifest_digest: &'a str,
    config_digest: &'a str,
    layout: &'a std::path::Path,
    tag: &'a str,
    manifest_out: &'a std::path::Path,
    sbom_out: &'a std::path::Path,
    packages: usize,
    layers: Vec<LayerRow<'a>>,
    layers_reused: usize,
    layers_new: usize,
    /// Accounts added to the image's /etc/passwd and /etc/group.
    accounts: &'a [String],
    pushed: Option<&'a crate::registry::PushReport>,
    /// The sigstore signature pushed with `--sign`.
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a crate::ops::sign::Signed>,
    /// The SBOM and provenance attached with `--sign`.
    #[serde(skip_serializing_if = "Option::is_none")]
    attached: Option<&'a crate::ops::sign::Attached>,
    bytes_pushed: u64,
    timings: BTreeMap<&'static str, f64>,
    seconds: f64,
}

#[derive(serde::Serialize)]
struct LayerRow<'a> {
    label: &'a str,
    digest: &'a oci_spec::image::Digest,
    size: u64,
    cached: bool,
}

pub(super) fn exec(args: &BuildArgs, env: &Env<'_>) -> Result<()> {
    let started = std::time::Instant::now();
    let started_wall = crate::ops::sign::unix_now();
    let job = env.parse_script(&args.script)?;
    let ctx = env.context(args.image.offline)?;
    let (layout, choice) =
        layout_and_choice(args.image.output.as_ref(), &args.image.object, &ctx.config)?;
    let target = push_target(&args.image.registry, &ctx.config, args.image.offline)?;
    // The key first: a wrong password or a bad key stops the build before anything is pushed.
    let key = super::sign::signing_key(&args.signing, &ctx.config)?;
    if key.is_some() && target.is_none() {
        return Err(anyhow::anyhow!(
            "--sign needs a registry to push to (--push HOST or [registry] host): signatures \
             live beside the image in the registry"
        )
        .into());
    }
    let lock_path = crate::ops::outputs::lock_path(args.lock.as_deref(), &args.script.script);
    let lock = match args.locked {
        true => Some(crate::ops::outputs::read_lock(&lock_path)?),
        false => None,
    };
    let locked = lock.as_ref().map(|l| (lock_path.as_path(), l));
    let user = crate::kube::JobUser::new(&ctx.config.settings.kube, choice.run_as);
    let (resolved, built) = crate::ops::build_job(&ctx, &job, &layout, locked, &user)?;
    let repo_refs = crate::ops::sign::repo_refs(&resolved.repos);
    super::resolve::leave_to_exit(resolved);
    for c in &built.layers.conflicts {
        env.printer.warn(&format!("file conflict: {c}"));
    }
    for a in &built.layers.accounts {
        env.printer
            .note(&format!("account added (no scriptlet runs): {a}"));
    }
    let mut timings = built.timings.clone();
    let clock = std::time::Instant::now();
    let pushed = target
        .as_ref()
        .map(|t| crate::ops::push::push_one(&ctx, &built, t))
        .transpose()?;
    if pushed.is_some() {
        timings.insert("push", clock.elapsed().as_secs_f64());
    }
    // Signatures after the image's manifest. A failure leaves the image pushed and is
    // reported; signing again sends only what is missing.
    let signature = match (&key, &target) {
        (Some(key), Some(t)) => {
            let clock = std::time::Instant::now();
            let signed = crate::ops::sign::sign(
                &ctx,
                key,
                t,
                &[crate::ops::sign::ToSign {
                    repository: built.name.repository.clone(),
                    digest: built.image.manifest_digest.clone(),
                }],
            )?
            .pop()
            .expect("one result per image")
            .map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "{} was pushed, but its signature was not (run the build again to sign it)",
                    pushed.as_ref().map_or(&built.reference, |p| &p.reference)
                ))
            })?;
            // The SBOM and the provenance, attached to the image and signed like it.
            let reference = pushed.as_ref().map_or(&built.reference, |p| &p.reference);
            let attached = crate::ops::sign::attach_build(
                &ctx,
                key,
                t,
                &crate::ops::sign::PushedBuild {
                    job: &job,
                    built: &built,
                    reference,
                    repos: &repo_refs,
                    started: started_wall,
                },
            )
            .map_err(|e| {
                let hints = crate::hint::Hint::hint(&e).into_iter().collect();
                super::Report {
                    error: anyhow::Error::new(e).context(format!(
                        "{reference} is pushed and signed, but its SBOM and provenance are not \
                         attached (run the build again)"
                    )),
                    hints,
                }
            })?;
            timings.insert("sign", clock.elapsed().as_secs_f64());
            Some((signed, attached))
        }
        _ => None,
    };
    let reference = pushed.as_ref().map_or(&built.reference, |p| &p.reference);
    let beside = OutputPaths::beside(&args.script.script);
    let paths = OutputPaths {
        manifest: args.manifest_out.clone().unwrap_or(beside.manifest),
        sbom: args.sbom_out.clone().unwrap_or(beside.sbom),
    };
    crate::ops::outputs::write(
        &ctx.config.settings,
        &job,
        &built,
        reference,
        &choice,
        &paths,
    )?;
    if !args.json {
        env.printer.data(reference);
        return Ok(());
    }
    let stack = &built.layers.stack;
    env.printer.json(&BuildReport {
        reference,
        manifest_digest: &built.image.manifest_digest,
        config_digest: &built.image.config_digest,
        layout: &built.layout,
        tag: &built.name.tag,
        manifest_out: &paths.manifest,
        sbom_out: &paths.sbom,
        packages: built.layers.packages.len(),
        layers: stack
            .iter()
            .map(|l| LayerRow {
                label: &l.label,
                digest: &l.layer.digest,
                size: l.layer.size,
                cached: l.cached,
            })
            .collect(),
        layers_reused: stack.iter().filter(|l| l.cached).count(),
        accounts: &built.layers.accounts,
        layers_new: stack.iter().filter(|l| !l.cached).count(),
        pushed: pushed.as_ref().map(|p| &p.report),
        signature: signature.as_ref().map(|s| &s.0),
        attached: signature.as_ref().map(|s| &s.1),
        bytes_pushed: pushed.as_ref().map_or(0, |p| p.report.bytes),
        timings,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// The OCI layout to write (`--output`, else `oci/` in the cache) and how the manifests are
/// made (`--kind`, `--run-as`, else `[kube]`).
pub(super) fn layout_and_choice(
    output: Option<&PathBuf>,
    object: &super::args::ObjectArgs,
    config: &Config,
) -> Result<(PathBuf, ManifestChoice)> {
    let layout = output.cloned().unwrap_or_else(|| {
        crate::cache::Cache::new(config.cache_dir()).bucket_path(crate::cache::Bucket::Layout)
    });
    let k = &config.settings.kube;
    let run_as =
        crate::kube::RunAs::resolve(object.run_as.as_deref(), k.run_as_user, k.run_as_group)?;
    Ok((
        layout,
        ManifestChoice {
            kind: object.kind.map_or(k.kind, Into::into),
            run_as,
            naming: object.naming(),
        },
    ))
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
    // `user:password@host`: refused without repeating what came before the `@`.
    if let Some((_, bare)) = host.rsplit_once('@') {
        return Err(anyhow::anyhow!(
            "--push (or [registry] host) `…@{bare}` carries credentials; they are not accepted \
             there and were not used"
        )
        .into());
    }
    if offline {
        return Err(crate::ops::OpsError::OfflinePush(host).into());
    }
    let given = read_credentials(args.username.as_deref())?;
    Ok(Some(PushTarget {
        host,
        plain_http: args.plain_http,
        credentials: crate::registry::auth::CredentialChain::new(given),
        shard: None,
    }))
}

/// `--username` with the password read from standard input.
fn read_credentials(username: Option<&str>) -> Result<Option<crate::registry::auth::Found>> {
    use crate::registry::auth::{Credentials, Found, Secret};
    use anyhow::Context as _;
    let Some(user) = username else {
        return Ok(None);
    };
    let mut password = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(anyhow::anyhow!("--password-stdin: standard input is empty").into());
    }
    Ok(Some(Found {
        credentials: Credentials::Password {
            username: user.to_owned(),
            password: Secret::new(password),
        },
        source: "--username and --password-stdin".into(),
    }))
}
