//! Hostile and absurd job scripts: bounded time and memory, clear errors, nothing that hangs.
//! (The rest of the hostile-inputs work — repositories, packages, caches — follows.)

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use crate::common::*;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn oversized_scripts_and_directives_are_refused_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    // A 50 MB script.
    let big = d.path().join("big.sh");
    let mut f = std::fs::File::create(&big).unwrap();
    f.write_all(b"#!/bin/sh\n#PBS -N big\n").unwrap();
    let line = format!("echo {}\n", "x".repeat(1000));
    for _ in 0..50_000 {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let (o, rss) = with_peak_rss(&["parse", big.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("big.sh") && err.contains("larger than"),
        "{err}"
    );
    assert!(rss < 150, "peak RSS {rss} MiB");

    // A 50 MB -N value, within a script under the size limit.
    let long = d.path().join("long.sh");
    write(
        &long,
        &format!("#!/bin/sh\n#PBS -N {}\necho hi\n", "n".repeat(5_000_000)),
    );
    let (o, rss) = with_peak_rss(&["parse", long.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("long.sh:2") && err.contains("longer than"),
        "{err}"
    );
    assert!(rss < 150, "peak RSS {rss} MiB");
}

#[test]
fn many_variables_are_read_in_linear_time() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("vars.sh");
    let mut text = String::from("#!/bin/sh\n#PBS -N vars\n");
    for i in 0..100_000 {
        text.push_str(&format!("#PBS -v V{}={i}\n", i % 50_000));
    }
    text.push_str("env\n");
    write(&job, &text);
    let started = std::time::Instant::now();
    let o = pbsimage(&["parse", "--json", job.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let env = v["env"].as_array().unwrap();
    // Each of the 50,000 names once, with its last value, in order of last definition.
    assert_eq!(env.len(), 50_000);
    assert_eq!(env[0]["name"], "V0");
    assert_eq!(env[0]["value"], "50000");
    // Quadratic handling took 13 s here; linear takes well under a second.
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}

#[test]
fn fifos_are_refused_by_type_without_blocking() {
    require("mkfifo", "coreutils");
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("job.sh");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let o = pbsimage(&["parse", fifo.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));

    let job = d.path().join("b.sh");
    run_ok(Command::new("mkfifo").arg(d.path().join("a.out")));
    write(&job, "#!/bin/sh\n#PBS -N b\n#PBS -B a.out\n./a.out\n");
    let err = failing(&["needs", job.to_str().unwrap()]);
    assert!(
        err.contains("a.out") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn absurd_resources_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("#PBS -l nodes=100000000", "100000000 nodes"),
        ("#PBS -l select=200000:ncpus=1", "200000 nodes"),
        ("#PBS -l nodes=50000:ppn=1000000", "processor slots"),
    ];
    for (directive, says) in cases {
        let job = d.path().join("absurd.sh");
        write(
            &job,
            &format!("#!/bin/sh\n#PBS -N absurd\n{directive}\nhostname\n"),
        );
        let (o, rss) = with_peak_rss(&["parse", job.to_str().unwrap()]);
        assert!(!o.status.success(), "{directive}");
        let err = stderr(&o);
        assert!(
            err.contains("absurd.sh:3") && err.contains(says),
            "{directive}: {err}"
        );
        assert!(rss < 150, "{directive}: peak RSS {rss} MiB");
    }
    // Memory that overflows: refused when the manifest is made, naming the resource.
    let job = d.path().join("mem.sh");
    write(
        &job,
        "#!/bin/sh\n#PBS -N mem\n#PBS -l nodes=1:ppn=1000000,pmem=16000000gb\nhostname\n",
    );
    let digest = format!("registry.example.org/pbs/mem@sha256:{}", "0".repeat(64));
    let o = pbsimage(&[
        "manifest",
        job.to_str().unwrap(),
        "--image",
        &digest,
        "--run-as",
        "1000",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pmem"), "{}", stderr(&o));
}

#[test]
fn odd_but_valid_scripts() {
    let d = tempfile::tempdir().unwrap();
    // Only `:` lines: qsub reads directives past them, and the script still runs.
    let colon = d.path().join("colon.sh");
    write(&colon, "#PBS -N colon\n: first\n: second\n");
    let o = pbsimage(&["parse", colon.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Arithmetic `for` loops name no commands.
    let arith = d.path().join("arith.sh");
    write(
        &arith,
        "#!/bin/bash\n#PBS -N arith\nfor ((i=0;i<4;i++)); do hostname; done\n",
    );
    let o = pbsimage(&["needs", "--json", arith.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let commands: Vec<&str> = v["needs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "command" && n["origins"][0] != "pbsimage job wrapper")
        .map(|n| n["value"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["hostname"]);
}

#[test]
fn credentials_in_push_targets_are_refused_and_never_echoed() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.sh");
    write(&job, "#!/bin/sh\n#PBS -N push\nhostname\n");
    let o = pbsimage(&[
        "build",
        "--push",
        "someone:Canary-s3cret-9731@127.0.0.1:5000",
        job.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("Canary-s3cret-9731"), "{all}");
    assert!(!all.contains("someone"), "{all}");
    assert!(
        all.contains("127.0.0.1:5000") && all.contains("credentials"),
        "{all}"
    );
}

/// Builds the spec texts with rpmbuild into a createrepo_c repository in `dir`.
fn rpm_repo(dir: &Path, specs: &[(&str, &str)]) -> std::path::PathBuf {
    require("rpmbuild", "rpm");
    require("createrepo_c", "createrepo-c");
    let top = dir.join("build");
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for (name, text) in specs {
        let spec = dir.join(format!("{name}.spec"));
        write(&spec, text);
        run_ok(Command::new("rpmbuild").args([
            "--quiet",
            "-bb",
            "--define",
            &format!("_topdir {}", top.display()),
            spec.to_str().unwrap(),
        ]));
    }
    for e in walkdir(&top.join("RPMS")) {
        std::fs::copy(&e, repo.join(e.file_name().unwrap())).unwrap();
    }
    run_ok(Command::new("createrepo_c").arg("--quiet").arg(&repo));
    repo
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_symlink_in_a_lower_layer_cannot_be_written_through() {
    let d = tempfile::tempdir().unwrap();
    let spec = |name: &str, install: &str, files: &str| {
        format!(
            "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: escape fixture\nLicense: CC0\n\
             BuildArch: noarch\n%description\nFixture.\n%install\n{install}\n%files\n{files}\n"
        )
    };
    let link = spec(
        "fx-escape-a-link",
        "mkdir -p %{buildroot}/opt/fx-escape\nln -s /etc %{buildroot}/opt/fx-escape/etc",
        "/opt/fx-escape",
    );
    let file = spec(
        "fx-escape-b-file",
        "mkdir -p %{buildroot}/opt/fx-escape/etc\necho pwned > %{buildroot}/opt/fx-escape/etc/fx-escape.conf",
        "/opt/fx-escape/etc/fx-escape.conf",
    );
    let repo = rpm_repo(d.path(), &[("link", &link), ("file", &file)]);
    let cache = d.path().join("cache");
    let cfg = d.path().join("pipeline.toml");
    write(
        &cfg,
        &repo_config(
            &[
                (
                    "fixture",
                    format!("file://{}", fixture_repos().join("main").display()),
                ),
                ("escape", format!("file://{}", repo.display())),
            ],
            &cache,
            &format!("{BASE}[needs]\nextra = [\"fx-escape-a-link\", \"fx-escape-b-file\"]\n"),
        ),
    );
    let job = d.path().join("job.sh");
    write(&job, "#!/bin/sh\n#PBS -N escape\ncat /etc/hostname\n");
    let out = d.path().join("layout");
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "build",
        "--output",
        out.to_str().unwrap(),
        job.to_str().unwrap(),
    ]);
    assert!(
        err.contains("fx-escape-b-file")
            && err.contains("opt/fx-escape/etc/fx-escape.conf")
            && err.contains("fx-escape-a-link"),
        "{err}"
    );
    // No image was written.
    assert!(!out.join("index.json").exists());
}

#[test]
fn package_downloads_stop_at_their_declared_size() {
    use std::sync::atomic::Ordering;
    // Over HTTP: an endless body without Content-Length.
    let repo = crate::http::Server::serve(&fixture_repos().join("main"));
    *repo.faults.target.lock().unwrap() = "libstdc++".into();
    repo.faults.endless.store(true, Ordering::SeqCst);
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&repo.url(""), cache.path());
    let (o, rss) = with_peak_rss(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        script.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("libstdc++") && err.contains("larger than the limit"),
        "{err}"
    );
    assert!(rss < 150, "peak RSS {rss} MiB");
    // Nothing of it stayed in the cache.
    let big: Vec<_> = std::fs::read_dir(cache.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.metadata().unwrap().len() > 64 << 20)
        .collect();
    assert!(big.is_empty(), "{big:?}");

    // From file://: a package larger than its metadata says.
    let d = tempfile::tempdir().unwrap();
    crate::repo::copy_dir(&fixture_repos().join("main"), d.path());
    let lib = find_prefixed(d.path(), "libstdc++-");
    let mut b = std::fs::read(&lib).unwrap();
    b.extend(vec![0u8; 4096]);
    std::fs::write(&lib, b).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(d.path(), cache.path());
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        script.to_str().unwrap(),
    ]);
    assert!(
        err.contains("libstdc++") && err.contains("larger than the limit"),
        "{err}"
    );
}

#[test]
fn a_bad_package_is_named_with_its_repository_and_url() {
    let cache = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("pipeline.toml");
    let url = format!("file://{}", fixture_repos().join("main").display());
    write(
        &cfg,
        &repo_config(
            &[("fixture", url.clone())],
            cache.path(),
            &format!("{BASE}[needs]\nextra = [\"special-lz\"]\n"),
        ),
    );
    let job = d.path().join("job.sh");
    write(&job, "#!/bin/sh\n#PBS -N lz\nhostname\n");
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        job.to_str().unwrap(),
    ]);
    let first = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first.contains("package `special-lz-1.0-1.fx.x86_64`")
            && first.contains("repo `fixture`")
            && first.contains(&url),
        "{err}"
    );
    assert!(err.contains("lzma"), "{err}");
}

/// A server that trickles: `[fetch] minrate`/`timeout` (dnf's) give it up after one window
/// however many bytes still arrive, for metadata and for packages; a server at an
/// acceptable rate is read to the end.
#[test]
fn slow_transfers_are_given_up_after_the_configured_window() {
    use std::sync::atomic::Ordering;
    let repo = crate::http::Server::serve(&fixture_repos().join("main"));
    let slow = "[fetch]\nminrate = 1000\ntimeout = 1\n";
    let with = |cfg: &Path, extra: &str| {
        let t = std::fs::read_to_string(cfg).unwrap();
        std::fs::write(cfg, format!("{t}{extra}")).unwrap();
    };

    // repomd.xml at 20 bytes/s (it would take over a minute): refused after the window.
    *repo.faults.target.lock().unwrap() = "repomd.xml".into();
    repo.faults.trickle.store(1, Ordering::SeqCst);
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&repo.url(""), cache.path());
    with(&cfg, slow);
    let t = std::time::Instant::now();
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        script.to_str().unwrap(),
    ]);
    assert!(t.elapsed().as_secs() < 15, "took {:?}", t.elapsed());
    assert!(
        err.contains("repomd.xml") && err.contains("too slow") && err.contains("1000 bytes/s"),
        "{err}"
    );
    assert!(err.contains("[fetch] timeout"), "no hint: {err}");

    // At 2,000 bytes/s, above the floor of 500: read to the end.
    repo.faults.trickle.store(100, Ordering::SeqCst);
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&repo.url(""), cache.path());
    with(&cfg, "[fetch]\nminrate = 500\ntimeout = 1\n");
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A package at 20 bytes/s: given up, the error names it.
    *repo.faults.target.lock().unwrap() = "libstdc++".into();
    repo.faults.trickle.store(1, Ordering::SeqCst);
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&repo.url(""), cache.path());
    with(&cfg, slow);
    let t = std::time::Instant::now();
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        script.to_str().unwrap(),
    ]);
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    assert!(
        err.contains("libstdc++") && err.contains("too slow"),
        "{err}"
    );
    let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn fetch_settings_are_checked() {
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at("file:///nonexistent", cache.path());
    let t = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{t}[fetch]\ntimeout = 0\n")).unwrap();
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        script.to_str().unwrap(),
    ]);
    assert!(err.contains("[fetch] timeout = 0"), "{err}");
}

