//! Signed images, checked by code that is not pbsimage's: Debian's skopeo 1.9 and podman 4.3
//! are built without sigstore ("Debian-local change: sigstore disabled", so their
//! `sigstoreSigned` policy cannot be enforced here) and cosign is not packaged, so
//! `cosign_check.py` (PyCA cryptography, PyNaCl) checks keys and signatures against cosign's
//! specification, on what skopeo fetches from the registry: `pbsimage build --sign` pushes a
//! signature it accepts and refuses for another key, digest or repository; a key
//! `pbsimage keygen` wrote opens as cosign's format; a signature made by that code verifies
//! with `pbsimage verify`, and one by another key does not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::build::Registry;
use crate::common::*;

const PASSWORD: &str = "pbsimage test key";

struct Signing {
    reg: Registry,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    _job: tempfile::TempDir,
    script: PathBuf,
    _cache: tempfile::TempDir,
}

fn setup() -> Signing {
    require("skopeo", "skopeo");
    let reg = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let (job, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    push_to(&cfg, &reg.host);
    Signing {
        reg,
        dir: tempfile::tempdir().unwrap(),
        cfg,
        _job: job,
        script,
        _cache: cache,
    }
}

/// `pbsimage` with COSIGN_PASSWORD set.
fn pbsimage_pw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args(args)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("NO_COLOR", "1")
        .env_remove("PBSIMAGE_CONFIG")
        .output()
        .unwrap()
}

