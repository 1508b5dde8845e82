//! Push: an image from the cache to a registry, per the OCI distribution spec.
//!
//! [`Pusher::push`] checks `GET /v2/`, asks `HEAD` for every blob and uploads only the
//! missing ones (monolithic `POST` + `PUT ?digest=`, streamed from the cached file), then puts
//! the manifest with the exact bytes of the layout; the tag moves only once the manifest is
//! accepted. A `Docker-Content-Digest` that disagrees with the local digest is an error.
//! Plain HTTP is used only for registries named in `[registry] insecure`.

use std::path::Path;

use crate::fetch::SafeUrl;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("registry `{host}`: {what}: {message}")]
    Http {
        host: String,
        what: String,
        message: String,
    },
    #[error("registry `{host}` answered {status} to {what}")]
    Status {
        host: String,
        what: String,
        status: u16,
    },
    #[error("registry `{host}` says {what} has digest {theirs}, but it is {ours}")]
    Digest {
        host: String,
        what: String,
        ours: String,
        theirs: String,
    },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a push did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushReport {
    pub uploaded: Vec<String>,
    /// Blobs the registry already had in this repository.
    pub skipped: Vec<String>,
    /// Blobs mounted from another repository of the registry (no bytes sent).
    pub mounted: Vec<String>,
    pub bytes: u64,
}

/// Pushes images to one registry repository.
pub struct Pusher<'a> {
    pub client: &'a reqwest::Client,
    /// `host[:port]`
    pub host: String,
    pub plain_http: bool,
    pub repository: String,
    /// Repositories of this registry known to hold a blob (from earlier pushes): mount
    /// sources.
    pub known: std::collections::BTreeMap<String, String>,
}

impl Pusher<'_> {
    fn base(&self) -> String {
        format!(
            "{}://{}/v2",
            if self.plain_http { "http" } else { "https" },
            self.host
        )
    }

    fn http(&self, what: &str) -> impl Fn(reqwest::Error) -> PushError + '_ {
        let what = what.to_owned();
        move |e| PushError::Http {
            host: self.host.clone(),
            what: what.clone(),
            message: e.to_string(),
        }
    }

    fn status(&self, what: &str, status: u16) -> PushError {
        PushError::Status {
            host: self.host.clone(),
            what: what.to_owned(),
            status,
        }
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
                host: self.host.clone(),
                what: what.to_owned(),
                ours: ours.to_owned(),
                theirs: theirs.to_owned(),
            });
        }
        Ok(())
    }

    /// Uploads `blobs` (digest, file or bytes) that the registry lacks, then the manifest.
    pub async fn push(
        &self,
        blobs: &[(String, Blob<'_>)],
        manifest: &[u8],
        manifest_digest: &str,
        tag: &str,
    ) -> Result<PushReport, PushError> {
        let base = self.base();
        let r = self
            .client
            .get(format!("{base}/"))
            .send()
            .await
            .map_err(self.http("GET /v2/"))?;
        if !r.status().is_success() {
            return Err(self.status("GET /v2/", r.status().as_u16()));
        }
        let mut report = PushReport::default();
        for (digest, blob) in blobs {
            let what = format!("blob {digest}");
            let url = format!("{base}/{}/blobs/{digest}", self.repository);
            let head = self
                .client
                .head(&url)
                .send()
                .await
                .map_err(self.http(&what))?;
            if head.status().is_success() {
                report.skipped.push(digest.clone());
                continue;
            }
            if let Some(from) = self.known.get(digest).filter(|r| **r != self.repository) {
                let m = self
                    .client
                    .post(format!(
                        "{base}/{}/blobs/uploads/?mount={digest}&from={from}",
                        self.repository
                    ))
                    .send()
                    .await
                    .map_err(self.http(&what))?;
                if m.status().as_u16() == 201 {
                    report.mounted.push(digest.clone());
                    continue;
                }
                // Not mounted (202 opens an upload instead, or an error): upload below.
            }
            let start = self
                .client
                .post(format!("{base}/{}/blobs/uploads/", self.repository))
                .send()
                .await
                .map_err(self.http(&what))?;
            if start.status().as_u16() != 202 {
                return Err(self.status(
                    &format!("starting the upload of {what}"),
                    start.status().as_u16(),
                ));
            }
            let location = start
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| self.status(&format!("{what} (no upload location)"), 202))?
                .to_owned();
            let location = if location.starts_with('/') {
                format!(
                    "{}://{}{location}",
                    if self.plain_http { "http" } else { "https" },
                    self.host
                )
            } else {
                location
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let put_url = format!("{location}{sep}digest={digest}");
            let (body, len) = match blob {
                Blob::File(path) => {
                    let f = tokio::fs::File::open(path)
                        .await
                        .map_err(|source| PushError::Io {
                            path: path.to_path_buf(),
                            source,
                        })?;
                    let len = f
                        .metadata()
                        .await
                        .map_err(|source| PushError::Io {
                            path: path.to_path_buf(),
                            source,
                        })?
                        .len();
                    (
                        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f)),
                        len,
                    )
                }
                Blob::Bytes(b) => (reqwest::Body::from(b.to_vec()), b.len() as u64),
            };
            let put = self
                .client
                .put(&put_url)
                .header("content-type", "application/octet-stream")
                .header("content-length", len)
                .body(body)
                .send()
                .await
                .map_err(self.http(&what))?;
            if put.status().as_u16() != 201 {
                return Err(self.status(
                    &format!("uploading {what} to {}", SafeUrl(put_url)),
                    put.status().as_u16(),
                ));
            }
            self.check_digest(&what, &put, digest)?;
            report.uploaded.push(digest.clone());
            report.bytes += len;
        }
        let what = format!("manifest {manifest_digest}");
        let put = self
            .client
            .put(format!("{base}/{}/manifests/{tag}", self.repository))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_vec())
            .send()
            .await
            .map_err(self.http(&what))?;
        if put.status().as_u16() != 201 {
            return Err(self.status(&what, put.status().as_u16()));
        }
        self.check_digest(&what, &put, manifest_digest)?;
        Ok(report)
    }
}

/// A blob to push.
pub enum Blob<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}
