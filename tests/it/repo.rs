//! Repository metadata and resolution against real createrepo_c repositories of real
//! rpmbuild packages, with dnf as the oracle; every bad input of the issue.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use pbsimage::config::{Config, Origin};
use pbsimage::elf::{Arch, Capability};
use pbsimage::hint::Hint;
use pbsimage::needs::{Need, NeedKind, Needs};
use pbsimage::ops::resolve::{load_repos, resolve};
use pbsimage::ops::{Context, Options};

use crate::common::*;
use crate::http::Server;

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn context(repos: &[(&str, String)], cache: &Path, extra: &str, options: Options) -> Context {
    let text = repo_config(repos, cache, extra);
    let config = Config::from_str(&text, Origin::File("test.toml".into()), Path::new(".")).unwrap();
    Context::new(config, options).unwrap()
}

fn needs_of(caps: &[&str], arch: Arch) -> Needs {
    Needs {
        arch,
        kube_arch: arch.kube_name(),
        package_arches: arch.package_arches().to_vec(),
        static_binary: false,
        needs: caps
            .iter()
            .map(|c| Need {
                kind: if c.starts_with('/') {
                    NeedKind::File(vec![c.to_string()])
                } else {
                    NeedKind::Capability(Capability::new(c).unwrap())
                },
                origins: vec!["test: need".into()],
                optional: false,
            })
            .collect(),
        bundled: vec![],
        host_provided: vec![],
        notes: vec![],
    }
}

/// pbsimage's choice: `name-version-release.arch`.
fn ours(ctx: &Context, needs: &Needs) -> BTreeSet<String> {
    let mut repos = load_repos(ctx, &[]).unwrap();
    resolve(ctx, &mut repos, needs)
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.hint()))
        .packages
        .into_iter()
        .map(|p| p.nevra)
        .collect()
}

/// dnf's choice for `dnf install ARGS` on a fresh root, from its transaction table.
fn dnf(repos: &[(&str, &Path)], args: &[&str]) -> BTreeSet<String> {
    require("dnf", "dnf");
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("dnf");
    cmd.arg(format!("--installroot={}", root.path().display()))
        .args([
            "--setopt=reposdir=/nonexistent",
            "--setopt=install_weak_deps=False",
            "--releasever=9",
            "--forcearch=x86_64",
            "--nogpgcheck",
            "--assumeno",
            "--disableplugin=*",
        ])
        .arg(format!("--setopt=cachedir={}/cache", root.path().display()));
    for (id, p) in repos {
        cmd.arg(format!("--repofrompath={id},{}", file_url(p)))
            .arg(format!("--repo={id}"));
    }
    cmd.arg("install").args(args);
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut set = BTreeSet::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("Installing") {
            in_table = true;
            continue;
        }
        if line.starts_with("Transaction Summary") {
            break;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if in_table && line.starts_with(' ') && cols.len() >= 5 {
            set.insert(format!("{}-{}.{}", cols[0], cols[2], cols[1]));
        }
    }
    assert!(!set.is_empty(), "dnf chose nothing:\n{text}");
    set
}

#[test]
fn resolution_matches_dnf_on_fixture_cases() {
    let fx = fixture_repos();
    let main = fx.join("main");
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("main", file_url(&main))],
        cache.path(),
        "",
        Options::default(),
    );
    for (caps, arch) in [
        (vec!["app-rich"], Arch::X86_64),
        (vec!["oldtool"], Arch::X86_64),
        (vec!["blas-user"], Arch::X86_64),
        (vec!["plugin-user"], Arch::X86_64),
        (vec!["libfoo.so.1()(64bit)"], Arch::X86_64),
        (
            vec!["libgfortran.so.5()(64bit)", "libgomp.so.1()(64bit)"],
            Arch::X86_64,
        ),
        (vec!["libc.so.6", "libc.so.6(GLIBC_2.34)"], Arch::I686),
        (
            vec![
                "filesystem",
                "setup",
                "glibc",
                "bash",
                "coreutils",
                "libstdc++.so.6()(64bit)",
            ],
            Arch::X86_64,
        ),
    ] {
        let got = ours(&ctx, &needs_of(&caps, arch));
        let want = dnf(&[("main", &main)], &caps);
        assert_eq!(got, want, "needs {caps:?}");
    }
}

