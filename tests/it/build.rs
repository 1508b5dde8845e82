//! `pbsimage build` into an OCI layout, read back by skopeo and umoci, and run.

use std::path::Path;
use std::process::Command;

use crate::common::*;

pub fn build(cfg: &Path, script: &Path, layout: &Path) -> serde_json::Value {
    let o = pbsimage(&[
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "build",
        "--json",
        "--output",
        layout.to_str().unwrap(),
        script.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Unpacks `layout:tag` with umoci under `dir` and runs the job in its rootfs.
pub fn unpack_and_run(image: &str, dir: &Path) -> String {
    let bundle = dir.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", image])
            .arg(&bundle),
    );
    run_job_in(&bundle.join("rootfs"))
}

fn job_with_config(cache: &Path) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    fib_job(&fixture_repos().join("main"), cache)
}

#[test]
fn skopeo_and_umoci_read_the_layout_and_the_job_runs() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    assert!(
        rustix::process::getuid().is_root(),
        "running the job needs chroot, so root (CI runs as root)"
    );
    let cache = tempfile::tempdir().unwrap();
    let (d, cfg, script) = job_with_config(cache.path());
    let layout = d.path().join("layout");
    let v = build(&cfg, &script, &layout);
    let tag = v["tag"].as_str().unwrap();
    let reference = v["reference"].as_str().unwrap();
    assert!(reference.starts_with("pbs/fib@sha256:"), "{reference}");
    // The Kubernetes manifest beside the script references the image by digest.
    let yaml = std::fs::read_to_string(d.path().join("job.k8s.yaml")).unwrap();
    assert!(yaml.contains(&format!("image: {reference}")), "{yaml}");
    // skopeo: the manifest digest is ours.
    let o = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{tag}", layout.display())),
    );
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["Digest"], v["manifest_digest"]);
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(
        info["Layers"].as_array().unwrap().len(),
        v["layers"].as_array().unwrap().len()
    );
    // umoci unpacks it, and the job runs in that root.
    assert_eq!(
        unpack_and_run(&format!("{}:{tag}", layout.display()), d.path()),
        "0 1 1 2 3 5\n"
    );
}

