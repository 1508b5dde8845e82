//! End to end through the CLI: `pbsimage build --push` to Debian's docker-registry, `skopeo
//! copy` back into an OCI layout, `umoci unpack`, and the job run in that root (chroot) with
//! the image's environment: the paper's C++ and script jobs, an OpenMP job, a `$ORIGIN` job
//! and a job whose library is found through `/etc/ld.so.conf.d`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::Registry;
use crate::common::*;

struct E2e {
    reg: Registry,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    _cache: tempfile::TempDir,
}

fn setup() -> E2e {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    require("gcc", "gcc");
    let reg = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    let url = format!("file://{}", fixture_repos().join("main").display());
    std::fs::write(
        &cfg,
        repo_config(
            &[("fixture", url)],
            cache.path(),
            &format!(
                "{BASE}[registry]\nhost = \"{0}\"\ninsecure = [\"{0}\"]\n",
                reg.host
            ),
        ),
    )
    .unwrap();
    E2e {
        reg,
        dir,
        cfg,
        _cache: cache,
    }
}

impl E2e {
    /// A job directory `name` with `files` (name, contents).
    fn job(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (f, text) in files {
            std::fs::write(d.join(f), text).unwrap();
        }
        d
    }

    /// build --push, skopeo copy back, umoci unpack, run with `env`: (summary, output).
    fn run(&self, script: &Path, env: &[(&str, &str)]) -> (serde_json::Value, String, PathBuf) {
        let o = pbsimage(&[
            "-q",
            "--config",
            self.cfg.to_str().unwrap(),
            "build",
            "--json",
            script.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let reference = v["reference"].as_str().unwrap().to_owned();
        assert!(reference.starts_with(&self.reg.host), "{reference}");
        let work = script.parent().unwrap();
        let pulled = work.join("pulled");
        run_ok(
            Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:job", pulled.display())),
        );
        let bundle = work.join("bundle");
        run_ok(
            Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:job", pulled.display()))
                .arg(&bundle),
        );
        let name = script.file_name().unwrap().to_str().unwrap();
        let out = run_job_with(&bundle.join("rootfs"), name, env);
        (v, out, bundle)
    }
}

fn cc(dir: &Path, args: &[&str]) {
    run_ok(Command::new("gcc").args(args).current_dir(dir));
}

#[test]
fn cpp_job_runs_and_carries_its_rpm_manifest_and_sbom() {
    let e = setup();
    let d = e.job("fib", &[]);
    for f in ["job.sh", "fib.cpp"] {
        std::fs::copy(
            Path::new("fixtures/jobs/paper-listing3-fib").join(f),
            d.join(f),
        )
        .unwrap();
    }
    require("g++", "g++");
    run_ok(
        Command::new("g++")
            .args(["-O2", "-o", "a.out", "fib.cpp"])
            .current_dir(&d),
    );
    let (v, out, bundle) = e.run(&d.join("job.sh"), &[]);
    assert_eq!(out, "0 1 1 2 3 5\n");
    // The rpm manifest scanners read: one line per package, glibc and libstdc++ among them.
    let manifest =
        std::fs::read_to_string(bundle.join("rootfs/var/lib/rpmmanifest/container-manifest-2"))
            .unwrap();
    let names: Vec<&str> = manifest
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(
        names.contains(&"glibc") && names.contains(&"libstdc++"),
        "{manifest}"
    );
    assert_eq!(names.len() as u64, v["packages"].as_u64().unwrap());
    assert!(manifest.lines().all(|l| l.split('\t').count() == 10));
    // The SBOM beside the Kubernetes manifest: every package with its RPM's sha256.
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("job.spdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let pkgs = sbom["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), names.len() + 1);
    let glibc = pkgs.iter().find(|p| p["name"] == "glibc").unwrap();
    let sha = glibc["checksums"][0]["checksumValue"].as_str().unwrap();
    let version = glibc["versionInfo"].as_str().unwrap();
    let rpm = fixture_repos()
        .join("main")
        .join(format!("glibc-{version}.x86_64.rpm"));
    assert_eq!(sha, sha256_file(&rpm));
    // SPDX's own tools accept it.
    require_with("pyspdxtools", "pip install spdx-tools");
    run_ok(
        Command::new("pyspdxtools")
            .arg("-i")
            .arg(d.join("job.spdx.json")),
    );
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn script_job_runs() {
    let e = setup();
    let d = e.job("hello", &[]);
    std::fs::copy(
        "fixtures/jobs/paper-listing2-script/job.sh",
        d.join("job.sh"),
    )
    .unwrap();
    let (_, out, _) = e.run(&d.join("job.sh"), &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("job fib on "), "{out}");
    assert_eq!(lines[1], "0 1 1 2 3 5 ");
}

#[test]
fn openmp_job_runs_with_libgomp_from_the_repo() {
    let e = setup();
    let d = e.job("omp", &[]);
    for f in ["job.sh", "omp.c"] {
        std::fs::copy(Path::new("fixtures/jobs/openmp").join(f), d.join(f)).unwrap();
    }
    cc(&d, &["-O2", "-fopenmp", "-o", "omp", "omp.c"]);
    let (v, out, _) = e.run(&d.join("job.sh"), &[("OMP_NUM_THREADS", "4")]);
    assert_eq!(out, "threads: 4\n");
    let manifest = std::fs::read_to_string(d.join("job.k8s.yaml")).unwrap();
    assert!(manifest.contains("OMP_NUM_THREADS"), "{manifest}");
    assert!(v["packages"].as_u64().unwrap() > 0);
}

#[test]
fn origin_job_runs_with_its_bundled_library() {
    let e = setup();
    let d = e.job(
        "origin",
        &[
            (
                "fib.c",
                "#include <math.h>\nint fib(int n) { return (int)lround((pow((1+sqrt(5))/2, n) - pow((1-sqrt(5))/2, n)) / sqrt(5)); }\n",
            ),
            (
                "main.c",
                "#include <stdio.h>\nint fib(int);\nint main(void) { for (int i = 0; i < 6; i++) printf(\"%d \", fib(i)); printf(\"\\n\"); return 0; }\n",
            ),
            (
                "job.sh",
                "#!/bin/bash\n#PBS -N origin\n#PBS -B origin\n./origin\n",
            ),
        ],
    );
    std::fs::create_dir(d.join("lib")).unwrap();
    cc(
        &d,
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wl,-soname,libfib.so.1",
            "-o",
            "lib/libfib.so.1",
            "fib.c",
            "-lm",
        ],
    );
    cc(
        &d,
        &[
            "-O2",
            "-o",
            "origin",
            "main.c",
            "lib/libfib.so.1",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
        ],
    );
    let (_, out, bundle) = e.run(&d.join("job.sh"), &[]);
    assert_eq!(out, "0 1 1 2 3 5 \n");
    assert!(bundle.join("rootfs/pbs/job/lib/libfib.so.1").is_file());
}

#[test]
fn library_from_ld_so_conf_d_is_on_the_library_path() {
    let e = setup();
    let d = e.job(
        "optlib",
        &[
            (
                "main.c",
                "#include <stdio.h>\nint fxopt_answer(void);\nint main(void) { printf(\"answer %d\\n\", fxopt_answer()); return 0; }\n",
            ),
            ("job.sh", "#!/bin/bash\n#PBS -N optlib\n#PBS -B app\n./app\n"),
        ],
    );
    // Link against a stand-in outside the job directory: the image gets the real one from
    // the fx-optlib package, in /opt/fxopt/lib64.
    let link = tempfile::tempdir().unwrap();
    std::fs::write(
        link.path().join("fxopt.c"),
        "int fxopt_answer(void) { return 0; }\n",
    )
    .unwrap();
    cc(
        link.path(),
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfxopt.so.1",
            "-o",
            "libfxopt.so",
            "fxopt.c",
        ],
    );
    let lib_dir = link.path().to_str().unwrap().to_owned();
    cc(
        &d,
        &["-O2", "-o", "app", "main.c", "-L", &lib_dir, "-lfxopt"],
    );
    let (_, out, bundle) = e.run(&d.join("job.sh"), &[]);
    assert_eq!(out, "answer 42\n");
    let runtime = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(
        runtime.contains("LD_LIBRARY_PATH=/opt/fxopt/lib64"),
        "{runtime}"
    );
}

