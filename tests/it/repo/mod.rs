//! Repository metadata and resolution against real createrepo_c repositories of real
//! rpmbuild packages, with dnf as the oracle; every bad input of the issue.
//! Split by subject: `dnf`, `load`, `hostile`, `lock`, `tls`, `vercmp`; the helpers they share are here.

mod dnf;
mod hostile;
mod load;
mod lock;
mod realdata;
mod tls;
mod vercmp;

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

pub(crate) fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

pub(crate) fn context(
    repos: &[(&str, String)],
    cache: &Path,
    extra: &str,
    options: Options,
) -> Context {
    let text = repo_config(repos, cache, extra);
    let config = Config::from_str(&text, Origin::File("test.toml".into()), Path::new(".")).unwrap();
    Context::new(config, options).unwrap()
}

pub(crate) fn needs_of(caps: &[&str], arch: Arch) -> Needs {
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
        modules: vec![],
        module_commands: vec![],
    }
}

/// pbsimage's choice: `name-version-release.arch`.
pub(crate) fn ours(ctx: &Context, needs: &Needs) -> BTreeSet<String> {
    let mut repos = load_repos(ctx, &[]).unwrap();
    resolve(ctx, &mut repos, needs)
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.hint()))
        .packages
        .into_iter()
        .map(|p| p.nevra)
        .collect()
}

/// dnf's choice for `dnf install ARGS` on a fresh root, from its transaction table.
pub(crate) fn dnf(repos: &[(&str, &Path)], args: &[&str]) -> BTreeSet<String> {
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

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&e, &dest).unwrap();
    }
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
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
pub(crate) fn tampered_repo() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixture_repos().join("main"), d.path());
    let primary = std::fs::read_dir(d.path().join("repodata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("primary.xml.gz"))
        .unwrap();
    (d, primary)
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Replaces the primary file's content and fixes its checksum in repomd.xml, so only the
/// content itself is bad.
pub(crate) fn replace_primary(repo: &Path, primary: &Path, new_name: &str, body: &[u8]) {
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
    // The record's <size> follows the new file.
    let at = repomd.find(&format!("repodata/{new_name}")).unwrap();
    let (head, tail) = repomd.split_at(at);
    let repomd = match (tail.find("<size>"), tail.find("</size>")) {
        (Some(a), Some(b)) if a < b => {
            format!("{head}{}<size>{}{}", &tail[..a], body.len(), &tail[b..])
        }
        _ => repomd.clone(),
    };
    std::fs::write(&repomd_path, repomd).unwrap();
}

pub(crate) fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub(crate) fn resolve_cli(config: &str, cache: &Path) -> std::process::Output {
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

pub(crate) fn walk_if_exists(p: &Path) -> Vec<PathBuf> {
    if p.exists() { walk(p) } else { Vec::new() }
}
