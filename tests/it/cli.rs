//! The CLI as a user meets it: exit codes, error rendering, the README commands.

use crate::common::*;

#[test]
fn readme_demo_command_prints_a_job() {
    // The README's first command (until the build stage lands).
    let o = pbsimage(&[
        "manifest",
        "fixtures/jobs/paper-listing3-fib/job.sh",
        "--image",
        &format!("localhost:5000/pbs/fib@{DIGEST}"),
        "--run-as",
        "1000:1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("apiVersion: batch/v1\nkind: Job\n"),
        "{out}"
    );
    let job: k8s_openapi::api::batch::v1::Job = serde_saphyr::from_str(&out).unwrap();
    // -N and the script's digest: another script named fib is another Job.
    let name = job.metadata.name.unwrap();
    assert!(
        name.starts_with("fib-") && name.len() == "fib-".len() + 8,
        "{name}"
    );
}

#[test]
fn kind_pod() {
    let o = pbsimage(&[
        "manifest",
        "fixtures/jobs/paper-listing2-script/job.sh",
        "--image",
        "example/x:1",
        "--kind",
        "pod",
        "--run-as",
        "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("apiVersion: v1\nkind: Pod\n"));
    assert!(
        stderr(&o).contains("not pinned by digest"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn parse_json_is_data() {
    let o = pbsimage(&["parse", "--json", "fixtures/jobs/gpu/job.sh"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "train");
    assert_eq!(v["resources"]["mem"], 64u64 << 30);
}

#[test]
fn directive_prefix_flag_and_env() {
    let o = pbsimage(&[
        "parse",
        "-C",
        "#QSUB",
        "--json",
        "fixtures/jobs/custom-prefix/job.sh",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "prefixed");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args(["parse", "--json", "fixtures/jobs/custom-prefix/job.sh"])
        .env("PBS_DPREFIX", "#QSUB")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["resources"]["nodes"]["groups"][0]["ppn"], 3);
}

#[test]
fn errors_render_with_hints_and_fail() {
    let o = pbsimage(&["parse", "fixtures/jobs/bad-size/job.sh"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: fixtures/jobs/bad-size/job.sh:3:28: invalid value for -l"),
        "{e}"
    );
    assert!(e.contains("\nhint: "), "{e}");
    assert!(o.stdout.is_empty());

    let o = pbsimage(&["parse", "fixtures/jobs/no-such-dir/job.sh"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot read job script `fixtures/jobs/no-such-dir/job.sh`"),
        "{e}"
    );
    assert!(e.contains("Caused by:"), "{e}");

    let o = pbsimage(&["manifest", "fixtures/jobs/gpu/job.sh", "--image", "Bad Ref"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid image reference"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn root_needs_explicit_permission() {
    let o = pbsimage(&[
        "manifest",
        "fixtures/jobs/gpu/job.sh",
        "--image",
        "a/b",
        "--run-as",
        "0:0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refusing to run job `train` as uid 0"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_errors_name_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, "[kube]\nkind = \"job\"\nnamspace = \"x\"\n").unwrap();
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "manifest",
        "fixtures/jobs/gpu/job.sh",
        "--image",
        "a/b",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("line 3") && e.contains("namspace"), "{e}");
}

#[test]
fn committed_pipeline_toml_loads() {
    let c = pbsimage::config::Config::load(std::path::Path::new("pipeline.toml")).unwrap();
    assert_eq!(c.settings.repos[0].id.as_str(), "fixture");
    assert_eq!(c.cache_dir(), std::path::Path::new("cache"));
    assert_eq!(
        std::fs::read_to_string("pipeline.toml").unwrap(),
        pbsimage::config::EMBEDDED_DEFAULT
    );
}

#[test]
fn never_panics_on_odd_files() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 5] = [
        ("dir-as-script", b""),
        ("latin1.sh", b"#PBS -N caf\xe9\ntrue\n"),
        ("only-directives.sh", b"#PBS -N x\n#PBS -l walltime=1\n"),
        ("dangling.sh", b"#PBS -N\n"),
        ("cont-eof.sh", b"#PBS -N a \\"),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        if name == "dir-as-script" {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::fs::write(&p, bytes).unwrap();
        }
        let o = pbsimage(&["parse", p.to_str().unwrap()]);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{name}: {e}");
        if name != "latin1.sh" {
            assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        }
    }
}

/// The "done when" command, verbatim: no --run-as, committed pipeline.toml.
#[test]
fn done_when_command() {
    let o = pbsimage(&[
        "manifest",
        "fixtures/jobs/paper-listing3-fib/job.sh",
        "--image",
        &format!("example/x@{DIGEST}"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let job: k8s_openapi::api::batch::v1::Job = serde_saphyr::from_str(&stdout(&o)).unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_user, Some(1000));
}

#[test]
fn invoking_user_is_the_default_and_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, "[kube]\nkind = \"job\"\n").unwrap();
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "manifest",
        "fixtures/jobs/gpu/job.sh",
        "--image",
        "a/b",
    ]);
    let uid = rustix::process::getuid().as_raw();
    if uid == 0 {
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("hint: pass --run-as"), "{}", stderr(&o));
    } else {
        assert!(
            stdout(&o).contains(&format!("runAsUser: {uid}")),
            "{}",
            stdout(&o)
        );
    }
}

/// `pbsimage manifest` never prints a secret: with `[kube] mpi = "ssh"` a multi-node job's
/// manifest holds its ssh key, so it is refused on stdout (with the way out) and written with
/// `--output FILE`, owner-readable only; written again, the file keeps its key.
#[test]
fn manifest_never_prints_the_jobs_ssh_key() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        "[kube]\nrun-as-user = 1000\nrun-as-group = 1000\nmpi = \"ssh\"\n",
    )
    .unwrap();
    let image = format!("reg.example/pbs/mpi@sha256:{}", "0".repeat(64));
    let job = "fixtures/jobs/multinode-mpi/job.sh";
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--config",
            cfg.to_str().unwrap(),
            "manifest",
            job,
            "--image",
            image.as_str(),
        ];
        a.extend(extra);
        pbsimage(&a)
    };
    let o = args(&[]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty(), "nothing printed");
    let err = stderr(&o);
    assert!(
        err.contains("holds the job's ssh private key") && err.contains("hint: pass --output FILE"),
        "{err}"
    );
    let out = d.path().join("mpi.k8s.yaml");
    let o = args(&["--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read_to_string(&out).unwrap();
    assert!(first.contains("kind: Secret"), "{first}");
    let o = args(&["-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);
    // Jobs without a Secret still print.
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "manifest",
        "fixtures/jobs/openmp/job.sh",
        "--image",
        &image,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kind: Job"));
}
