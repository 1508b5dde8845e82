//! `pbsimage build` into an OCI layout, read back by skopeo and umoci, and run.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn build(cfg: &Path, script: &Path, layout: &Path) -> serde_json::Value {
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

fn job_with_config(cache: &Path) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    for f in ["job.sh", "fib.cpp"] {
        std::fs::copy(
            Path::new("fixtures/jobs/paper-listing3-fib").join(f),
            d.path().join(f),
        )
        .unwrap();
    }
    require("g++", "g++");
    run_ok(
        Command::new("g++")
            .args(["-O2", "-o", "a.out", "fib.cpp"])
            .current_dir(d.path()),
    );
    let cfg = d.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        repo_config(
            &[(
                "fixture",
                format!("file://{}", fixture_repos().join("main").display()),
            )],
            cache,
            "[base]\npackages = [\"filesystem\", \"setup\", \"glibc\", \"bash\", \"coreutils\"]\n",
        ),
    )
    .unwrap();
    let script = d.path().join("job.sh");
    (d, cfg, script)
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
    let bundle = d.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    let o = run_ok(
        Command::new("/usr/sbin/chroot")
            .arg(bundle.join("rootfs"))
            .arg(pbsimage::kube::WRAPPER_PATH)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PBSIMAGE_SCRIPT", "/pbs/job/job.sh")
            .env("PBSIMAGE_SHELL", "/bin/bash")
            .env("PBS_O_WORKDIR", "/pbs/job")
            .env("TMPDIR", "/tmp"),
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0 1 1 2 3 5\n");
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
