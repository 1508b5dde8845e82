//! Rebuilding: a second build with nothing changed touches only repomd.xml and the registry's
//! HEADs; `--locked` refuses drift; `--offline` builds from the cache alone.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::common::*;
use crate::fakereg::FakeRegistry;
use crate::http::Server;

fn build(cfg: &Path, script: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["-q", "--config", cfg.to_str().unwrap(), "build", "--json"];
    args.extend_from_slice(extra);
    args.push(script.to_str().unwrap());
    pbsimage(&args)
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_rebuild_with_nothing_changed_asks_only_for_repomd_and_the_tag() {
    let repo = Server::serve(&fixture_repos().join("main"));
    let reg = FakeRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&repo.url(""), cache.path());
    push_to(&cfg, &reg.host);
    let first = json(&build(&cfg, &script, &[]));
    assert!(first["bytes_pushed"].as_u64().unwrap() > 0);
    repo.log.lock().unwrap().clear();
    reg.state().log.clear();
    let second = json(&build(&cfg, &script, &[]));
    assert_eq!(second["manifest_digest"], first["manifest_digest"]);
    assert_eq!(second["reference"], first["reference"]);
    assert_eq!(second["bytes_pushed"], 0);
    assert_eq!(second["layers_new"], 1, "only the job layer is rebuilt");
    assert_eq!(repo.requests(), vec!["GET /repodata/repomd.xml"]);
    let tag = first["tag"].as_str().unwrap();
    assert_eq!(
        reg.state().log,
        vec![
            "GET /v2/".to_string(),
            format!("HEAD /v2/pbs/fib/manifests/{tag}")
        ]
    );
    for stage in ["resolve", "layers", "image", "push"] {
        assert!(second["timings"][stage].is_f64(), "{}", second["timings"]);
    }
}

