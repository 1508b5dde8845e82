//! Sign: pushed images get a sigstore signature in their repository (after their manifests,
//! in one push plan), and a reference's signature is checked against a public key.

use super::push::{PushTarget, plain_http, push_images};
use super::{Context, OpsError};
use crate::registry::{Blob, Client, ImagePush, OCI_INDEX, OCI_MANIFEST, PushError, PushReport};
use crate::sign::{Artifact, PrivateKey, PublicKey, SignatureImage};

/// One image to sign: its repository (without the host) and manifest digest.
#[derive(Debug, Clone)]
pub struct ToSign {
    /// `pbs/fib`.
    pub repository: String,
    /// `sha256:...` of the image manifest.
    pub digest: String,
}

/// A signature pushed: its tag and the signature manifest's digest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Signed {
    /// `sha256-<hex>.sig`.
    pub tag: String,
    /// The signature manifest's digest.
    pub digest: String,
    /// Bytes uploaded (0 when the same signature was already there).
    pub bytes: u64,
}

/// Signs each image with `key` and pushes the signatures to `target` as one plan. A
/// signature is deterministic (RFC 6979), so signing again finds it in place and sends
/// nothing. Per image, in order: the signature, or why it could not be pushed.
pub fn sign(
    ctx: &Context,
    key: &PrivateKey,
    target: &PushTarget,
    images: &[ToSign],
) -> Result<Vec<Result<Signed, PushError>>, OpsError> {
    let sigs: Vec<SignatureImage> = images
        .iter()
        .map(|i| {
            let payload =
                crate::sign::payload(&format!("{}/{}", target.host, i.repository), &i.digest);
            let signature = key.sign(&payload);
            crate::sign::signature_image(&i.digest, payload, &signature)
        })
        .collect();
    let pushes: Vec<ImagePush<'_>> = images
        .iter()
        .zip(&sigs)
        .map(|(i, s)| ImagePush {
            repository: i.repository.clone(),
            blobs: vec![
                (s.payload.1.clone(), Blob::Bytes(&s.payload.0)),
                (s.config.1.clone(), Blob::Bytes(&s.config.0)),
            ],
            manifest: &s.manifest.0,
            manifest_digest: s.manifest.1.clone(),
            tag: s.tag.clone(),
            media_type: crate::registry::OCI_MANIFEST,
        })
        .collect();
    let results = push_images(ctx, &pushes, target)?;
    Ok(results
        .into_iter()
        .zip(&sigs)
        .map(|(r, s)| {
            r.map(|report: PushReport| Signed {
                tag: s.tag.clone(),
                digest: s.manifest.1.clone(),
                bytes: report.bytes,
            })
        })
        .collect())
}

/// The artifacts attached to an image: where they are and how they are found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attached {
    /// Per artifact: its type and manifest digest.
    pub artifacts: Vec<(String, String)>,
    /// `referrers-api` when the registry lists referrers itself, else the referrers tag
    /// (`sha256-<hex>`) whose index lists them.
    pub found_by: String,
    /// Their signatures (with a key).
    pub signatures: Vec<Signed>,
}

