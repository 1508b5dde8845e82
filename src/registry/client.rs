//! One registry's HTTP conversation: authentication from challenges, and retries.
//!
//! Every request goes through [`Client::send`], which adds the current `Authorization`,
//! answers a `401` by reading its `WWW-Authenticate` challenge (Basic, or a Bearer token for
//! the push scopes and every mount source's pull scope) and tries once more, and retries
//! `408`, `429`, `5xx` and dropped connections with exponential backoff and jitter, honouring
//! `Retry-After` up to a cap. Other statuses go back to the caller.

use std::time::Duration;

use super::PushError;
use super::auth::{self, Challenge, Credentials, Found, Secret};
use crate::fetch::SafeUrl;

/// How often and how long to retry.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    pub base: Duration,
    /// Longest wait, whatever `Retry-After` asks.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            base: Duration::from_millis(250),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Retry {
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16));
        let exp = exp.min(self.max_wait);
        // Jitter in [50 %, 100 %] so parallel uploads do not retry in lockstep.
        exp.mul_f64(0.5 + 0.5 * unit_random())
    }
}

/// A number in [0, 1) from the process's hash seed and the clock (no RNG crate needed).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A `Retry-After` in seconds (the HTTP-date form falls back to backoff).
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Errors worth another attempt: connection refused or reset, timeouts, bodies cut short.
/// Certificate problems are final.
fn transient(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || is_certificate(e))
}

/// Whether a TLS certificate was refused somewhere in the error's chain (rustls says so
/// with a typed error under the connector's I/O error).
fn is_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        // io::Error's source() skips the error it wraps (connectors nest them): descend
        // into the wrapped error itself.
        cur = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(w) => Some(w as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    false
}

/// Requests to one registry.
pub struct Client<'a> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// `host[:port]`
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Credentials for this registry, if any.
    pub credentials: Option<Found>,
    /// Token scopes: `repository:<name>:pull,push` and the mount sources' `:pull`.
    pub scopes: Vec<String>,
    /// Retry policy.
    pub retry: Retry,
    authorization: tokio::sync::RwLock<Option<Secret>>,
    refresh: tokio::sync::Mutex<()>,
}

impl<'a> Client<'a> {
    /// A client for `host` with `credentials`, asking tokens for `scopes`.
    pub fn new(
        http: &'a reqwest::Client,
        host: &str,
        plain_http: bool,
        credentials: Option<Found>,
        scopes: Vec<String>,
    ) -> Client<'a> {
        Client {
            http,
            host: host.to_owned(),
            plain_http,
            credentials,
            scopes,
            retry: Retry::default(),
            authorization: tokio::sync::RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.plain_http { "http" } else { "https" }
    }

    /// `scheme://host/v2`
    pub fn base(&self) -> String {
        format!("{}://{}/v2", self.scheme(), self.host)
    }

