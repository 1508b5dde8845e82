//! Pushing through faults, auth and interruptions, against the fake registry (faults a real
//! registry will not produce) and Debian's docker-registry with TLS and htpasswd.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use crate::common::*;
use crate::fakereg::FakeRegistry;

/// The paper's job, with a config that treats `host` as a plain-HTTP registry.
struct Job {
    dir: tempfile::TempDir,
    cfg: PathBuf,
    script: PathBuf,
    _cache: tempfile::TempDir,
}

fn job(insecure: &[&str]) -> Job {
    let cache = tempfile::tempdir().unwrap();
    let (dir, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    set_registry(&cfg, insecure, "");
    Job {
        dir,
        cfg,
        script,
        _cache: cache,
    }
}

fn set_registry(cfg: &Path, insecure: &[&str], extra: &str) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    if let (Some(a), Some(b)) = (text.find("[registry]"), text.find("[cache]")) {
        text.replace_range(a..b, "");
    }
    let list: Vec<String> = insecure.iter().map(|h| format!("\"{h}\"")).collect();
    std::fs::write(
        cfg,
        text.replacen(
            "[cache]",
            &format!(
                "[registry]\ninsecure = [{}]\n{extra}[cache]",
                list.join(", ")
            ),
            1,
        ),
    )
    .unwrap();
}

impl Job {
    fn command(&self, host: &str, extra: &[&str]) -> Command {
        self.command_for(host, extra, &self.script)
    }

    fn command_for(&self, host: &str, extra: &[&str], script: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pbsimage"));
        c.args([
            "-v",
            "--config",
            self.cfg.to_str().unwrap(),
            "build",
            "--json",
        ])
        .args(["--push", host, "--output"])
        .arg(self.dir.path().join("layout"))
        .args(extra)
        .arg(script)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("HOME", self.dir.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR");
        c
    }

    fn push(&self, host: &str) -> std::process::Output {
        self.command(host, &[]).output().unwrap()
    }
}

fn ok_json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every blob the manifest of `repo:tag` names is in the registry.
fn assert_complete(reg: &FakeRegistry, repo: &str, tag: &str) -> String {
    let st = reg.state();
    let digest = st
        .tags
        .get(&(repo.to_owned(), tag.to_owned()))
        .unwrap_or_else(|| panic!("no tag {repo}:{tag}; log: {:?}", st.log))
        .clone();
    let m: serde_json::Value = serde_json::from_slice(&st.manifests[&digest]).unwrap();
    let have = &st.repos[repo];
    assert!(have.contains(m["config"]["digest"].as_str().unwrap()));
    for l in m["layers"].as_array().unwrap() {
        assert!(have.contains(l["digest"].as_str().unwrap()));
    }
    digest
}

#[test]
fn throttling_outages_and_cut_uploads_are_retried() {
    let reg = FakeRegistry::start();
    let j = job(&[&reg.host]);
    // 429 with Retry-After on the first two uploads, 503 on three HEADs, one upload cut off
    // halfway: the push still completes, with the digest the layout has.
    reg.target("PUT /v2/pbs/fib/blobs/uploads/");
    reg.faults.throttle.store(2, Ordering::SeqCst);
    reg.faults.drop_body.store(1, Ordering::SeqCst);
    let v = ok_json(&j.push(&reg.host));
    let tag = v["tag"].as_str().unwrap();
    assert_eq!(
        assert_complete(&reg, "pbs/fib", tag),
        v["manifest_digest"].as_str().unwrap()
    );
    let reg2 = FakeRegistry::start();
    set_registry(&j.cfg, &[&reg2.host], "");
    reg2.target("HEAD /v2/");
    reg2.faults.unavailable.store(3, Ordering::SeqCst);
    let v2 = ok_json(&j.push(&reg2.host));
    assert_complete(&reg2, "pbs/fib", tag);
    assert_eq!(v2["manifest_digest"], v["manifest_digest"]);
    let heads = reg2
        .state()
        .log
        .iter()
        .filter(|l| l.starts_with("HEAD"))
        .count();
    let blobs = v2["layers"].as_array().unwrap().len() + 1;
    // A HEAD per blob and one for the tag, and each 503 retried once.
    assert_eq!(heads, blobs + 1 + 3);
}

#[test]
fn expiring_bearer_tokens_are_renewed_with_the_push_scope() {
    let reg = FakeRegistry::start();
    let j = job(&[]);
    // One upload at a time, so the token's uses are counted deterministically.
    set_registry(&j.cfg, &[&reg.host], "parallel = 1\n");
    // Every token is good for three requests: the push re-challenges many times.
    reg.faults.token_uses.store(3, Ordering::SeqCst);
    let v = ok_json(&j.push(&reg.host));
    assert_complete(&reg, "pbs/fib", v["tag"].as_str().unwrap());
    let st = reg.state();
    let tokens: Vec<&String> = st.log.iter().filter(|l| l.starts_with("token")).collect();
    assert!(tokens.len() > 2, "{tokens:?}");
    assert!(
        tokens
            .iter()
            .all(|t| t.contains("repository:pbs/fib:pull,push")),
        "{tokens:?}"
    );
}

#[test]
fn a_registry_that_disagrees_on_a_digest_is_an_error_and_no_tag_moves() {
    let reg = FakeRegistry::start();
    let j = job(&[&reg.host]);
    reg.faults.wrong_digest.store(true, Ordering::SeqCst);
    let o = j.push(&reg.host);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("has digest sha256:000"), "{err}");
    assert!(reg.state().tags.is_empty());
    // Retries are bounded: a registry that always throttles makes a clear error.
    let reg2 = FakeRegistry::start();
    set_registry(&j.cfg, &[&reg2.host], "");
    reg2.target("PUT /v2/pbs/fib/manifests/");
    reg2.faults.throttle.store(1000, Ordering::SeqCst);
    let o = j.push(&reg2.host);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("answered 429"), "{}", stderr(&o));
    assert!(stderr(&o).contains("TOOMANYREQUESTS"), "{}", stderr(&o));
}

