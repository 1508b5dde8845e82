//! The fixed job wrapper, executed for real with `sh`: output files, -j, arrays, PBS_NODEFILE,
//! and arguments that stay data.

use std::path::Path;
use std::process::Command;

use pbsimage::kube::WRAPPER_SCRIPT;

fn run_wrapper(dir: &Path, script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let wrapper = dir.join("pbs-job");
    std::fs::write(&wrapper, WRAPPER_SCRIPT).unwrap();
    let job = dir.join("job.sh");
    std::fs::write(&job, script).unwrap();
    // Its own TMPDIR (an emptyDir in a pod): tests running at once never share a nodefile.
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(&wrapper)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PBSIMAGE_SCRIPT", &job)
        .env("PBSIMAGE_SHELL", "/bin/sh")
        .env("TMPDIR", dir.join("tmp"))
        .env("PBS_JOBNAME", "fib")
        .env("PBS_JOBID", "fib-abc12");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn output_files_are_named_like_pbs() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = run_wrapper(
        d.path(),
        "echo to-stdout; echo to-stderr >&2; echo \"$PBS_ENVIRONMENT\"",
        &[("PBSIMAGE_OUTPUT_DIR", out.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("fib.ofib-abc12")).unwrap(),
        "to-stdout\nPBS_BATCH\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("fib.efib-abc12")).unwrap(),
        "to-stderr\n"
    );
}

#[test]
fn join_oe_and_explicit_paths() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("my out.txt");
    let o = run_wrapper(
        d.path(),
        "echo a; echo b >&2",
        &[
            ("PBSIMAGE_OUTPUT_DIR", out.to_str().unwrap()),
            ("PBSIMAGE_STDOUT", target.to_str().unwrap()),
            ("PBSIMAGE_JOIN", "oe"),
        ],
    );
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "a\nb\n");
}