#[test]
fn soname_versions_come_from_one_package_and_old_glibc_is_explained() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("old", file_url(&fx.join("old")))],
        cache.path(),
        "",
        Options::default(),
    );
    let mut repos = load_repos(&ctx, &[]).unwrap();
    let needs = needs_of(
        &[
            "libc.so.6()(64bit)",
            "libc.so.6(GLIBC_2.17)(64bit)",
            "libc.so.6(GLIBC_2.34)(64bit)",
        ],
        Arch::X86_64,
    );
    let err = resolve(&ctx, &mut repos, &needs).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("test needs GLIBC_2.34 from libc.so.6 but the newest glibc in repos old provides up to GLIBC_2.17 (glibc-2.17-326.el7.x86_64)"),
        "{msg}"
    );
    // Unresolvable: named, with the nearest candidates as a hint.
    let needs = needs_of(&["libfoo.so.3()(64bit)"], Arch::X86_64);
    let ctx = context(
        &[("main", file_url(&fx.join("main")))],
        cache.path(),
        "",
        Options::default(),
    );
    let mut repos = load_repos(&ctx, &[]).unwrap();
    let err = resolve(&ctx, &mut repos, &needs).unwrap_err();
    assert!(
        err.to_string().contains(
            "`libfoo.so.3()(64bit)` is needed by test; no package in repos main provides it"
        ),
        "{err}"
    );
    let hint = err.hint().unwrap();
    assert!(
        hint.contains("libfoo.so.1 in libfoo-1.2") && hint.contains("libfoo.so.2 in libfoo-2.0"),
        "{hint}"
    );
}

#[test]
fn every_compression_and_transport_gives_the_same_answer() {
    let fx = fixture_repos();
    let needs = needs_of(
        &[
            "bash",
            "libstdc++.so.6()(64bit)",
            "/usr/lib64/ld-linux-x86-64.so.2",
            "app-rich",
        ],
        Arch::X86_64,
    );
    let server = Server::serve(fx);
    let mut answers = Vec::new();
    for url in [
        file_url(&fx.join("main")),
        file_url(&fx.join("main-xz")),
        file_url(&fx.join("main-bz2")),
        file_url(&fx.join("main-zst")),
        server.url("main"),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let ctx = context(
            &[("main", url.clone())],
            cache.path(),
            "",
            Options::default(),
        );
        answers.push((url, ours(&ctx, &needs)));
    }
    for (url, a) in &answers[1..] {
        assert_eq!(a, &answers[0].1, "{url}");
    }
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.contains("primary.xml.gz"))
    );
}

#[test]
fn warm_runs_read_only_repomd_and_the_cached_index() {
    let fx = fixture_repos();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fx.join("main"), copy.path());
    let server = Server::serve(copy.path());
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("main", server.url(""))],
        cache.path(),
        "",
        Options::default(),
    );
    let needs = needs_of(&["bash", "/usr/lib64/ld-linux-x86-64.so.2"], Arch::X86_64);
    let first = ours(&ctx, &needs);
    let cold = server.requests().len();
    assert!(cold >= 3, "{:?}", server.requests());
    let second = ours(&ctx, &needs);
    assert_eq!(first, second);
    let warm: Vec<String> = server.requests()[cold..].to_vec();
    assert_eq!(
        warm,
        ["GET /repodata/repomd.xml"],
        "warm run fetched more than repomd.xml"
    );
    // --offline needs no network at all.
    drop(server);
    let ctx = context(
        &[("main", "http://127.0.0.1:9/".into())],
        cache.path(),
        "",
        Options {
            offline: true,
            ..Options::default()
        },
    );
    assert_eq!(ours(&ctx, &needs), first);
}

