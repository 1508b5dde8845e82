//! Push: an image from the cache to a registry, per the OCI distribution spec.
//!
//! [`Pusher::push_all`] checks `GET /v2/`, asks `HEAD` for every blob and uploads only the
//! missing ones, a bounded number at a time: a cross-repository mount when an earlier push
//! left the blob in another repository of the registry, else a monolithic `POST` + `PUT
//! ?digest=` streamed from the cached file (a lost upload session starts over). The manifest
//! goes last with the exact bytes of the layout, so the tag moves only once every blob is
//! there. A `Docker-Content-Digest` that disagrees with the local digest is an error. Plain
//! HTTP is used only for registries named in `[registry] insecure`. Authentication and
//! retries are [`client::Client`]'s.

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::StreamExt as _;

use crate::fetch::SafeUrl;

pub mod auth;
pub mod client;
mod known;

pub use known::{BlobLocations, KnownBlobs};

pub use client::{Client, Retry};

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The registry's TLS certificate was refused.
    #[error("registry `{host}`: {what}: the server's certificate is not trusted: {message}")]
    Certificate {
        /// The registry host (`host[:port]`).
        host: String,
        /// What was being done.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The request could not be sent or its answer read.
    #[error("registry `{host}`: {what}: {message}")]
    Http {
        /// The registry host (`host[:port]`).
        host: String,
        /// What was being done.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The registry answered with an error status.||detail=The registry's error codes and messages, if any.
    #[error("registry `{host}` answered {status} to {what}{detail}")]
    Status {
        /// The registry host (`host[:port]`).
        host: String,
        /// What was being done.
        what: String,
        /// The HTTP status.
        status: u16,
        /// What is wrong with it.
        detail: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error("registry `{host}` refused {source_} for {what}")]
    Unauthorized {
        /// The registry host (`host[:port]`).
        host: String,
        /// What was being done.
        what: String,
        /// Where the refused credentials came from (never the secret).
        source_: String,
    },
    /// No token from the token service.
    #[error("registry `{host}`: no token from `{realm}`: {message}")]
    Token {
        /// The registry host (`host[:port]`).
        host: String,
        /// The token service.
        realm: SafeUrl,
        /// What is wrong.
        message: String,
    },
    /// The registry stored something else than what was sent.||what=The blob or manifest.
    #[error("registry `{host}` says {what} has digest {theirs}, but it is {ours}")]
    Digest {
        /// The registry host (`host[:port]`).
        host: String,
        /// What was being done.
        what: String,
        /// The digest computed here.
        ours: String,
        /// The digest the registry answered.
        theirs: String,
    },
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// A blob in the cache cannot be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl crate::hint::Hint for PushError {
    fn hint(&self) -> Option<String> {
        match self {
            PushError::Unauthorized { .. } => Some(
                "give credentials with --username and --password-stdin, or log in with \
                 `skopeo login`/`podman login`/`docker login` (read from $REGISTRY_AUTH_FILE, \
                 $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json)"
                    .into(),
            ),
            PushError::Certificate { .. } => {
                Some("trust the registry's CA with `[registry] ca-bundle` in pipeline.toml".into())
            }
            _ => None,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushReport {
    /// Blobs uploaded.
    pub uploaded: Vec<String>,
    /// Blobs the registry already had in this repository.
    pub skipped: Vec<String>,
    /// Blobs mounted from another repository of the registry (no bytes sent).
    pub mounted: Vec<String>,
    /// Bytes of blobs uploaded.
    pub bytes: u64,
}

#[derive(Clone, Copy)]
enum Outcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

/// The manifest `reference` (a tag or digest) names in `repository`: its bytes and digest
/// (`None` if there is none). At most 4 MiB is read.
pub async fn fetch_manifest(
    client: &Client<'_>,
    repository: &str,
    reference: &str,
) -> Result<Option<(Vec<u8>, String)>, PushError> {
    let url = format!("{}/{repository}/manifests/{reference}", client.base());
    let what = format!("manifest {reference}");
    let r = client
        .send(&what, || {
            Ok(client.http.get(&url).header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            ))
        })
        .await?;
    if r.status().as_u16() == 404 {
        return Ok(None);
    }
    if !r.status().is_success() {
        return Err(client.status_error(&what, r).await);
    }
    let bytes = read_bounded(client, &what, r, 4 << 20).await?;
    let digest = crate::digest::sha256_digest_of(&bytes);
    Ok(Some((bytes, digest)))
}

/// The blob `digest` of `repository`, checked against its digest; at most `limit` bytes.
pub async fn fetch_blob(
    client: &Client<'_>,
    repository: &str,
    digest: &str,
    limit: u64,
) -> Result<Vec<u8>, PushError> {
    let url = format!("{}/{repository}/blobs/{digest}", client.base());
    let what = format!("blob {digest}");
    let r = client.send(&what, || Ok(client.http.get(&url))).await?;
    if !r.status().is_success() {
        return Err(client.status_error(&what, r).await);
    }
    let bytes = read_bounded(client, &what, r, limit).await?;
    let theirs = crate::digest::sha256_digest_of(&bytes);
    if theirs != digest {
        return Err(PushError::Digest {
            host: client.host.clone(),
            what,
            ours: digest.to_owned(),
            theirs,
        });
    }
    Ok(bytes)
}

async fn read_bounded(
    client: &Client<'_>,
    what: &str,
    mut r: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, PushError> {
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| PushError::Http {
        host: client.host.clone(),
        what: what.to_owned(),
        message: e.to_string(),
    })? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(PushError::Http {
                host: client.host.clone(),
                what: what.to_owned(),
                message: format!("the answer is larger than {limit} bytes"),
            });
        }
    }
    Ok(out)
}

/// One image to push: its blobs (layers and config), manifest bytes and tag.
pub struct ImagePush<'b> {
    /// The repository path (without the host).
    pub repository: String,
    /// Layers and config: digest and where the bytes are.
    pub blobs: Vec<(String, Blob<'b>)>,
    /// The manifest's exact bytes.
    pub manifest: &'b [u8],
    /// `sha256:` of the manifest.
    pub manifest_digest: String,
    /// The tag it goes under (or its digest, for a manifest no tag names).
    pub tag: String,
    /// The manifest's media type ([`OCI_MANIFEST`] or [`OCI_INDEX`]).
    pub media_type: &'static str,
}

/// An OCI image manifest's media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index's media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Whether the registry answers the OCI 1.1 referrers API for `repository`.
pub async fn has_referrers_api(
    client: &Client<'_>,
    repository: &str,
    digest: &str,
) -> Result<bool, PushError> {
    let url = format!("{}/{repository}/referrers/{digest}", client.base());
    let what = format!("referrers of {digest}");
    let r = client.send(&what, || Ok(client.http.get(&url))).await?;
    Ok(r.status().is_success())
}

/// Pushes images to one registry.
pub struct Pusher<'a> {
    /// The registry.
    pub client: Client<'a>,
    /// Which repository of this registry holds a blob (earlier pushes, and this one's as it
    /// goes): mount sources.
    pub known: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Blobs in flight at once.
    pub parallel: usize,
    /// One shard of several pushing at once: every blob goes first to this shared
    /// repository (where the other shards' HEAD finds it), then is mounted into the images'
    /// repositories; and the blobs are sent starting `(I-1)/N` of the way through the
    /// digest-ordered list, so concurrent shards start on different blobs.
    pub shard: Option<ShardPush>,
}

