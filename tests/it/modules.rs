//! Job scripts as HPC users write them: `module load` and launchers. The modules' files and
//! the `module` command are needs; commands after an MPI module load are looked for in its
//! `bin` first; an MPI launcher is required when the job has several slots; and the loaded
//! module's launcher runs under the container runtime, as uid 1000, in a non-login shell.
//! (The fixture `openmpi` is Debian's Open MPI build in EL's layout, from
//! fixtures/rpms/host/openmpi.files; environment-modules is the host's, with tclsh.)

use std::path::{Path, PathBuf};

use crate::common::*;

fn job(dir: &Path, body: &str) -> PathBuf {
    let script = dir.join("job.sh");
    std::fs::write(&script, format!("#!/bin/bash\n{body}")).unwrap();
    script
}

fn needs(script: &Path, cfg: Option<&Path>) -> Vec<serde_json::Value> {
    let mut args = vec![];
    if let Some(c) = cfg {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    args.extend(["needs", "--json", script.to_str().unwrap()]);
    let o = pbsimage(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["needs"].as_array().unwrap().clone()
}

/// The need whose origin starts with `origin`.
fn need<'a>(needs: &'a [serde_json::Value], origin: &str) -> Option<&'a serde_json::Value> {
    needs.iter().find(|n| {
        n["origins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().unwrap().starts_with(origin))
    })
}

/// `pbsimage resolve` of `script` under `cfg`.
fn resolve(cfg: &Path, script: &Path, json: bool) -> std::process::Output {
    let mut args = vec!["--config", cfg.to_str().unwrap(), "resolve"];
    if json {
        args.push("--json");
    }
    args.push(script.to_str().unwrap());
    pbsimage(&args)
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("pipeline.toml");
    let url = format!("file://{}", fixture_repos().join("main").display());
    std::fs::write(
        &cfg,
        repo_config(&[("fixture", url)], &dir.join("cache"), extra),
    )
    .unwrap();
    cfg
}

#[test]
fn module_loads_and_launchers_are_needs() {
    let d = tempfile::tempdir().unwrap();
    let script = job(
        d.path(),
        "#PBS -l nodes=1:ppn=4\nmodule load mpi/openmpi-x86_64\nmpirun -np 4 python3 run.py\n",
    );
    let n = needs(&script, None);
    let module = need(&n, "job.sh line 3: module load mpi/openmpi-x86_64").expect("the module");
    assert_eq!(module["optional"], false);
    assert!(module["value"][0] == "/usr/share/modulefiles/mpi/openmpi-x86_64");
    let init = need(&n, "job.sh line 3: module").unwrap();
    assert!(init["value"][0] == "/etc/profile.d/modules.sh");
    // mpirun: required (4 slots), looked for in the module's bin first.
    let mpirun = need(&n, "job.sh line 4: mpirun").unwrap();
    assert_eq!(mpirun["optional"], false);
    assert_eq!(mpirun["value"][0], "/usr/lib64/openmpi/bin/mpirun");
    // python3, the program mpirun runs: a need (optional, as every command).
    let python = need(&n, "job.sh line 4: python3").unwrap();
    assert_eq!(python["optional"], true);
    // They resolve: the module's package and the module command's.
    let cfg = config(d.path(), BASE);
    let o = resolve(&cfg, &script, true);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"openmpi")
            && names.contains(&"pmix")
            && names.contains(&"environment-modules")
            && names.contains(&"tcl"),
        "{names:?}"
    );
}