impl Signing {
    /// `pbsimage keygen` into the test directory: the key's path prefix.
    fn keygen(&self, name: &str) -> PathBuf {
        let prefix = self.dir.path().join(name);
        let o = pbsimage_pw(&["keygen", "--output-key-prefix", prefix.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        prefix
    }

    /// build --push (and the extra arguments): the pushed reference.
    fn build(&self, extra: &[&str]) -> Result<String, String> {
        let mut args = vec!["-q", "--config", self.cfg.to_str().unwrap(), "build"];
        args.extend(extra);
        args.push(self.script.to_str().unwrap());
        let o = pbsimage_pw(&args);
        if o.status.success() {
            Ok(stdout(&o).trim().to_owned())
        } else {
            Err(stderr(&o))
        }
    }

    /// policy.json + registries.d for `pub_key`, by `pbsimage policy`: the directory.
    fn policy(&self, pub_key: &Path, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let o = pbsimage(&[
            "policy",
            "--key",
            pub_key.to_str().unwrap(),
            "--scope",
            &self.reg.host,
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    }

    /// skopeo copy of `reference` to a directory under the policy in `policy_dir`.
    fn skopeo_copy(&self, policy_dir: &Path, reference: &str) -> Output {
        let dest = tempfile::tempdir().unwrap();
        Command::new("skopeo")
            .arg("--policy")
            .arg(policy_dir.join("policy.json"))
            .arg("--registries.d")
            .arg(policy_dir.join("registries.d"))
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", dest.path().join("img").display()))
            .output()
            .unwrap()
    }
}

/// An EC private key of `curve` (PKCS#8 PEM) made by openssl.
fn ec_key(path: &Path, curve: &str) {
    require("openssl", "openssl");
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .arg("-out")
            .arg(path),
    );
}

fn cosign_check(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(python_with("cryptography, nacl"))
        .arg("tests/it/cosign_check.py")
        .args(args)
        .output()
        .unwrap()
}

/// The `.sig` image of `repo` at `tag`, fetched by skopeo into a `dir:` layout.
fn fetch_signature(dir: &Path, repo: &str, tag: &str) -> PathBuf {
    let out = dir.join(format!("sig-{}", dir.read_dir().unwrap().count()));
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{repo}:{tag}"))
            .arg(format!("dir:{}", out.display())),
    );
    out
}

#[test]
fn what_pbsimage_signs_verifies_by_cosigns_rules() {
    let s = setup();
    let key = s.keygen("ci");
    let other = s.keygen("other");
    let pub_key = key.with_extension("pub");
    // The key pbsimage wrote is cosign's envelope, and its public half is the .pub.
    let o = cosign_check(&[
        "open-key".as_ref(),
        key.with_extension("key").as_os_str(),
        PASSWORD.as_ref(),
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let opened = stdout(&o);
    assert!(opened.starts_with("secp256r1\n"), "{opened}");
    assert_eq!(
        opened.trim_start_matches("secp256r1\n"),
        std::fs::read_to_string(&pub_key).unwrap()
    );
    // Unsigned: no signature tag, and pbsimage verify says so.
    let unsigned = s.build(&[]).unwrap();
    let o = pbsimage(&[
        "verify",
        &unsigned,
        "--key",
        pub_key.to_str().unwrap(),
        "--plain-http",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has no signature"), "{}", stderr(&o));
    // Signed: pushed after the image, with the cosign annotation, verified by cosign's rules
    // for this key, digest and repository, and by pbsimage verify.
    let signed = s
        .build(&[
            "--sign-key",
            key.with_extension("key").to_str().unwrap(),
            "--json",
        ])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&signed).unwrap();
    let reference = v["reference"].as_str().unwrap().to_owned();
    assert_eq!(reference, unsigned, "signing does not change the image");
    let (repo, digest) = reference.split_once('@').unwrap();
    let tag = v["signature"]["tag"].as_str().unwrap();
    assert_eq!(tag, format!("{}.sig", digest.replace(':', "-")));
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{repo}:{tag}")),
    );
    assert!(
        stdout(&raw).contains("dev.cosignproject.cosign/signature"),
        "{}",
        stdout(&raw)
    );
    let sigdir = fetch_signature(s.dir.path(), repo, tag);
    let check = |key: &Path, digest: &str, identity: &str| {
        cosign_check(&[
            "verify".as_ref(),
            sigdir.as_os_str(),
            key.as_os_str(),
            digest.as_ref(),
            identity.as_ref(),
        ])
    };
    let o = check(&pub_key, digest, repo);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = check(&other.with_extension("pub"), digest, repo);
    assert!(stdout(&o).contains("does not verify"), "{}", stdout(&o));
    let o = check(&pub_key, &format!("sha256:{}", "0".repeat(64)), repo);
    assert!(stdout(&o).contains("payload names"), "{}", stdout(&o));
    let o = check(&pub_key, digest, &format!("{}/pbs/elsewhere", s.reg.host));
    assert!(stdout(&o).contains("identity"), "{}", stdout(&o));
    let o = pbsimage(&[
        "verify",
        &reference,
        "--key",
        pub_key.to_str().unwrap(),
        "--plain-http",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Signing again sends nothing new: the signature is deterministic (RFC 6979).
    let again = s
        .build(&[
            "--sign-key",
            key.with_extension("key").to_str().unwrap(),
            "--json",
        ])
        .unwrap();
    let w: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(w["signature"]["digest"], v["signature"]["digest"]);
    assert_eq!(w["signature"]["bytes"], 0);
    // Another key's signature in place of ours: pbsimage verify refuses it.
    let o = pbsimage(&[
        "verify",
        &reference,
        "--key",
        other.with_extension("pub").to_str().unwrap(),
        "--plain-http",
    ]);
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}

#[test]
fn pbsimage_verifies_a_signature_made_elsewhere() {
    require("openssl", "openssl");
    let s = setup();
    let reference = s.build(&[]).unwrap();
    let (repo, digest) = reference.split_once('@').unwrap();
    // A P-256 key and a signature made by PyCA cryptography, pushed by skopeo.
    let key = s.dir.path().join("elsewhere.pem");
    ec_key(&key, "P-256");
    let public = s.dir.path().join("elsewhere.pub");
    run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public),
    );
    let sigdir = s.dir.path().join("sigdir");
    let o = cosign_check(&[
        "sign-dir".as_ref(),
        sigdir.as_os_str(),
        key.as_os_str(),
        digest.as_ref(),
        repo.as_ref(),
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let tag = format!("{}.sig", digest.replace(':', "-"));
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("dir:{}", sigdir.display()))
            .arg(format!("docker://{repo}:{tag}")),
    );
    let o = pbsimage(&[
        "verify",
        &reference,
        "--key",
        public.to_str().unwrap(),
        "--plain-http",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identity"], repo);
    // A key pbsimage made does not verify it.
    let ours = s.keygen("ours");
    let o = pbsimage(&[
        "verify",
        &reference,
        "--key",
        ours.with_extension("pub").to_str().unwrap(),
        "--plain-http",
    ]);
    assert!(!o.status.success());
}

/// `pbsimage policy` writes containers/image's policy.json and registries.d and a Kyverno
/// ClusterPolicy. (Debian's skopeo cannot enforce sigstoreSigned; it does parse the policy
/// and admits images outside its scope.)
#[test]
fn the_policy_files_name_the_key_and_the_scope() {
    let s = setup();
    let key = s.keygen("ci");
    let out = s.policy(&key.with_extension("pub"), "policy");
    let policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("policy.json")).unwrap()).unwrap();
    let req = &policy["transports"]["docker"][&s.reg.host][0];
    assert_eq!(req["type"], "sigstoreSigned");
    assert_eq!(
        std::fs::read_to_string(req["keyPath"].as_str().unwrap()).unwrap(),
        std::fs::read_to_string(key.with_extension("pub")).unwrap()
    );
    let reg_d = std::fs::read_to_string(out.join("registries.d/pbsimage.yaml")).unwrap();
    assert!(reg_d.contains("use-sigstore-attachments: true"), "{reg_d}");
    let kyverno = std::fs::read_to_string(out.join("kyverno-policy.yaml")).unwrap();
    assert!(kyverno.contains("kind: ClusterPolicy") && kyverno.contains("BEGIN PUBLIC KEY"));
    // skopeo reads the files: an image outside the scope is admitted.
    let elsewhere = Registry::start();
    let reference = s.build(&[]).unwrap();
    run_ok(
        Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{reference}"))
            .arg(format!("docker://{}/other/fib:copy", elsewhere.host)),
    );
    let o = s.skopeo_copy(&out, &format!("{}/other/fib:copy", elsewhere.host));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_keys_stop_the_build_before_anything_is_pushed() {
    let s = setup();
    let key = s.keygen("ci");
    let catalog = |reg: &Registry| {
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
                &format!("http://{}/v2/_catalog", reg.host),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // A wrong password.
    let o = Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args([
            "-q",
            "--config",
            s.cfg.to_str().unwrap(),
            "build",
            "--sign-key",
        ])
        .arg(key.with_extension("key"))
        .arg(&s.script)
        .env("COSIGN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not decrypt"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("wrong"),
        "the password is never printed"
    );
    // A P-384 key, and a damaged one.
    require("openssl", "openssl");
    let p384 = s.dir.path().join("p384.pem");
    ec_key(&p384, "P-384");
    let err = s
        .build(&["--sign-key", p384.to_str().unwrap()])
        .unwrap_err();
    assert!(err.contains("not an ECDSA P-256 key"), "{err}");
    let damaged = s.dir.path().join("damaged.key");
    let text = std::fs::read_to_string(key.with_extension("key")).unwrap();
    std::fs::write(&damaged, text.replacen('A', "%", 3)).unwrap();
    let err = s
        .build(&["--sign-key", damaged.to_str().unwrap()])
        .unwrap_err();
    assert!(err.contains("is not a key pbsimage can use"), "{err}");
    // Nothing reached the registry.
    let listed = catalog(&s.reg);
    assert!(!listed.contains("pbs/"), "{listed}");
    // A plain PKCS#8 P-256 PEM signs too.
    let p256 = s.dir.path().join("p256.pem");
    ec_key(&p256, "P-256");
    s.build(&["--sign-key", p256.to_str().unwrap()]).unwrap();
}

/// `catalog --sign`: every pushed image gets its signature, after all the manifests.
#[test]
fn a_catalog_signs_every_image() {
    let s = setup();
    let key = s.keygen("ci");
    let catalog = s.dir.path().join("catalog");
    for name in ["one", "two"] {
        let d = catalog.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("job.sh"),
            format!("#!/bin/bash\n#PBS -N {name}\necho {name}\n"),
        )
        .unwrap();
    }
    let o = pbsimage_pw(&[
        "-q",
        "--config",
        s.cfg.to_str().unwrap(),
        "catalog",
        "--json",
        "--sign-key",
        key.with_extension("key").to_str().unwrap(),
        catalog.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    for j in jobs {
        let reference = j["reference"].as_str().unwrap();
        let o = pbsimage(&[
            "verify",
            reference,
            "--key",
            key.with_extension("pub").to_str().unwrap(),
            "--plain-http",
        ]);
        assert!(o.status.success(), "{reference}: {}", stderr(&o));
        let (repo, digest) = reference.split_once('@').unwrap();
        let sigdir = fetch_signature(
            s.dir.path(),
            repo,
            &format!("{}.sig", digest.replace(':', "-")),
        );
        let o = cosign_check(&[
            "verify".as_ref(),
            sigdir.as_os_str(),
            key.with_extension("pub").as_os_str(),
            digest.as_ref(),
            repo.as_ref(),
        ]);
        assert!(o.status.success(), "{}", stdout(&o));
        // And its SBOM and provenance are attached.
        let path = repo.strip_prefix(&format!("{}/", s.reg.host)).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&http_get(&format!(
            "http://{}/v2/{path}/manifests/{}",
            s.reg.host,
            digest.replace(':', "-")
        )))
        .unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    }
}

/// The registry refuses the signature: the image stays pushed, the error says so, and a rerun
/// signs it without uploading the image again.
#[test]
fn a_refused_signature_leaves_the_image_and_a_rerun_signs_it() {
    use std::sync::atomic::Ordering;
    let reg = crate::fakereg::FakeRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let (_job, cfg, script) = fib_job(&fixture_repos().join("main"), cache.path());
    push_to(&cfg, &reg.host);
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ci");
    let o = pbsimage_pw(&["keygen", "--output-key-prefix", prefix.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = prefix.with_extension("key");
    let build = || {
        pbsimage_pw(&[
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "build",
            "--sign-key",
            key.to_str().unwrap(),
            script.to_str().unwrap(),
        ])
    };
    // Every request naming a .sig tag fails (past the retries).
    reg.target(".sig");
    reg.faults.unavailable.store(1000, Ordering::SeqCst);
    let o = build();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("was pushed, but its signature was not"),
        "{}",
        stderr(&o)
    );
    let (image_tags, uploads) = {
        let st = reg.state();
        let tags: Vec<String> = st.tags.keys().map(|(_, t)| t.clone()).collect();
        (tags, st.uploads.clone())
    };
    assert!(
        image_tags.iter().all(|t| !t.ends_with(".sig")),
        "{image_tags:?}"
    );
    assert!(!image_tags.is_empty(), "the image is pushed");
    // The registry recovers: the rerun signs without uploading anything it sent before (the
    // image's blobs, the signature's); what is new is the SBOM and provenance it attaches.
    reg.faults.unavailable.store(0, Ordering::SeqCst);
    let o = build();
    assert!(o.status.success(), "{}", stderr(&o));
    let st = reg.state();
    assert!(st.tags.keys().any(|(_, t)| t.ends_with(".sig")));
    let again: Vec<&String> = st.uploads[uploads.len()..]
        .iter()
        .filter(|d| uploads.contains(d))
        .collect();
    assert!(again.is_empty(), "uploaded again: {again:?}");
}

/// GET over plain HTTP (the test registries), with python3's urllib.
fn http_get(url: &str) -> Vec<u8> {
    let o = run_ok(Command::new("python3").args([
        "-c",
        "import sys, urllib.request\n\
         r = urllib.request.Request(sys.argv[1], headers={'Accept': 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'})\n\
         sys.stdout.buffer.write(urllib.request.urlopen(r).read())",
        url,
    ]));
    o.stdout
}

/// `--sign` attaches the SBOM and an in-toto provenance statement: OCI 1.1 artifacts whose
/// subject is the image, listed in the referrers tag schema's index (docker-registry 2.8 has
/// no referrers API), each signed; the SBOM validates with SPDX's tools, the statement names
/// the image's digest.
#[test]
fn signed_images_carry_their_sbom_and_provenance() {
    require_with("pyspdxtools", "pip install spdx-tools (scripts/test does)");
    let s = setup();
    let key = s.keygen("ci");
    let out = s
        .build(&[
            "--sign-key",
            key.with_extension("key").to_str().unwrap(),
            "--json",
        ])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reference = v["reference"].as_str().unwrap();
    let (repo, digest) = reference.split_once('@').unwrap();
    let path = repo.strip_prefix(&format!("{}/", s.reg.host)).unwrap();
    let tag = digest.replace(':', "-");
    assert_eq!(v["attached"]["found_by"], tag.as_str(), "{v}");
    let index: serde_json::Value = serde_json::from_slice(&http_get(&format!(
        "http://{}/v2/{path}/manifests/{tag}",
        s.reg.host
    )))
    .unwrap();
    let listed = index["manifests"].as_array().unwrap();
    let types: Vec<&str> = listed
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.in-toto+json"]
    );
    for m in listed {
        let d = m["digest"].as_str().unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&http_get(&format!(
            "http://{}/v2/{path}/manifests/{d}",
            s.reg.host
        )))
        .unwrap();
        assert_eq!(manifest["subject"]["digest"], digest);
        let blob_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        let blob = http_get(&format!(
            "http://{}/v2/{path}/blobs/{blob_digest}",
            s.reg.host
        ));
        let f = s.dir.path().join(d.replace(':', "-"));
        match m["artifactType"].as_str().unwrap() {
            "application/spdx+json" => {
                std::fs::write(f.with_extension("spdx.json"), &blob).unwrap();
                run_ok(
                    Command::new("pyspdxtools")
                        .arg("-i")
                        .arg(f.with_extension("spdx.json")),
                );
            }
            _ => {
                let st: serde_json::Value = serde_json::from_slice(&blob).unwrap();
                assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
                assert_eq!(
                    st["subject"][0]["digest"]["sha256"],
                    digest.trim_start_matches("sha256:")
                );
                assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
            }
        }
        // Each artifact is signed like the image.
        let sigdir = fetch_signature(s.dir.path(), repo, &format!("{}.sig", d.replace(':', "-")));
        let o = cosign_check(&[
            "verify".as_ref(),
            sigdir.as_os_str(),
            key.with_extension("pub").as_os_str(),
            d.as_ref(),
            repo.as_ref(),
        ]);
        assert!(o.status.success(), "{d}: {}", stdout(&o));
    }
}