/// Attaches `blobs` (artifact type, bytes) to the image `subject` (manifest of `size` bytes):
/// each an OCI 1.1 artifact manifest whose `subject` is the image, pushed by digest; listed
/// through the registry's referrers API, or, where it has none (docker-registry 2.8), in the
/// referrers tag schema's index (`sha256-<hex>`, other referrers kept); each signed with
/// `key` like the image.
pub fn attach(
    ctx: &Context,
    key: Option<&PrivateKey>,
    target: &PushTarget,
    subject: &ToSign,
    size: usize,
    blobs: Vec<(&'static str, Vec<u8>)>,
) -> Result<Attached, OpsError> {
    let artifacts: Vec<Artifact> = blobs
        .into_iter()
        .map(|(t, b)| crate::sign::artifact(&subject.digest, size, t, b))
        .collect();
    let empty_digest = crate::digest::sha256_digest_of(crate::sign::EMPTY_CONFIG.0);
    let pushes: Vec<ImagePush<'_>> = artifacts
        .iter()
        .map(|a| ImagePush {
            repository: subject.repository.clone(),
            blobs: vec![
                (a.blob.1.clone(), Blob::Bytes(&a.blob.0)),
                (
                    empty_digest.clone(),
                    Blob::Bytes(crate::sign::EMPTY_CONFIG.0),
                ),
            ],
            manifest: &a.manifest.0,
            manifest_digest: a.manifest.1.clone(),
            tag: a.manifest.1.clone(),
            media_type: OCI_MANIFEST,
        })
        .collect();
    for r in push_images(ctx, &pushes, target)? {
        r?;
    }
    // The referrers API, else the tag schema.
    let client = client_for(
        ctx,
        target,
        format!("repository:{}:pull,push", subject.repository),
    )?;
    let tag = crate::sign::referrers_tag(&subject.digest);
    let (api, existing) = ctx.block_on(async {
        let api = crate::registry::has_referrers_api(&client, &subject.repository, &subject.digest)
            .await?;
        let existing = if api {
            None
        } else {
            crate::registry::fetch_manifest(&client, &subject.repository, &tag).await?
        };
        Ok::<_, PushError>((api, existing))
    })?;
    let found_by = if api {
        "referrers-api".to_owned()
    } else {
        let index =
            crate::sign::referrers_index(existing.as_ref().map(|e| e.0.as_slice()), &artifacts);
        let digest = crate::digest::sha256_digest_of(&index);
        let push = ImagePush {
            repository: subject.repository.clone(),
            blobs: Vec::new(),
            manifest: &index,
            manifest_digest: digest,
            tag: tag.clone(),
            media_type: OCI_INDEX,
        };
        for r in push_images(ctx, std::slice::from_ref(&push), target)? {
            r?;
        }
        tag
    };
    let signatures = match key {
        Some(key) => {
            let to_sign: Vec<ToSign> = artifacts
                .iter()
                .map(|a| ToSign {
                    repository: subject.repository.clone(),
                    digest: a.manifest.1.clone(),
                })
                .collect();
            sign(ctx, key, target, &to_sign)?
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    Ok(Attached {
        artifacts: artifacts
            .iter()
            .map(|a| (a.artifact_type.to_owned(), a.manifest.1.clone()))
            .collect(),
        found_by,
        signatures,
    })
}

/// A repository as the provenance names it: id, URL, repomd.xml's sha256.
#[derive(Debug, Clone)]
pub struct RepoRef {
    /// The repository id.
    pub id: String,
    /// Its first base URL (or mirrorlist).
    pub uri: String,
    /// sha256 of the repomd.xml resolved against (its revision).
    pub repomd_sha256: String,
}

/// The repositories of a resolution, for [`provenance`].
pub fn repo_refs(repos: &[crate::repo::Repo]) -> Vec<RepoRef> {
    repos
        .iter()
        .map(|r| RepoRef {
            id: r.source.id.clone(),
            uri: r
                .source
                .baseurls
                .first()
                .cloned()
                .or(r.source.mirrorlist.clone())
                .unwrap_or_default(),
            repomd_sha256: r.index.repomd_sha256.clone(),
        })
        .collect()
}

/// The repositories a lock records, for [`provenance`] (URLs from the configuration).
pub fn repo_refs_of_lock(ctx: &Context, lock: &crate::resolve::lock::Lock) -> Vec<RepoRef> {
    lock.repos
        .iter()
        .map(|r| RepoRef {
            id: r.id.clone(),
            uri: ctx
                .config
                .settings
                .repos
                .iter()
                .find(|c| c.id.to_string() == r.id)
                .and_then(|c| c.baseurl.first().cloned().or(c.mirrorlist.clone()))
                .unwrap_or_default(),
            repomd_sha256: r.repomd_sha256.clone(),
        })
        .collect()
}

/// Seconds since the epoch, now (the provenance's start and end).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A pushed image and what it was built from, for [`attach_build`].
pub struct PushedBuild<'a> {
    /// The job.
    pub job: &'a crate::job::JobSpec,
    /// Its image.
    pub built: &'a super::Built,
    /// Where it was pushed (`host/repository@digest`).
    pub reference: &'a str,
    /// The repositories it was resolved against.
    pub repos: &'a [RepoRef],
    /// When its build started, in seconds since the epoch.
    pub started: u64,
}

/// Attaches a built image's SBOM and provenance and signs them with `key`; see [`attach`].
pub fn attach_build(
    ctx: &Context,
    key: &PrivateKey,
    target: &PushTarget,
    b: &PushedBuild<'_>,
) -> Result<Attached, OpsError> {
    let PushedBuild {
        job,
        built,
        reference,
        repos,
        started,
    } = *b;
    let finished = unix_now();
    let provenance = provenance(
        reference.split_once('@').map_or(reference, |(r, _)| r),
        &built.image.manifest_digest,
        (&job.script, &job.script_sha256),
        (&ctx.config.origin.to_string(), &ctx.config.sha256),
        repos,
        started,
        finished,
    );
    attach(
        ctx,
        Some(key),
        target,
        &ToSign {
            repository: built.name.repository.clone(),
            digest: built.image.manifest_digest.clone(),
        },
        built.image.manifest.len(),
        vec![
            (
                "application/spdx+json",
                super::outputs::sbom(job, built, reference),
            ),
            ("application/vnd.in-toto+json", provenance),
        ],
    )
}

/// An in-toto statement (SLSA provenance v1) for the image `name@digest`: the job script and
/// pipeline.toml by digest, the repositories by revision, pbsimage's version, the build's
/// start and end.
#[allow(clippy::too_many_arguments)]
pub fn provenance(
    name: &str,
    digest: &str,
    script: (&std::path::Path, &str),
    config: (&str, &str),
    repos: &[RepoRef],
    started: u64,
    finished: u64,
) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    let deps: Vec<serde_json::Value> = repos
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.id,
                "uri": r.uri,
                "digest": { "sha256": r.repomd_sha256 },
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": name, "digest": { "sha256": hex } }],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://github.com/pbsimage/pbsimage/build/v1",
                "externalParameters": {
                    "script": { "path": script.0, "digest": { "sha256": script.1 } },
                    "pipeline": { "origin": config.0, "digest": { "sha256": config.1 } },
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": { "id": format!("pbsimage/{}", env!("CARGO_PKG_VERSION")) },
                "metadata": {
                    "startedOn": crate::image::oci::rfc3339(started),
                    "finishedOn": crate::image::oci::rfc3339(finished),
                },
            },
        },
    }))
    .expect("plain data serializes")
}

