//! Registry credentials and `WWW-Authenticate` challenges.
//!
//! Credentials come, first match wins, from `--username` + `--password-stdin`, then the files
//! the container tools share: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. In those, `credHelpers[host]`
//! and then `credsStore` name a `docker-credential-<name>` program (asked with `get` and the
//! host on stdin); otherwise `auths[host]` holds `auth` (base64 `user:password`),
//! `username`/`password`, or an `identitytoken` (an OAuth2 refresh token).
//!
//! A [`Secret`] never prints: its `Debug` and `Display` are `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// A password or token: kept out of every message, log and output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself (for a request header only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What to authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (Basic, or the Basic login to a token server).
    Password {
        /// The user name.
        username: String,
        /// The password or token (masked when printed).
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token server.
    RefreshToken(Secret),
}

/// Where credentials came from, for messages (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The credentials.
    pub credentials: Credentials,
    /// Where they came from (a file, a helper, the command line).
    pub source: String,
}

/// Why credentials cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An auth file cannot be read.
    #[error("cannot read registry credentials from `{}`", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An auth file is not valid JSON of the expected shape.
    #[error("`{}` is not a valid auth file: {message}", path.display())]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A credential helper failed.
    #[error("credential helper `docker-credential-{helper}` failed for `{host}`: {message}")]
    Helper {
        /// The credential helper (`docker-credential-<helper>`).
        helper: String,
        /// The registry host (`host[:port]`).
        host: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The auth files to consult, in order, from the environment.
pub fn auth_files() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(f));
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        out.push(Path::new(&d).join("containers/auth.json"));
    }
    if let Some(d) = env("DOCKER_CONFIG") {
        out.push(Path::new(&d).join("config.json"));
    } else if let Some(h) = env("HOME") {
        out.push(Path::new(&h).join(".docker/config.json"));
    }
    out
}

/// The `auths` key matches `host`, written as docker and podman write it (`host`,
/// `https://host`, `https://host/v1/`, …).
fn key_matches(key: &str, host: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    k == host || (host == "docker.io" && k == "index.docker.io")
}

/// Credentials for `host` from the first of `files` that has any.
pub fn lookup(host: &str, files: &[PathBuf]) -> Result<Option<Found>, AuthError> {
    for path in files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.clone(),
                    source,
                });
            }
        };
        let file: AuthFile = serde_json::from_slice(&bytes).map_err(|e| AuthError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let source = path.display().to_string();
        if let Some((_, helper)) = file.cred_helpers.iter().find(|(k, _)| key_matches(k, host)) {
            if let Some(c) = helper_get(helper, host)? {
                return Ok(Some(Found {
                    credentials: c,
                    source: format!("docker-credential-{helper} (from {source})"),
                }));
            }
            continue;
        }
        if let Some((_, entry)) = file.auths.iter().find(|(k, _)| key_matches(k, host)) {
            let c = entry_credentials(entry).map_err(|message| AuthError::Parse {
                path: path.clone(),
                message: format!("auths entry for `{host}`: {message}"),
            })?;
            if let Some(c) = c {
                return Ok(Some(Found {
                    credentials: c,
                    source,
                }));
            }
        }
        if let Some(store) = &file.creds_store
            && let Some(c) = helper_get(store, host)?
        {
            return Ok(Some(Found {
                credentials: c,
                source: format!("docker-credential-{store} (from {source})"),
            }));
        }
    }
    Ok(None)
}

