//! Shared helpers: fixture paths, a fixed environment, a test config, the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pbsimage::config::{Config, Origin};
use pbsimage::image::ImageRef;
use pbsimage::job::{JobError, JobSpec, ScriptParser};
use pbsimage::kube::{Emitter, Manifest, RunAs};

pub const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub fn image() -> ImageRef {
    ImageRef::parse(&format!("registry.example.org/pbs/job@{DIGEST}")).unwrap()
}

/// Fixture job directories, sorted.
pub fn fixture_jobs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("fixtures/jobs")
        .expect("run from the package root")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("job.sh").is_file())
        .collect();
    v.sort();
    v
}

/// The environment `-v NAME` reads in tests.
pub fn fixed_env() -> BTreeMap<String, String> {
    BTreeMap::from([("HOME".into(), "/home/alice".into())])
}

/// Directive prefix per fixture (what `qsub -C` would be given).
pub fn prefix_for(dir: &Path) -> &'static str {
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("custom-prefix") => "#QSUB",
        _ => "#PBS",
    }
}

pub fn parse_fixture(dir: &Path) -> Result<JobSpec, JobError> {
    let env = fixed_env();
    let parser = ScriptParser {
        prefix: prefix_for(dir).into(),
        env: &env,
    };
    parser.parse(&dir.join("job.sh"))
}

/// A site-like config: NFS output volume, queues, a namespace.
pub const TEST_CONFIG: &str = r#"
[kube]
namespace = "hpc"
run-as-user = 1000
run-as-group = 1000
allow-jobset = true
[kube.output-volume]
type = "nfs"
server = "nfs.example.org"
path = "/export/pbs"
[kube.queues.batch]
labels = { "pbsimage.io/queue" = "batch" }
[kube.queues.gpu]
labels = { "pbsimage.io/queue" = "gpu" }
priority-class = "hpc-gpu"
node-selector = { "nvidia.com/gpu.present" = "true" }
"#;

pub fn test_config() -> Config {
    config_from(TEST_CONFIG)
}

/// A configuration from `text` (the embedded default's origin).
pub fn config_from(text: &str) -> Config {
    Config::from_str(text, Origin::Embedded, Path::new(".")).unwrap()
}

/// The value of variable `name` in the first container of `pod`.
pub fn container_env(pod: &k8s_openapi::api::core::v1::PodSpec, name: &str) -> Option<String> {
    pod.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

pub fn emit(job: &JobSpec, config: &Config, kind: pbsimage::config::KubeKind) -> Manifest {
    try_emit(job, config, kind).unwrap()
}

/// The manifest of `job` as uid 1000 running [`image`], or why not.
pub fn try_emit(
    job: &JobSpec,
    config: &Config,
    kind: pbsimage::config::KubeKind,
) -> Result<Manifest, pbsimage::kube::KubeError> {
    try_emit_named(job, config, kind, Default::default())
}

/// As [`try_emit`], with the objects named by `naming`.
pub fn try_emit_named(
    job: &JobSpec,
    config: &Config,
    kind: pbsimage::config::KubeKind,
    naming: pbsimage::kube::Naming,
) -> Result<Manifest, pbsimage::kube::KubeError> {
    Emitter {
        settings: &config.settings.kube,
        job_dir: &config.settings.image.job_dir,
        kind,
        run_as: RunAs {
            uid: 1000,
            gid: 1000,
        },
        naming,
    }
    .emit(job, &image())
}

/// Runs the built `pbsimage` binary.
pub fn pbsimage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args(args)
        .env_remove("PBSIMAGE_CONFIG")
        .env_remove("PBS_DPREFIX")
        .env("NO_COLOR", "1")
        .output()
        .expect("run pbsimage")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails (never skips) when a tool the test needs is missing, saying what to install.
pub fn require(tool: &str, package: &str) {
    require_with(tool, &format!("apt-get install -y {package}"));
}

/// As [`require`], with the command that installs the tool.
pub fn require_with(tool: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new(tool).is_file();
    assert!(
        found,
        "`{tool}` is missing: install it with `{install}` (.ci/run does)"
    );
}

/// Runs a command and insists that it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The fixture repositories, built once per test run by `scripts/fixture-repos` (rpmbuild +
/// createrepo_c).
pub fn fixture_repos() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        require("rpmbuild", "rpm");
        require("createrepo_c", "createrepo-c");
        require("zstd", "zstd");
        let dir = tempfile::Builder::new()
            .prefix("pbsimage-fixture-repos-")
            .tempdir()
            .unwrap()
            .keep();
        run_ok(Command::new("scripts/fixture-repos").arg(&dir));
        dir
    })
}

