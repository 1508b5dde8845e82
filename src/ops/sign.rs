//! Sign: pushed images get a sigstore signature in their repository (after their manifests,
//! in one push plan), and a reference's signature is checked against a public key.

use super::push::{PushTarget, plain_http, push_images};
use super::{Context, OpsError};
use crate::registry::{Blob, Client, ImagePush, PushError, PushReport};
use crate::sign::{PrivateKey, PublicKey, SignatureImage};

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
    let credentials = target.credentials.lookup(host).map_err(PushError::from)?;
    let client = Client::new(
        &ctx.transport.client,
        host,
        plain_http(ctx, target),
        credentials,
        vec![format!("repository:{repository}:pull")],
    );
    ctx.block_on(async {
        let image = format!("{host}/{repository}:{reference}");
        let (_, digest) = crate::registry::fetch_manifest(&client, repository, reference)
            .await?
            .ok_or_else(|| OpsError::Unsigned {
                reference: image.clone(),
                tag: reference.to_owned(),
            })?;
        let tag = crate::sign::signature_tag(&digest);
        let pinned = format!("{host}/{repository}@{digest}");
        let (manifest, _) = crate::registry::fetch_manifest(&client, repository, &tag)
            .await?
            .ok_or_else(|| OpsError::Unsigned {
                reference: pinned.clone(),
                tag: tag.clone(),
            })?;
        let m: serde_json::Value =
            serde_json::from_slice(&manifest).map_err(|e| crate::sign::SignError::Payload {
                why: format!("manifest {tag} is not JSON: {e}"),
            })?;
        let mut last = None;
        for layer in m["layers"].as_array().into_iter().flatten() {
            let (Some(d), Some(sig)) = (
                layer["digest"].as_str(),
                layer["annotations"][crate::sign::SIGNATURE_ANNOTATION].as_str(),
            ) else {
                continue;
            };
            let payload = crate::registry::fetch_blob(&client, repository, d, 1 << 20).await?;
            let checked = key
                .verify(&pinned, &payload, sig)
                .and_then(|()| crate::sign::check_payload(&payload, &digest));
            match checked {
                Ok(()) => {
                    let v: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
                    return Ok(Verified {
                        reference: pinned,
                        tag,
                        identity: v["critical"]["identity"]["docker-reference"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => e.into(),
            None => OpsError::Unsigned {
                reference: pinned,
                tag,
            },
        })
    })
}
