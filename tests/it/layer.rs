//! Layers against `rpm2cpio | cpio`: the same tree, modes, links, hard links, contents;
//! owners from the setup package; reproducible bytes; attacks refused.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pbsimage::config::Compression;
use pbsimage::layer::{Layer, LayerOptions, LayerWriter, through_dir_links};
use pbsimage::rpm::RpmReader;

use crate::common::*;

fn rpm_path(name_prefix: &str) -> PathBuf {
    find_prefixed(&fixture_repos().join("main"), name_prefix)
}

fn options(compression: Compression) -> LayerOptions {
    let mut setup = RpmReader::open(&rpm_path("setup-")).unwrap();
    let (users, groups) = pbsimage::layer::owners_from_setup(&mut setup).unwrap();
    LayerOptions {
        epoch: 315_532_800,
        clamp_mtime: None,
        setup: None,
        compression,
        users,
        groups,
        dir_links: BTreeMap::from([("lib64".into(), "usr/lib64".into())]),
    }
}

fn write_layer(rpms: &[PathBuf], opts: LayerOptions, out: &Path) -> Layer {
    let f = std::fs::File::create(out).unwrap();
    let mut w = LayerWriter::new(f, opts).unwrap();
    for r in rpms {
        let mut rd = RpmReader::open(r).unwrap();
        w.add_package(&mut rd, &BTreeSet::new()).unwrap();
    }
    w.finish().unwrap().1
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(String),
    Dev(u32, u64),
}