#[test]
fn modules_follow_default_and_enabled_streams() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let url = file_url(&fx.join("modular"));
    let node = needs_of(&["nodejs"], Arch::X86_64);
    let ctx = context(
        &[("modular", url.clone())],
        cache.path(),
        "",
        Options::default(),
    );
    assert_eq!(
        ours(&ctx, &node),
        BTreeSet::from(["nodejs-18.19.0-1.module+fx.18.x86_64".to_string()])
    );
    let ctx = context(
        &[],
        cache.path(),
        &format!("[[repo]]\nid = \"modular\"\nbaseurl = \"{url}\"\nmodules = [\"nodejs:20\"]\n"),
        Options::default(),
    );
    assert_eq!(
        ours(&ctx, &node),
        BTreeSet::from(["nodejs-20.10.0-1.module+fx.20.x86_64".to_string()])
    );
}

#[test]
fn priorities_pick_the_preferred_repository() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    // Same packages in two repos: the lower priority number wins, then config order.
    let extra = format!(
        "[[repo]]\nid = \"second\"\nbaseurl = \"{}\"\npriority = 5\n[[repo]]\nid = \"first\"\nbaseurl = \"{}\"\npriority = 50\n",
        file_url(&fx.join("main-xz")),
        file_url(&fx.join("main"))
    );
    let ctx = context(&[], cache.path(), &extra, Options::default());
    let mut repos = load_repos(&ctx, &[]).unwrap();
    let res = resolve(&ctx, &mut repos, &needs_of(&["bash"], Arch::X86_64)).unwrap();
    assert!(
        res.packages.iter().all(|p| p.repo == "second"),
        "{:?}",
        res.packages
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&e, &dest).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A writable copy of the gzip fixture repo, and the path of its primary.xml.gz.
fn tampered_repo() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixture_repos().join("main"), d.path());
    let primary = std::fs::read_dir(d.path().join("repodata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("primary.xml.gz"))
        .unwrap();
    (d, primary)
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Replaces the primary file's content and fixes its checksum in repomd.xml, so only the
/// content itself is bad.
fn replace_primary(repo: &Path, primary: &Path, new_name: &str, body: &[u8]) {
    let repomd_path = repo.join("repodata/repomd.xml");
    let repomd = std::fs::read_to_string(&repomd_path).unwrap();
    let old = std::fs::read(primary).unwrap();
    let old_name = format!(
        "repodata/{}",
        primary.file_name().unwrap().to_string_lossy()
    );
    std::fs::remove_file(primary).unwrap();
    std::fs::write(repo.join("repodata").join(new_name), body).unwrap();
    let repomd = repomd
        .replace(&old_name, &format!("repodata/{new_name}"))
        .replace(&sha256_hex(&old), &sha256_hex(body));
    std::fs::write(&repomd_path, repomd).unwrap();
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn resolve_cli(config: &str, cache: &Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, config).unwrap();
    std::fs::write(dir.path().join("job.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        dir.path().join("job.sh").to_str().unwrap(),
    ]);
    // Nothing half-written in the cache after a failure.
    let idx = walk_if_exists(cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .count();
    if !o.status.success() {
        assert_eq!(idx, 0, "a failed load left an index in the cache");
    }
    o
}

fn walk_if_exists(p: &Path) -> Vec<PathBuf> {
    if p.exists() { walk(p) } else { Vec::new() }
}

#[test]
fn bad_metadata_is_a_clear_error_and_nothing_is_cached() {
    type Tamper = Box<dyn Fn(&Path, &Path)>;
    let edit_repomd = |f: fn(String) -> String| -> Tamper {
        Box::new(move |repo: &Path, _| {
            let p = repo.join("repodata/repomd.xml");
            std::fs::write(&p, f(std::fs::read_to_string(&p).unwrap())).unwrap();
        })
    };
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "missing repomd",
            Box::new(|repo: &Path, _: &Path| {
                std::fs::remove_file(repo.join("repodata/repomd.xml")).unwrap()
            }),
            "no mirror answered",
        ),
        (
            "missing primary",
            Box::new(|_: &Path, p: &Path| std::fs::remove_file(p).unwrap()),
            "primary.xml.gz",
        ),
        (
            "checksum mismatch",
            Box::new(|_: &Path, p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                b.push(0);
                std::fs::write(p, b).unwrap();
            }),
            "checksum mismatch",
        ),
        (
            "dotdot href",
            edit_repomd(|s| s.replacen("href=\"repodata/", "href=\"../repodata/", 1)),
            "contains `..`",
        ),
        (
            "absolute href",
            edit_repomd(|s| s.replacen("href=\"repodata/", "href=\"/etc/repodata/", 1)),
            "is an absolute path",
        ),
        (
            "other host",
            edit_repomd(|s| {
                s.replacen(
                    "href=\"repodata/",
                    "href=\"http://evil.example/repodata/",
                    1,
                )
            }),
            "names another host",
        ),
        (
            "foreign xml:base",
            edit_repomd(|s| {
                s.replacen(
                    "<location href=",
                    "<location xml:base=\"http://evil.example/\" href=",
                    1,
                )
            }),
            "is not a configured mirror",
        ),
        (
            "unknown checksum type",
            edit_repomd(|s| s.replacen("<checksum type=\"sha256\">", "<checksum type=\"md5\">", 1)),
            "unknown checksum type `md5`",
        ),
        (
            "repomd doctype",
            edit_repomd(|s| {
                s.replacen(
                    "<repomd",
                    "<!DOCTYPE repomd [<!ENTITY x \"y\">]>\n<repomd",
                    1,
                )
            }),
            "DOCTYPE",
        ),
        (
            "truncated gzip",
            Box::new(|repo: &Path, p: &Path| {
                let b = std::fs::read(p).unwrap();
                replace_primary(repo, p, "cut-primary.xml.gz", &b[..b.len() / 2]);
            }),
            "primary",
        ),
        (
            "doctype in primary",
            Box::new(|repo: &Path, p: &Path| {
                replace_primary(repo, p, "dt-primary.xml.gz", &gz(b"<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY lol \"lol\">]><metadata>&lol;</metadata>"));
            }),
            "DOCTYPE",
        ),
        (
            "malformed primary",
            Box::new(|repo: &Path, p: &Path| {
                replace_primary(
                    repo,
                    p,
                    "bad-primary.xml.gz",
                    &gz(b"<metadata><package type=\"rpm\"><name>x</metadata>"),
                );
            }),
            "malformed XML",
        ),
        (
            "wrong magic",
            Box::new(|repo: &Path, p: &Path| {
                replace_primary(repo, p, "plain-primary.xml.gz", b"<metadata/>");
            }),
            "should be gzip by its name but its content is uncompressed",
        ),
    ];
    for (name, tamper, want) in cases {
        let (repo, primary) = tampered_repo();
        tamper(repo.path(), &primary);
        let cache = tempfile::tempdir().unwrap();
        let o = resolve_cli(
            &repo_config(&[("t", file_url(repo.path()))], cache.path(), ""),
            cache.path(),
        );
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        assert!(e.contains(want), "{name}: {e}");
        assert!(
            e.contains("repo `t`") || e.contains("`t`"),
            "{name} names the repo: {e}"
        );
        assert!(!e.contains("panicked"), "{name}: {e}");
    }
}

