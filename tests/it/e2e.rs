//! End to end through the CLI and a real container runtime: `pbsimage build --push` to
//! Debian's docker-registry, then the manifest it wrote played by `podman kube play` (runc):
//! the image pulled by digest, the job run as uid 1000 with a read-only root, no
//! capabilities, the restricted seccomp profile and the manifest's limits. The paper's C++ and
//! script jobs, OpenMP, Fortran, `$ORIGIN`, `/etc/ld.so.conf.d`, an array, the working
//! directory collected to the output volume, the job's user, a missing output directory and
//! the memory limit. The image is also copied back (`skopeo copy`, `umoci unpack`) to look
//! inside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::Registry;
use crate::common::*;
use crate::podman::{Played, Podman};

struct E2e {
    reg: Registry,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    podman: Podman,
    /// The output volume (a hostPath), world-writable as an NFS export for jobs would be.
    output: PathBuf,
    _cache: tempfile::TempDir,
}

fn setup() -> E2e {
    setup_with(Podman::new(), "")
}

/// [`setup`] with this podman, and `kube` added to the `[kube]` section.
fn setup_with(podman: Podman, kube: &str) -> E2e {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    require("gcc", "gcc");
    let reg = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = podman.dir().join("output");
    std::fs::create_dir(&output).unwrap();
    run_ok(Command::new("chmod").arg("1777").arg(&output));
    let cfg = dir.path().join("pipeline.toml");
    let url = format!("file://{}", fixture_repos().join("main").display());
    let text = repo_config(
        &[("fixture", url)],
        cache.path(),
        &format!(
            "[kube.output-volume]\ntype = \"host-path\"\npath = \"{}\"\n\
             {BASE}[registry]\nhost = \"{1}\"\ninsecure = [\"{1}\"]\n",
            output.display(),
            reg.host
        ),
    )
    .replace(
        "[kube]\n",
        &format!("[kube]\nallow-host-path = true\n{kube}"),
    );
    std::fs::write(&cfg, text).unwrap();
    E2e {
        reg,
        dir,
        cfg,
        podman,
        output,
        _cache: cache,
    }
}

/// A pod name for a job directory: a DNS label, unique within the test's podman.
fn pod_name(script: &Path, index: Option<u32>) -> String {
    let dir = script
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    let base: String = dir
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    match index {
        Some(i) => format!("{base}-{i}"),
        None => base,
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

    /// build --push: the summary.
    fn build(&self, script: &Path, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "-q",
            "--config",
            self.cfg.to_str().unwrap(),
            "build",
            "--json",
        ];
        args.extend(extra);
        args.push(script.to_str().unwrap());
        let o = pbsimage(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let reference = v["reference"].as_str().unwrap().to_owned();
        assert!(reference.starts_with(&self.reg.host), "{reference}");
        v
    }

    /// The pushed image copied back and unpacked: its bundle (rootfs, config.json).
    fn unpack(&self, script: &Path, reference: &str) -> PathBuf {
        let work = script.parent().unwrap();
        let pulled = work.join("pulled");
        run_ok(
            Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:job", pulled.display())),
        );
        validate_oci_layout(&pulled);
        let bundle = work.join("bundle");
        run_ok(
            Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:job", pulled.display()))
                .arg(&bundle),
        );
        bundle
    }

    /// Plays the manifest the build wrote beside `script` (index `index` of an Indexed Job).
    fn play(&self, script: &Path, index: Option<u32>, env: &[(&str, &str)]) -> Played {
        let manifest = script.with_extension("k8s.yaml");
        self.podman
            .play(&manifest, &pod_name(script, index), index, env)
    }

    /// build --push, unpack, play: (summary, the job's standard output, the bundle). The job
    /// must succeed.
    fn run(&self, script: &Path, env: &[(&str, &str)]) -> (serde_json::Value, String, PathBuf) {
        let v = self.build(script, &[]);
        let bundle = self.unpack(script, v["reference"].as_str().unwrap());
        let p = self.play(script, None, env);
        if p.exit != 0 {
            let err = self
                .collected(script, "e")
                .map(|f| std::fs::read_to_string(f).unwrap_or_default());
            let out = self
                .collected(script, "o")
                .map(|f| std::fs::read_to_string(f).unwrap_or_default());
            panic!("the job failed: {p:?}\nits .o: {out:?}\nits .e: {err:?}");
        }
        (v, self.job_output(script, &p), bundle)
    }

    /// The job's standard output: its `.o` file in the collected directory on the output
    /// volume (the container log holds only the wrapper's own messages).
    fn job_output(&self, script: &Path, p: &Played) -> String {
        let found = self.collected(script, "o");
        assert!(
            found.is_some(),
            "no .o file on {}: {p:?}",
            self.output.display()
        );
        std::fs::read_to_string(found.unwrap()).unwrap()
    }

    /// The newest `<name>.<o|e><id>` file of the job on the output volume.
    fn collected(&self, _script: &Path, stream: &str) -> Option<PathBuf> {
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = walk(&self.output)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .contains(&format!(".{stream}"))
                    && p.parent() != Some(self.output.as_path())
            })
            .map(|p| (std::fs::metadata(&p).unwrap().modified().unwrap(), p))
            .collect();
        found.sort();
        found.pop().map(|(_, p)| p)
    }
}