/// Disk full: a cache on a small tmpfs (in a mount namespace of its own), at eight sizes
/// between nothing and the whole build, from `file://` and over HTTP. Every failure names a
/// cache file and says the disk is full, never blames the source; the cache passes
/// `cache verify` afterwards; with room, the same build succeeds.
#[test]
fn a_full_disk_is_the_caches_not_the_sources() {
    require("unshare", "util-linux");
    let http = crate::http::Server::serve(&fixture_repos().join("main"));
    let file = crate::repo::file_url(&fixture_repos().join("main"));
    // How much a whole build writes.
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&file, cache.path());
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "build",
        script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let du = run_ok(Command::new("du").args(["-sk"]).arg(cache.path()));
    let total_kib: u64 = stdout(&du)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ns = if rustix::process::geteuid().is_root() {
        "-m"
    } else {
        "-Urm"
    };
    for (i, percent) in [1u64, 5, 15, 30, 45, 60, 75, 90, 300]
        .into_iter()
        .enumerate()
    {
        let url = if i % 2 == 0 {
            file.clone()
        } else {
            http.url("")
        };
        let cache = tempfile::tempdir().unwrap();
        let (_d, cfg, script) = fib_job_at(&url, cache.path());
        let size = format!("{}k", (total_kib * percent / 100).max(16));
        let o = Command::new("unshare")
            .arg(ns)
            .args([
                "sh",
                "-c",
                "mount -t tmpfs -o size=$1 tmpfs \"$2\" || exit 90; shift 2; \
                 \"$@\" build \"$SCRIPT\"; echo \"build-exit=$?\" >&2; \
                 \"$@\" cache verify >&2; echo \"verify-exit=$?\" >&2",
                "sh",
                &size,
            ])
            .arg(cache.path())
            .arg(env!("CARGO_BIN_EXE_pbsimage"))
            .arg("--config")
            .arg(&cfg)
            .env("SCRIPT", &script)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(90), "cannot mount a tmpfs: {err}");
        let case = format!("{percent}% ({size}) from {url}");
        assert!(
            err.contains("verify-exit=0"),
            "{case}: the cache does not verify: {err}"
        );
        if percent > 100 {
            assert!(err.contains("build-exit=0"), "{case}: {err}");
            continue;
        }
        assert!(err.contains("build-exit=1"), "{case}: {err}");
        assert!(
            err.contains("No space left on device")
                && err.contains("hint: the disk holding that file is full")
                && err.contains(&cache.path().display().to_string()),
            "{case}: {err}"
        );
        assert!(
            !err.contains("every source failed") && !err.contains("no mirror answered"),
            "{case}: the source is blamed: {err}"
        );
    }
}