/// A pipeline.toml for the given `(id, baseurl)` repositories and a cache directory.
pub fn repo_config(repos: &[(&str, String)], cache: &Path, extra: &str) -> String {
    let mut s = format!(
        "[vars]\nbasearch = \"x86_64\"\n[cache]\ndir = \"{}\"\n[kube]\nrun-as-user = 1000\nrun-as-group = 1000\n",
        cache.display()
    );
    for (id, url) in repos {
        s.push_str(&format!("[[repo]]\nid = \"{id}\"\nbaseurl = \"{url}\"\n"));
    }
    s.push_str(extra);
    s
}

/// The file in `dir` whose name starts with `prefix` (a package by name).
pub fn find_prefixed(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

/// The shared base of the layer tests' configs.
pub const BASE: &str =
    "[base]\npackages = [\"filesystem\", \"setup\", \"glibc\", \"bash\", \"coreutils\"]\n";

/// A job directory (the paper's Fibonacci job, compiled) and a config for the repo at `repo`.
pub fn fib_job(repo: &Path, cache: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    fib_job_at(&format!("file://{}", repo.display()), cache)
}

/// As [`fib_job`], for a repository at any URL.
pub fn fib_job_at(url: &str, cache: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
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
        repo_config(&[("fixture", url.to_owned())], cache, BASE),
    )
    .unwrap();
    let script = d.path().join("job.sh");
    (d, cfg, script)
}

/// Runs the job wrapper in `root` (chroot, so root only) for the job in `/pbs/job/job.sh`.
pub fn run_job_in(root: &Path) -> String {
    run_job_with(root, "job.sh", &[])
}

