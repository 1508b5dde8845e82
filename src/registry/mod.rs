//! Push: an image from the cache to a registry, per the OCI distribution spec.
//!
//! [`Pusher::push`] checks `GET /v2/`, asks `HEAD` for every blob and uploads only the
//! missing ones, a bounded number at a time: a cross-repository mount when an earlier push
//! left the blob in another repository of the registry, else a monolithic `POST` + `PUT
//! ?digest=` streamed from the cached file (a lost upload session starts over). The manifest
//! goes last with the exact bytes of the layout, so the tag moves only once every blob is
//! there. A `Docker-Content-Digest` that disagrees with the local digest is an error. Plain
//! HTTP is used only for registries named in `[registry] insecure`. Authentication and
//! retries are [`client::Client`]'s.

use std::path::Path;

use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::fetch::SafeUrl;

pub mod auth;
pub mod client;

pub use client::{Client, Retry};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("registry `{host}`: {what}: {message}")]
    Http {
        host: String,
        what: String,
        message: String,
    },
    #[error("registry `{host}` answered {status} to {what}{detail}")]
    Status {
        host: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error("registry `{host}` refused {source_} for {what}")]
    Unauthorized {
        host: String,
        what: String,
        source_: String,
    },
    #[error("registry `{host}`: no token from `{realm}`: {message}")]
    Token {
        host: String,
        realm: SafeUrl,
        message: String,
    },
    #[error("registry `{host}` says {what} has digest {theirs}, but it is {ours}")]
    Digest {
        host: String,
        what: String,
        ours: String,
        theirs: String,
    },
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("cannot read `{}`", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PushError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PushError::Unauthorized { .. } => Some(
                "give credentials with --username and --password-stdin, or log in with \
                 `skopeo login`/`podman login`/`docker login` (read from $REGISTRY_AUTH_FILE, \
                 $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json)"
                    .into(),
            ),
            PushError::Http { message, .. } if message.contains("certificate") => {
                Some("trust the registry's CA with `[registry] ca-bundle` in pipeline.toml".into())
            }
            _ => None,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushReport {
    pub uploaded: Vec<String>,
    /// Blobs the registry already had in this repository.
    pub skipped: Vec<String>,
    /// Blobs mounted from another repository of the registry (no bytes sent).
    pub mounted: Vec<String>,
    /// Bytes of blobs uploaded.
    pub bytes: u64,
}

enum Outcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

/// Pushes images to one registry repository.
pub struct Pusher<'a> {
    pub client: Client<'a>,
    pub repository: String,
    /// Repositories of this registry known to hold a blob (from earlier pushes): mount
    /// sources.
    pub known: std::collections::BTreeMap<String, String>,
    /// Blobs in flight at once.
    pub parallel: usize,
}