/// Every file below `dir` (none if it is not there).
fn walk(dir: &Path) -> Vec<PathBuf> {
    crate::repo::walk_if_exists(dir)
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
    // The Pod form (the paper's Listing 1), played as it is.
    let script = d.join("job.sh");
    let v = e.build(&script, &["--kind", "pod"]);
    e.unpack(&script, v["reference"].as_str().unwrap());
    assert!(
        std::fs::read_to_string(script.with_extension("k8s.yaml"))
            .unwrap()
            .starts_with("apiVersion: v1\nkind: Pod\n")
    );
    let p = e.play(&script, None, &[]);
    assert_eq!(p.exit, 0, "{p:?}");
    let out = e.job_output(&script, &p);
    let lines: Vec<&str> = out.lines().collect();
    // PBS_JOBNAME is -N; the host name is the pod's.
    assert_eq!(lines[0], "job hello on hello", "{out}");
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
    let (v, out, _) = e.run(&d.join("job.sh"), &[]);
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
    push_to(&cfg, &reg.host);
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
    // Played as the node would: pulled by digest, run as uid 1000. Without an output
    // volume the job's output is the container log.
    let podman = Podman::new();
    let p = podman.play(&script.with_extension("k8s.yaml"), "fib-nobody", None, &[]);
    assert_eq!((p.exit, p.stdout.as_str()), (0, "0 1 1 2 3 5\n"), "{p:?}");
}

#[test]
fn fortran_job_runs_with_libgfortran_from_the_repo() {
    require("gfortran", "gfortran");
    let e = setup();
    let d = e.job(
        "fortran",
        &[
            (
                "fib.f90",
                "program fib\n  integer :: a, b, t, i\n  a = 0\n  b = 1\n  do i = 1, 6\n    \
                 write(*, '(I0,1X)', advance='no') a\n    t = a + b\n    a = b\n    b = t\n  \
                 end do\n  print *\nend program fib\n",
            ),
            (
                "job.sh",
                "#!/bin/bash\n#PBS -N ffib\n#PBS -B ffib\n./ffib\n",
            ),
        ],
    );
    run_ok(
        Command::new("gfortran")
            .args(["-O2", "-o", "ffib", "fib.f90"])
            .current_dir(&d),
    );
    let (v, out, _) = e.run(&d.join("job.sh"), &[]);
    assert_eq!(out.trim_end(), "0 1 1 2 3 5", "{out}");
    let packages = v["packages"].as_u64().unwrap();
    assert!(packages > 0);
}