/// Runs the job wrapper in `root` for `/pbs/job/<script>`, with the image's environment and
/// working directory (from umoci's `config.json` beside `root`, when there is one) and `env`
/// on top, in a chroot with its own /proc.
pub fn run_job_with(root: &Path, script: &str, env: &[(&str, &str)]) -> String {
    assert!(
        rustix::process::getuid().is_root(),
        "running the job needs chroot, so root (CI runs as root)"
    );
    require("/usr/sbin/chroot", "coreutils");
    // The image's environment and working directory, as a runtime would apply them.
    let mut image_env = Vec::new();
    let mut cwd = "/pbs/job".to_owned();
    if let Ok(b) = std::fs::read(root.with_file_name("config.json")) {
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        for kv in v["process"]["env"].as_array().into_iter().flatten() {
            if let Some((k, val)) = kv.as_str().and_then(|s| s.split_once('=')) {
                image_env.push((k.to_owned(), val.to_owned()));
            }
        }
        if let Some(c) = v["process"]["cwd"].as_str() {
            cwd = c.to_owned();
        }
    }
    // A private mount and pid namespace with /proc, as a container runtime gives: the loader
    // reads /proc/self/exe to expand $ORIGIN.
    require("unshare", "util-linux");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("/usr/sbin/chroot")
        .arg(root)
        .arg("/usr/bin/env")
        .arg(format!("--chdir={cwd}"))
        .arg(pbsimage::kube::WRAPPER_PATH)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(image_env);
    cmd.env("PBSIMAGE_SCRIPT", format!("/pbs/job/{script}"))
        .env("PBSIMAGE_SHELL", "/bin/bash")
        .env("PBS_O_WORKDIR", "/pbs/job")
        .env("PBS_JOBNAME", "fib")
        .env("TMPDIR", "/tmp");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run_ok(&mut cmd);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the kubelet does to an env value before the container sees it: `$$` → `$`,
/// `$(NAME)` → NAME's value (here `EXPANDED`), any other `$` kept.
pub fn kubelet_expand(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(end) = after.strip_prefix('(').and_then(|r| r.find(')')) {
            out.push_str("EXPANDED");
            rest = &after[end + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Runs `pbsimage args` under a Python parent whose only child it is, so that
/// `RUSAGE_CHILDREN` is exactly its peak RSS. Returns (output, peak RSS in MiB).
pub fn with_peak_rss(args: &[&str]) -> (std::process::Output, u64) {
    let script = "import resource,subprocess,sys\n\
        r = subprocess.run(sys.argv[1:], capture_output=True, timeout=120)\n\
        sys.stdout.buffer.write(r.stdout)\n\
        sys.stderr.buffer.write(r.stderr)\n\
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n\
        sys.exit(r.returncode)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_pbsimage"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("PBSIMAGE_CONFIG")
        .output()
        .expect("python3 runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let kib: u64 = err
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS line in {err}"));
    // Shown with --nocapture: the figures of the hostile-inputs table.
    eprintln!("peak RSS {} MiB: pbsimage {}", kib / 1024, args.join(" "));
    (out, kib / 1024)
}

/// Runs `pbsimage args`, which must fail; returns its stderr.
pub fn failing(args: &[&str]) -> String {
    let o = pbsimage(args);
    assert!(
        !o.status.success(),
        "`pbsimage {}` succeeded",
        args.join(" ")
    );
    stderr(&o)
}

/// Runs `cmd` with `input` on its stdin; its output.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The Kubernetes releases manifests are checked against: the oldest the README supports
/// (Indexed Jobs' successPolicy and backoffLimitPerIndex are on by default from 1.31) and the
/// newest kubernetes-validate knows.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.31.0", "1.37.0"];

/// Validates Kubernetes manifests offline, strictly (no unknown fields), against the OpenAPI
/// schemas of every release in [`KUBERNETES_VERSIONS`], with PyPI's kubernetes-validate.
pub fn validate_kubernetes(files: &[PathBuf]) {
    require_with(
        "kubernetes-validate",
        "pip install kubernetes-validate (scripts/test installs it into target/ci-venv)",
    );
    for v in KUBERNETES_VERSIONS {
        let o = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", v])
            .args(files)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "Kubernetes {v} refuses a manifest:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
    }
}

/// Validates the custom resources in `files` against the CRD in ../shared/schemas named
/// `crd` (strictly: unknown fields refused), with Python's jsonschema and PyYAML (both in
/// scripts/test's venv).
pub fn validate_custom_resources(crd: &str, files: &[PathBuf]) {
    let crd = Path::new("../shared/schemas").join(crd);
    assert!(crd.is_file(), "the CRD is {}", crd.display());
    let o = Command::new(schema_python())
        .arg("tests/it/crd_validate.py")
        .arg(&crd)
        .args(files)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} refuses:\n{}{}",
        crd.display(),
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

/// A python3 with jsonschema, referencing and PyYAML.
fn schema_python() -> &'static str {
    python_with("jsonschema, referencing, yaml")
}

/// The python3 (scripts/test's venv first) that imports `modules`.
pub fn python_with(modules: &str) -> &'static str {
    ["target/ci-venv/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", &format!("import {modules}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| panic!("no python3 with {modules}: scripts/test installs them"))
}

/// Validates an OCI image layout (oci-layout, index, manifests, configs) against the OCI
/// image-spec schemas in ../shared/schemas, with Python's jsonschema (kubernetes-validate's
/// dependency: the same venv).
pub fn validate_oci_layout(layout: &Path) {
    let python = schema_python();
    let schemas = Path::new("../shared/schemas/oci-image-spec-v1.1.1");
    assert!(
        schemas.is_dir(),
        "the OCI schemas are in {}",
        schemas.display()
    );
    let o = Command::new(python)
        .arg("tests/it/oci_validate.py")
        .arg(schemas)
        .arg(layout)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the OCI schemas refuse {}:\n{}{}",
        layout.display(),
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

/// Appends a `[registry]` section pushing to `host` over plain HTTP to the config at `cfg`.
pub fn push_to(cfg: &Path, host: &str) {
    let text = std::fs::read_to_string(cfg).unwrap();
    std::fs::write(
        cfg,
        format!("{text}[registry]\nhost = \"{host}\"\ninsecure = [\"{host}\"]\n"),
    )
    .unwrap();
}