#[test]
fn truncated_xz_and_zstd_and_bombs() {
    for (variant, ext) in [("main-xz", "xz"), ("main-zst", "zst")] {
        let d = tempfile::tempdir().unwrap();
        copy_dir(&fixture_repos().join(variant), d.path());
        let primary = std::fs::read_dir(d.path().join("repodata"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!("primary.xml.{ext}")))
            .unwrap();
        let b = std::fs::read(&primary).unwrap();
        replace_primary(
            d.path(),
            &primary,
            &format!("cut-primary.xml.{ext}"),
            &b[..b.len() / 2],
        );
        let cache = tempfile::tempdir().unwrap();
        let o = resolve_cli(
            &repo_config(&[("t", file_url(d.path()))], cache.path(), ""),
            cache.path(),
        );
        assert_eq!(o.status.code(), Some(1), "{variant}: {}", stderr(&o));
    }
    // A decompression bomb: 64 MiB of blanks in 64 KiB of gzip, against a 1 MiB cap.
    let (repo, primary) = tampered_repo();
    let mut body = b"<?xml version=\"1.0\"?><metadata>".to_vec();
    body.extend(std::iter::repeat_n(b' ', 64 << 20));
    body.extend_from_slice(b"</metadata>");
    replace_primary(repo.path(), &primary, "bomb-primary.xml.gz", &gz(&body));
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("t", file_url(repo.path()))],
        cache.path(),
        "",
        Options {
            max_metadata_bytes: 1 << 20,
            ..Options::default()
        },
    );
    let err = load_repos(&ctx, &[]).unwrap_err().to_string();
    assert!(err.contains("exceeds the limit of 1048576 bytes"), "{err}");
}

