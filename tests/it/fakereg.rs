//! A small OCI distribution registry on 127.0.0.1 for the fault cases a real registry will not
//! produce: 429 with Retry-After, 5xx, expiring Bearer tokens, a wrong Docker-Content-Digest,
//! connections dropped mid-upload, uploads that stall. It checks digests and refuses a
//! manifest whose blobs it lacks, as distribution does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use sha2::Digest as _;

/// Misbehaviour on demand. Counters are "the next N matching requests".
#[derive(Default)]
pub struct Faults {
    /// Requests (`METHOD path`) containing this are the ones the counters below hit.
    pub target: Mutex<String>,
    /// 429 with `Retry-After: 1`.
    pub throttle: AtomicUsize,
    /// 503.
    pub unavailable: AtomicUsize,
    /// Read half the body, then close the connection without an answer.
    pub drop_body: AtomicUsize,
    /// Answer blob uploads with a wrong `Docker-Content-Digest`.
    pub wrong_digest: AtomicBool,
    /// When set, uploads after this many completed ones wait until it is cleared.
    pub stall_after: Mutex<Option<usize>>,
    /// Bearer auth: each token is good for this many requests (0: no auth).
    pub token_uses: AtomicUsize,
    /// Basic credentials the token server (or, without tokens, the registry) wants.
    pub basic: Mutex<Option<(String, String)>>,
}

#[derive(Default)]
pub struct State {
    /// repository → blobs it holds
    pub repos: BTreeMap<String, BTreeSet<String>>,
    /// digest → size
    pub blobs: BTreeMap<String, usize>,
    /// (repository, tag) → manifest digest
    pub tags: BTreeMap<(String, String), String>,
    pub manifests: BTreeMap<String, Vec<u8>>,
    /// digest of every completed blob upload, in order
    pub uploads: Vec<String>,
    pub uploaded_bytes: usize,
    sessions: BTreeMap<String, String>,
    next: usize,
    /// token → uses left
    tokens: BTreeMap<String, usize>,
    /// Every request line, and token requests with their query.
    pub log: Vec<String>,
    /// Authorization headers seen (to check no secret is sent where it should not be).
    pub authorizations: Vec<String>,
}

pub struct FakeRegistry {
    pub host: String,
    pub faults: Arc<Faults>,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let faults = Arc::new(Faults::default());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, st, sp, h) = (faults.clone(), state.clone(), stop.clone(), host.clone());
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (f, st, h) = (f.clone(), st.clone(), h.clone());
                        thread::spawn(move || serve(s, &f, &st, &h));
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        FakeRegistry {
            host,
            faults,
            state,
            stop,
        }
    }

    pub fn target(&self, t: &str) {
        *self.faults.target.lock().unwrap() = t.to_owned();
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn take(c: &AtomicUsize) -> bool {
    c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

fn error_body(code: &str) -> Vec<u8> {
    format!(r#"{{"errors":[{{"code":"{code}","message":"fake registry says {code}"}}]}}"#)
        .into_bytes()
}

fn serve(s: TcpStream, faults: &Faults, state: &Mutex<State>, host: &str) {
    s.set_nonblocking(false).ok();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut s = s;
    // Keep-alive: answer requests on this connection until it closes.
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), urldecode(v)))
            .collect();
        let request = format!("{method} {path}");
        state.lock().unwrap().log.push(request.clone());
        if let Some(a) = headers.get("authorization") {
            state.lock().unwrap().authorizations.push(a.clone());
        }
        let targeted = {
            let t = faults.target.lock().unwrap();
            !t.is_empty() && request.contains(t.as_str())
        };
        if targeted && take(&faults.drop_body) {
            let mut half = vec![0u8; len / 2];
            let _ = r.read_exact(&mut half);
            let _ = s.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if targeted && take(&faults.throttle) {
            respond(
                &mut s,
                "429 Too Many Requests",
                &[("Retry-After", "1".into())],
                &error_body("TOOMANYREQUESTS"),
            );
            continue;
        }
        if targeted && take(&faults.unavailable) {
            respond(&mut s, "503 Service Unavailable", &[], b"");
            continue;
        }
        if path == "/token" {
            handle_token(&mut s, &headers, &query, faults, state);
            continue;
        }
        if !authorized(&mut s, &headers, faults, state, host) {
            continue;
        }
        handle_v2(&mut s, &method, path, &query, &body, faults, state);
    }
}