/// The job as a cluster runs it: its user, a writable working directory and $TMPDIR under
/// a read-only root, no capabilities, no new privileges, seccomp, the cpu and memory limits;
/// what it made collected to the output volume.
#[test]
fn a_job_runs_as_its_user_and_its_results_are_collected() {
    let e = setup();
    let d = e.job(
        "results",
        &[
            (
                "job.sh",
                r##"#!/bin/bash
#PBS -N results
#PBS -l nodes=1:ppn=2,mem=256mb
echo "user $(id -u):$(id -g) $(id -un) $(whoami) HOME=$HOME USER=$USER LOGNAME=$LOGNAME"
echo "cwd $PWD PBS_O_WORKDIR=$PBS_O_WORKDIR"
echo result > result.txt
mkdir -p sub && echo deep > sub/deep.txt
echo more >> input.dat
[ -f job.sh ] && echo "# ran" >> job.sh
echo scratch > "$TMPDIR/scratch.txt" && echo "tmp writable $TMPDIR"
echo dot > "$HOME/.history" && echo "home writable"
if (echo x > /usr/x) 2>/dev/null; then echo "root writable"; else echo "root read-only"; fi
while read -r k v; do
    case $k in Uid:|Gid:|CapPrm:|CapEff:|CapBnd:|NoNewPrivs:|Seccomp:) echo "$k ${v%%[[:space:]]*}" ;; esac
done < /proc/self/status
if [ -r /sys/fs/cgroup/cpu.max ]; then
    echo "cpu $(cat /sys/fs/cgroup/cpu.max)"
    echo "memory $(cat /sys/fs/cgroup/memory.max)"
else
    echo "cpu $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
    echo "memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
fi
"##,
            ),
        ],
    );
    let v = e.build(&d.join("job.sh"), &[]);
    let bundle = e.unpack(&d.join("job.sh"), v["reference"].as_str().unwrap());
    // The image names the user; the job layer's /etc/passwd has it.
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(
        config.contains(r#""uid": 1000"#) || config.contains(r#""uid":1000"#),
        "{config}"
    );
    let passwd = std::fs::read_to_string(bundle.join("rootfs/etc/passwd")).unwrap();
    assert!(
        passwd.contains("pbsuser:x:1000:1000:pbsimage job user:/pbs/home:/bin/sh"),
        "{passwd}"
    );
    let p = e.play(&d.join("job.sh"), None, &[]);
    assert_eq!(p.exit, 0, "{p:?}");
    let out = e.job_output(&d.join("job.sh"), &p);
    let lines: Vec<&str> = out.lines().collect();
    let expected = [
        "user 1000:1000 pbsuser pbsuser HOME=/pbs/home USER=pbsuser LOGNAME=pbsuser",
        "cwd /pbs/work PBS_O_WORKDIR=/pbs/work",
        "tmp writable /tmp",
        "home writable",
        "root read-only",
        "Uid: 1000",
        "Gid: 1000",
        "NoNewPrivs: 1",
        "Seccomp: 2",
        "CapPrm: 0000000000000000",
        "CapEff: 0000000000000000",
        "CapBnd: 0000000000000000",
    ];
    for x in expected {
        assert!(lines.contains(&x), "`{x}` not in:\n{out}");
    }
    // 2 cpus (ppn=2) and 256 MiB.
    assert!(
        lines.contains(&"cpu 200000 100000") || lines.contains(&"cpu 200000 100000"),
        "{out}"
    );
    assert!(lines.contains(&"memory 268435456"), "{out}");
    // Collected: what the job made or changed in its working directory, directories kept;
    // not what it left alone, nor $TMPDIR or $HOME.
    let dir = std::fs::read_dir(&e.output)
        .unwrap()
        .map(|x| x.unwrap().path())
        .find(|x| {
            x.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("results.")
        })
        .expect("a results.<jobid> directory");
    let mut got: Vec<String> = walk(&dir)
        .iter()
        .map(|x| x.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .filter(|x| !x.starts_with("results.o") && !x.starts_with("results.e"))
        .collect();
    got.sort();
    // The image's job files are the script, the binary and its libraries; a changed one is
    // collected too.
    assert_eq!(
        got,
        ["input.dat", "job.sh", "result.txt", "sub/deep.txt"],
        "{}",
        dir.display()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("input.dat")).unwrap(),
        "more\n"
    );
    assert!(
        std::fs::read_to_string(dir.join("job.sh"))
            .unwrap()
            .ends_with("\n# ran\n")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/deep.txt")).unwrap(),
        "deep\n"
    );
}