#[test]
fn mirrors_fall_through_and_report_every_failure() {
    let fx = fixture_repos();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}/")
    };
    let cache = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[repo]]\nid = \"m\"\nbaseurl = [\"{dead}\", \"{}\"]\n",
        file_url(&fx.join("main"))
    );
    let ctx = context(&[], cache.path(), &extra, Options::default());
    assert!(
        ours(&ctx, &needs_of(&["bash"], Arch::X86_64))
            .iter()
            .any(|p| p.starts_with("bash-"))
    );
    // A mirrorlist file: one dead mirror, then a live one.
    let ml = cache.path().join("mirrors.txt");
    std::fs::write(
        &ml,
        format!("# mirrors\n{dead}\n{}\n", file_url(&fx.join("main"))),
    )
    .unwrap();
    let extra = format!(
        "[[repo]]\nid = \"ml\"\nmirrorlist = \"{}\"\n",
        file_url(&ml)
    );
    let ctx = context(&[], cache.path(), &extra, Options::default());
    assert!(!ours(&ctx, &needs_of(&["bash"], Arch::X86_64)).is_empty());
    // All mirrors dead: each is reported.
    let cache = tempfile::tempdir().unwrap();
    let extra =
        format!("[[repo]]\nid = \"m\"\nbaseurl = [\"{dead}\", \"file:///nonexistent/repo\"]\n");
    let o = resolve_cli(&repo_config(&[], cache.path(), &extra), cache.path());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("no mirror answered") && e.contains(&dead) && e.contains("/nonexistent/repo"),
        "{e}"
    );
}

#[test]
fn lock_file_records_revisions_and_detects_drift() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        repo_config(
            &[("main", file_url(&fx.join("main")))],
            cache.path(),
            "[base]\npackages = [\"bash\"]\n",
        ),
    )
    .unwrap();
    let job = dir.path().join("job.sh");
    std::fs::write(&job, "#!/bin/bash\n#PBS -N locked\npython3 run.py\n").unwrap();
    let lock = dir.path().join("pbsimage.lock");
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        "--explain",
        "--lock",
        lock.to_str().unwrap(),
        job.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("python3-3.9.18-1.fx.x86_64"), "{out}");
    assert!(
        out.contains("why: python3-3.9.18-1.fx ← command `python3` ← job.sh line 3"),
        "{out}"
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    let l: pbsimage::resolve::lock::Lock =
        toml::from_str(text.trim_start_matches(|c| c != '\n')).unwrap();
    assert_eq!(l.repos[0].id, "main");
    assert!(
        l.packages
            .iter()
            .any(|p| p.nevra.starts_with("bash-") && p.base)
    );
    assert!(l.drift(&l).is_empty());
    let mut other = l.clone();
    other.repos[0].repomd_sha256 = "f".repeat(64);
    other.packages.pop();
    assert_eq!(l.drift(&other).len(), 2);
}