#[test]
fn two_empty_caches_give_the_same_image_digest() {
    let digests: Vec<String> = (0..2)
        .map(|_| {
            let cache = tempfile::tempdir().unwrap();
            let (d, cfg, script) = job_with_config(cache.path());
            let v = build(&cfg, &script, &d.path().join("layout"));
            v["manifest_digest"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}

/// Debian's docker-registry (CNCF distribution) on a free loopback port, stopped on drop.
pub struct Registry {
    child: std::process::Child,
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(|_| String::new())
    }

    /// `extra`: YAML after the `http:` section's `addr` (`  tls:` there, then top-level
    /// sections such as `auth:`), given the registry's directory.
    fn start_with(extra: impl Fn(&Path) -> String) -> Registry {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{}",
                dir.path().join("data").display(),
                extra(dir.path()),
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn push_then_pull_with_skopeo_and_run_and_share_the_base() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    assert!(
        rustix::process::getuid().is_root(),
        "running the job needs chroot, so root (CI runs as root)"
    );
    let reg = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let (d, cfg, script) = job_with_config(cache.path());
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replacen(
        "[cache]",
        &format!("[registry]\ninsecure = [\"{}\"]\n[cache]", reg.host),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let push = |script: &Path| -> serde_json::Value {
        let o = pbsimage(&[
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "build",
            "--json",
            "--push",
            &reg.host,
            "--output",
            d.path().join("layout").to_str().unwrap(),
            script.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = push(&script);
    let reference = v["reference"].as_str().unwrap();
    assert!(
        reference.starts_with(&format!("{}/pbs/fib@sha256:", reg.host)),
        "{reference}"
    );
    assert!(
        std::fs::read_to_string(d.path().join("job.k8s.yaml"))
            .unwrap()
            .contains(&format!("image: {reference}"))
    );
    // skopeo copies it back from the registry into an OCI layout; umoci unpacks; the job runs.
    let pulled = d.path().join("pulled");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:fib", pulled.display())),
    );
    assert_eq!(
        unpack_and_run(&format!("{}:fib", pulled.display()), d.path()),
        "0 1 1 2 3 5\n"
    );
    // A second job with the same base: the base layer is not uploaded again.
    let base = v["layers"][0]["digest"].as_str().unwrap().to_owned();
    let second = d.path().join("hello.sh");
    std::fs::copy("fixtures/jobs/paper-listing2-script/job.sh", &second).unwrap();
    let v2 = push(&second);
    assert_eq!(v2["layers"][0]["digest"], base);
    assert!(
        v2["pushed"]["mounted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == &base),
        "{}",
        v2["pushed"]
    );
    assert!(
        !v2["pushed"]["uploaded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == &base),
        "{}",
        v2["pushed"]
    );
    // Pushing the first image again sends nothing.
    let v3 = push(&script);
    assert!(
        v3["pushed"]["uploaded"].as_array().unwrap().is_empty(),
        "{}",
        v3["pushed"]
    );
}

/// A CA, and a certificate for 127.0.0.1 signed by it, in `dir`: (ca.pem, cert.pem, key.pem).
fn make_ca(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    require("openssl", "openssl");
    let p = |n: &str| dir.join(n);
    let sh = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pbsimage test CA",
    ]);
    sh(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[test]
fn tls_registry_with_htpasswd_and_a_ca_bundle() {
    require("skopeo", "skopeo");
    require("htpasswd", "apache2-utils");
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(certs.path());
    let htpasswd = certs.path().join("htpasswd");
    let o = run_ok(Command::new("htpasswd").args(["-Bbn", "ci", "s3cret-tls"]));
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    let reg = Registry::start_with(|_| {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: pbsimage-test\n    path: {}\n",
            cert.display(),
            key.display(),
            htpasswd.display()
        )
    });
    let cache = tempfile::tempdir().unwrap();
    let (d, cfg, script) = job_with_config(cache.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let push = |cfg_text: &str| {
        std::fs::write(&cfg, cfg_text).unwrap();
        output_with_stdin(
            Command::new(env!("CARGO_BIN_EXE_pbsimage"))
                .args(["-q", "--config", cfg.to_str().unwrap(), "build", "--json"])
                .args(["--push", &reg.host, "--username", "ci", "--password-stdin"])
                .arg(&script)
                .env("HOME", d.path()),
            b"s3cret-tls\n",
        )
    };
    // Without the CA the registry's certificate is refused, with a hint.
    let o = push(&text);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("certificate") && err.contains("ca-bundle"),
        "{err}"
    );
    // With it (and the password on stdin, over TLS, to an htpasswd registry) the push works.
    let o = push(&text.replacen(
        "[cache]",
        &format!("[registry]\nca-bundle = \"{}\"\n[cache]", ca.display()),
        1,
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reference = v["reference"].as_str().unwrap();
    assert!(reference.starts_with(&format!("{}/pbs/fib@sha256:", reg.host)));
    // skopeo, trusting the same CA, sees our digest.
    let cert_dir = certs.path().join("skopeo");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
    let o = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--creds", "ci:s3cret-tls", "--cert-dir"])
            .arg(&cert_dir)
            .arg(format!("docker://{reference}")),
    );
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["Digest"], v["manifest_digest"]);
}

/// A self-signed certificate for 127.0.0.1, its own CA (`openssl req -x509` marks it
/// `CA:TRUE`), as many private registries run.
fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    require("openssl", "openssl");
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

#[test]
fn a_self_signed_registry_certificate_is_pinned_as_its_own() {
    require("skopeo", "skopeo");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "registry");
    let (other, _) = self_signed(certs.path(), "other");
    let reg = Registry::start_with(|_| {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        )
    });
    let cache = tempfile::tempdir().unwrap();
    let (_d, cfg, script) = job_with_config(cache.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let push = |bundle: &Path| {
        std::fs::write(
            &cfg,
            text.replacen(
                "[cache]",
                &format!("[registry]\nca-bundle = \"{}\"\n[cache]", bundle.display()),
                1,
            ),
        )
        .unwrap();
        pbsimage(&[
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "build",
            "--json",
            "--push",
            &reg.host,
            script.to_str().unwrap(),
        ])
    };
    // Another self-signed certificate in the bundle: refused (pinning is byte for byte).
    let o = push(&other);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
    // The registry's own certificate as the bundle: accepted, as skopeo accepts it.
    let o = push(&cert);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cert_dir = certs.path().join("skopeo");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(&cert, cert_dir.join("ca.crt")).unwrap();
    let o = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--cert-dir"])
            .arg(&cert_dir)
            .arg(format!("docker://{}", v["reference"].as_str().unwrap())),
    );
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["Digest"], v["manifest_digest"]);
}

/// `[kube] mpi = "ssh"`: the manifest beside the script carries the job's key pair as a
/// Secret; building the same job again keeps the key (an immutable Secret applies again
/// unchanged, and running pods keep theirs), and the file stays owner-readable only. A job
/// whose manifest is gone gets a new key.
#[test]
fn an_ssh_mode_rebuild_keeps_its_key() {
    let d = tempfile::tempdir().unwrap();
    let url = format!("file://{}", fixture_repos().join("main").display());
    let cfg = d.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        repo_config(&[("fixture", url)], &d.path().join("cache"), BASE)
            .replace("[kube]\n", "[kube]\nmpi = \"ssh\"\n"),
    )
    .unwrap();
    let script = d.path().join("job.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\n#PBS -N ranks\n#PBS -l nodes=2:ppn=1\nmodule load mpi/openmpi-x86_64\nmpirun -np 2 hostname\n",
    )
    .unwrap();
    let manifest = d.path().join("job.k8s.yaml");
    let layout = d.path().join("oci");
    build(&cfg, &script, &layout);
    let first = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        first.starts_with("apiVersion: v1\n") || first.contains("kind: Secret"),
        "{first}"
    );
    assert!(first.contains("id_rsa"), "{first}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&manifest).unwrap().permissions().mode() & 0o077,
        0,
        "the manifest holds a private key"
    );
    build(&cfg, &script, &layout);
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), first);
    std::fs::remove_file(&manifest).unwrap();
    build(&cfg, &script, &layout);
    assert_ne!(std::fs::read_to_string(&manifest).unwrap(), first);
}