/// An array job's pods, as the Indexed Job runs them: the completion index picks the element.
#[test]
fn array_elements_run_at_their_indexes() {
    let e = setup();
    let d = e.job(
        "array",
        &[(
            "job.sh",
            "#!/bin/bash\n#PBS -N arr\n#PBS -t 1-3\necho \"element $PBS_ARRAYID of $PBS_JOBNAME\"\n",
        )],
    );
    e.build(&d.join("job.sh"), &[]);
    for (index, id) in [(0, 1), (2, 3)] {
        let p = e.play(&d.join("job.sh"), Some(index), &[]);
        assert_eq!(p.exit, 0, "{p:?}");
        let o = walk(&e.output)
            .into_iter()
            .find(|x| {
                let n = x.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("arr.o") && n.ends_with(&format!("-{id}"))
            })
            .unwrap_or_else(|| panic!("no arr.o*-{id}: {p:?}"));
        assert_eq!(
            std::fs::read_to_string(o).unwrap(),
            format!("element {id} of arr\n")
        );
    }
}

/// PBS runs the job whatever its output path; a missing directory is made.
#[test]
fn a_missing_output_directory_is_made_and_the_job_runs() {
    let e = setup();
    let d = e.job(
        "outdir",
        &[(
            "job.sh",
            "#!/bin/bash\n#PBS -N outdir\n#PBS -o out/missing-dir/\necho ran\n",
        )],
    );
    e.build(&d.join("job.sh"), &[]);
    let p = e.play(&d.join("job.sh"), None, &[]);
    assert_eq!(p.exit, 0, "{p:?}");
    let files: Vec<PathBuf> = walk(&e.output.join("out/missing-dir"));
    let o = files
        .iter()
        .find(|x| {
            x.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("outdir.o")
        })
        .unwrap_or_else(|| panic!("{files:?} {p:?}"));
    assert_eq!(std::fs::read_to_string(o).unwrap(), "ran\n");
}

/// `mem=64mb` is the container's limit: a job allocating 300 MB is killed, and the wrapper
/// says so on the container log.
#[test]
fn a_job_over_its_memory_limit_is_killed_and_reported() {
    let e = setup();
    let d = e.job(
        "hog",
        &[
            (
                "hog.c",
                "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
                 int main(void) { size_t n = (size_t)300 << 20; char *p = malloc(n);\n\
                 if (!p) return 2; memset(p, 1, n); printf(\"%d\\n\", p[n - 1]); return 0; }\n",
            ),
            (
                "job.sh",
                "#!/bin/bash\n#PBS -N hog\n#PBS -l mem=64mb\n#PBS -B hog\n./hog\n",
            ),
        ],
    );
    cc(&d, &["-O0", "-o", "hog", "hog.c"]);
    e.build(&d.join("job.sh"), &[]);
    let p = e.play(&d.join("job.sh"), None, &[]);
    assert_eq!(p.exit, 137, "{p:?}");
    // (podman's OOMKilled stays false: the kernel killed the job's process, not the
    // container's first one, the wrapper, which reports it.)
    assert!(p.stderr.contains("killed by signal 9"), "{p:?}");
}

/// A single-node MPI job as HPC users write it (fixtures/jobs/mpi-hello: `module load
/// mpi/openmpi-x86_64`, then `mpirun -np 2 ./hello_mpi`, a C program built with the host's
/// mpicc) under the runtime, as uid 1000 with a read-only root: the wrapper's BASH_ENV gives
/// the script `module`, the modulefile puts Open MPI's bin and lib on PATH and
/// LD_LIBRARY_PATH, and the real Open MPI (the fixture `openmpi`, Debian's build in EL's
/// layout) starts both ranks, which talk to each other (the allreduce).
#[test]
fn a_single_node_mpi_job_runs_its_ranks_with_open_mpi() {
    let e = setup();
    require("mpicc", "libopenmpi-dev");
    let d = e.job("ranks", &[]);
    for f in ["job.sh", "hello_mpi.c"] {
        std::fs::copy(Path::new("fixtures/jobs/mpi-hello").join(f), d.join(f)).unwrap();
    }
    run_ok(
        Command::new("mpicc")
            .args(["-O2", "-o", "hello_mpi", "hello_mpi.c"])
            .current_dir(&d),
    );
    let (_, out, bundle) = e.run(&d.join("job.sh"), &[]);
    let manifest =
        std::fs::read_to_string(bundle.join("rootfs/var/lib/rpmmanifest/container-manifest-2"))
            .unwrap();
    for p in ["openmpi", "pmix", "hwloc-libs", "environment-modules"] {
        assert!(
            manifest.lines().any(|l| l.split('\t').next() == Some(p)),
            "{p}: {manifest}"
        );
    }
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "MPI_HOME=/usr/lib64/openmpi", "{out}");
    lines.sort();
    assert_eq!(lines.len(), 2, "{out}");
    for (r, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with(&format!("rank {r} of 2 on ")) && l.ends_with(": sum of ranks 1"),
            "{out}"
        );
    }
}