fn urldecode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn basic_ok(headers: &BTreeMap<String, String>, want: &Option<(String, String)>) -> bool {
    use base64::Engine as _;
    let Some((u, p)) = want else { return true };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    );
    headers.get("authorization") == Some(&expected)
}

fn handle_token(
    s: &mut TcpStream,
    headers: &BTreeMap<String, String>,
    query: &BTreeMap<String, String>,
    faults: &Faults,
    state: &Mutex<State>,
) {
    if !basic_ok(headers, &faults.basic.lock().unwrap()) {
        respond(s, "401 Unauthorized", &[], &error_body("UNAUTHORIZED"));
        return;
    }
    let mut st = state.lock().unwrap();
    st.next += 1;
    let token = format!("tok{}", st.next);
    let uses = faults.token_uses.load(Ordering::SeqCst);
    st.tokens.insert(token.clone(), uses);
    st.log.push(format!(
        "token scope={}",
        query.get("scope").cloned().unwrap_or_default()
    ));
    drop(st);
    respond(
        s,
        "200 OK",
        &[],
        format!(r#"{{"token":"{token}"}}"#).as_bytes(),
    );
}

/// Checks Bearer tokens (each good for a few requests) or Basic credentials.
fn authorized(
    s: &mut TcpStream,
    headers: &BTreeMap<String, String>,
    faults: &Faults,
    state: &Mutex<State>,
    host: &str,
) -> bool {
    if faults.token_uses.load(Ordering::SeqCst) > 0 {
        let given = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_owned);
        let mut st = state.lock().unwrap();
        if let Some(t) = given
            && let Some(left) = st.tokens.get_mut(&t)
            && *left > 0
        {
            *left -= 1;
            return true;
        }
        drop(st);
        respond(
            s,
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            )],
            &error_body("UNAUTHORIZED"),
        );
        return false;
    }
    let basic = faults.basic.lock().unwrap().clone();
    if basic.is_some() && !basic_ok(headers, &basic) {
        respond(
            s,
            "401 Unauthorized",
            &[("WWW-Authenticate", r#"Basic realm="fake""#.into())],
            &error_body("UNAUTHORIZED"),
        );
        return false;
    }
    true
}

fn handle_v2(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
    faults: &Faults,
    state: &Mutex<State>,
) {
    if path == "/v2/" {
        respond(s, "200 OK", &[], b"{}");
        return;
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        respond(s, "404 Not Found", &[], b"");
        return;
    };
    if let Some(i) = rest.find("/blobs/uploads/") {
        let repo = &rest[..i];
        let id = &rest[i + "/blobs/uploads/".len()..];
        match method {
            "POST" => {
                let mut st = state.lock().unwrap();
                if let (Some(d), Some(from)) = (query.get("mount"), query.get("from"))
                    && st.repos.get(from).is_some_and(|b| b.contains(d))
                {
                    st.repos.entry(repo.into()).or_default().insert(d.clone());
                    respond(
                        s,
                        "201 Created",
                        &[("Docker-Content-Digest", d.clone())],
                        b"",
                    );
                    return;
                }
                st.next += 1;
                let id = format!("u{}", st.next);
                st.sessions.insert(id.clone(), repo.into());
                drop(st);
                respond(
                    s,
                    "202 Accepted",
                    &[("Location", format!("/v2/{repo}/blobs/uploads/{id}"))],
                    b"",
                );
            }
            "PUT" => {
                loop {
                    let stall = *faults.stall_after.lock().unwrap();
                    match stall {
                        Some(n) if state.lock().unwrap().uploads.len() >= n => {
                            thread::sleep(std::time::Duration::from_millis(20))
                        }
                        _ => break,
                    }
                }
                let mut st = state.lock().unwrap();
                if !st.sessions.contains_key(id) {
                    respond(s, "404 Not Found", &[], &error_body("BLOB_UPLOAD_UNKNOWN"));
                    return;
                }
                let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)));
                if query.get("digest") != Some(&digest) {
                    respond(s, "400 Bad Request", &[], &error_body("DIGEST_INVALID"));
                    return;
                }
                st.sessions.remove(id);
                st.repos
                    .entry(repo.into())
                    .or_default()
                    .insert(digest.clone());
                st.blobs.insert(digest.clone(), body.len());
                st.uploads.push(digest.clone());
                st.uploaded_bytes += body.len();
                drop(st);
                let answer = if faults.wrong_digest.load(Ordering::SeqCst) {
                    format!("sha256:{}", "0".repeat(64))
                } else {
                    digest
                };
                respond(s, "201 Created", &[("Docker-Content-Digest", answer)], b"");
            }
            _ => respond(s, "405 Method Not Allowed", &[], b""),
        }
        return;
    }
    if let Some(i) = rest.find("/blobs/") {
        let (repo, digest) = (&rest[..i], &rest[i + "/blobs/".len()..]);
        let st = state.lock().unwrap();
        if st.repos.get(repo).is_some_and(|b| b.contains(digest)) {
            let size = st.blobs[digest];
            drop(st);
            // HEAD: the length without the body.
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nDocker-Content-Digest: {digest}\r\n\r\n"
            );
        } else {
            drop(st);
            respond(s, "404 Not Found", &[], b"");
        }
        return;
    }
    if let Some(i) = rest.find("/manifests/") {
        let (repo, reference) = (&rest[..i], &rest[i + "/manifests/".len()..]);
        match method {
            "PUT" => {
                let m: serde_json::Value = match serde_json::from_slice(body) {
                    Ok(m) => m,
                    Err(_) => {
                        respond(s, "400 Bad Request", &[], &error_body("MANIFEST_INVALID"));
                        return;
                    }
                };
                // An index names manifests; an image manifest names blobs.
                let index = m["manifests"].is_array();
                let mut wanted = Vec::new();
                if !index {
                    wanted.push(m["config"]["digest"].as_str().unwrap_or("").to_owned());
                }
                for l in m["layers"]
                    .as_array()
                    .into_iter()
                    .chain(m["manifests"].as_array())
                    .flatten()
                {
                    wanted.push(l["digest"].as_str().unwrap_or("").to_owned());
                }
                let mut st = state.lock().unwrap();
                let have = st.repos.get(repo).cloned().unwrap_or_default();
                let known = |d: &String| {
                    if index {
                        st.manifests.contains_key(d)
                    } else {
                        have.contains(d)
                    }
                };
                if wanted.iter().any(|d| !known(d)) {
                    respond(
                        s,
                        "400 Bad Request",
                        &[],
                        &error_body("MANIFEST_BLOB_UNKNOWN"),
                    );
                    return;
                }
                let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)));
                st.manifests.insert(digest.clone(), body.to_vec());
                st.tags
                    .insert((repo.to_owned(), reference.to_owned()), digest.clone());
                drop(st);
                respond(s, "201 Created", &[("Docker-Content-Digest", digest)], b"");
            }
            "HEAD" | "GET" => {
                let st = state.lock().unwrap();
                let digest = if reference.starts_with("sha256:") {
                    Some(reference.to_owned()).filter(|d| st.manifests.contains_key(d))
                } else {
                    st.tags
                        .get(&(repo.to_owned(), reference.to_owned()))
                        .cloned()
                };
                match digest {
                    Some(d) => {
                        let body = st.manifests[&d].clone();
                        drop(st);
                        let headers = [
                            ("Docker-Content-Digest", d),
                            (
                                "Content-Type",
                                "application/vnd.oci.image.manifest.v1+json".into(),
                            ),
                        ];
                        if method == "HEAD" {
                            let _ = write!(
                                s,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nDocker-Content-Digest: {}\r\nContent-Type: {}\r\n\r\n",
                                body.len(),
                                headers[0].1,
                                headers[1].1
                            );
                        } else {
                            respond(s, "200 OK", &headers, &body);
                        }
                    }
                    None => {
                        drop(st);
                        if method == "HEAD" {
                            let _ =
                                write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                        } else {
                            respond(s, "404 Not Found", &[], &error_body("MANIFEST_UNKNOWN"));
                        }
                    }
                }
            }
            _ => respond(s, "405 Method Not Allowed", &[], b""),
        }
        return;
    }
    respond(s, "404 Not Found", &[], b"");
}