#[test]
fn repo_files_from_a_directory() {
    let fx = fixture_repos();
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("yum.repos.d")).unwrap();
    std::fs::write(
        d.path().join("yum.repos.d/fx.repo"),
        format!("[fx]\nname=Fixture $basearch\nbaseurl={}/../main-$basearch-alias\n  {}\nenabled=1\ngpgcheck=0\npriority=7\n\n[off]\nbaseurl=file:///nowhere\nenabled=0\n", file_url(fx), file_url(&fx.join("main"))),
    )
    .unwrap();
    let text =
        "repos-from = \"yum.repos.d\"\n[vars]\nbasearch = \"x86_64\"\n[cache]\ndir = \"cache\"\n";
    let config = Config::from_str(text, Origin::File(d.path().join("p.toml")), d.path()).unwrap();
    let sources = pbsimage::repo::sources(&config).unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].id, "fx");
    assert_eq!(sources[0].priority, 7);
    assert_eq!(
        sources[0].baseurls[0],
        format!("{}/../main-x86_64-alias", file_url(fx))
    );
    // The first baseurl does not exist: the second answers.
    let cache = tempfile::tempdir().unwrap();
    let ctx = Context::new(
        Config::from_str(
            &format!(
                "repos-from = \"{}\"\n[vars]\nbasearch = \"x86_64\"\n[cache]\ndir = \"{}\"\n",
                d.path().join("yum.repos.d").display(),
                cache.path().display()
            ),
            Origin::File("p.toml".into()),
            Path::new("."),
        )
        .unwrap(),
        Options::default(),
    )
    .unwrap();
    assert!(!ours(&ctx, &needs_of(&["bash"], Arch::X86_64)).is_empty());
    // An unknown variable names file and line.
    std::fs::write(
        d.path().join("yum.repos.d/bad.repo"),
        "[bad]\nbaseurl=http://x/$releasever/\n",
    )
    .unwrap();
    let err = pbsimage::repo::sources(&config).unwrap_err().to_string();
    assert!(
        err.contains("bad.repo:1: repo `bad`: unknown variable `$releasever`"),
        "{err}"
    );
}