/// The nodes of a multi-node job as the controller would make them, played in the test's
/// network namespace: pod `i` of `pods` is node `i` (hostname, subdomain and, standing in
/// for the headless Service's DNS, host aliases of every node), at address 10 + i; `key`
/// replaces the ssh Secret volume with a hostPath directory whose files are as kubelet
/// makes a Secret volume's (root's, the job's group, mode 0440). Node 0 runs to its end;
/// the others are started first. Returns node 0's run.
fn play_nodes(
    e: &E2e,
    reference: &str,
    pods: Vec<(String, k8s_openapi::api::core::v1::Pod)>,
    subdomain: &str,
    key: &Path,
) -> Played {
    use k8s_openapi::api::core::v1::{HostAlias, HostPathVolumeSource};
    e.podman.pull(reference);
    let ip = |i: usize| e.podman.address(10 + i as u8);
    let aliases: Vec<HostAlias> = pods
        .iter()
        .enumerate()
        .map(|(i, (host, _))| HostAlias {
            ip: ip(i),
            hostnames: Some(vec![format!("{host}.{subdomain}")]),
        })
        .collect();
    let mut names = Vec::new();
    for (i, (host, mut pod)) in pods.into_iter().enumerate().rev() {
        pod.metadata.name = Some(host.clone());
        let spec = pod.spec.as_mut().unwrap();
        spec.hostname = Some(host.clone());
        spec.subdomain = Some(subdomain.to_owned());
        spec.host_aliases = Some(aliases.clone());
        for v in spec.volumes.iter_mut().flatten() {
            if v.name == "pbs-ssh" {
                v.secret = None;
                v.host_path = Some(HostPathVolumeSource {
                    path: key.display().to_string(),
                    type_: Some("Directory".into()),
                });
            }
        }
        e.podman
            .start(&pod, &["--network", &e.podman.network(), "--ip", &ip(i)]);
        names.push(host);
    }
    let launcher = names.last().unwrap().clone();
    // Node 0's container is the job's (`<pod>-<container>`).
    let ctr = format!("{launcher}-job");
    let p = e.podman.wait(&ctr);
    let mut worker_logs = String::new();
    for n in &names {
        if *n != launcher {
            let o = e.podman.cmd().args(["pod", "logs", n]).output().unwrap();
            worker_logs.push_str(&String::from_utf8_lossy(&o.stdout));
            worker_logs.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        e.podman.run(&["pod", "rm", "--force", n]);
    }
    if p.exit != 0 {
        let read = |s: &str| {
            e.collected(Path::new("."), s)
                .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        };
        panic!(
            "node 0 failed: {p:?}\nits .o: {:?}\nits .e: {:?}\nthe other nodes: {worker_logs}",
            read("o"),
            read("e")
        );
    }
    p
}

/// The key pair's directory as kubelet makes a Secret volume: files owned by root, group
/// the pods' fsGroup (1000), mode 0440.
fn key_dir(e: &E2e, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = e.podman.dir().join("ssh-key");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        let f = dir.join(name);
        std::fs::write(&f, bytes).unwrap();
        run_ok(Command::new("chown").arg("0:1000").arg(&f));
        run_ok(Command::new("chmod").arg("0440").arg(&f));
    }
    dir
}

/// A two-node MPI job's build for the networked tests: fixtures/jobs/mpi-hello on
/// `nodes=2:ppn=1`, built with the host's mpicc; returns the script and the summary.
fn two_node_job(e: &E2e, name: &str, extra: &str) -> (PathBuf, serde_json::Value) {
    require("mpicc", "libopenmpi-dev");
    let d = e.job(name, &[]);
    std::fs::copy("fixtures/jobs/mpi-hello/hello_mpi.c", d.join("hello_mpi.c")).unwrap();
    let script = std::fs::read_to_string("fixtures/jobs/mpi-hello/job.sh")
        .unwrap()
        .replace("nodes=1:ppn=2", "nodes=2:ppn=1")
        + extra;
    std::fs::write(d.join("job.sh"), script).unwrap();
    run_ok(
        Command::new("mpicc")
            .args(["-O2", "-o", "hello_mpi", "hello_mpi.c"])
            .current_dir(&d),
    );
    let v = e.build(&d.join("job.sh"), &[]);
    (d.join("job.sh"), v)
}