/// path → node, and the sets of paths sharing an inode.
fn snapshot(root: &Path) -> (BTreeMap<String, Node>, BTreeSet<BTreeSet<String>>) {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    fn walk(
        root: &Path,
        dir: &Path,
        nodes: &mut BTreeMap<String, Node>,
        inodes: &mut BTreeMap<u64, BTreeSet<String>>,
    ) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let perm = m.permissions().mode() & 0o7777;
            let ft = m.file_type();
            if ft.is_symlink() {
                nodes.insert(
                    rel,
                    Node::Link(
                        std::fs::read_link(&p)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    ),
                );
            } else if ft.is_dir() {
                nodes.insert(rel, Node::Dir(perm));
                walk(root, &p, nodes, inodes);
            } else if ft.is_char_device() || ft.is_block_device() {
                nodes.insert(rel, Node::Dev(perm, m.rdev()));
            } else {
                inodes.entry(m.ino()).or_default().insert(rel.clone());
                nodes.insert(rel, Node::File(perm, std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(root, root, &mut nodes, &mut inodes);
    let links = inodes.into_values().filter(|s| s.len() > 1).collect();
    (nodes, links)
}

#[test]
fn layers_match_rpm2cpio_for_every_payload_compression() {
    require("rpm2cpio", "rpm");
    require("cpio", "cpio");
    // "none": an uncompressed payload (rpmbuild w.ufdio, as rpm's own hlinktest).
    for comp in ["gz", "xz", "zst", "bz2", "none"] {
        let rpm = rpm_path(&format!("special-{comp}-"));
        let d = tempfile::tempdir().unwrap();
        let blob = d.path().join("layer");
        let layer = write_layer(
            std::slice::from_ref(&rpm),
            options(Compression::Gzip),
            &blob,
        );
        assert!(
            layer.digest.to_string().starts_with("sha256:")
                && layer.diff_id.to_string().starts_with("sha256:")
        );
        // The digest is of the blob, the diff_id of the uncompressed tar.
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(layer.size, bytes.len() as u64);
        assert_eq!(layer.digest.to_string(), format!("sha256:{}", sha(&bytes)));
        let mut tar_bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
            &mut tar_bytes,
        )
        .unwrap();
        assert_eq!(
            layer.diff_id.to_string(),
            format!("sha256:{}", sha(&tar_bytes))
        );

        let (a, b) = (d.path().join("layer-root"), d.path().join("cpio-root"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        run_ok(
            Command::new("tar")
                .args(["-xzf"])
                .arg(&blob)
                .args([
                    "--same-owner",
                    "--numeric-owner",
                    "-p",
                    "--xattrs",
                    "--xattrs-include=*",
                    "-C",
                ])
                .arg(&a),
        );
        run_ok(Command::new("sh").arg("-c").arg(format!(
            "rpm2cpio '{}' | (cd '{}' && cpio -idm --quiet)",
            rpm.display(),
            b.display()
        )));
        let (la, links_a) = snapshot(&a);
        let (lb, links_b) = snapshot(&b);
        // cpio extracts /lib64 as a directory; the layer writes through the layout's link.
        let map = BTreeMap::from([("lib64".to_string(), "usr/lib64".to_string())]);
        let lb: BTreeMap<String, Node> = lb
            .into_iter()
            .filter(|(k, _)| k != "lib64")
            .map(|(k, v)| (through_dir_links(&k, &map), v))
            .collect();
        let la: BTreeMap<String, Node> = la.into_iter().filter(|(k, _)| k != "lib64").collect();
        // Every node cpio extracts is in the layer, the same, and nothing else is; parent
        // directories the package does not own are created by cpio with default modes and
        // are not layer entries.
        for (k, v) in &lb {
            if matches!(v, Node::Dir(_)) && !la.contains_key(k) {
                continue;
            }
            assert_eq!(la.get(k), Some(v), "{comp}: {k}");
        }
        for k in la.keys() {
            assert!(
                lb.contains_key(k),
                "{comp}: layer has {k} that cpio does not"
            );
        }
        assert_eq!(links_a, links_b, "{comp}: hard-link sets");
        assert!(
            links_a
                .iter()
                .any(|s| s.contains("usr/bin/hl-a") && s.contains("usr/bin/hl-b"))
        );
        // %ghost is not in the layer; the setuid bit is; owners come from setup (daemon=2).
        assert!(!a.join("var/log/special.log").exists());
        assert_eq!(
            std::fs::metadata(a.join("usr/bin/setuid-tool"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o4755
        );
        let dm = std::fs::metadata(a.join("var/lib/special")).unwrap();
        assert_eq!(
            (dm.uid(), dm.gid()),
            (2, 2),
            "{comp}: owner from setup's passwd"
        );
        // %caps became the security.capability xattr.
        require("getcap", "libcap2-bin");
        let o = run_ok(Command::new("getcap").arg(a.join("usr/bin/pinger")));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("cap_net_raw=ep"),
            "{comp}: {:?}",
            o
        );
    }
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn layers_are_reproducible_and_independent_of_umask_and_tz() {
    let rpms = vec![
        rpm_path("special-xz-"),
        rpm_path("bash-"),
        rpm_path("filesystem-"),
    ];
    let d = tempfile::tempdir().unwrap();
    let a = write_layer(&rpms, options(Compression::Gzip), &d.path().join("a"));
    let b = write_layer(&rpms, options(Compression::Gzip), &d.path().join("b"));
    assert_eq!(a, b);
    let z1 = write_layer(&rpms, options(Compression::Zstd), &d.path().join("z1"));
    let z2 = write_layer(&rpms, options(Compression::Zstd), &d.path().join("z2"));
    assert_eq!(z1, z2);
    assert_eq!(
        z1.diff_id, a.diff_id,
        "the tar is the same whatever the compression"
    );
    assert_ne!(z1.digest, a.digest);
}

fn layers_json(cfg: &Path, script: &Path) -> serde_json::Value {
    let o = pbsimage(&[
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        "--json",
        script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every layer but the job's came from the cache.
fn package_layers_cached(v: &serde_json::Value) -> bool {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["label"] != "job")
        .all(|l| l["cached"] == true)
}

fn digests(v: &serde_json::Value) -> Vec<String> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_paper_job_runs_in_a_root_unpacked_from_its_layers() {
    assert!(
        rustix::process::getuid().is_root(),
        "this test runs the job with chroot, which needs root (CI runs as root)"
    );
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    let v = layers_json(&cfg, &script);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.first().unwrap()["label"], "base");
    assert_eq!(layers.last().unwrap()["label"], "job");
    let root = tempfile::tempdir().unwrap();
    for l in layers {
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(l["path"].as_str().unwrap())
                .args(["--numeric-owner", "-p", "-C"])
                .arg(root.path()),
        );
    }
    assert_eq!(run_job_in(root.path()), "0 1 1 2 3 5\n");
    // A second build finds every package layer in the cache and gives the same digests.
    let again = layers_json(&cfg, &script);
    assert_eq!(digests(&again), digests(&v));
    assert!(package_layers_cached(&again), "{again}");
    let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_tampered_package_is_refused_before_it_lands() {
    let repo = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture_repos().join("main")).unwrap() {
        let p = e.unwrap().path();
        let dest = repo.path().join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, dest.join(f.file_name().unwrap())).unwrap();
            }
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
    let victim = find_prefixed(repo.path(), "libstdc++-");
    let mut b = std::fs::read(&victim).unwrap();
    let n = b.len();
    b[n - 10] ^= 0xff;
    std::fs::write(&victim, b).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(repo.path(), cache.path());
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        script.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("checksum mismatch for `libstdc++-") && e.contains("hint:"),
        "{e}"
    );
    let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "verify"]);
    assert!(o.status.success(), "a bad download landed: {}", stdout(&o));
}

#[test]
fn concurrent_builds_share_one_cache() {
    let repo = fixture_repos().join("main");
    let shared = tempfile::tempdir().unwrap();
    let alone = tempfile::tempdir().unwrap();
    let (_d1, cfg_alone, script) = fib_job(&repo, alone.path());
    let want = digests(&layers_json(&cfg_alone, &script));
    let (_d2, cfg, script) = fib_job(&repo, shared.path());
    let children: Vec<std::process::Child> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_pbsimage"))
                .args([
                    "-q",
                    "--config",
                    cfg.to_str().unwrap(),
                    "layers",
                    "--json",
                    script.to_str().unwrap(),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(digests(&v), want);
    }
    let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_killed_build_leaves_no_partial_entry() {
    let repo = fixture_repos().join("main");
    let reference = tempfile::tempdir().unwrap();
    let (_d0, cfg0, script0) = fib_job(&repo, reference.path());
    let want = digests(&layers_json(&cfg0, &script0));
    for delay_ms in [30u64, 120, 250, 400] {
        let cache = tempfile::tempdir().unwrap();
        let (_d, cfg, script) = fib_job(&repo, cache.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbsimage"))
            .args([
                "-q",
                "--config",
                cfg.to_str().unwrap(),
                "layers",
                script.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever carries a final name is complete and correct.
        let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "verify"]);
        assert!(
            o.status.success(),
            "after a kill at {delay_ms} ms: {}",
            stdout(&o)
        );
        assert_eq!(
            digests(&layers_json(&cfg, &script)),
            want,
            "rerun after a kill at {delay_ms} ms"
        );
    }
}

/// A crafted cpio entry: (name, mode, inode, nlink, data).
type CpioSpec<'a> = (&'a str, u32, u32, u32, Vec<u8>);

/// One cpio newc entry.
fn cpio_entry(out: &mut Vec<u8>, name: &str, mode: u32, ino: u32, nlink: u32, data: &[u8]) {
    let namesize = name.len() + 1;
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        315_532_800,
        data.len() as u32,
        0,
        0,
        0,
        0,
        namesize as u32,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !(out.len()).is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !(out.len()).is_multiple_of(4) {
        out.push(0);
    }
}

/// A copy of a real (rpmbuild) package whose payload is replaced by `entries` (gzip cpio).
fn with_payload(base: &Path, entries: &[CpioSpec<'_>], dest: &Path) {
    let bytes = std::fs::read(base).unwrap();
    let mut cur = std::io::Cursor::new(&bytes[..]);
    rpm::PackageMetadata::parse(&mut cur).unwrap();
    let header_end = cur.position() as usize;
    let mut cpio = Vec::new();
    for (name, mode, ino, nlink, data) in entries {
        cpio_entry(&mut cpio, name, *mode, *ino, *nlink, data);
    }
    cpio_entry(&mut cpio, "TRAILER!!!", 0, 0, 1, b"");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &cpio).unwrap();
    let mut out = bytes[..header_end].to_vec();
    out.extend(e.finish().unwrap());
    std::fs::write(dest, out).unwrap();
}

#[test]
fn hostile_payloads_are_refused_and_nothing_escapes() {
    let base = rpm_path("special-gz-");
    let d = tempfile::tempdir().unwrap();
    let sentinel = d.path().join("sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    std::fs::write(sentinel.join("keep"), b"untouched").unwrap();
    let file = 0o100644;
    let cases: Vec<(&str, Vec<CpioSpec<'_>>, &str)> = vec![
        (
            "dotdot",
            vec![("./../../sentinel/keep", file, 1, 1, b"pwned".to_vec())],
            "`..` component",
        ),
        (
            "absolute",
            vec![("/etc/special.conf", file, 1, 1, b"x".to_vec())],
            "is absolute",
        ),
        (
            "whiteout",
            vec![("./usr/bin/.wh.hl-a", file, 1, 1, b"".to_vec())],
            "whiteouts",
        ),
        (
            "through a symlink",
            vec![
                (
                    "./usr/lib64/libspecial.so.1",
                    0o120777,
                    1,
                    1,
                    b"/etc".to_vec(),
                ),
                (
                    "./usr/lib64/libspecial.so.1/passwd",
                    file,
                    2,
                    1,
                    b"root::0:0::/:/bin/sh\n".to_vec(),
                ),
            ],
            "through the symlink `usr/lib64/libspecial.so.1`",
        ),
        (
            "hard link to nowhere",
            vec![("./usr/bin/hl-a", file, 77, 2, b"".to_vec())],
            "has 1 of 2 members and no data",
        ),
        (
            "duplicate",
            vec![
                ("./etc/special.conf", file, 1, 1, b"conf\n".to_vec()),
                ("./etc/special.conf", file, 2, 1, b"conf\n".to_vec()),
            ],
            "has it twice",
        ),
        (
            "unlisted",
            vec![(
                "./usr/bin/backdoor",
                0o104755,
                1,
                1,
                b"#!/bin/sh\n".to_vec(),
            )],
            "does not list",
        ),
        (
            "setuid where the header says 0644",
            vec![("./etc/special.conf", 0o104755, 1, 1, b"conf\n".to_vec())],
            "the payload gives mode 4755, the header says 0644",
        ),
        (
            "a device the header does not declare",
            vec![("./etc/special.conf", 0o020644, 1, 1, b"".to_vec())],
            "the payload makes it type 2, the header says 10",
        ),
        (
            "more bytes than the header says",
            vec![(
                "./etc/special.conf",
                file,
                1,
                1,
                b"conf\nand more\n".to_vec(),
            )],
            "the header says 5",
        ),
        (
            "larger than declared",
            vec![("./usr/lib64/big.dat", file, 1, 1, vec![b'x'; 8 << 20])],
            "exceeds the limit",
        ),
    ];
    for (name, entries, want) in cases {
        let evil = d.path().join(format!("{}.rpm", name.replace(' ', "-")));
        with_payload(&base, &entries, &evil);
        let out = d.path().join("layer");
        let f = std::fs::File::create(&out).unwrap();
        let mut w = LayerWriter::new(f, options(Compression::Gzip)).unwrap();
        let mut r = RpmReader::open(&evil).unwrap();
        let err = w
            .add_package(&mut r, &BTreeSet::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains("special-gz"),
            "{name} names the package: {err}"
        );
    }
    assert_eq!(std::fs::read(sentinel.join("keep")).unwrap(), b"untouched");
    assert_eq!(std::fs::read_dir(&sentinel).unwrap().count(), 1);
}

#[test]
fn implausible_headers_are_refused_before_allocation() {
    let base = std::fs::read(rpm_path("special-gz-")).unwrap();
    let d = tempfile::tempdir().unwrap();
    // The signature header's index count (after the 96-byte lead and 8 magic bytes).
    let mut huge = base.clone();
    huge[104..108].copy_from_slice(&u32::MAX.to_be_bytes());
    let p = d.path().join("huge.rpm");
    std::fs::write(&p, &huge).unwrap();
    let err = RpmReader::open(&p).err().unwrap().to_string();
    assert!(err.contains("claims 4294967295 tags"), "{err}");
    for (name, bytes) in [
        ("empty.rpm", Vec::new()),
        ("short.rpm", base[..50].to_vec()),
        ("cut.rpm", base[..200].to_vec()),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = RpmReader::open(&p).err().unwrap().to_string();
        assert!(
            err.contains(name) && err.contains("not a readable RPM"),
            "{name}: {err}"
        );
    }
    // A truncated payload is an error, not a short layer.
    let p = d.path().join("truncated.rpm");
    std::fs::write(&p, &base[..base.len() - 200]).unwrap();
    let mut r = RpmReader::open(&p).unwrap();
    let f = std::fs::File::create(d.path().join("l")).unwrap();
    let mut w = LayerWriter::new(f, options(Compression::Gzip)).unwrap();
    assert!(w.add_package(&mut r, &BTreeSet::new()).is_err());
}

#[test]
fn mutated_packages_never_panic() {
    let base = std::fs::read(rpm_path("special-gz-")).unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.rpm");
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let header_span = 4096.min(base.len());
    let rounds: usize = std::env::var("PBSIMAGE_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for _ in 0..rounds {
        let mut m = base.clone();
        for _ in 0..(1 + next() % 8) {
            let i = (next() as usize) % header_span;
            m[i] = next() as u8;
        }
        std::fs::write(&p, &m).unwrap();
        if let Ok(mut r) = RpmReader::open(&p) {
            while let Ok(Some(_)) = r.next_entry() {}
        }
    }
}

#[test]
fn a_package_missing_on_one_mirror_comes_from_the_next() {
    let full = fixture_repos().join("main");
    let partial = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(format!("{}/.", full.display()))
            .arg(partial.path()),
    );
    let gone = find_prefixed(partial.path(), "libstdc++-");
    std::fs::remove_file(&gone).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (d, _, script) = fib_job(&full, cache.path());
    let cfg = d.path().join("mirrors.toml");
    std::fs::write(
        &cfg,
        repo_config(
            &[],
            cache.path(),
            &format!(
                "[[repo]]\nid = \"m\"\nbaseurl = [\"file://{}\", \"file://{}\"]\n{BASE}",
                partial.path().display(),
                full.display()
            ),
        ),
    )
    .unwrap();
    let v = layers_json(&cfg, &script);
    assert!(
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["label"].as_str().unwrap().starts_with("libstdc++-"))
    );
}

#[test]
fn progress_bars_only_on_a_terminal_and_never_in_ci() {
    require("script", "bsdutils");
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    let cmd = format!(
        "{} --config {} layers {}",
        env!("CARGO_BIN_EXE_pbsimage"),
        cfg.display(),
        script.display()
    );
    let run = |ci: Option<&str>| {
        let _ = std::fs::remove_dir_all(cache.path().join("layers-v1"));
        let mut c = Command::new("script");
        // A terminal as users have one (TERM=dumb, as some CI shells set, hides bars).
        c.args(["-qec", &cmd, "/dev/null"])
            .env_remove("CI")
            .env("TERM", "xterm");
        if let Some(v) = ci {
            c.env("CI", v);
        }
        String::from_utf8_lossy(&run_ok(&mut c).stdout).into_owned()
    };
    assert!(run(None).contains("layers ["), "a terminal shows bars");
    assert!(!run(Some("true")).contains("layers ["), "CI shows none");
    // A pipe shows none either (the other tests read stdout through pipes).
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "layers",
        script.to_str().unwrap(),
    ]);
    assert!(!stderr(&o).contains('['), "{}", stderr(&o));
}

/// Fetches the fib job's packages over HTTP from `server` into a fresh cache.
fn fetch_over(
    server: &crate::http::Server,
) -> (tempfile::TempDir, tempfile::TempDir, serde_json::Value) {
    let cache = tempfile::tempdir().unwrap();
    let (d, cfg, script) = fib_job_at(&server.url(""), cache.path());
    let v = layers_json(&cfg, &script);
    (d, cache, v)
}

#[test]
fn downloads_retry_resume_and_restart() {
    use std::sync::atomic::Ordering;
    let reference = {
        let cache = tempfile::tempdir().unwrap();
        let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
        digests(&layers_json(&cfg, &script))
    };
    let server = crate::http::Server::serve(&fixture_repos().join("main"));
    *server.faults.target.lock().unwrap() = "libstdc++-".into();
    // 503 twice, then the file.
    server.faults.unavailable.store(2, Ordering::SeqCst);
    let (_d, _c, v) = fetch_over(&server);
    assert_eq!(digests(&v), reference);
    let gets = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("libstdc++-"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(gets(&server.requests()).len(), 3, "{:?}", server.requests());
    // Dropped halfway, then resumed from where it stopped (206 + Content-Range).
    let before = server.requests().len();
    server.faults.truncate.store(1, Ordering::SeqCst);
    let (_d, _c, v) = fetch_over(&server);
    assert_eq!(digests(&v), reference);
    let log = gets(&server.requests()[before..]);
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[1].contains("range="),
        "the retry asks for the rest: {log:?}"
    );
    // Dropped halfway, and the server ignores ranges: the download starts over.
    let before = server.requests().len();
    server.faults.truncate.store(1, Ordering::SeqCst);
    server.faults.ignore_range.store(true, Ordering::SeqCst);
    let (_d, _c, v) = fetch_over(&server);
    assert_eq!(digests(&v), reference);
    assert_eq!(gets(&server.requests()[before..]).len(), 2);
}

#[test]
fn packages_are_layered_while_others_still_download() {
    use std::sync::atomic::Ordering;
    let server = crate::http::Server::serve(&fixture_repos().join("main"));
    *server.faults.target.lock().unwrap() = "libstdc++-".into();
    server.faults.hold.store(true, Ordering::SeqCst);
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job_at(&server.url(""), cache.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args([
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "layers",
            "--json",
            script.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While libstdc++ is held back, the base and libgcc layers get built; then it is let go.
    let records = cache.path().join("layers-v1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen_early = 0;
    while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        seen_early = std::fs::read_dir(&records).map(|d| d.count()).unwrap_or(0);
        if seen_early >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        server.requests().iter().any(|r| r.contains("libstdc++-")),
        "libstdc++ was requested"
    );
    server.faults.hold.store(false, Ordering::SeqCst);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(
        seen_early >= 2,
        "layers were only built after every download finished"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 4);
}

#[test]
fn legacy_lzma_payloads_are_a_clear_error() {
    let err = RpmReader::open(&rpm_path("special-lz-"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("legacy lzma") && err.contains("special-lz-"),
        "{err}"
    );
}

#[test]
fn same_digests_from_two_caches_whatever_umask_tz_and_locale() {
    let runs: Vec<Vec<String>> = [("022", "UTC", "C.UTF-8"), ("077", "Asia/Tokyo", "POSIX")]
        .iter()
        .map(|(umask, tz, lang)| {
            let cache = tempfile::tempdir().unwrap();
            let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
            let o = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "umask {umask} && exec '{}' -q --config '{}' layers --json '{}'",
                    env!("CARGO_BIN_EXE_pbsimage"),
                    cfg.display(),
                    script.display()
                ))
                .env("TZ", tz)
                .env("LC_ALL", lang)
                .env("LANG", lang)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            digests(&serde_json::from_slice(&o.stdout).unwrap())
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn cache_gc_removes_only_unreferenced_blobs() {
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    let v = layers_json(&cfg, &script);
    let blobs = cache.path().join("blobs/sha256");
    let stray = blobs.join("f".repeat(64));
    std::fs::write(&stray, b"nobody references this").unwrap();
    let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stray.exists());
    for l in v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["label"] != "job")
    {
        assert!(Path::new(l["path"].as_str().unwrap()).exists(), "{l}");
    }
    // The packages the layers came from are kept too; a rebuild finds everything.
    let again = layers_json(&cfg, &script);
    assert!(package_layers_cached(&again), "{again}");
    let o = pbsimage(&["--config", cfg.to_str().unwrap(), "cache", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

/// A timestamp-based `.pyc` records its `.py`'s mtime: the layer keeps the RPM's file times,
/// so Python (checked by Python itself) still takes the bytecode, and with a read-only root
/// never has to write it again. With SOURCE_DATE_EPOCH set, newer times are clamped to it.
#[test]
fn package_file_times_are_kept_so_bytecode_stays_valid() {
    let rpm = rpm_path("pyc-demo-");
    let d = tempfile::tempdir().unwrap();
    // The package's layer written with `opts`, unpacked into its own root.
    let unpacked = |opts: LayerOptions, name: &str| {
        let blob = d.path().join(format!("{name}.layer"));
        write_layer(std::slice::from_ref(&rpm), opts, &blob);
        let root = d.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(&blob)
                .arg("-C")
                .arg(&root),
        );
        root
    };
    let root = unpacked(options(Compression::Gzip), "kept");
    let dir = root.join("usr/lib/pyc_demo");
    let py = std::fs::metadata(dir.join("mod.py")).unwrap();
    assert_eq!(py.mtime(), 300_000_000, "the RPM's time");
    // Python's own check: the cached bytecode is valid for the source as unpacked.
    require("python3", "python3");
    let check = r#"
import importlib.util, importlib._bootstrap_external as ext, sys, os
src = sys.argv[1]
pyc = importlib.util.cache_from_source(src)
data = open(pyc, "rb").read()
st = os.stat(src)
ext._validate_timestamp_pyc(data, int(st.st_mtime), st.st_size, "mod", {})
print("valid")
"#;
    let out = Command::new("python3")
        .args(["-c", check])
        .arg(dir.join("mod.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Clamped: times newer than SOURCE_DATE_EPOCH become it; older ones stay.
    let mut opts = options(Compression::Gzip);
    opts.clamp_mtime = Some(200_000_000);
    let root2 = unpacked(opts, "clamped");
    let py2 = std::fs::metadata(root2.join("usr/lib/pyc_demo/mod.py")).unwrap();
    assert_eq!(py2.mtime(), 200_000_000);
}

/// (path, uid, gid) of a layer entry.
type Owned = (String, u64, u64);

/// (path, uid, gid) of every entry of a gzip layer blob, and its regular files' text.
fn layer_entries(blob: &str) -> (Vec<Owned>, BTreeMap<String, String>) {
    let f = std::fs::File::open(blob).unwrap();
    let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
    let (mut ids, mut texts) = (Vec::new(), BTreeMap::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let h = e.header();
        ids.push((path.clone(), h.uid().unwrap(), h.gid().unwrap()));
        if h.entry_type().is_file() {
            let mut s = String::new();
            if std::io::Read::read_to_string(&mut e, &mut s).is_ok() {
                texts.insert(path, s);
            }
        }
    }
    (ids, texts)
}

/// No scriptlet runs, so the accounts a package's files are owned by come from its
/// sysusers.d file (with the ids it asks for) or get a deterministic id; the image's
/// /etc/passwd and /etc/group list them with the ids the files carry, and the build says so.
#[test]
fn accounts_scriptlets_would_create_come_from_sysusers_and_stable_ids() {
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[needs]\nextra = [\"fx-accounts\"]\n");
    std::fs::write(&cfg, text).unwrap();
    let v = layers_json(&cfg, &script);
    let layers = v["layers"].as_array().unwrap();
    let fx = layers
        .iter()
        .find(|l| {
            l["packages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().starts_with("fx-accounts-"))
        })
        .expect("a layer with fx-accounts");
    let (ids, _) = layer_entries(fx["path"].as_str().unwrap());
    let id = |p: &str| {
        ids.iter()
            .find(|(q, _, _)| q.trim_end_matches('/') == p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} in {ids:?}"))
    };
    let (_, kuid, kgid) = id("usr/libexec/fx/keysign");
    assert_eq!(kuid, 0);
    assert!(
        (200..=999).contains(&kgid),
        "ssh_keys gets a system gid: {kgid}"
    );
    let (_, tuid, tgid) = id("var/lib/fx-tss");
    assert_eq!((tuid, tgid), (59, 59), "sysusers.d's uid");
    // The job layer's account files list them with those ids.
    let job = layers.last().unwrap();
    let (_, texts) = layer_entries(job["path"].as_str().unwrap());
    let passwd = &texts["etc/passwd"];
    let group = &texts["etc/group"];
    assert!(
        passwd.starts_with("root:x:0:0:"),
        "setup's lines first: {passwd}"
    );
    assert!(
        passwd.contains("fxtss:x:59:59:TPM fixture:/var/lib/fx-tss:/sbin/nologin\n"),
        "{passwd}"
    );
    assert!(group.contains(&format!("ssh_keys:x:{kgid}:\n")), "{group}");
    assert!(group.contains("fxjournal:x:190:fxtss\n"), "{group}");
    let accounts: Vec<&str> = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        accounts
            .iter()
            .any(|a| a.starts_with("group ssh_keys: gid")),
        "{accounts:?}"
    );
    assert!(
        accounts.contains(&"user fxtss: uid 59 (sysusers.d)"),
        "{accounts:?}"
    );
    // The same inputs give the same ids and digests.
    let again = layers_json(&cfg, &script);
    assert_eq!(digests(&again), digests(&v));
}