#[test]
fn locked_builds_refuse_drift() {
    let cache = tempfile::tempdir().unwrap();
    let (d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    // No lock yet: a clear error saying how to write one.
    let o = build(&cfg, &script, &["--locked"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pbsimage resolve --lock"),
        "{}",
        stderr(&o)
    );
    let lock = d.path().join("pbsimage.lock");
    let o = pbsimage(&[
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        "--lock",
        lock.to_str().unwrap(),
        script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = json(&build(&cfg, &script, &[]));
    let locked = json(&build(&cfg, &script, &["--locked"]));
    assert_eq!(plain["manifest_digest"], locked["manifest_digest"]);
    // The repository moved on (another revision of its metadata): refused, naming the repo.
    let text = std::fs::read_to_string(&lock).unwrap();
    let i = text.find("repomd-sha256 = \"").unwrap() + "repomd-sha256 = \"".len();
    let mut moved = text.clone();
    moved.replace_range(i..i + 4, "0000");
    std::fs::write(&lock, moved).unwrap();
    let o = build(&cfg, &script, &["--locked"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("repo `fixture` changed"), "{err}");
    assert!(err.contains("pbsimage.lock"), "{err}");
    // A package that would be chosen differently.
    assert!(text.contains("nevra = \"libstdc++-"), "{text}");
    let other = text.replacen("nevra = \"libstdc++-", "nevra = \"libstdc++-0:", 1);
    std::fs::write(&lock, other).unwrap();
    let o = build(&cfg, &script, &["--locked"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("would now be chosen"), "{}", stderr(&o));
}

#[test]
fn offline_builds_use_the_cache_alone() {
    let repo = Server::serve(&fixture_repos().join("main"));
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&repo.url(""), cache.path());
    // Empty cache: nothing to build from.
    let o = build(&cfg, &script, &["--offline"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--offline"), "{}", stderr(&o));
    assert!(repo.requests().is_empty(), "{:?}", repo.requests());
    let online = json(&build(&cfg, &script, &[]));
    // The mirror goes away; the cache has everything.
    repo.faults.target.lock().unwrap().push('/');
    repo.faults.unavailable.store(1000, Ordering::SeqCst);
    repo.log.lock().unwrap().clear();
    let offline = json(&build(&cfg, &script, &["--offline"]));
    assert_eq!(offline["manifest_digest"], online["manifest_digest"]);
    assert!(repo.requests().is_empty(), "{:?}", repo.requests());
    // Offline and push do not go together.
    let o = build(&cfg, &script, &["--offline", "--push", "127.0.0.1:1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--offline cannot push"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cache_gc_keeps_what_the_cache_layout_images_use() {
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    // Into the cache's own layout (no --output).
    let v = json(&build(&cfg, &script, &[]));
    let job_layer = v["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let o = pbsimage(&["-q", "--config", cfg.to_str().unwrap(), "cache", "gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cache.path().join("blobs/sha256").join(&job_layer).is_file());
    let o = pbsimage(&["-q", "--config", cfg.to_str().unwrap(), "cache", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn verify_finds_damage_in_every_bucket_and_gc_repairs_it() {
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    let v = json(&build(&cfg, &script, &[]));
    let cfg_s = cfg.to_str().unwrap();
    let verify = || pbsimage(&["--config", cfg_s, "cache", "verify", "--json"]);
    let o = verify();
    assert!(o.status.success(), "{}", stderr(&o));
    let clean: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    // A layer record whose blob was deleted (a separate file: the base layer's record).
    let records = cache.path().join("layers-v1");
    let rec = std::fs::read_dir(&records)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let layer: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    let hex = layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    std::fs::remove_file(cache.path().join("blobs/sha256").join(hex)).unwrap();
    // A flipped byte in the job layer (hard-linked into the cache's own layout).
    let job = v["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = cache.path().join("blobs/sha256").join(&job);
    let mut b = std::fs::read(&blob).unwrap();
    b[100] ^= 1;
    std::fs::write(&blob, &b).unwrap();

    let o = verify();
    assert!(!o.status.success());
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bad: Vec<&str> = found["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(bad.iter().any(|p| p.ends_with(&job)), "{bad:?}");
    assert!(
        bad.iter().any(|p| p.contains("layers-v1")),
        "the dangling record: {bad:?}"
    );
    assert!(
        bad.iter().any(|p| p.contains("oci/")),
        "the layout: {bad:?}"
    );
    assert!(found["checked"].as_u64() > clean["checked"].as_u64().map(|c| c - 10));

    // gc removes what is damaged; the cache verifies again; a rebuild restores the image.
    let o = pbsimage(&["--config", cfg_s, "cache", "gc", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let gc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(gc["damaged"].as_u64().unwrap() >= 3, "{gc}");
    let o = verify();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let again = json(&build(&cfg, &script, &[]));
    assert_eq!(again["manifest_digest"], v["manifest_digest"]);
    let o = verify();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// Every blob of an OCI layout hashes to its name.
fn layout_is_sound(layout: &Path) {
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
        assert_eq!(got, name, "{} does not hash to its name", p.display());
    }
}

#[test]
fn a_cache_that_was_changed_underneath_never_reaches_an_image() {
    let cache = tempfile::tempdir().unwrap();
    let (d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    let l1 = d.path().join("l1");
    let v = json(&build(&cfg, &script, &["--output", l1.to_str().unwrap()]));
    let blobs = cache.path().join("blobs/sha256");
    let flip = |p: &Path| {
        let mut b = std::fs::read(p).unwrap();
        let i = b.len() / 2;
        b[i] ^= 0x10;
        std::fs::write(p, &b).unwrap();
    };
    // A flipped byte in the cached base layer: rebuilt, and the new layout is sound.
    let base = v["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    flip(&blobs.join(base));
    let l2 = d.path().join("l2");
    let again = json(&build(&cfg, &script, &["--output", l2.to_str().unwrap()]));
    assert_eq!(again["manifest_digest"], v["manifest_digest"]);
    assert_eq!(again["layers"][0]["cached"], false, "{again}");
    layout_is_sound(&l2);
    // The first layout shared the damaged inode; writing to it again repairs it.
    json(&build(&cfg, &script, &["--output", l1.to_str().unwrap()]));
    layout_is_sound(&l1);

    // A flipped bit in a cached package whose layer must be built again: refused, naming
    // the package; `cache gc` removes it and the next build downloads it again.
    let rpm = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read(p).is_ok_and(|b| {
                b.starts_with(&[0xed, 0xab, 0xee, 0xdb]) && b.windows(9).any(|w| w == b"libstdc++")
            })
        })
        .expect("the cached libstdc++ package");
    flip(&rpm);
    std::fs::remove_dir_all(cache.path().join("layers-v1")).unwrap();
    let o = build(&cfg, &script, &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("libstdc++") && err.contains("changed in the cache"),
        "{err}"
    );
    assert!(err.contains("cache gc"), "{err}");
    let o = pbsimage(&["-q", "--config", cfg.to_str().unwrap(), "cache", "gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let healed = json(&build(&cfg, &script, &[]));
    assert_eq!(healed["manifest_digest"], v["manifest_digest"]);
}

#[test]
fn temporaries_of_killed_processes_are_swept_at_once_and_live_ones_kept() {
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    json(&build(&cfg, &script, &[]));
    let blobs = cache.path().join("blobs/sha256");
    let locks = cache.path().join("locks");
    // A process that was killed: its liveness lock is there, nobody holds it.
    std::fs::write(locks.join("proc-4000001.lock"), b"").unwrap();
    std::fs::write(blobs.join(".tmp-4000001-abcdef"), vec![0u8; 1 << 20]).unwrap();
    // A process still writing: its lock is held (here, by this test).
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locks.join("proc-4000002.lock"))
        .unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
    std::fs::write(blobs.join(".tmp-4000002-fedcba"), b"in progress").unwrap();
    // The next build sweeps the dead one's file, not the live one's.
    json(&build(&cfg, &script, &[]));
    assert!(!blobs.join(".tmp-4000001-abcdef").exists());
    assert!(!locks.join("proc-4000001.lock").exists());
    assert!(blobs.join(".tmp-4000002-fedcba").exists());
    // Once that process is gone too, `cache gc` sweeps it.
    drop(held);
    let o = pbsimage(&["-q", "--config", cfg.to_str().unwrap(), "cache", "gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!blobs.join(".tmp-4000002-fedcba").exists());
}