/// A registry client for `target` with one token scope.
fn client_for<'c>(
    ctx: &'c Context,
    target: &PushTarget,
    scope: String,
) -> Result<Client<'c>, OpsError> {
    let host = target.host.as_str();
    let credentials = target.credentials.lookup(host).map_err(PushError::from)?;
    Ok(Client::new(
        &ctx.transport.client,
        host,
        plain_http(ctx, target),
        credentials,
        vec![scope],
    ))
}

/// What [`verify`] found: the image's digest and the signed payload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// `host/repository@sha256:...`
    pub reference: String,
    /// The signature manifest's tag.
    pub tag: String,
    /// The identity the payload names (`docker-reference`).
    pub identity: String,
}

/// Checks the sigstore signature of the image `host/repository` at `reference` (a tag or
/// digest) against `key`: some layer of its `.sig` manifest carries a payload for this
/// digest signed by the key.
pub fn verify(
    ctx: &Context,
    target: &PushTarget,
    repository: &str,
    reference: &str,
    key: &PublicKey,
) -> Result<Verified, OpsError> {
    let host = target.host.as_str();
    let client = client_for(ctx, target, format!("repository:{repository}:pull"))?;
    // Fetched on the runtime; parsed and checked here, off it.
    let (digest, manifest) = ctx.block_on(async {
        let (_, digest) = crate::registry::fetch_manifest(&client, repository, reference)
            .await?
            .ok_or_else(|| OpsError::Unsigned {
                reference: format!("{host}/{repository}:{reference}"),
                tag: reference.to_owned(),
            })?;
        let tag = crate::sign::signature_tag(&digest);
        let manifest = crate::registry::fetch_manifest(&client, repository, &tag).await?;
        Ok::<_, OpsError>((digest, manifest.map(|m| m.0)))
    })?;
    let tag = crate::sign::signature_tag(&digest);
    let pinned = format!("{host}/{repository}@{digest}");
    let unsigned = || OpsError::Unsigned {
        reference: pinned.clone(),
        tag: tag.clone(),
    };
    let layers = crate::sign::signature_layers(&tag, &manifest.ok_or_else(unsigned)?)?;
    let payloads = ctx.block_on(async {
        let mut out = Vec::new();
        for (d, _) in &layers {
            out.push(crate::registry::fetch_blob(&client, repository, d, 1 << 20).await?);
        }
        Ok::<_, PushError>(out)
    })?;
    let mut last = None;
    for ((_, sig), payload) in layers.iter().zip(&payloads) {
        match key.check(&pinned, payload, sig, &digest) {
            Ok(identity) => {
                return Ok(Verified {
                    reference: pinned,
                    tag,
                    identity,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(unsigned, OpsError::from))
}