#[test]
fn an_ordinary_user_builds_and_pushes() {
    require("setpriv", "util-linux");
    assert!(
        rustix::process::getuid().is_root(),
        "switching to an ordinary user needs root (CI runs as root)"
    );
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let repo = crate::http::Server::serve(&fixture_repos().join("main"));
    let reg = Registry::start();
    let top = tempfile::tempdir().unwrap();
    let cache = top.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let (d, cfg, script) = fib_job_at(&repo.url(""), &cache);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}[registry]\nhost = \"{0}\"\ninsecure = [\"{0}\"]\n",
            reg.host
        ),
    )
    .unwrap();
    // Everything the build writes belongs to nobody (65534): the job directory, the cache.
    for dir in [top.path(), d.path()] {
        run_ok(Command::new("chown").args(["-R", "65534:65534"]).arg(dir));
        run_ok(Command::new("chmod").arg("755").arg(dir));
    }
    let o = run_ok(
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg("env")
            .arg(format!("HOME={}", top.path().display()))
            .arg(env!("CARGO_BIN_EXE_pbsimage"))
            .args(["-q", "--config"])
            .arg(&cfg)
            .args(["build", "--json", "--output"])
            .arg(d.path().join("layout"))
            .arg(&script),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reference = v["reference"].as_str().unwrap();
    assert!(reference.starts_with(&reg.host), "{reference}");
    // The job check needs root (chroot): pull and run as the node would.
    let pulled = top.path().join("pulled");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:job", pulled.display())),
    );
    let bundle = top.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:job", pulled.display()))
            .arg(&bundle),
    );
    assert_eq!(run_job_in(&bundle.join("rootfs")), "0 1 1 2 3 5\n");
}