impl Pusher<'_> {
    /// The token scopes a push of `blobs` to `repository` needs.
    pub fn scopes<'b>(
        repository: &str,
        known: &std::collections::BTreeMap<String, String>,
        blobs: impl IntoIterator<Item = &'b str>,
    ) -> Vec<String> {
        let mut s = vec![format!("repository:{repository}:pull,push")];
        let mut from: Vec<&String> = blobs
            .into_iter()
            .filter_map(|d| known.get(d))
            .filter(|r| *r != repository)
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

    /// Uploads `blobs` (digest, file or bytes) that the registry lacks, then the manifest
    /// under `tag`.
    pub async fn push(
        &self,
        blobs: &[(String, Blob<'_>)],
        manifest: &[u8],
        manifest_digest: &str,
        tag: &str,
    ) -> Result<PushReport, PushError> {
        let base = self.client.base();
        let r = self
            .client
            .send("GET /v2/", || Ok(self.client.http.get(format!("{base}/"))))
            .await?;
        if !r.status().is_success() {
            return Err(self.client.status_error("GET /v2/", r).await);
        }
        let mut report = PushReport::default();
        // Already there under this tag (a rebuild with nothing changed): nothing to send. A
        // registry accepts a manifest only with all its blobs, and keeps them while it is
        // referenced.
        if self.tag_digest(tag).await?.as_deref() == Some(manifest_digest) {
            report.skipped = blobs.iter().map(|(d, _)| d.clone()).collect();
            return Ok(report);
        }
        let outcomes: Vec<(String, Outcome)> = futures_util::stream::iter(blobs)
            .map(|(digest, blob)| async move {
                self.push_blob(digest, blob)
                    .await
                    .map(|o| (digest.clone(), o))
            })
            .buffer_unordered(self.parallel.max(1))
            .try_collect()
            .await?;
        // In the order given, whatever order they finished in.
        for (digest, _) in blobs {
            let (_, o) = outcomes
                .iter()
                .find(|(d, _)| d == digest)
                .expect("one outcome per blob");
            match o {
                Outcome::Skipped => report.skipped.push(digest.clone()),
                Outcome::Mounted => report.mounted.push(digest.clone()),
                Outcome::Uploaded(n) => {
                    report.uploaded.push(digest.clone());
                    report.bytes += n;
                }
            }
        }
        let what = format!("manifest {manifest_digest}");
        let url = format!("{base}/{}/manifests/{tag}", self.repository);
        let put = self
            .client
            .send(&what, || {
                Ok(self
                    .client
                    .http
                    .put(&url)
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(manifest.to_vec()))
            })
            .await?;
        if put.status().as_u16() != 201 {
            return Err(self.client.status_error(&what, put).await);
        }
        self.check_digest(&what, &put, manifest_digest)?;
        Ok(report)
    }

    /// The digest `tag` points at in this repository, if any.
    async fn tag_digest(&self, tag: &str) -> Result<Option<String>, PushError> {
        let url = format!("{}/{}/manifests/{tag}", self.client.base(), self.repository);
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

    async fn push_blob(&self, digest: &str, blob: &Blob<'_>) -> Result<Outcome, PushError> {
        let base = self.client.base();
        let what = format!("blob {digest}");
        let url = format!("{base}/{}/blobs/{digest}", self.repository);
        let head = self
            .client
            .send(&what, || Ok(self.client.http.head(&url)))
            .await?;
        match head.status().as_u16() {
            200..=299 => return Ok(Outcome::Skipped),
            404 => {}
            _ => return Err(self.client.status_error(&what, head).await),
        }
        let mut location = None;
        if let Some(from) = self.known.get(digest).filter(|r| **r != self.repository) {
            let mount = format!(
                "{base}/{}/blobs/uploads/?mount={digest}&from={from}",
                self.repository
            );
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
                202 => location = self.location(&what, &m)?,
                // Mount refused (the source is gone, or not readable to us): upload.
                _ => {}
            }
        }
        for _session in 0..3 {
            let loc = match location.take() {
                Some(l) => l,
                None => self.start_upload(&what).await?,
            };
            let sep = if loc.contains('?') { '&' } else { '?' };
            let put_url = format!("{loc}{sep}digest={digest}");
            let len = blob.len()?;
            let put = self
                .client
                .send(&what, || {
                    Ok(self
                        .client
                        .http
                        .put(&put_url)
                        .header("content-type", "application/octet-stream")
                        .header("content-length", len)
                        .body(blob.body()?))
                })
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

    async fn start_upload(&self, what: &str) -> Result<String, PushError> {
        let url = format!("{}/{}/blobs/uploads/", self.client.base(), self.repository);
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
        self.location(what, &start)?
            .ok_or_else(|| PushError::Status {
                host: self.client.host.clone(),
                what: format!("{what} (no upload location)"),
                status: 202,
                detail: String::new(),
            })
    }

    fn location(&self, _what: &str, r: &reqwest::Response) -> Result<Option<String>, PushError> {
        Ok(r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| self.client.absolute(l)))
    }
}

/// A blob to push.
pub enum Blob<'a> {
    File(&'a Path),
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