/// How a shard of a catalog pushes (see [`Pusher::shard`]).
#[derive(Debug, Clone)]
pub struct ShardPush {
    /// The repository every shard places blobs in first.
    pub blob_repository: String,
    /// This shard, 1-based.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

/// A copy of an error shared by several images (the first keeps the original).
fn shared(e: &PushError) -> PushError {
    PushError::Http {
        host: match e {
            PushError::Http { host, .. }
            | PushError::Certificate { host, .. }
            | PushError::Status { host, .. }
            | PushError::Unauthorized { host, .. }
            | PushError::Token { host, .. }
            | PushError::Digest { host, .. } => host.clone(),
            _ => String::new(),
        },
        what: "an earlier step".into(),
        message: e.to_string(),
    }
}

impl Pusher<'_> {
    /// The token scopes a push of `images` needs: push to each image's repository (and a
    /// shard's blob repository), pull from each mount source.
    pub fn scopes(
        images: &[ImagePush<'_>],
        known: &std::collections::BTreeMap<String, String>,
        shard: Option<&ShardPush>,
    ) -> Vec<String> {
        let mut repos: Vec<&str> = images.iter().map(|i| i.repository.as_str()).collect();
        repos.extend(shard.map(|s| s.blob_repository.as_str()));
        repos.sort();
        repos.dedup();
        let mut s: Vec<String> = repos
            .iter()
            .map(|r| format!("repository:{r}:pull,push"))
            .collect();
        let mut from: Vec<&String> = images
            .iter()
            .flat_map(|i| i.blobs.iter().map(|(d, _)| d))
            .filter_map(|d| known.get(d))
            .filter(|r| !repos.contains(&r.as_str()))
            .collect();
        from.sort();
        from.dedup();
        s.extend(from.into_iter().map(|r| format!("repository:{r}:pull")));
        s
    }

    fn check_digest(
        &self,
        what: &str,
        resp: &reqwest::Response,
        ours: &str,
    ) -> Result<(), PushError> {
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && theirs != ours
        {
            return Err(PushError::Digest {
                host: self.client.host.clone(),
                what: what.to_owned(),
                ours: ours.to_owned(),
                theirs: theirs.to_owned(),
            });
        }
        Ok(())
    }

    /// Pushes several images as one plan: images whose tag already names their digest are
    /// left alone; every other image's distinct blobs are sent once, to the repository of the
    /// first image that has them, and mounted into the others' repositories; then each
    /// manifest. One image's failure does not stop the others. Results in `images` order.
    pub async fn push_all(&self, images: &[ImagePush<'_>]) -> Vec<Result<PushReport, PushError>> {
        if let Err(e) = self.check_api().await {
            let n = images.len();
            let mut out: Vec<Result<PushReport, PushError>> =
                (1..n).map(|_| Err(shared(&e))).collect();
            out.insert(0, Err(e));
            return out;
        }
        let mut results = self.already_tagged(images).await;
        let homes = blob_homes(images, &results);
        let sent = self.send_homes(images, &homes).await;
        let placed = self.place_elsewhere(images, &results, &homes, &sent).await;
        let ready = reports(
            images,
            &mut results,
            &homes,
            &sent,
            &placed,
            self.shard.is_some(),
        );
        let manifests: Vec<(usize, Result<PushReport, PushError>)> =
            futures_util::stream::iter(ready)
                .map(|(i, report)| async move {
                    (i, self.put_manifest(&images[i]).await.map(|()| report))
                })
                .buffer_unordered(self.parallel.max(1))
                .collect()
                .await;
        for (i, r) in manifests {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.expect("every image has a result"))
            .collect()
    }

    /// `GET /v2/`: the registry speaks the distribution API and accepts our credentials.
    async fn check_api(&self) -> Result<(), PushError> {
        let base = self.client.base();
        let r = self
            .client
            .send("GET /v2/", || Ok(self.client.http.get(format!("{base}/"))))
            .await?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(self.client.status_error("GET /v2/", r).await)
        }
    }

    /// Images whose tag already names their digest are done (a registry accepts a manifest
    /// only with all its blobs and keeps them while it is referenced); a failed tag check
    /// fails its image. `None`: still to push.
    async fn already_tagged(&self, images: &[ImagePush<'_>]) -> Vec<Option<ImageResult>> {
        let current: Vec<Result<Option<String>, PushError>> = futures_util::stream::iter(images)
            .map(|i| self.tag_digest(&i.repository, &i.tag))
            .buffered(self.parallel.max(1))
            .collect()
            .await;
        current
            .into_iter()
            .zip(images)
            .map(|(c, img)| match c {
                Ok(Some(d)) if d == img.manifest_digest => Some(Ok(PushReport {
                    skipped: img.blobs.iter().map(|(d, _)| d.clone()).collect(),
                    ..Default::default()
                })),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    /// Each distinct blob once, into the repository of its home image (a shard: into the
    /// shared blob repository, in the order of [`shard_order`]).
    async fn send_homes<'i>(
        &self,
        images: &[ImagePush<'_>],
        homes: &BTreeMap<&'i str, (usize, &'i Blob<'i>)>,
    ) -> BTreeMap<&'i str, Result<Outcome, PushError>> {
        let order: Vec<(&'i str, usize, &'i Blob<'i>, bool)> = match &self.shard {
            Some(s) => shard_order(images, homes, s),
            None => homes
                .iter()
                .map(|(d, (i, b))| (*d, *i, *b, false))
                .collect(),
        };
        futures_util::stream::iter(order)
            .map(|(d, i, b, wait)| async move {
                let repository = match &self.shard {
                    Some(s) => &s.blob_repository,
                    None => &images[i].repository,
                };
                // Another shard's copy is there: nothing to send (the wait's HEAD said so).
                let r = if wait && self.wait_for(repository, d).await {
                    Ok(Outcome::Skipped)
                } else {
                    self.push_blob(repository, d, b).await
                };
                if r.is_ok() {
                    self.known
                        .lock()
                        .expect("not poisoned")
                        .insert(d.to_string(), repository.clone());
                }
                (d, r)
            })
            .buffer_unordered(self.parallel.max(1))
            .collect()
            .await
    }

    /// Waits, up to [`SHARD_WAIT`], for another shard to place `digest` in `repository`:
    /// true once it is there. Any other answer than 200 or 404 ends the wait (false: the
    /// push that follows reports it).
    async fn wait_for(&self, repository: &str, digest: &str) -> bool {
        let url = format!("{}/{repository}/blobs/{digest}", self.client.base());
        let started = std::time::Instant::now();
        while started.elapsed() < SHARD_WAIT {
            let status = self
                .client
                .send(&format!("blob {digest}"), || {
                    Ok(self.client.http.head(&url))
                })
                .await
                .map(|r| r.status().as_u16());
            match status {
                Ok(404) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                Ok(200..=299) => {
                    tracing::debug!(
                        "blob {digest}: another shard's copy after {:?}",
                        started.elapsed()
                    );
                    return true;
                }
                _ => return false,
            }
        }
        tracing::debug!("blob {digest}: no other shard sent it within {SHARD_WAIT:?}");
        false
    }

    /// The other images' repositories: HEAD, then mount from where the blob now is.
    async fn place_elsewhere<'i>(
        &self,
        images: &'i [ImagePush<'i>],
        results: &[Option<ImageResult>],
        homes: &BTreeMap<&'i str, (usize, &'i Blob<'i>)>,
        sent: &BTreeMap<&'i str, Result<Outcome, PushError>>,
    ) -> BTreeMap<(usize, &'i str), Result<Outcome, PushError>> {
        let mut rest: Vec<(usize, &str, &Blob<'_>)> = Vec::new();
        for (i, img) in images.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            for (d, b) in &img.blobs {
                // A shard's blobs went to the shared repository: every image mounts them.
                let home = homes[d.as_str()].0 == i && self.shard.is_none();
                if !home && sent[d.as_str()].is_ok() {
                    rest.push((i, d, b));
                }
            }
        }
        futures_util::stream::iter(rest)
            .map(|(i, d, b)| async move {
                ((i, d), self.push_blob(&images[i].repository, d, b).await)
            })
            .buffer_unordered(self.parallel.max(1))
            .collect()
            .await
    }

    /// `PUT url` with a content type (and length), the body made again for each attempt.
    async fn put<B: Into<reqwest::Body>>(
        &self,
        what: &str,
        url: &str,
        content_type: &str,
        len: Option<u64>,
        body: impl Fn() -> Result<B, PushError>,
    ) -> Result<reqwest::Response, PushError> {
        self.client
            .send(what, || {
                let mut rb = self
                    .client
                    .http
                    .put(url)
                    .header("content-type", content_type);
                if let Some(len) = len {
                    rb = rb.header("content-length", len);
                }
                Ok(rb.body(body()?))
            })
            .await
    }

    async fn put_manifest(&self, img: &ImagePush<'_>) -> Result<(), PushError> {
        let what = format!("manifest {}", img.manifest_digest);
        let url = format!(
            "{}/{}/manifests/{}",
            self.client.base(),
            img.repository,
            img.tag
        );
        let put = self
            .put(&what, &url, img.media_type, None, || {
                Ok(img.manifest.to_vec())
            })
            .await?;
        if put.status().as_u16() != 201 {
            return Err(self.client.status_error(&what, put).await);
        }
        self.check_digest(&what, &put, &img.manifest_digest)
    }

    /// The digest `tag` points at in `repository`, if any.
    async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<String>, PushError> {
        let url = format!("{}/{repository}/manifests/{tag}", self.client.base());
        let what = format!("manifest {tag}");
        let r = self
            .client
            .send(&what, || {
                Ok(self.client.http.head(&url).header(
                    "accept",
                    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
                ))
            })
            .await?;
        if !r.status().is_success() {
            return Ok(None);
        }
        Ok(r.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    async fn push_blob(
        &self,
        repository: &str,
        digest: &str,
        blob: &Blob<'_>,
    ) -> Result<Outcome, PushError> {
        let base = self.client.base();
        let what = format!("blob {digest}");
        let mut location = None;
        let from = self
            .known
            .lock()
            .expect("not poisoned")
            .get(digest)
            .filter(|r| *r != repository)
            .cloned();
        // With a mount source, the mount itself is the check (it succeeds whether or not the
        // repository already links the blob): one request instead of a HEAD and a POST.
        if from.is_none() {
            let url = format!("{base}/{repository}/blobs/{digest}");
            let head = self
                .client
                .send(&what, || Ok(self.client.http.head(&url)))
                .await?;
            match head.status().as_u16() {
                200..=299 => return Ok(Outcome::Skipped),
                404 => {}
                _ => return Err(self.client.status_error(&what, head).await),
            }
        }
        if let Some(from) = from {
            let mount = format!("{base}/{repository}/blobs/uploads/?mount={digest}&from={from}");
            // Under many concurrent mounts of one blob, docker-registry now and then answers
            // one with an upload session although the source has the blob: asked again, it
            // mounts. (The unused session expires on the registry.)
            for attempt in 0..2 {
                let m = self
                    .client
                    .send(&what, || Ok(self.client.http.post(&mount)))
                    .await?;
                match m.status().as_u16() {
                    201 => {
                        self.check_digest(&what, &m, digest)?;
                        return Ok(Outcome::Mounted);
                    }
                    // Not mounted; the registry opened an upload session instead.
                    202 => location = self.location(&m),
                    // Mount refused (the source is gone, or not readable to us): upload.
                    _ => break,
                }
                if attempt == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        for _session in 0..3 {
            let loc = match location.take() {
                Some(l) => l,
                None => self.start_upload(repository, &what).await?,
            };
            let sep = if loc.contains('?') { '&' } else { '?' };
            let put_url = format!("{loc}{sep}digest={digest}");
            let len = blob.len()?;
            let put = self
                .put(
                    &what,
                    &put_url,
                    "application/octet-stream",
                    Some(len),
                    || blob.body(),
                )
                .await?;
            match put.status().as_u16() {
                201 => {
                    self.check_digest(&what, &put, digest)?;
                    return Ok(Outcome::Uploaded(len));
                }
                // The upload session was lost (a retried PUT after a cut connection): again.
                404 => continue,
                _ => {
                    return Err(self
                        .client
                        .status_error(
                            &format!("uploading {what} to {}", SafeUrl(put_url.clone())),
                            put,
                        )
                        .await);
                }
            }
        }
        Err(PushError::Status {
            host: self.client.host.clone(),
            what: format!("uploading {what} (three upload sessions lost)"),
            status: 404,
            detail: String::new(),
        })
    }

    async fn start_upload(&self, repository: &str, what: &str) -> Result<String, PushError> {
        let url = format!("{}/{repository}/blobs/uploads/", self.client.base());
        let start = self
            .client
            .send(what, || Ok(self.client.http.post(&url)))
            .await?;
        if start.status().as_u16() != 202 {
            return Err(self
                .client
                .status_error(&format!("starting the upload of {what}"), start)
                .await);
        }
        self.location(&start).ok_or_else(|| PushError::Status {
            host: self.client.host.clone(),
            what: format!("{what} (no upload location)"),
            status: 202,
            detail: String::new(),
        })
    }

    fn location(&self, r: &reqwest::Response) -> Option<String> {
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| self.client.absolute(l))
    }
}

/// One image's outcome.
type ImageResult = Result<PushReport, PushError>;

/// Each distinct blob of the images still to push, with its home: the first image that has it.
/// How long a shard waits for the shard that owns a shared blob to send it.
const SHARD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A shard's blobs in sending order, each with whether to wait for its owner first. A blob
/// a quarter or more of this push's images use (the base layer, the most common packages)
/// is all but certainly used by every other shard too; exactly one shard owns it (by its
/// digest) and sends it first thing, the others send theirs last and wait for the owner's
/// copy to appear in the shared repository before sending their own. The other blobs go
/// between, starting `(I-1)/N` of the way through the list.
fn shard_order<'i>(
    images: &[ImagePush<'_>],
    homes: &BTreeMap<&'i str, (usize, &'i Blob<'i>)>,
    s: &ShardPush,
) -> Vec<(&'i str, usize, &'i Blob<'i>, bool)> {
    let mut users: BTreeMap<&str, usize> = BTreeMap::new();
    for img in images {
        for (d, _) in &img.blobs {
            *users.entry(d.as_str()).or_default() += 1;
        }
    }
    let owner = |d: &str| {
        let hex = d.rsplit(':').next().unwrap_or(d);
        let n = u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16).unwrap_or(0);
        n % u64::from(s.count.max(1)) + 1 == u64::from(s.index)
    };
    let common = (images.len() / 4).max(2);
    let (mut mine, mut single, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for (d, (i, b)) in homes {
        match (users.get(d).copied().unwrap_or(0) >= common, owner(d)) {
            (true, true) => mine.push((*d, *i, *b, false)),
            (true, false) => theirs.push((*d, *i, *b, true)),
            (false, _) => single.push((*d, *i, *b, false)),
        }
    }
    let n = single.len();
    let at = n * (s.index.saturating_sub(1) as usize) / (s.count.max(1) as usize);
    single.rotate_left(at.min(n));
    mine.into_iter().chain(single).chain(theirs).collect()
}

fn blob_homes<'i>(
    images: &'i [ImagePush<'i>],
    results: &[Option<ImageResult>],
) -> BTreeMap<&'i str, (usize, &'i Blob<'i>)> {
    let mut home = BTreeMap::new();
    for (i, img) in images.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        for (d, b) in &img.blobs {
            home.entry(d.as_str()).or_insert((i, b));
        }
    }
    home
}

/// Fills each image's report from its blobs' outcomes; an image with a failed blob fails.
/// Returns the images whose blobs are all in place (their manifests go next).
fn reports(
    images: &[ImagePush<'_>],
    results: &mut [Option<ImageResult>],
    homes: &BTreeMap<&str, (usize, &Blob<'_>)>,
    sent: &BTreeMap<&str, Result<Outcome, PushError>>,
    placed: &BTreeMap<(usize, &str), Result<Outcome, PushError>>,
    shard: bool,
) -> Vec<(usize, PushReport)> {
    let mut ready = Vec::new();
    for (i, img) in images.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        let mut report = PushReport::default();
        let mut failed = None;
        for (d, _) in &img.blobs {
            let home = homes[d.as_str()].0 == i;
            let o: Result<&Outcome, &PushError> = match &sent[d.as_str()] {
                o if home && !shard => o.as_ref(),
                Err(e) => {
                    failed.get_or_insert_with(|| shared(e));
                    continue;
                }
                // A shard's home image: the blob went to the shared repository (what it
                // sent counts here) and was mounted into the image's own.
                Ok(sent) if home => placed[&(i, d.as_str())].as_ref().map(|_| sent),
                Ok(_) => placed[&(i, d.as_str())].as_ref(),
            };
            match o {
                Ok(Outcome::Skipped) => report.skipped.push(d.clone()),
                Ok(Outcome::Mounted) => report.mounted.push(d.clone()),
                Ok(Outcome::Uploaded(b)) => {
                    report.uploaded.push(d.clone());
                    report.bytes += b;
                }
                Err(e) => {
                    failed.get_or_insert_with(|| shared(e));
                }
            }
        }
        match failed {
            Some(e) => results[i] = Some(Err(e)),
            None => ready.push((i, report)),
        }
    }
    ready
}

/// A blob to push.
pub enum Blob<'a> {
    /// A file (a layer in the cache).
    File(&'a Path),
    /// Bytes in memory (a config).
    Bytes(&'a [u8]),
}

impl Blob<'_> {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> PushError + '_ {
        move |source| PushError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn len(&self) -> Result<u64, PushError> {
        match self {
            Blob::File(p) => Ok(std::fs::metadata(p).map_err(Self::io(p))?.len()),
            Blob::Bytes(b) => Ok(b.len() as u64),
        }
    }

    /// A fresh body for each attempt: files are streamed, never read whole.
    fn body(&self) -> Result<reqwest::Body, PushError> {
        match self {
            Blob::File(p) => {
                let f = std::fs::File::open(p).map_err(Self::io(p))?;
                Ok(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::with_capacity(
                        tokio::fs::File::from_std(f),
                        256 << 10,
                    ),
                ))
            }
            Blob::Bytes(b) => Ok(reqwest::Body::from(b.to_vec())),
        }
    }
}