    /// An absolute URL for a `Location` header, which may be relative.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{}://{}{location}", self.scheme(), self.host)
        } else {
            format!("{}/{location}", self.base())
        }
    }

    pub(crate) fn http_error(&self, what: &str, e: &reqwest::Error) -> PushError {
        let (host, what, message) = (
            self.host.clone(),
            what.to_owned(),
            crate::fetch::error_chain(e),
        );
        if is_certificate(e) {
            PushError::Certificate {
                host,
                what,
                message,
            }
        } else {
            PushError::Http {
                host,
                what,
                message,
            }
        }
    }

    /// Sends the request `make` builds (called again for each attempt), retrying 408, 429,
    /// 5xx and transient connection errors; returns the first response not retried.
    async fn retrying(
        &self,
        what: &str,
        make: impl Fn() -> Result<reqwest::RequestBuilder, PushError>,
    ) -> Result<Result<reqwest::Response, reqwest::Error>, PushError> {
        let mut attempt = 0u32;
        loop {
            let last = attempt + 1 >= self.retry.attempts;
            let wait = match make()?.send().await {
                Err(e) if !last && transient(&e) => {
                    tracing::debug!("{what}: {}; retrying", crate::fetch::error_chain(&e));
                    self.retry.backoff(attempt)
                }
                Ok(r) if !last && matches!(r.status().as_u16(), 408 | 429 | 500..=599) => {
                    tracing::debug!("{what}: HTTP {}; retrying", r.status().as_u16());
                    retry_after(&r)
                        .map(|d| d.min(self.retry.max_wait))
                        .unwrap_or_else(|| self.retry.backoff(attempt))
                }
                r => return Ok(r),
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends the request `make` builds (called again for each attempt), authenticated and
    /// retried as the module describes. Returns any response that is not retried.
    pub async fn send(
        &self,
        what: &str,
        make: impl Fn() -> Result<reqwest::RequestBuilder, PushError>,
    ) -> Result<reqwest::Response, PushError> {
        // A 401 is answered by a fresh challenge at most three times per request: tokens
        // expire mid-push, and parallel requests may use up a short-lived one.
        let mut challenges = 0u32;
        loop {
            let current = self.authorization.read().await.clone();
            let r = self
                .retrying(what, || {
                    let rb = make()?;
                    Ok(match &current {
                        Some(a) => rb.header(reqwest::header::AUTHORIZATION, a.expose()),
                        None => rb,
                    })
                })
                .await?
                .map_err(|e| self.http_error(what, &e))?;
            if r.status().as_u16() != 401 {
                return Ok(r);
            }
            if challenges == 3 {
                return Err(PushError::Unauthorized {
                    host: self.host.clone(),
                    what: what.to_owned(),
                    source_: self.credentials_source(),
                });
            }
            challenges += 1;
            self.authenticate(&r, current.as_ref(), what).await?;
        }
    }

    fn credentials_source(&self) -> String {
        match &self.credentials {
            Some(f) => format!("the credentials from {}", f.source),
            None => "no credentials".into(),
        }
    }

    /// Answers the challenge of `r` (a 401). `stale` is the authorization that was refused:
    /// when another request has refreshed it meanwhile, that new one is used as is.
    async fn authenticate(
        &self,
        r: &reqwest::Response,
        stale: Option<&Secret>,
        what: &str,
    ) -> Result<(), PushError> {
        let _one_at_a_time = self.refresh.lock().await;
        if self.authorization.read().await.as_ref() != stale {
            return Ok(());
        }
        let challenges: Vec<Challenge> = r
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::parse_challenge)
            .collect();
        let unauthorized = || PushError::Unauthorized {
            host: self.host.clone(),
            what: what.to_owned(),
            source_: self.credentials_source(),
        };
        let new = if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            self.token(c, what).await?
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            match &self.credentials {
                Some(Found {
                    credentials: Credentials::Password { username, password },
                    ..
                }) => Secret::new(auth::basic(username, password)),
                _ => return Err(unauthorized()),
            }
        } else {
            return Err(unauthorized());
        };
        if stale.is_some_and(|s| *s == new) {
            // The same credentials were just refused.
            return Err(unauthorized());
        }
        *self.authorization.write().await = Some(new);
        Ok(())
    }

    /// A Bearer token from the challenge's realm for our scopes.
    async fn token(&self, c: &Challenge, what: &str) -> Result<Secret, PushError> {
        let realm = c.params.get("realm").cloned().unwrap_or_default();
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(PushError::Token {
                host: self.host.clone(),
                realm: SafeUrl(realm),
                message: "the challenge names no http(s) realm".into(),
            });
        }
        let mut scopes: Vec<String> = self.scopes.clone();
        if let Some(s) = c.params.get("scope")
            && !scopes.contains(s)
        {
            scopes.push(s.clone());
        }
        let service = c.params.get("service").cloned();
        let token_error = |message: String| PushError::Token {
            host: self.host.clone(),
            realm: SafeUrl(realm.clone()),
            message,
        };
        let resp = self
            .retrying(what, || {
                Ok(match &self.credentials {
                    Some(Found {
                        credentials: Credentials::RefreshToken(t),
                        ..
                    }) => {
                        let mut form = vec![
                            ("grant_type", "refresh_token".to_owned()),
                            ("refresh_token", t.expose().to_owned()),
                            ("client_id", "pbsimage".to_owned()),
                            ("scope", scopes.join(" ")),
                        ];
                        if let Some(s) = &service {
                            form.push(("service", s.clone()));
                        }
                        self.http.post(&realm).form(&form)
                    }
                    creds => {
                        let mut q: Vec<(&str, &str)> = Vec::new();
                        if let Some(s) = &service {
                            q.push(("service", s));
                        }
                        for s in &scopes {
                            q.push(("scope", s));
                        }
                        let rb = self.http.get(&realm).query(&q);
                        match creds {
                            Some(Found {
                                credentials: Credentials::Password { username, password },
                                ..
                            }) => rb.basic_auth(username, Some(password.expose())),
                            _ => rb,
                        }
                    }
                })
            })
            .await?
            .map_err(|e| token_error(crate::fetch::error_chain(&e)))?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(PushError::Unauthorized {
                    host: self.host.clone(),
                    what: format!("{what} (the token server refused)"),
                    source_: self.credentials_source(),
                });
            }
            s => return Err(token_error(format!("HTTP {s}"))),
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| token_error(crate::fetch::error_chain(&e)))?;
        let t: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| token_error("the answer is not a token (JSON)".into()))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_error("the answer has no token".into()))?;
        Ok(Secret::new(format!("Bearer {token}")))
    }

    /// An error for an unexpected status, with the registry's error codes when it sent the
    /// distribution spec's `{"errors": [...]}` body.
    pub async fn status_error(&self, what: &str, r: reqwest::Response) -> PushError {
        let status = r.status().as_u16();
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<ErrorItem>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorItem {
            code: String,
            #[serde(default)]
            message: String,
        }
        let detail = match r.bytes().await {
            Ok(b) if b.len() < 64 << 10 => serde_json::from_slice::<Errors>(&b)
                .ok()
                .map(|e| {
                    e.errors
                        .iter()
                        .map(|i| {
                            let m: String = i.message.chars().take(200).collect();
                            if m.is_empty() {
                                i.code.clone()
                            } else {
                                format!("{} ({m})", i.code)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty()),
            _ => None,
        };
        PushError::Status {
            host: self.host.clone(),
            what: what.to_owned(),
            status,
            detail: detail.map(|d| format!(": {d}")).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_refusals_are_found_under_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        assert!(is_certificate(&nested));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_certificate(&refused));
    }
}