/// Both ranks of a two-node job, each on its own node: rank r on `hosts[r]`.
fn assert_two_ranks(out: &str, hosts: [&str; 2]) {
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "MPI_HOME=/usr/lib64/openmpi", "{out}");
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("rank 0 of 2 on {}: sum of ranks 1", hosts[0]),
            format!("rank 1 of 2 on {}: sum of ranks 1", hosts[1]),
        ],
        "{out}"
    );
}

/// `[kube] mpi = "ssh"`: the Indexed Job's two pods, in a network namespace the test makes.
/// Node 1 runs the job's sshd (as uid 1000, read-only root, the generated Secret's key);
/// node 0's `mpirun` (no host file given: the wrapper's node file is Open MPI's default)
/// starts rank 1 there through pbsimage's remote shell, which carries the module's PATH and
/// LD_LIBRARY_PATH to orted. Both ranks report their own host names.
#[test]
fn a_two_node_mpi_job_runs_across_two_pods_over_ssh() {
    let e = setup_with(Podman::networked(), "mpi = \"ssh\"\n");
    // A plain ssh to the other node, as scripts do on a PBS cluster: the Secret's
    // ~/.ssh/config gives it the port and the key.
    let (script, v) = two_node_job(
        &e,
        "two",
        "mapfile -t nodes < \"$PBS_NODEFILE\"\nssh \"${nodes[1]}\" 'read -r h < /proc/sys/kernel/hostname; echo ssh reached $h'\n",
    );
    let manifest = script.with_extension("k8s.yaml");
    validate_kubernetes(std::slice::from_ref(&manifest));
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_saphyr::from_str(yaml.split("\n---\n").next().unwrap()).unwrap();
    let data = secret.data.unwrap();
    let key = key_dir(
        &e,
        &data
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.clone()))
            .collect::<Vec<_>>(),
    );
    let job: k8s_openapi::api::batch::v1::Job =
        serde_saphyr::from_str(yaml.split("\n---\n").nth(1).unwrap()).unwrap();
    let name = job.metadata.name.clone().unwrap();
    let pods = (0..2)
        .map(|i| {
            let mut pod = crate::podman::pod_of(&yaml, &format!("{name}-{i}"));
            let c = &mut pod.spec.as_mut().unwrap().containers[0];
            c.env
                .get_or_insert_with(Vec::new)
                .push(k8s_openapi::api::core::v1::EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: Some(i.to_string()),
                    value_from: None,
                });
            (format!("{name}-{i}"), pod)
        })
        .collect();
    let p = play_nodes(&e, v["reference"].as_str().unwrap(), pods, &name, &key);
    let out = e.job_output(&script, &p);
    let (ranks, ssh) = out
        .rsplit_once("ssh reached ")
        .unwrap_or_else(|| panic!("no output of the plain ssh: {out}"));
    assert_eq!(ssh, format!("{name}-1\n"));
    assert_two_ranks(ranks, [&format!("{name}-0"), &format!("{name}-1")]);
}

