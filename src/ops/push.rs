//! Push: built images to a registry as one plan — each distinct blob sent once, mounted where
//! other images need it, manifests last, one image's failure isolated.

use super::{Built, Context, OpsError};
use crate::registry::auth::CredentialChain;
use crate::registry::{Blob, Client, ImagePush, KnownBlobs, PushError, PushReport, Pusher};

/// Where to push.
#[derive(Debug)]
pub struct PushTarget {
    /// The registry host (`host[:port]`).
    pub host: String,
    /// Plain HTTP (also when `[registry] insecure` names the host).
    pub plain_http: bool,
    /// Where credentials for the host are looked up.
    pub credentials: CredentialChain,
    /// One shard `(I, N)` of a catalog pushing alongside the others (see
    /// [`crate::registry::Pusher::shard`]).
    pub shard: Option<(u32, u32)>,
}

/// One image pushed: its digest-pinned reference with the registry host, and what was sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `host/repository@sha256:...`
    pub reference: String,
    /// Blobs uploaded, mounted, skipped; bytes sent.
    pub report: PushReport,
}

/// Per image, in the order given: pushed, or why not.
pub type PushResults = Vec<Result<Pushed, PushError>>;

/// Pushes one image.
pub fn push_one(ctx: &Context, built: &Built, target: &PushTarget) -> Result<Pushed, OpsError> {
    push(ctx, &[built], target)?
        .pop()
        .expect("one result per image")
        .map_err(OpsError::from)
}

/// Pushes several images as one plan (see [`Pusher::push_all`]). Errors that stop every
/// image (credentials, the cache) are the outer error; each image's own failure is its
/// result. Where each blob went is recorded for later mounts ([`KnownBlobs`]).
pub fn push(ctx: &Context, built: &[&Built], target: &PushTarget) -> Result<PushResults, OpsError> {
    let images: Vec<ImagePush<'_>> = built.iter().map(|b| image_push(b)).collect();
    let results = push_images(ctx, &images, target)?;
    Ok(built
        .iter()
        .zip(results)
        .map(|(b, r)| {
            r.map(|report| Pushed {
                reference: format!(
                    "{}/{}@{}",
                    target.host, b.name.repository, b.image.manifest_digest
                ),
                report,
            })
        })
        .collect())
}

/// Whether `target` is reached over plain HTTP (`--plain-http` or `[registry] insecure`).
pub fn plain_http(ctx: &Context, target: &PushTarget) -> bool {
    target.plain_http || ctx.config.settings.registry.insecure.contains(&target.host)
}

/// Pushes any images (built images, signatures) as one plan; see [`push`].
pub fn push_images(
    ctx: &Context,
    images: &[ImagePush<'_>],
    target: &PushTarget,
) -> Result<Vec<Result<PushReport, PushError>>, OpsError> {
    let host = target.host.as_str();
    let records = KnownBlobs::open(&ctx.cache, host)?;
    let credentials = target.credentials.lookup(host).map_err(PushError::from)?;
    let known = records.load();
    let shard = target
        .shard
        .map(|(index, count)| crate::registry::ShardPush {
            blob_repository: ctx.config.settings.registry.blob_repository.clone(),
            index,
            count,
        });
    let scopes = Pusher::scopes(images, &known, shard.as_ref());
    let pusher = Pusher {
        client: Client::new(
            &ctx.transport.client,
            host,
            plain_http(ctx, target),
            credentials,
            scopes,
        ),
        known: std::sync::Mutex::new(known),
        parallel: ctx.config.settings.registry.parallel,
        shard,
    };
    let results = ctx.block_on(pusher.push_all(images));
    records.record(
        images
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .flat_map(|(img, _)| {
                img.blobs
                    .iter()
                    .map(|(d, _)| (d.as_str(), img.repository.as_str()))
            }),
    )?;
    Ok(results)
}

/// What the pusher sends of a built image: its layers (from the cache), config, manifest.
fn image_push(b: &Built) -> ImagePush<'_> {
    let mut blobs: Vec<(String, Blob<'_>)> = b
        .layers
        .stack
        .iter()
        .map(|l| (l.layer.digest.to_string(), Blob::File(&l.path)))
        .collect();
    blobs.push((b.image.config_digest.clone(), Blob::Bytes(&b.image.config)));
    ImagePush {
        repository: b.name.repository.clone(),
        blobs,
        manifest: &b.image.manifest,
        manifest_digest: b.image.manifest_digest.clone(),
        tag: b.name.tag.clone(),
        media_type: crate::registry::OCI_MANIFEST,
    }
}