#[test]
fn array_ids_follow_the_completion_index() {
    let d = tempfile::tempdir().unwrap();
    for (index, want) in [("0", "1"), ("1", "3"), ("2", "5"), ("3", "10"), ("4", "15")] {
        let o = run_wrapper(
            d.path(),
            "echo \"$PBS_ARRAYID\"",
            &[
                ("PBSIMAGE_ARRAY", "1-5:2,10-15:5"),
                ("JOB_COMPLETION_INDEX", index),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            want,
            "index {index}"
        );
    }
    let o = run_wrapper(
        d.path(),
        "true",
        &[("PBSIMAGE_ARRAY", "1-5:2"), ("JOB_COMPLETION_INDEX", "3")],
    );
    assert!(!o.status.success());
}

#[test]
fn nodefile_lists_every_slot() {
    let d = tempfile::tempdir().unwrap();
    let o = run_wrapper(
        d.path(),
        "cat \"$PBS_NODEFILE\"",
        &[
            ("PBSIMAGE_PPN_LIST", "2,1"),
            ("PBSIMAGE_HOST_PREFIX", "mpi"),
            ("PBSIMAGE_SUBDOMAIN", "mpi"),
            ("JOB_COMPLETION_INDEX", "0"),
        ],
    );
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "mpi-0.mpi\nmpi-0.mpi\nmpi-1.mpi\n"
    );
    let o = run_wrapper(d.path(), "wc -l < \"$PBS_NODEFILE\"", &[("PBS_NP", "3")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3");
}

/// In a JobSet the array element is the replicated Job's index (a pod label) and the node is
/// the completion index; host names are <jobset>-node-<element>-<node>.<jobset>.
#[test]
fn jobset_elements_know_their_array_id_and_their_nodes() {
    let d = tempfile::tempdir().unwrap();
    let o = run_wrapper(
        d.path(),
        "echo \"$PBS_ARRAYID $PBS_NODENUM\"; cat \"$PBS_NODEFILE\"",
        &[
            ("PBSIMAGE_ARRAY", "1-4:1"),
            ("PBSIMAGE_ARRAY_INDEX", "2"),
            ("JOB_COMPLETION_INDEX", "0"),
            ("PBSIMAGE_PPN_LIST", "2,1"),
            ("PBSIMAGE_HOST_PREFIX", "sweep-node"),
            ("PBSIMAGE_SUBDOMAIN", "sweep"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "3 0\nsweep-node-2-0.sweep\nsweep-node-2-0.sweep\nsweep-node-2-1.sweep\n"
    );
}

#[test]
fn arguments_and_names_stay_data() {
    let d = tempfile::tempdir().unwrap();
    let o = run_wrapper(
        d.path(),
        "for a in \"$@\"; do echo \"[$a]\"; done; echo \"$PBS_JOBNAME\"",
        &[
            ("PBSIMAGE_ARGS", "--x=* $(id) ;rm"),
            ("PBS_JOBNAME", "$(touch pwned);`x`"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[--x=*]\n[$(id)]\n[;rm]\n$(touch pwned);`x`\n"
    );
    assert!(!Path::new("pwned").exists());
}

/// `-o out/missing-dir/` still runs (the directory is made); an output path that cannot be
/// written never stops the job: its stream stays on the container log, the job's own exit
/// status stands, and the problem is reported on stderr at the end, as PBS does.
#[test]
fn output_paths_never_stop_the_job() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let missing = out.join("missing-dir/");
    let o = run_wrapper(
        d.path(),
        "echo hello",
        &[
            ("PBSIMAGE_OUTPUT_DIR", out.to_str().unwrap()),
            ("PBSIMAGE_STDOUT", &format!("{}/", missing.display())),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(missing.join("fib.ofib-abc12")).unwrap(),
        "hello\n"
    );
    // Under a regular file: not writable. The job runs, its status stands.
    let blocker = out.join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let bad = blocker.join("job.out");
    let o = run_wrapper(
        d.path(),
        "echo still-ran; echo to-err >&2; exit 3",
        &[
            ("PBSIMAGE_OUTPUT_DIR", out.to_str().unwrap()),
            ("PBSIMAGE_STDOUT", bad.to_str().unwrap()),
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "still-ran\n");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("cannot write the output file {}", bad.display())),
        "{stderr}"
    );
    // stderr still went to its file.
    assert_eq!(
        std::fs::read_to_string(out.join("fib.efib-abc12")).unwrap(),
        "to-err\n"
    );
}

/// The working directory is filled from the image's job files; `-d` is made below it; when
/// the job ends, what it made or changed (dotfiles, odd names and directories included) is
/// staged out beside the default output files, and nothing else.
#[test]
fn the_working_directory_is_filled_and_staged_out() {
    let d = tempfile::tempdir().unwrap();
    let (seed, work, out) = (
        d.path().join("seed"),
        d.path().join("work"),
        d.path().join("out"),
    );
    for p in [&seed, &work, &out] {
        std::fs::create_dir(p).unwrap();
    }
    std::fs::create_dir(seed.join("lib")).unwrap();
    std::fs::write(seed.join("lib/libx.so.1"), "lib").unwrap();
    std::fs::write(seed.join("input.dat"), "in\n").unwrap();
    std::fs::write(seed.join("kept.dat"), "same\n").unwrap();
    // The image's files are old (the layers' clamped mtimes).
    for f in ["lib/libx.so.1", "input.dat", "kept.dat"] {
        let t = std::fs::File::options()
            .write(true)
            .open(seed.join(f))
            .unwrap();
        t.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(315_532_800),
        )
        .unwrap();
    }
    let o = run_wrapper(
        d.path(),
        "pwd; cat ../input.dat; echo more >> ../input.dat; echo r > r.txt; echo h > ../.hidden; \
         mkdir -p '../a dir'; echo s > '../a dir/b c.txt'",
        &[
            ("PBSIMAGE_SEED", seed.to_str().unwrap()),
            ("PBS_O_WORKDIR", work.to_str().unwrap()),
            ("PBSIMAGE_CHDIR", work.join("sub").to_str().unwrap()),
            ("PBSIMAGE_OUTPUT_DIR", out.to_str().unwrap()),
            ("PBSIMAGE_COLLECT", "1"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dest = out.join("fib.fib-abc12");
    assert_eq!(
        std::fs::read_to_string(dest.join("fib.ofib-abc12")).unwrap(),
        format!("{}\nin\n", work.join("sub").display())
    );
    let mut got: Vec<String> = crate::repo::walk_if_exists(&dest)
        .iter()
        .map(|p| {
            p.strip_prefix(&dest)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ".hidden",
            "a dir/b c.txt",
            "fib.efib-abc12",
            "fib.ofib-abc12",
            "input.dat",
            "sub/r.txt"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("input.dat")).unwrap(),
        "in\nmore\n"
    );
    // The image's copy is untouched.
    assert_eq!(
        std::fs::read_to_string(seed.join("input.dat")).unwrap(),
        "in\n"
    );
}

/// The MPI launchers' remote shell, run with a stand-in `ssh` that prints its arguments: the
/// launcher's options stay ssh's (Open MPI's plm_rsh_args, Hydra's `-x`), the host is found
/// after them, and the remote command gets the launcher's PATH and LD_LIBRARY_PATH quoted
/// for the remote shell (a quote in a directory name included) before the command's words.
#[test]
fn the_remote_shell_carries_the_environment_to_the_command() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("ssh"), "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(bin.join("ssh"))
        .status()
        .unwrap();
    let rsh = d.path().join("pbs-rsh");
    std::fs::write(&rsh, pbsimage::kube::RSH_SCRIPT).unwrap();
    let path = format!("/opt/it's/bin:{}:/usr/bin:/bin", bin.display());
    let o = Command::new("sh")
        .arg(&rsh)
        .args([
            "-x",
            "-p",
            "2222",
            "-o",
            "ConnectionAttempts=3",
            "node-1.job",
        ])
        .args(["orted", "-mca", "ess", "\"env\""])
        .env_clear()
        .env("PATH", &path)
        .env("LD_LIBRARY_PATH", "/usr/lib64/openmpi/lib")
        .env("PBSIMAGE_SSH_PORT", "2222")
        .env("PBSIMAGE_SSH_DIR", "/pbs/home/.ssh")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let args: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let host = args
        .iter()
        .position(|a| a == "node-1.job")
        .expect("the host");
    assert!(
        args[..host]
            .windows(2)
            .any(|w| w == ["-i", "/pbs/home/.ssh/id_rsa"])
    );
    assert!(
        args[..host]
            .windows(2)
            .any(|w| w == ["-o", "ConnectionAttempts=3"])
    );
    assert!(args[..host].contains(&"-x".to_owned()));
    assert_eq!(args.len(), host + 2, "one remote command string: {args:?}");
    let remote = &args[host + 1];
    assert_eq!(
        remote,
        &format!(
            "export PATH='/opt/it'\\''s/bin:{}:/usr/bin:/bin' LD_LIBRARY_PATH='/usr/lib64/openmpi/lib'; orted -mca ess \"env\"",
            bin.display()
        )
    );
    // What the remote shell makes of it: the same PATH back.
    let back = Command::new("sh")
        .arg("-c")
        .arg(remote.replace("orted -mca ess \"env\"", "printf %s \"$PATH\""))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&back.stdout), path);
    // No host: an error, not a hang.
    let o = Command::new("sh")
        .arg(&rsh)
        .args(["-p", "2222"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pbs-rsh: no host name given"));
}

/// Multi-node MPI: the node names given (an MPIJob's launcher and workers), and the default
/// host files of Open MPI (`slots=`, since Open MPI counts a host listed once as one slot per
/// core) and Hydra (`host:n`) made from the allocation; a single-node job starts its ranks
/// with the local launchers; a worker asked to serve ssh without an sshd says so.
#[test]
fn mpi_launchers_find_the_allocation() {
    let d = tempfile::tempdir().unwrap();
    let o = run_wrapper(
        d.path(),
        "cat \"$PBS_NODEFILE\"; echo; cat \"$OMPI_MCA_orte_default_hostfile\"; \
         cat \"$HYDRA_HOST_FILE\"; echo \"$OMPI_MCA_orte_keep_fqdn_hostnames ${OMPI_MCA_plm:-}\"",
        &[
            ("PBSIMAGE_PPN_LIST", "2,1"),
            ("PBSIMAGE_NODES", "job-launcher.job,job-worker-0.job"),
            ("PBSIMAGE_ROLE", "launcher"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "job-launcher.job\njob-launcher.job\njob-worker-0.job\n\n\
         job-launcher.job slots=2\njob-worker-0.job slots=1\n\
         job-launcher.job:2\njob-worker-0.job:1\ntrue \n"
    );
    let o = run_wrapper(
        d.path(),
        "echo \"$OMPI_MCA_plm $HYDRA_LAUNCHER\"",
        &[("PBS_NP", "2")],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "isolated fork\n");
    // The job's own choice stays.
    let o = run_wrapper(
        d.path(),
        "echo \"$OMPI_MCA_plm\"",
        &[("OMPI_MCA_plm", "rsh")],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "rsh\n");
    // A worker with no key to serve: refused with the reason, before sshd starts (or, on a
    // machine without sshd, because it has none).
    let o = run_wrapper(
        d.path(),
        "echo never",
        &[
            ("PBSIMAGE_PPN_LIST", "1,1"),
            ("PBSIMAGE_NODES", "a,b"),
            ("PBSIMAGE_ROLE", "worker"),
            ("PBSIMAGE_SISTER", "sshd"),
            (
                "PBSIMAGE_SSH_DIR",
                d.path().join("no-such-dir").to_str().unwrap(),
            ),
        ],
    );
    assert!(!o.status.success());
    let why = if Path::new("/usr/sbin/sshd").exists() {
        "cannot read the job's ssh key"
    } else {
        "needs /usr/sbin/sshd (openssh-server)"
    };
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(why),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
