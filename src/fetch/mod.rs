//! Fetch: getting bytes from `file://`, `http://` and `https://` URLs, with retries, a size
//! cap, and URLs whose credentials never print.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;

pub mod download;
mod tls;

/// A URL that masks any `user:password@` when displayed.
#[derive(Clone, PartialEq, Eq)]
pub struct SafeUrl(pub String);

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        if let Some((scheme, rest)) = s.split_once("://") {
            let (auth, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if let Some((_, host)) = auth.rsplit_once('@') {
                return write!(f, "{scheme}://***@{host}{tail}");
            }
        }
        f.write_str(s)
    }
}

impl fmt::Debug for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafeUrl({self})")
    }
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A `file://` URL cannot be read.
    #[error("cannot read `{url}`")]
    File {
        /// The URL (credentials masked).
        url: SafeUrl,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an error status.
    #[error("`{url}`: HTTP {status}")]
    Status {
        /// The URL (credentials masked).
        url: SafeUrl,
        /// The HTTP status.
        status: u16,
    },
    /// The connection or TLS failed.
    #[error("`{url}`: {message}")]
    Transport {
        /// The URL (credentials masked).
        url: SafeUrl,
        /// What is wrong.
        message: String,
    },
    /// The body is larger than allowed.
    #[error("`{url}` is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL (credentials masked).
        url: SafeUrl,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The transfer stayed below the minimum rate for a whole window (dnf's `minrate`).
    #[error("`{url}` is too slow: under {minrate} bytes/s for {secs} s")]
    Slow {
        /// The URL (credentials masked).
        url: SafeUrl,
        /// The minimum rate, in bytes per second.
        minrate: u64,
        /// The window, in seconds.
        secs: u64,
    },
    /// Writing what arrived to local disk failed: the fault is here (a full disk, say), not
    /// at the source, and no other mirror will help.
    #[error("cannot write `{}`", path.display())]
    Spool {
        /// The file or directory written to.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A URL scheme other than `file`, `http` or `https`.
    #[error("unsupported URL `{0}`")]
    Unsupported(SafeUrl),
    /// The HTTP client could not be built (a CA bundle, say).
    #[error("cannot set up HTTP: {0}")]
    Setup(String),
}

impl FetchError {
    /// Worth another try (connection problems, 5xx, 408, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Transport { .. } => true,
            _ => false,
        }
    }
}

