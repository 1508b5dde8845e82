//! Repositories over HTTPS with a CA bundle.

use super::*;
use crate::common::*;
use pbsimage::elf::Arch;
use pbsimage::ops::Options;
use std::path::{Path, PathBuf};
use std::process::Command;

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