#[test]
fn signed_repomd_is_verified() {
    require("gpg", "gnupg");
    let (repo, _) = tampered_repo();
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str]| {
        run_ok(
            Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args([
                    "--batch",
                    "--quiet",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args),
        )
    };
    gpg(&[
        "--quick-generate-key",
        "pbsimage test <test@example.org>",
        "ed25519",
        "sign",
        "never",
    ]);
    let key = repo.path().join("KEY.asc");
    let o = gpg(&["--armor", "--export", "test@example.org"]);
    std::fs::write(&key, &o.stdout).unwrap();
    gpg(&[
        "--armor",
        "--detach-sign",
        "--output",
        repo.path()
            .join("repodata/repomd.xml.asc")
            .to_str()
            .unwrap(),
        repo.path().join("repodata/repomd.xml").to_str().unwrap(),
    ]);
    let cfg = |cache: &Path| {
        repo_config(
            &[],
            cache,
            &format!(
                "[[repo]]\nid = \"s\"\nbaseurl = \"{}\"\ngpgcheck = true\ngpgkey = \"{}\"\n",
                file_url(repo.path()),
                file_url(&key)
            ),
        )
    };
    let cache = tempfile::tempdir().unwrap();
    let o = resolve_cli(&cfg(cache.path()), cache.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // Tamper with repomd.xml after signing.
    let p = repo.path().join("repodata/repomd.xml");
    let s = std::fs::read_to_string(&p)
        .unwrap()
        .replace("<revision>", "<revision>1");
    std::fs::write(&p, s).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let o = resolve_cli(&cfg(cache.path()), cache.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("signature check of repomd.xml failed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn rpmvercmp_agrees_with_rpm() {
    require("rpm", "rpm");
    // Deterministic pseudo-random versions over the characters that matter.
    // No `-` or `:`: rpm.vercmp parses its arguments as EVRs, so those would split them.
    let alphabet: Vec<char> = "0123456789abcz.~^_+".chars().collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut pairs = Vec::new();
    for _ in 0..2000 {
        let v = |next: &mut dyn FnMut() -> u64| -> String {
            let n = 1 + (next() % 8) as usize;
            (0..n)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        };
        let a = v(&mut next);
        let b = if next() % 4 == 0 {
            a.clone()
        } else {
            v(&mut next)
        };
        pairs.push((a, b));
    }
    // rpm's lua print() does not separate outputs: collect, then print once.
    let mut lua = String::from("%{lua: local t = {} ");
    for (a, b) in &pairs {
        lua.push_str(&format!("t[#t+1] = rpm.vercmp([[{a}]], [[{b}]]) "));
    }
    lua.push_str("print(table.concat(t, ' ')) }");
    let o = run_ok(Command::new("rpm").arg("--eval").arg(&lua));
    let results: Vec<i32> = String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(results.len(), pairs.len());
    for ((a, b), want) in pairs.iter().zip(results) {
        let got = match pbsimage::repo::evr::rpmvercmp(a, b) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        };
        assert_eq!(got, want, "rpmvercmp({a:?}, {b:?})");
    }
}

/// The committed pipeline.toml, unchanged, resolves the paper's C++ job once
/// `scripts/fixture-repos fixtures/repo` has run (what `scripts/demo` does).
#[test]
fn committed_config_resolves_the_paper_job() {
    let fx = fixture_repos();
    let d = tempfile::tempdir().unwrap();
    std::fs::copy("pipeline.toml", d.path().join("pipeline.toml")).unwrap();
    std::fs::create_dir_all(d.path().join("fixtures/repo")).unwrap();
    std::os::unix::fs::symlink(fx.join("main"), d.path().join("fixtures/repo/main")).unwrap();
    let job = d.path().join("job");
    std::fs::create_dir(&job).unwrap();
    for f in ["job.sh", "fib.cpp"] {
        std::fs::copy(
            Path::new("fixtures/jobs/paper-listing3-fib").join(f),
            job.join(f),
        )
        .unwrap();
    }
    require("g++", "g++");
    run_ok(
        Command::new("g++")
            .args(["-O2", "-o", "a.out", "fib.cpp"])
            .current_dir(&job),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args(["resolve", "--json", "job/job.sh"])
        .current_dir(d.path())
        .env_remove("PBSIMAGE_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: BTreeSet<&str> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "bash",
            "coreutils",
            "filesystem",
            "glibc",
            "libgcc",
            "libstdc++",
            "ncurses-libs",
            "setup"
        ])
    );
    assert!(
        d.path().join("cache/repo-index-v1/fixture").is_dir(),
        "cache/ beside pipeline.toml"
    );
}

/// A CA and a certificate for 127.0.0.1, made with openssl.
fn tls_material(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require("openssl", "openssl");
    let (ca_key, ca, key, csr, cert, ext) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
        dir.join("ext.cnf"),
    );
    let ssl = |args: &[&str]| run_ok(Command::new("openssl").args(args).current_dir(dir));
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca.to_str().unwrap(),
        "-days",
        "2",
        "-subj",
        "/CN=pbsimage test CA",
    ]);
    ssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
    ]);
    (ca, cert, key)
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_with_a_ca_bundle() {
    let fx = fixture_repos();
    let tls = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_material(tls.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // openssl's own web server (-WWW) serves the repository over TLS.
    let _server = Killed(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
            ])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(fx.join("main"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("https://127.0.0.1:{port}/");
    let needs = needs_of(&["bash"], Arch::X86_64);
    // With the CA bundle: works.
    let cache = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[repo]]\nid = \"tls\"\nbaseurl = \"{url}\"\nsslcacert = \"{}\"\n",
        ca.display()
    );
    let ctx = context(&[], cache.path(), &extra, Options::default());
    assert!(ours(&ctx, &needs).iter().any(|p| p.starts_with("bash-")));
    // Without it: the certificate is refused, and the error says so.
    let cache = tempfile::tempdir().unwrap();
    let o = resolve_cli(
        &repo_config(&[("tls", url.clone())], cache.path(), ""),
        cache.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // sslverify = false: accepted, with a warning.
    let cache = tempfile::tempdir().unwrap();
    let extra = format!("[[repo]]\nid = \"tls\"\nbaseurl = \"{url}\"\nsslverify = false\n");
    let o = resolve_cli(&repo_config(&[], cache.path(), &extra), cache.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("sslverify = false"), "{}", stderr(&o));
}
