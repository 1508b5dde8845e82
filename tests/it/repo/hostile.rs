//! Bad and hostile metadata: clear errors, nothing cached.

use super::*;
use crate::common::*;
use pbsimage::ops::Options;
use pbsimage::ops::resolve::load_repos;
use std::path::Path;

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
                let i = b.len() / 2;
                b[i] ^= 1;
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

/// Decompresses `primary.xml.gz`, edits its text, and puts it back with a matching repomd.
fn edit_primary(repo: &Path, primary: &Path, f: impl Fn(String) -> String) {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(primary).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    replace_primary(
        repo,
        primary,
        "edited-primary.xml.gz",
        &gz(f(text).as_bytes()),
    );
}

#[test]
fn percent_encoded_parent_paths_are_refused() {
    for href in [
        "%2e%2e/%2e%2e/etc/passwd",
        "Packages/%2E%2E/%2e%2e/%2e%2e/etc/passwd",
        "Packages/..%2fescape.rpm",
        "%2fetc/passwd",
        "x.rpm?%2e%2e",
    ] {
        let (repo, primary) = tampered_repo();
        edit_primary(repo.path(), &primary, |t| {
            let start = t.find("<location href=\"").unwrap() + "<location href=\"".len();
            let end = start + t[start..].find('"').unwrap();
            format!("{}{href}{}", &t[..start], &t[end..])
        });
        let cache = tempfile::tempdir().unwrap();
        let o = resolve_cli(
            &repo_config(&[("r", file_url(repo.path()))], cache.path(), ""),
            cache.path(),
        );
        assert!(!o.status.success(), "{href}");
        let err = stderr(&o);
        assert!(
            err.contains("refusing location") && err.contains(href),
            "{href}: {err}"
        );
    }
    // The same in repomd.xml's own records.
    let (repo, primary) = tampered_repo();
    let name = primary.file_name().unwrap().to_string_lossy().into_owned();
    let repomd = repo.path().join("repodata/repomd.xml");
    let text = std::fs::read_to_string(&repomd).unwrap();
    std::fs::write(
        &repomd,
        text.replace(
            &format!("repodata/{name}"),
            &format!("%2e%2e/repodata/{name}"),
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let o = resolve_cli(
        &repo_config(&[("r", file_url(repo.path()))], cache.path(), ""),
        cache.path(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refusing location"), "{}", stderr(&o));
}

#[test]
fn a_package_linked_out_of_a_file_repository_is_not_copied() {
    let (repo, _outside) = tempered_with_symlink();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        repo_config(
            &[("r", file_url(repo.path()))],
            cache.path(),
            "[base]\npackages = [\"bash\"]\n",
        ),
    )
    .unwrap();
    let job = dir.path().join("job.sh");
    std::fs::write(&job, "#!/bin/sh\n#PBS -N esc\necho hi\n").unwrap();
    let err = failing(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        job.to_str().unwrap(),
    ]);
    assert!(err.contains("outside the repository"), "{err}");
    // The sentinel never reached the cache.
    for f in walk_if_exists(cache.path()) {
        let b = std::fs::read(&f).unwrap_or_default();
        assert!(
            !b.starts_with(b"SENTINEL"),
            "{} holds the sentinel",
            f.display()
        );
    }
}

/// A copy of the fixture repository whose bash package is a symlink to a file outside it.
fn tempered_with_symlink() -> (tempfile::TempDir, tempfile::TempDir) {
    let (repo, _) = tampered_repo();
    let outside = tempfile::tempdir().unwrap();
    let sentinel = outside.path().join("secret");
    std::fs::write(&sentinel, "SENTINEL outside the repository\n").unwrap();
    let bash = find_prefixed(repo.path(), "bash-");
    std::fs::remove_file(&bash).unwrap();
    std::os::unix::fs::symlink(&sentinel, &bash).unwrap();
    (repo, outside)
}

#[test]
fn metadata_bombs_are_refused_in_bounded_memory() {
    // (case, primary.xml text, whether repomd keeps its <open-size>)
    let blanks = |n: usize| {
        let mut t = String::from(
            "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" packages=\"0\">",
        );
        t.push_str(&" ".repeat(n));
        t.push_str("</metadata>\n");
        t
    };
    let text_node = |n: usize| {
        let mut t = String::from(
            "<?xml version=\"1.0\"?>\n<metadata packages=\"1\"><package type=\"rpm\"><name>",
        );
        t.push_str(&"a".repeat(n));
        t.push_str("</name></package></metadata>\n");
        t
    };
    let cases: Vec<(&str, String, bool, &str)> = vec![
        (
            "blanks past <open-size>",
            blanks(16 << 20),
            true,
            "exceeds the limit",
        ),
        (
            "blanks, no <open-size>",
            blanks(16 << 20),
            false,
            "longer than",
        ),
        (
            "one huge text node",
            text_node(16 << 20),
            false,
            "longer than",
        ),
    ];
    for (case, text, keep_open_size, says) in cases {
        let (repo, primary) = tampered_repo();
        let body = gz(text.as_bytes());
        replace_primary(repo.path(), &primary, "bomb-primary.xml.gz", &body);
        // The record's <size> is the bomb's own: only the decompressed side is absurd.
        let p = repo.path().join("repodata/repomd.xml");
        let t = std::fs::read_to_string(&p).unwrap();
        let at = t.find("bomb-primary").unwrap();
        let (head, tail) = t.split_at(at);
        let start = tail.find("<size>").unwrap();
        let end = tail.find("</size>").unwrap();
        let fixed = format!(
            "{head}{}<size>{}{}",
            &tail[..start],
            body.len(),
            &tail[end..]
        );
        std::fs::write(&p, fixed).unwrap();
        if !keep_open_size {
            let p = repo.path().join("repodata/repomd.xml");
            let t = std::fs::read_to_string(&p).unwrap();
            let cut: String = t
                .lines()
                .filter(|l| !(l.contains("<open-size>") && t.contains("bomb-primary")))
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(&p, cut).unwrap();
        }
        let cache = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pipeline.toml");
        std::fs::write(
            &cfg,
            repo_config(&[("r", file_url(repo.path()))], cache.path(), ""),
        )
        .unwrap();
        std::fs::write(dir.path().join("job.sh"), "#!/bin/sh\necho hi\n").unwrap();
        let (o, rss) = with_peak_rss(&[
            "--config",
            cfg.to_str().unwrap(),
            "resolve",
            dir.path().join("job.sh").to_str().unwrap(),
        ]);
        assert!(!o.status.success(), "{case}");
        let err = stderr(&o);
        assert!(
            err.contains("primary") && err.contains(says),
            "{case}: {err}"
        );
        assert!(rss < 150, "{case}: peak RSS {rss} MiB");
    }
}

/// A cold resolve of a 12,000-package repository whose file lists it must read (600,000
/// paths: the job's loader path is only in filelists.xml) stays under 150 MiB peak RSS.
/// The repository is generated (scripts/gen-bench-repo): only its scale matters here.
#[test]
fn a_cold_resolve_with_file_lists_is_bounded() {
    require("/usr/lib/rpm/elfdeps", "rpm");
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    run_ok(
        std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/gen-bench-repo"
        ))
        .arg(&repo)
        .arg("12000"),
    );
    let job = work.path().join("job");
    std::fs::create_dir(&job).unwrap();
    std::fs::copy("/usr/bin/true", job.join("a.out")).unwrap();
    std::fs::write(job.join("job.sh"), "#!/bin/bash\n#PBS -B a.out\n./a.out\n").unwrap();
    let cache = work.path().join("cache");
    let cfg = work.path().join("pipeline.toml");
    std::fs::write(&cfg, repo_config(&[("bench", file_url(&repo))], &cache, "")).unwrap();
    let (o, rss) = with_peak_rss(&[
        "-v",
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        job.join("job.sh").to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("filelists fetched"),
        "file lists were not read: {err}"
    );
    assert!(rss < 150, "peak RSS {rss} MiB");
}

/// Over HTTP, percent-encoded parent paths in repomd.xml and primary.xml: refused before any
/// request leaves the repository (the server's log shows only requests under it).
#[test]
fn percent_encoded_parents_fetch_nothing_outside_over_http() {
    let outer = tempfile::tempdir().unwrap();
    let repo = outer.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    copy_dir(&fixture_repos().join("main"), &repo);
    std::fs::write(outer.path().join("secret.xml.gz"), b"not for you").unwrap();
    let server = crate::http::Server::serve(outer.path());
    let repomd = repo.join("repodata/repomd.xml");
    let text = std::fs::read_to_string(&repomd).unwrap();
    let start = text.find("<location href=\"").unwrap() + "<location href=\"".len();
    let end = start + text[start..].find('"').unwrap();
    for href in [
        "%2e%2e/%2e%2e/secret.xml.gz",
        "repodata/%2E%2E/%2e%2e/secret.xml.gz",
    ] {
        std::fs::write(&repomd, format!("{}{href}{}", &text[..start], &text[end..])).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let o = resolve_cli(
            &repo_config(&[("r", server.url("repo/"))], cache.path(), ""),
            cache.path(),
        );
        assert!(!o.status.success(), "{href}");
        assert!(
            stderr(&o).contains("refusing location"),
            "{href}: {}",
            stderr(&o)
        );
    }
    let outside: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET /repo/") || r.contains("secret"))
        .collect();
    assert!(
        outside.is_empty(),
        "requests outside the repository: {outside:?}"
    );
    assert!(!server.requests().is_empty());
}