/// `[kube] mpi = "mpi-operator"`: the MPIJob's launcher (node 0, which runs ranks too) and its
/// one worker, as the MPI Operator makes them (pods from the replica templates, host names
/// `<job>-launcher` and `<job>-worker-0` under the job's Service, a key pair it generates —
/// here ssh-keygen — mounted at sshAuthMountPath), in a network namespace the test makes.
/// The MPIJob first passes the operator's CRD schema.
#[test]
fn an_mpijob_runs_its_launcher_and_worker_over_ssh() {
    require("ssh-keygen", "openssh-client");
    let e = setup_with(Podman::networked(), "mpi = \"mpi-operator\"\n");
    let (script, v) = two_node_job(&e, "mpijob", "");
    let manifest = script.with_extension("k8s.yaml");
    validate_custom_resources("kubeflow.org_mpijobs.yaml", std::slice::from_ref(&manifest));
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    let mj: pbsimage::kube::mpijob::MpiJob = serde_saphyr::from_str(&yaml).unwrap();
    let name = mj.metadata.name.clone().unwrap();
    assert_eq!(mj.spec.ssh_auth_mount_path, "/pbs/home/.ssh");
    let keyfile = e.podman.dir().join("operator-key");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", "", "-C", "mpi-operator", "-f"])
            .arg(&keyfile),
    );
    let public = std::fs::read(keyfile.with_extension("pub")).unwrap();
    let key = key_dir(
        &e,
        &[
            ("id_rsa", std::fs::read(&keyfile).unwrap()),
            ("id_rsa.pub", public.clone()),
            ("authorized_keys", public),
        ],
    );
    let pod = |role: &str, host: String| {
        let spec = mj.spec.mpi_replica_specs[role]
            .template
            .spec
            .clone()
            .unwrap();
        let mut spec = spec;
        // The operator's Secret volume at sshAuthMountPath (the test's hostPath stands in).
        spec.volumes
            .get_or_insert_with(Vec::new)
            .push(k8s_openapi::api::core::v1::Volume {
                name: "pbs-ssh".into(),
                secret: Some(Default::default()),
                ..Default::default()
            });
        spec.containers[0]
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(k8s_openapi::api::core::v1::VolumeMount {
                name: "pbs-ssh".into(),
                mount_path: mj.spec.ssh_auth_mount_path.clone(),
                read_only: Some(true),
                ..Default::default()
            });
        (
            host,
            k8s_openapi::api::core::v1::Pod {
                metadata: Default::default(),
                spec: Some(spec),
                status: None,
            },
        )
    };
    let pods = vec![
        pod("Launcher", format!("{name}-launcher")),
        pod("Worker", format!("{name}-worker-0")),
    ];
    let p = play_nodes(&e, v["reference"].as_str().unwrap(), pods, &name, &key);
    let out = e.job_output(&script, &p);
    assert_two_ranks(
        &out,
        [&format!("{name}-launcher"), &format!("{name}-worker-0")],
    );
}

/// A site module from the centre's software tree (`[needs] modules-from-host`), as on the
/// cluster: the tree is `[kube.software-volume]` (here a hostPath standing for the NFS export)
/// mounted read-only at /apps, its modulefile directory on MODULEPATH after the image's. The
/// image has only environment-modules for it; the job loads the site's module with the real
/// modulecmd (a versioned Tcl modulefile with a variable), runs the tool from /apps, and
/// also loads the image's Open MPI module beside it.
#[test]
fn a_site_module_comes_from_the_mounted_software_tree() {
    let e = setup();
    let apps = e.podman.dir().join("apps");
    let bin = apps.join("hello/1.2/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("hello-site"),
        "#!/bin/sh\necho \"hello from the site tree, $HELLO_ROOT\"\n",
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("755").arg(bin.join("hello-site")));
    let mf = apps.join("modulefiles/site/hello");
    std::fs::create_dir_all(&mf).unwrap();
    for v in ["1.0", "1.2"] {
        std::fs::write(
            mf.join(v),
            format!(
                "#%Module1.0\nset root /apps/hello/{v}\nprepend-path PATH $root/bin\nsetenv HELLO_ROOT $root\n"
            ),
        )
        .unwrap();
    }
    run_ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&apps));
    let mut cfg = std::fs::read_to_string(&e.cfg).unwrap();
    cfg.push_str(&format!(
        "[needs]\nmodules-from-host = [\"site/*\"]\n\
         [kube.software-volume]\ntype = \"host-path\"\npath = \"{}\"\nmount-path = \"/apps\"\n\
         modulepath = [\"/apps/modulefiles\"]\n",
        apps.display()
    ));
    std::fs::write(&e.cfg, cfg).unwrap();
    let d = e.job(
        "site",
        &[(
            "job.sh",
            "#!/bin/bash\n#PBS -N site\nmodule load site/hello\nhello-site\n\
             module load mpi/openmpi-x86_64\necho \"$LOADEDMODULES\"\n",
        )],
    );
    let (_, out, _) = e.run(&d.join("job.sh"), &[]);
    assert_eq!(
        out,
        "hello from the site tree, /apps/hello/1.2\nsite/hello/1.2:mpi/openmpi-x86_64\n"
    );
}