impl crate::hint::Hint for FetchError {
    fn hint(&self) -> Option<String> {
        match self {
            FetchError::Slow { .. } => Some(
                "another mirror may be faster; for a slow link raise `[fetch] timeout` or lower \
                 `[fetch] minrate` in pipeline.toml"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// When a slow transfer is given up: dnf's `minrate` over a `timeout` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowSpeed {
    /// Bytes per second; 0 disables the rate check (silence still ends at the window).
    pub minrate: u64,
    /// The window over which the rate is measured, and the longest wait for an answer.
    pub window: Duration,
}

impl Default for LowSpeed {
    /// dnf's defaults: 1000 bytes/s over 30 s.
    fn default() -> LowSpeed {
        LowSpeed {
            minrate: 1000,
            window: Duration::from_secs(30),
        }
    }
}

/// Enforces a [`LowSpeed`] rule on one response body: each window must bring at least
/// `minrate × window` bytes, or the transfer fails with [`FetchError::Slow`] however many
/// bytes still trickle in (the idle read timeout alone lets a 1 byte/s server hold a
/// transfer forever).
pub(crate) struct Pace {
    rule: LowSpeed,
    start: tokio::time::Instant,
    bytes: u64,
}

impl Pace {
    pub(crate) fn new(rule: LowSpeed) -> Pace {
        Pace {
            rule,
            start: tokio::time::Instant::now(),
            bytes: 0,
        }
    }

    /// The next chunk of `body` (`None` at its end).
    pub(crate) async fn next<S, T>(
        &mut self,
        body: &mut S,
        url: &str,
    ) -> Result<Option<T>, FetchError>
    where
        S: futures_util::Stream<Item = reqwest::Result<T>> + Unpin,
        T: AsRef<[u8]>,
    {
        loop {
            let end = self.start + self.rule.window;
            match tokio::time::timeout_at(end, body.next()).await {
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(FetchError::Transport {
                        url: SafeUrl(url.to_owned()),
                        message: error_chain(&e),
                    });
                }
                Ok(Some(Ok(chunk))) => {
                    self.bytes += chunk.as_ref().len() as u64;
                    if tokio::time::Instant::now() >= end {
                        self.window_end(url)?;
                    }
                    return Ok(Some(chunk));
                }
                Err(_) => self.window_end(url)?,
            }
        }
    }

    /// A window is over: fail if it brought too little, else start the next one.
    fn window_end(&mut self, url: &str) -> Result<(), FetchError> {
        let need = (self.rule.minrate as f64 * self.rule.window.as_secs_f64()) as u64;
        if self.bytes < need || (self.bytes == 0 && self.rule.minrate == 0) {
            return Err(FetchError::Slow {
                url: SafeUrl(url.to_owned()),
                minrate: self.rule.minrate,
                secs: self.rule.window.as_secs(),
            });
        }
        self.start = tokio::time::Instant::now();
        self.bytes = 0;
        Ok(())
    }
}

/// How metadata and packages are fetched.
#[derive(Clone)]
pub struct Transport {
    pub(crate) client: reqwest::Client,
    /// For repositories with `sslverify = false` only.
    unverified: reqwest::Client,
    /// Attempts after the first for transient failures.
    pub retries: u32,
    /// The first wait between attempts (doubled each time).
    pub backoff: Duration,
    /// When a slow transfer is given up.
    pub low_speed: LowSpeed,
}

/// Installs the ring crypto provider for rustls once per process.
fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Transport {
    /// `ca_bundles`: extra PEM files trusted besides the system roots; `low_speed`: when a
    /// slow transfer is given up.
    pub fn new(ca_bundles: &[PathBuf], low_speed: LowSpeed) -> Result<Transport, FetchError> {
        crypto();
        let wait = low_speed.window;
        let b = reqwest::Client::builder()
            .user_agent(concat!("pbsimage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(wait)
            .read_timeout(wait)
            .use_preconfigured_tls(tls::client_config(ca_bundles)?);
        let client = b.build().map_err(|e| FetchError::Setup(e.to_string()))?;
        let unverified = reqwest::Client::builder()
            .user_agent(concat!("pbsimage/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(wait)
            .read_timeout(wait)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        Ok(Transport {
            client,
            unverified,
            retries: 3,
            backoff: Duration::from_millis(200),
            low_speed,
        })
    }

    /// The whole body of `url`, at most `limit` bytes; transient failures are retried.
    pub async fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.get_bytes_with(url, limit, true).await
    }

    /// As [`Transport::get_bytes`]; `verify_tls = false` skips certificate checks (a
    /// repository's `sslverify = false`).
    pub async fn get_bytes_with(
        &self,
        url: &str,
        limit: u64,
        verify_tls: bool,
    ) -> Result<Vec<u8>, FetchError> {
        let mut attempt = 0;
        loop {
            match self.get_bytes_once(url, limit, verify_tls).await {
                Err(e) if e.is_transient() && attempt + 1 < self.retries => {
                    attempt += 1;
                    tracing::debug!("retrying {}: {e}", SafeUrl(url.into()));
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
                }
                r => return r,
            }
        }
    }

    async fn get_bytes_once(
        &self,
        url: &str,
        limit: u64,
        verify_tls: bool,
    ) -> Result<Vec<u8>, FetchError> {
        let safe = || SafeUrl(url.to_owned());
        if let Some(path) = file_path(url) {
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|source| FetchError::File {
                    url: safe(),
                    source,
                })?;
            if meta.len() > limit {
                return Err(FetchError::TooLarge { url: safe(), limit });
            }
            return tokio::fs::read(&path)
                .await
                .map_err(|source| FetchError::File {
                    url: safe(),
                    source,
                });
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Unsupported(safe()));
        }
        let client = if verify_tls {
            &self.client
        } else {
            &self.unverified
        };
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Transport {
                url: safe(),
                message: error_chain(&e),
            })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(FetchError::Status {
                url: safe(),
                status,
            });
        }
        if resp.content_length().is_some_and(|l| l > limit) {
            return Err(FetchError::TooLarge { url: safe(), limit });
        }
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        let mut pace = Pace::new(self.low_speed);
        while let Some(chunk) = pace.next(&mut stream, url).await? {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { url: safe(), limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

impl Transport {
    /// The body of `url` as a file, at most `limit` bytes, transient failures retried: a
    /// `file://` source is opened where it is (a regular file, opened without blocking); an
    /// HTTP body is streamed into an unnamed temporary file in `spool`, which disappears
    /// when closed (or when the process dies). Nothing is held in memory.
    pub async fn get_file(
        &self,
        url: &str,
        limit: u64,
        verify_tls: bool,
        spool: &Path,
    ) -> Result<std::fs::File, FetchError> {
        let mut attempt = 0;
        loop {
            match self.get_file_once(url, limit, verify_tls, spool).await {
                Err(e) if e.is_transient() && attempt + 1 < self.retries => {
                    attempt += 1;
                    tracing::debug!("retrying {}: {e}", SafeUrl(url.into()));
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
                }
                r => return r,
            }
        }
    }

    async fn get_file_once(
        &self,
        url: &str,
        limit: u64,
        verify_tls: bool,
        spool: &Path,
    ) -> Result<std::fs::File, FetchError> {
        use std::io::{Seek, Write};
        let safe = || SafeUrl(url.to_owned());
        if let Some(path) = file_path(url) {
            let read = |source| FetchError::File {
                url: safe(),
                source,
            };
            let f = crate::cache::open_nonblocking(&path).map_err(read)?;
            let meta = f.metadata().map_err(read)?;
            if !meta.is_file() {
                return Err(read(std::io::Error::other("not a regular file")));
            }
            if meta.len() > limit {
                return Err(FetchError::TooLarge { url: safe(), limit });
            }
            return Ok(f);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Unsupported(safe()));
        }
        let client = if verify_tls {
            &self.client
        } else {
            &self.unverified
        };
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Transport {
                url: safe(),
                message: error_chain(&e),
            })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(FetchError::Status {
                url: safe(),
                status,
            });
        }
        if resp.content_length().is_some_and(|l| l > limit) {
            return Err(FetchError::TooLarge { url: safe(), limit });
        }
        let spooled = |source| FetchError::Spool {
            path: spool.to_owned(),
            source,
        };
        let mut out = tempfile::tempfile_in(spool).map_err(spooled)?;
        let (mut stream, mut pace, mut written) =
            (resp.bytes_stream(), Pace::new(self.low_speed), 0u64);
        while let Some(chunk) = pace.next(&mut stream, url).await? {
            written += chunk.len() as u64;
            if written > limit {
                return Err(FetchError::TooLarge { url: safe(), limit });
            }
            out.write_all(&chunk).map_err(spooled)?;
        }
        out.rewind().map_err(spooled)?;
        Ok(out)
    }
}

/// The error and its sources on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The local path of a `file://` URL.
pub fn file_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    Some(PathBuf::from(percent_decode(path)))
}

/// `%xx` escapes decoded (invalid escapes kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `file://` URL for a local directory or file (made absolute).
pub fn file_url(path: &Path) -> String {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_owned())
    };
    format!("file://{}", abs.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_urls_mask_credentials() {
        assert_eq!(
            SafeUrl("https://u:secret@h.example/x".into()).to_string(),
            "https://***@h.example/x"
        );
        assert_eq!(
            SafeUrl("https://h.example/x".into()).to_string(),
            "https://h.example/x"
        );
    }

    #[test]
    fn file_urls() {
        assert_eq!(file_path("file:///a/b%20c").unwrap(), Path::new("/a/b c"));
        assert_eq!(file_path("file://localhost/a").unwrap(), Path::new("/a"));
        assert!(file_path("http://x").is_none());
    }
}