fn entry_credentials(e: &AuthEntry) -> Result<Option<Credentials>, String> {
    if let Some(t) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::RefreshToken(Secret::new(t))));
    }
    if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| "`auth` is not base64".to_string())?;
        let s = String::from_utf8(raw).map_err(|_| "`auth` is not UTF-8".to_string())?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| "`auth` is not `user:password`".to_string())?;
        return Ok(Some(Credentials::Password {
            username: u.to_owned(),
            password: Secret::new(p),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials::Password {
            username: u.clone(),
            password: Secret::new(p.clone()),
        })),
        _ => Ok(None),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Asks `docker-credential-<helper> get` for `host`; `None` when it has nothing.
fn helper_get(helper: &str, host: &str) -> Result<Option<Credentials>, AuthError> {
    use std::io::Write as _;
    let fail = |message: String| AuthError::Helper {
        helper: helper.to_owned(),
        host: host.to_owned(),
        message,
    };
    if helper.is_empty() || helper.contains('/') {
        return Err(fail("not a helper name".into()));
    }
    let mut child = std::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_lowercase()
            + &String::from_utf8_lossy(&out.stderr).to_lowercase();
        if said.contains("not found") {
            return Ok(None);
        }
        // Helpers print their own messages, never the secret.
        return Err(fail(format!("it exited with {}", out.status)));
    }
    let a: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its answer is not the helper protocol's JSON".into()))?;
    Ok(Some(if a.username == "<token>" {
        Credentials::RefreshToken(Secret::new(a.secret))
    } else {
        Credentials::Password {
            username: a.username,
            password: Secret::new(a.secret),
        }
    }))
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lower case).
    pub scheme: String,
    /// `realm`, `service`, `scope` and any other parameters.
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"`). Quoted
/// values may contain commas and escaped quotes.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (value, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val.trim().to_owned());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The `Authorization` value for Basic.
pub fn basic(username: &str, password: &Secret) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.params["realm"], "Registry Realm");
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
    }

    #[test]
    fn auth_files_in_every_spelling_and_helpers() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("auth.json");
        std::fs::write(
            &f,
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dXNlcjpwYSQkOndvcmQ="},
                "other.example":{"username":"u2","password":"p2"},
                "tok.example":{"identitytoken":"refresh"}}}"#,
        )
        .unwrap();
        let files = vec![d.path().join("missing.json"), f.clone()];
        let got = lookup("reg.example:5000", &files).unwrap().unwrap();
        assert_eq!(
            got.credentials,
            Credentials::Password {
                username: "user".into(),
                password: Secret::new("pa$$:word")
            }
        );
        assert!(format!("{got:?}").contains("***"));
        assert!(!format!("{got:?}").contains("pa$$"));
        assert!(matches!(
            lookup("tok.example", &files).unwrap().unwrap().credentials,
            Credentials::RefreshToken(_)
        ));
        assert!(lookup("nobody.example", &files).unwrap().is_none());
        std::fs::write(&f, "{not json").unwrap();
        let e = lookup("x", &files).unwrap_err().to_string();
        assert!(e.contains("auth.json"), "{e}");
    }
}

/// One place credentials can come from.
#[derive(Debug)]
pub enum CredentialSource {
    /// Given on the command line (`--username` and `--password-stdin`), for any host.
    Given(Found),
    /// A docker/podman auth file (`auths`, `credHelpers`, `credsStore`); missing files are
    /// skipped.
    AuthFile(PathBuf),
}

/// Where credentials are looked up, in order; the first source with credentials for the host
/// wins. A new kind of source (a keyring, a cloud helper) is a new [`CredentialSource`].
#[derive(Debug, Default)]
pub struct CredentialChain {
    sources: Vec<CredentialSource>,
}

impl CredentialChain {
    /// Given credentials (if any) first, then the auth files of the environment
    /// ([`auth_files`]).
    pub fn new(given: Option<Found>) -> CredentialChain {
        let sources = given
            .map(CredentialSource::Given)
            .into_iter()
            .chain(auth_files().into_iter().map(CredentialSource::AuthFile))
            .collect();
        CredentialChain { sources }
    }

    /// The sources, in the order they are tried.
    pub fn sources(&self) -> &[CredentialSource] {
        &self.sources
    }

    /// Credentials for `host` from the first source that has any.
    pub fn lookup(&self, host: &str) -> Result<Option<Found>, AuthError> {
        for s in &self.sources {
            let found = match s {
                CredentialSource::Given(f) => Some(f.clone()),
                CredentialSource::AuthFile(p) => lookup(host, std::slice::from_ref(p))?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}
