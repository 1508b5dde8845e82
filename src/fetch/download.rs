//! Downloading packages into the cache: bounded and concurrent (largest first), hashed while
//! streaming, verified against the repository's checksum before the file gets its final
//! name, resumed only on a matching `206 Content-Range`, and shared safely between
//! processes (a per-blob lock; the second process finds the finished file).

use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use futures_util::StreamExt;

use super::{FetchError, SafeUrl, Transport, file_path};
use crate::cache::{Cache, CacheError};
use crate::digest::{Algo, Checksum, Hasher};

/// One package to fetch.
#[derive(Debug, Clone)]
pub struct Download {
    /// For messages: the NEVRA.
    pub name: String,
    /// Candidate URLs, tried in order.
    pub urls: Vec<String>,
    /// The repository base URL of each candidate: a `file://` package must resolve (links
    /// followed) to a file inside it.
    pub bases: Vec<String>,
    /// The repository's checksum of the file (`pkgid`).
    pub checksum: Checksum,
    /// Its size in bytes, as the metadata declares it.
    pub size: u64,
}

/// The most bytes a package download may bring: its declared size (primary.xml's
/// `<size package=…>`), or a generous bound when the metadata declares none.
fn declared_limit(size: u64) -> u64 {
    if size == 0 { 64 << 30 } else { size }
}

/// Checks that a `file://` URL, symlinks resolved, names a file inside its repository's
/// `file://` base (other URLs pass: their servers map paths, and hrefs were checked).
fn inside_base(url: &str, base: Option<&str>) -> Result<(), String> {
    let (Some(path), Some(root)) = (file_path(url), base.and_then(file_path)) else {
        return Ok(());
    };
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the repository `{}`: {e}", root.display()))?;
    match path.canonicalize() {
        // A missing file is the next step's error to report.
        Err(_) => Ok(()),
        Ok(real) if real.starts_with(&root) => Ok(()),
        Ok(real) => Err(format!(
            "it resolves to `{}`, outside the repository `{}`",
            real.display(),
            root.display()
        )),
    }
}

/// Why a package could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Every mirror failed.
    #[error("`{name}`: every source failed:\n{}", errors.join("\n"))]
    AllFailed {
        /// The package, by name.
        name: String,
        /// Each source tried and how it failed.
        errors: Vec<String>,
    },
    /// The file arrived, but its checksum is not the metadata's.||name=The package.
    #[error("checksum mismatch for `{name}` from `{url}`: expected {expected}, got {actual}")]
    Checksum {
        /// The package, by name.
        name: String,
        /// The URL (credentials masked).
        url: SafeUrl,
        /// The checksum the metadata gives.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },
    /// The cache could not take the file.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A download task stopped before finishing.
    #[error("download task failed: {0}")]
    Task(String),
    /// `--offline`, and the package is not in the cache.
    #[error("`{name}` is not in the cache, and --offline forbids downloading it")]
    Offline {
        /// The package, by name.
        name: String,
    },
}

/// Fetches packages into `blobs/sha256/`.
pub struct Downloader<'a> {
    /// The HTTP client.
    pub transport: &'a Transport,
    /// The cache the files land in.
    pub cache: &'a Cache,
    /// Downloads at once.
    pub concurrency: usize,
    /// Where bytes received are reported.
    pub reporter: &'a dyn crate::progress::Reporter,
    /// Only the cache and `file://` sources: no network.
    pub offline: bool,
}

/// A sha256 hasher and the repository's (when it is not sha256) together.
struct Hashes {
    sha256: Hasher,
    other: Option<Hasher>,
}

impl Hashes {
    fn new(algo: Algo) -> Hashes {
        Hashes {
            sha256: Hasher::new(Algo::Sha256),
            other: (algo != Algo::Sha256).then(|| Hasher::new(algo)),
        }
    }
    fn update(&mut self, b: &[u8]) {
        self.sha256.update(b);
        if let Some(o) = &mut self.other {
            o.update(b);
        }
    }
    /// (sha256, the repository's algorithm)
    fn finish(self) -> (String, String) {
        let sha = self.sha256.finish_hex();
        let other = self
            .other
            .map(|o| o.finish_hex())
            .unwrap_or_else(|| sha.clone());
        (sha, other)
    }
}