const CANARY: &str = "canary-Pw-7f3c9e";

/// Nothing under `dir` contains `needle`.
fn assert_nowhere(dir: &Path, needle: &str) {
    for e in walk(dir) {
        if let Ok(b) = std::fs::read(&e) {
            assert!(
                !b.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "`{needle}` found in {}",
                e.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn wrong_and_right_passwords_never_show() {
    use base64::Engine as _;
    let reg = FakeRegistry::start();
    let j = job(&[&reg.host]);
    *reg.faults.basic.lock().unwrap() = Some(("ci".into(), "right-password".into()));
    // No credentials at all: refused, with a hint on how to give them.
    let o = j.push(&reg.host);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refused no credentials"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));
    // A wrong password on stdin: refused; the canary is nowhere.
    let mut child = j
        .command(&reg.host, &["-vv", "--username", "ci", "--password-stdin"])
        .env("PBSIMAGE_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{CANARY}").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("refused the credentials from --username"),
        "{all}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("ci:{CANARY}"));
    assert!(!all.contains(CANARY) && !all.contains(&b64), "{all}");
    assert!(reg.state().tags.is_empty());
    // The right password from an auth file (as `skopeo login` writes it) pushes; neither it
    // nor the canary is in any output, the cache or the layout.
    let auth = j.dir.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host,
            base64::engine::general_purpose::STANDARD.encode("ci:right-password")
        ),
    )
    .unwrap();
    let o = j
        .command(&reg.host, &[])
        .env("REGISTRY_AUTH_FILE", &auth)
        .output()
        .unwrap();
    let v = ok_json(&o);
    assert_complete(&reg, "pbs/fib", v["tag"].as_str().unwrap());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("right-password"), "{all}");
    std::fs::remove_file(&auth).unwrap();
    for needle in [CANARY, "right-password"] {
        assert_nowhere(j.dir.path(), needle);
        assert_nowhere(j._cache.path(), needle);
    }
}

#[test]
fn a_push_killed_midway_leaves_no_tag_and_a_rerun_completes() {
    let reg = FakeRegistry::start();
    let j = job(&[&reg.host]);
    // Build first so the interrupted run is all push.
    let o = pbsimage(&[
        "-q",
        "--config",
        j.cfg.to_str().unwrap(),
        "build",
        j.script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    *reg.faults.stall_after.lock().unwrap() = Some(2);
    let mut child = j
        .command(&reg.host, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let st = reg.state();
        let pending = st
            .log
            .iter()
            .filter(|l| l.starts_with("PUT /v2/pbs/fib/blobs/uploads/"))
            .count();
        if st.uploads.len() == 2 && pending > 2 {
            break;
        }
        drop(st);
        assert!(
            std::time::Instant::now() < deadline,
            "the push never stalled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reg.state().tags.is_empty(), "a tag moved before its blobs");
    *reg.faults.stall_after.lock().unwrap() = None;
    let v = ok_json(&j.push(&reg.host));
    assert_complete(&reg, "pbs/fib", v["tag"].as_str().unwrap());
    let skipped = v["pushed"]["skipped"].as_array().unwrap();
    assert!(skipped.len() >= 2, "{}", v["pushed"]);
}

#[test]
fn a_second_job_sharing_the_base_uploads_none_of_it() {
    let reg = FakeRegistry::start();
    let j = job(&[&reg.host]);
    let first = ok_json(&j.push(&reg.host));
    let base = first["layers"][0]["digest"].as_str().unwrap().to_owned();
    let base_size = first["layers"][0]["size"].as_u64().unwrap();
    let bytes_before = reg.state().uploaded_bytes;
    let second = j.dir.path().join("hello.sh");
    std::fs::copy("fixtures/jobs/paper-listing2-script/job.sh", &second).unwrap();
    let o = j.command_for(&reg.host, &[], &second).output().unwrap();
    let v = ok_json(&o);
    assert_eq!(v["layers"][0]["digest"], base.as_str());
    let st = reg.state();
    // Counted by the registry: the base was mounted into pbs/hello, never uploaded again.
    assert_eq!(st.uploads.iter().filter(|d| **d == base).count(), 1);
    assert!(
        st.log
            .iter()
            .any(|l| l.starts_with("POST /v2/pbs/hello/blobs/uploads/")),
        "{:?}",
        st.log
    );
    assert!(st.repos["pbs/hello"].contains(&base));
    let sent = st.uploaded_bytes - bytes_before;
    assert!(
        sent < base_size as usize,
        "{sent} bytes sent for the second job"
    );
    assert_eq!(v["bytes_pushed"].as_u64().unwrap() as usize, sent);
}

#[test]
fn credentials_from_a_credential_helper() {
    let reg = FakeRegistry::start();
    let j = job(&[&reg.host]);
    *reg.faults.basic.lock().unwrap() = Some(("helper-user".into(), "helper-secret".into()));
    reg.faults.token_uses.store(100, Ordering::SeqCst);
    // docker-credential-pbstest answers `get` with the helper protocol's JSON.
    let bin = j.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-pbstest");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}' \"$host\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = j.dir.path().join(".docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"pbstest"}}}}"#, reg.host),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = j
        .command(&reg.host, &[])
        .env("PATH", path)
        .output()
        .unwrap();
    let v = ok_json(&o);
    assert_complete(&reg, "pbs/fib", v["tag"].as_str().unwrap());
    // The token server got the helper's credentials; the registry only ever saw tokens.
    let st = reg.state();
    assert!(st.authorizations.iter().any(|a| a.starts_with("Basic ")));
    assert!(!format!("{}{}", stdout(&o), stderr(&o)).contains("helper-secret"));
}
