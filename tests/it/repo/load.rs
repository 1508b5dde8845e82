//! Loading repositories: compressions, transports, the index cache, mirrors, .repo files, signatures.

use super::*;
use crate::common::*;
use crate::http::Server;
use pbsimage::config::{Config, Origin};
use pbsimage::elf::Arch;
use pbsimage::ops::{Context, Options};
use std::path::Path;
use std::process::Command;

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

/// The warm path trusts an index whose size, time and inode are those its CRC was checked
/// with (it does not read 30 MB again). Damage that keeps all three (written in place, the
/// time put back) is still caught: the records do not decode, the answer is thrown away,
/// the index is built again and the resolution made again, with the right packages.
#[test]
fn a_damaged_index_with_its_old_stamp_is_rebuilt_not_believed() {
    use std::io::{Seek, SeekFrom, Write as _};
    use std::os::unix::fs::MetadataExt;
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("main", file_url(&fx.join("main")))],
        cache.path(),
        "",
        Options::default(),
    );
    let needs = needs_of(&["bash", "libstdc++.so.6()(64bit)"], Arch::X86_64);
    let want = ours(&ctx, &needs);
    let _ = ours(&ctx, &needs); // a warm run: its open checks the CRC and leaves the stamp
    let dir = cache.path().join("repo-index-v2/main");
    let idx = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .unwrap();
    let stamp = idx.with_extension("idx.stamp");
    assert!(stamp.is_file(), "a verified open leaves a stamp");
    // Overwrite the package records (third section) in place; put the time back.
    let before = std::fs::metadata(&idx).unwrap();
    let bytes = std::fs::read(&idx).unwrap();
    let len_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let meta = len_at(16);
    let offsets = len_at(24 + meta);
    let blobs_at = 32 + meta + offsets + 8;
    let blobs = len_at(32 + meta + offsets);
    let mut f = std::fs::OpenOptions::new().write(true).open(&idx).unwrap();
    f.seek(SeekFrom::Start(blobs_at as u64)).unwrap();
    f.write_all(&vec![0xff; blobs]).unwrap();
    f.set_modified(
        std::time::UNIX_EPOCH
            + std::time::Duration::new(before.mtime() as u64, before.mtime_nsec() as u32),
    )
    .unwrap();
    drop(f);
    let after = std::fs::metadata(&idx).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec(), after.ino()),
        (
            before.len(),
            before.mtime(),
            before.mtime_nsec(),
            before.ino()
        ),
        "the damage keeps the stamp"
    );
    // Trusted by its stamp, the index opens; its records give themselves away.
    let trusted = pbsimage::repo::RepoIndex::open_trusted(&idx).expect("opens on its stamp");
    assert!(!trusted.is_damaged());
    let _ = trusted.package(0);
    assert!(trusted.is_damaged());
    drop(trusted);
    assert_eq!(ours(&ctx, &needs), want, "the answer of a rebuilt index");
    assert_ne!(
        std::fs::metadata(&idx).unwrap().ino(),
        before.ino(),
        "built again"
    );
    // The index now on disk is whole again.
    assert!(pbsimage::repo::RepoIndex::open(&idx).is_some());
    // A capability table whose rows name packages past the end (stamp kept): no panic,
    // the same rebuild.
    let _ = ours(&ctx, &needs); // stamps the rebuilt index
    let before = std::fs::metadata(&idx).unwrap();
    let mut bytes = std::fs::read(&idx).unwrap();
    let len_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let mut at = 16;
    for _ in 0..3 {
        at += 8 + len_at(&bytes, at);
    }
    let table = at + 8;
    let rows = u32::from_le_bytes(bytes[table..table + 4].try_into().unwrap()) as usize;
    for r in 0..rows {
        let a = table + 4 + r * 16 + 8;
        bytes[a..a + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(&idx).unwrap();
    f.write_all(&bytes).unwrap();
    f.set_modified(
        std::time::UNIX_EPOCH
            + std::time::Duration::new(before.mtime() as u64, before.mtime_nsec() as u32),
    )
    .unwrap();
    drop(f);
    assert_eq!(
        ours(&ctx, &needs),
        want,
        "the answer of an index built again"
    );
}