impl Downloader<'_> {
    /// Fetches all, largest first, at most `concurrency` at a time. Returns the blob paths
    /// in the order of `items`.
    pub async fn fetch_all(&self, items: &[Download]) -> Result<Vec<PathBuf>, DownloadError> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[b].size.cmp(&items[a].size).then(a.cmp(&b)));
        let results: Vec<(usize, Result<PathBuf, DownloadError>)> =
            futures_util::stream::iter(order)
                .map(|i| async move { (i, self.fetch(&items[i]).await) })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
        let mut out = vec![PathBuf::new(); items.len()];
        for (i, r) in results {
            out[i] = r?;
        }
        Ok(out)
    }

    /// Fetches one package (or finds it in the cache).
    pub async fn fetch(&self, d: &Download) -> Result<PathBuf, DownloadError> {
        if d.checksum.algo == Algo::Sha256 {
            let p = self.cache.blob_path(&d.checksum.hex)?;
            if p.is_file() {
                self.reporter.advance(d.size);
                return Ok(p);
            }
        }
        // One process downloads a given package at a time; the others then find it.
        let lock_name = format!("pkg-{}", d.checksum.hex);
        let cache = self.cache.clone();
        let _lock = tokio::task::spawn_blocking(move || cache.lock(&lock_name))
            .await
            .map_err(|e| DownloadError::Task(e.to_string()))??;
        if d.checksum.algo == Algo::Sha256 {
            let p = self.cache.blob_path(&d.checksum.hex)?;
            if p.is_file() {
                return Ok(p);
            }
        }
        let mut errors = Vec::new();
        for (i, url) in d.urls.iter().enumerate() {
            if self.offline && !url.starts_with("file://") {
                continue;
            }
            if let Err(e) = inside_base(url, d.bases.get(i).map(String::as_str)) {
                errors.push(format!("  {}: {e}", SafeUrl(url.to_owned())));
                continue;
            }
            match self.fetch_from(d, url).await {
                Ok(p) => return Ok(p),
                Err(DownloadError::AllFailed { errors: e, .. }) => errors.extend(e),
                Err(e) => return Err(e),
            }
        }
        if self.offline && errors.is_empty() {
            return Err(DownloadError::Offline {
                name: d.name.clone(),
            });
        }
        Err(DownloadError::AllFailed {
            name: d.name.clone(),
            errors,
        })
    }

    async fn fetch_from(&self, d: &Download, url: &str) -> Result<PathBuf, DownloadError> {
        let dir = self.cache.blobs_dir()?;
        let mut tmp = self.cache.temp_in(&dir)?;
        let spool = tmp.path().to_owned();
        let fail = |e: String| DownloadError::AllFailed {
            name: d.name.clone(),
            errors: vec![format!("  {}: {e}", SafeUrl(url.to_owned()))],
        };
        let mut attempt = 0;
        let hashes = loop {
            match self
                .stream_into(
                    url,
                    tmp.as_file_mut(),
                    &spool,
                    d.checksum.algo,
                    declared_limit(d.size),
                )
                .await
            {
                Ok(h) => break h,
                Err(e) if e.is_transient() && attempt + 1 < self.transport.retries => {
                    attempt += 1;
                    tracing::debug!("retrying {}: {e}", SafeUrl(url.to_owned()));
                    tokio::time::sleep(self.transport.backoff * 2u32.pow(attempt - 1)).await;
                }
                Err(FetchError::Spool { path, source }) => {
                    return Err(DownloadError::Cache(CacheError::Io { path, source }));
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        };
        self.reporter.advance(d.size);
        let (sha, theirs) = hashes.finish();
        if theirs != d.checksum.hex {
            return Err(DownloadError::Checksum {
                name: d.name.clone(),
                url: SafeUrl(url.to_owned()),
                expected: d.checksum.to_string(),
                actual: format!("{}:{theirs}", d.checksum.algo.name()),
            });
        }
        let dest = dir.join(&sha);
        tmp.persist(&dest).map_err(|e| CacheError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// Streams `url` into `file` (appending after what a failed attempt left, when the
    /// server answers the range request with a matching 206), hashing everything.
    async fn stream_into(
        &self,
        url: &str,
        file: &mut std::fs::File,
        spool: &std::path::Path,
        algo: Algo,
        limit: u64,
    ) -> Result<Hashes, FetchError> {
        let safe = || SafeUrl(url.to_owned());
        // Reading a `file://` source.
        let io = |source: std::io::Error| FetchError::File {
            url: safe(),
            source,
        };
        // Writing into the cache: its fault, not the source's.
        let local = |source: std::io::Error| FetchError::Spool {
            path: spool.to_owned(),
            source,
        };
        let too_large = || FetchError::TooLarge { url: safe(), limit };
        let mut hashes = Hashes::new(algo);
        if let Some(path) = file_path(url) {
            file.set_len(0).map_err(local)?;
            file.rewind().map_err(local)?;
            let src = crate::cache::open_nonblocking(&path).map_err(io)?;
            let meta = src.metadata().map_err(io)?;
            if !meta.is_file() {
                return Err(FetchError::File {
                    url: safe(),
                    source: std::io::Error::other("not a regular file"),
                });
            }
            if meta.len() > limit {
                return Err(too_large());
            }
            let mut src = src.take(limit + 1);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = src.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hashes.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(local)?;
            }
            return Ok(hashes);
        }
        let have = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut req = self.transport.client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = req.send().await.map_err(|e| FetchError::Transport {
            url: safe(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        if resp
            .content_length()
            .is_some_and(|n| n.saturating_add(if status == 206 { have } else { 0 }) > limit)
        {
            return Err(too_large());
        }
        let resumed = have > 0
            && status == 206
            && resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
        if resumed {
            // Hash what is already there, then append.
            file.rewind().map_err(local)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(local)?;
                if n == 0 {
                    break;
                }
                hashes.update(&buf[..n]);
            }
        } else {
            // Not a resumption: start the file over.
            file.set_len(0).map_err(local)?;
            file.rewind().map_err(local)?;
            if status == 206 {
                return Err(FetchError::Transport {
                    url: safe(),
                    message: "unexpected partial content".into(),
                });
            }
            if !(200..300).contains(&status) {
                return Err(FetchError::Status {
                    url: safe(),
                    status,
                });
            }
        }
        let mut written = if resumed { have } else { 0 };
        let mut stream = resp.bytes_stream();
        let mut pace = super::Pace::new(self.transport.low_speed);
        while let Some(chunk) = pace.next(&mut stream, url).await? {
            written += chunk.len() as u64;
            if written > limit {
                return Err(too_large());
            }
            hashes.update(&chunk);
            file.write_all(&chunk).map_err(local)?;
        }
        Ok(hashes)
    }
}
