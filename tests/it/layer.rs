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
    let main = fixture_repos().join("main");
    std::fs::read_dir(&main)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(name_prefix)
        })
        .unwrap_or_else(|| panic!("no {name_prefix}* in {}", main.display()))
}

fn options(compression: Compression) -> LayerOptions {
    let mut setup = RpmReader::open(&rpm_path("setup-")).unwrap();
    let (users, groups) = pbsimage::layer::owners_from_setup(&mut setup).unwrap();
    LayerOptions {
        epoch: 315_532_800,
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
    for comp in ["gz", "xz", "zst", "bz2"] {
        let rpm = rpm_path(&format!("special-{comp}-"));
        let d = tempfile::tempdir().unwrap();
        let blob = d.path().join("layer");
        let layer = write_layer(
            std::slice::from_ref(&rpm),
            options(Compression::Gzip),
            &blob,
        );
        assert!(layer.digest.starts_with("sha256:") && layer.diff_id.starts_with("sha256:"));
        // The digest is of the blob, the diff_id of the uncompressed tar.
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(layer.size, bytes.len() as u64);
        assert_eq!(layer.digest, format!("sha256:{}", sha(&bytes)));
        let mut tar_bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&bytes[..]),
            &mut tar_bytes,
        )
        .unwrap();
        assert_eq!(layer.diff_id, format!("sha256:{}", sha(&tar_bytes)));

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