#[test]
fn ml_modules_without_a_provider_and_site_modules() {
    let d = tempfile::tempdir().unwrap();
    let script = job(
        d.path(),
        "ml gcc openmpi\ntime ./a.out\nenv OMP_NUM_THREADS=4 ./a.out\n",
    );
    let n = needs(&script, None);
    for m in ["gcc", "openmpi"] {
        assert!(
            need(&n, &format!("job.sh line 2: module load {m}")).is_some(),
            "{m}"
        );
    }
    // time and env run the job's own files: nothing more than env.
    let commands: Vec<&str> = n
        .iter()
        .filter(|x| x["kind"] == "command" && x["origins"][0] != "pbsimage job wrapper")
        .map(|x| x["value"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["env"]);
    // No package ships a gcc modulefile: the error names the line.
    let cfg = config(d.path(), BASE);
    let o = resolve(&cfg, &script, false);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("/usr/share/modulefiles/gcc is needed by job.sh line 2"),
        "{err}"
    );
    // A site module from the mounted software tree needs nothing from the repositories.
    let site = tempfile::tempdir().unwrap();
    let script = job(site.path(), "module load intel/2023.1\n./a.out\n");
    let cfg = config(
        site.path(),
        &format!("{BASE}[needs]\nmodules-from-host = [\"intel/*\"]\n"),
    );
    let n = needs(&script, Some(&cfg));
    assert!(
        need(&n, "job.sh line 2: module load intel").is_none(),
        "{n:?}"
    );
    let o = resolve(&cfg, &script, false);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A site tool behind its modulefile (fixtures/rpms/fx-sitetool.spec: `/opt/fxsim/<v>/bin`,
/// a directory of versions whose Tcl sets `root` and prepends `$root/bin`), and a decoy
/// `fxsim` in `/usr/bin` (fx-fxsim-decoy). No convention names /opt/fxsim: the needs first
/// look in the default PATH; once resolution has chosen the modulefile's package, its
/// highest version's modulefile is read from the package and the command is looked for where
/// the module puts it. The job gets the module's fxsim, not the decoy.
#[test]
fn a_modulefile_says_where_its_commands_are() {
    let d = tempfile::tempdir().unwrap();
    let script = job(d.path(), "module load tools/fxsim\nfxsim --run\n");
    let cfg = config(d.path(), BASE);
    let o = resolve(&cfg, &script, true);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let packages = v["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"fx-fxsim-decoy"), "{names:?}");
    let tool = packages
        .iter()
        .find(|p| p["name"] == "fx-sitetool")
        .expect("the module's package");
    let satisfies: Vec<&str> = tool["satisfies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        satisfies
            .iter()
            .any(|s| s.starts_with("file /opt/fxsim/2.1/bin/fxsim ← job.sh line 3")),
        "{satisfies:?}"
    );
    // The modulefiles' PATH is remembered per package: a warm run opens no package for it.
    let memo: Vec<PathBuf> = std::fs::read_dir(d.path().join("cache/modulefiles-v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let text: String = memo
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        text.contains("\"/usr/share/modulefiles/tools/fxsim/2.1\":[\"/opt/fxsim/2.1/bin\"]"),
        "{text}"
    );
    let again = resolve(&cfg, &script, true);
    assert_eq!(again.stdout, o.stdout);
    // Without the module, the same command is the decoy's.
    let plain = job(d.path(), "fxsim --run\n");
    let o = resolve(&cfg, &plain, true);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fx-fxsim-decoy"),
        "{v}"
    );
}

/// `[needs] module-system = "lmod"`: the `module` command is Lmod's (its profile, which the
/// wrapper points BASH_ENV at), not environment-modules'.
#[test]
fn lmod_when_configured() {
    let d = tempfile::tempdir().unwrap();
    let script = job(d.path(), "module load gcc\n./a.out\n");
    let cfg = config(
        d.path(),
        &format!("{BASE}[needs]\nmodule-system = \"lmod\"\n"),
    );
    let init = |n: &[serde_json::Value]| {
        n.iter()
            .find(|x| x["origins"][0] == "job.sh line 2: module")
            .expect("the module command")["value"]
            .clone()
    };
    assert_eq!(
        init(&needs(&script, Some(&cfg))),
        serde_json::json!(["/usr/share/lmod/lmod/init/profile"])
    );
    assert_eq!(init(&needs(&script, None))[0], "/etc/profile.d/modules.sh");
}
