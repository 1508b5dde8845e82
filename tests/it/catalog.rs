//! `pbsimage catalog`: twenty jobs (C++, C, OpenMP, Fortran, script-only, `$ORIGIN`, a library
//! from ld.so.conf.d), two of them broken, built from the fixture repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::fakereg::FakeRegistry;

/// Compiled programs, shared by the jobs that use them.
struct Programs {
    dir: tempfile::TempDir,
}

fn cc(dir: &Path, tool: &str, package: &str, args: &[&str]) {
    require(tool, package);
    run_ok(Command::new(tool).args(args).current_dir(dir));
}

fn programs() -> Programs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        "fixtures/jobs/paper-listing3-fib/fib.cpp",
        d.join("fib.cpp"),
    )
    .unwrap();
    cc(d, "g++", "g++", &["-O2", "-o", "fib", "fib.cpp"]);
    std::fs::write(
        d.join("hello.c"),
        "#include <stdio.h>\nint main(int c, char **v) { printf(\"hello %s\\n\", c > 1 ? v[1] : \"world\"); return 0; }\n",
    )
    .unwrap();
    cc(d, "gcc", "gcc", &["-O2", "-o", "hello", "hello.c"]);
    std::fs::copy("fixtures/jobs/openmp/omp.c", d.join("omp.c")).unwrap();
    cc(d, "gcc", "gcc", &["-O2", "-fopenmp", "-o", "omp", "omp.c"]);
    std::fs::write(
        d.join("hi.f90"),
        "program hi\n  print *, 'fortran ok'\nend program hi\n",
    )
    .unwrap();
    cc(d, "gfortran", "gfortran", &["-O2", "-o", "fort", "hi.f90"]);
    std::fs::create_dir(d.join("lib")).unwrap();
    std::fs::write(
        d.join("fibl.c"),
        "#include <math.h>\nint fib(int n) { return (int)lround(pow(1.618033988749895, n) / sqrt(5)); }\n",
    )
    .unwrap();
    cc(
        d,
        "gcc",
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wl,-soname,libfibl.so.1",
            "-o",
            "lib/libfibl.so.1",
            "fibl.c",
            "-lm",
        ],
    );
    std::fs::write(
        d.join("origin.c"),
        "#include <stdio.h>\nint fib(int);\nint main(void) { printf(\"%d\\n\", fib(10)); return 0; }\n",
    )
    .unwrap();
    cc(
        d,
        "gcc",
        "gcc",
        &[
            "-O2",
            "-o",
            "origin",
            "origin.c",
            "lib/libfibl.so.1",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
        ],
    );
    // Linked against libraries the repository does not have: an unresolvable need.
    std::fs::write(d.join("nothere.c"), "int nothere(void) { return 1; }\n").unwrap();
    cc(
        d,
        "gcc",
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libnothere.so.1",
            "-o",
            "libnothere.so",
            "nothere.c",
        ],
    );
    std::fs::write(
        d.join("missing.c"),
        "int nothere(void);\nint main(void) { return nothere(); }\n",
    )
    .unwrap();
    let here = d.to_str().unwrap().to_owned();
    cc(
        d,
        "gcc",
        "gcc",
        &["-o", "missing", "missing.c", "-L", &here, "-lnothere"],
    );
    std::fs::write(
        d.join("optlib.c"),
        "#include <stdio.h>\nint fxopt_answer(void);\nint main(void) { printf(\"%d\\n\", fxopt_answer()); return 0; }\n",
    )
    .unwrap();
    std::fs::write(d.join("fxopt.c"), "int fxopt_answer(void) { return 0; }\n").unwrap();
    cc(
        d,
        "gcc",
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libfxopt.so.1",
            "-o",
            "libfxopt.so",
            "fxopt.c",
        ],
    );
    cc(
        d,
        "gcc",
        "gcc",
        &["-o", "optlib", "optlib.c", "-L", &here, "-lfxopt"],
    );
    Programs { dir }
}

/// A job directory `name` with a script running `program` (copied in), or a script only.
fn add_job(root: &Path, progs: &Programs, name: &str, program: Option<&str>, body: &str) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut script = format!("#!/bin/bash\n#PBS -N {name}\n#PBS -l nodes=1:ppn=1\n");
    if let Some(p) = program {
        std::fs::copy(progs.dir.path().join(p), d.join(p)).unwrap();
        script.push_str(&format!("#PBS -B {p}\n"));
        if p == "origin" {
            std::fs::create_dir_all(d.join("lib")).unwrap();
            std::fs::copy(
                progs.dir.path().join("lib/libfibl.so.1"),
                d.join("lib/libfibl.so.1"),
            )
            .unwrap();
        }
    }
    script.push_str(body);
    std::fs::write(d.join("job.sh"), script).unwrap();
}

/// The catalog: 18 good jobs and 2 broken ones.
fn catalog(root: &Path, progs: &Programs) {
    for i in 1..=3 {
        add_job(root, progs, &format!("cpp-{i}"), Some("fib"), "./fib\n");
        add_job(
            root,
            progs,
            &format!("c-{i}"),
            Some("hello"),
            &format!("./hello c{i}\n"),
        );
        add_job(root, progs, &format!("omp-{i}"), Some("omp"), "./omp\n");
    }
    for i in 1..=2 {
        add_job(
            root,
            progs,
            &format!("fortran-{i}"),
            Some("fort"),
            "./fort\n",
        );
        add_job(
            root,
            progs,
            &format!("origin-{i}"),
            Some("origin"),
            "./origin\n",
        );
    }
    for i in 1..=4 {
        add_job(
            root,
            progs,
            &format!("script-{i}"),
            None,
            &format!("echo script {i}\n"),
        );
    }
    add_job(root, progs, "optlib", Some("optlib"), "./optlib\n");
    // Broken: a malformed directive, and a library no repository has.
    add_job(
        root,
        progs,
        "broken-walltime",
        None,
        "#PBS -l walltime=soon\necho\n",
    );
    std::fs::write(
        root.join("broken-walltime/job.sh"),
        "#!/bin/bash\n#PBS -N broken-walltime\n#PBS -l walltime=soon\necho\n",
    )
    .unwrap();
    add_job(root, progs, "broken-lib", Some("missing"), "./missing\n");
}

fn config(dir: &Path, cache: &Path, registry: Option<&str>) -> PathBuf {
    let url = format!("file://{}", fixture_repos().join("main").display());
    let mut extra = BASE.to_owned();
    if let Some(h) = registry {
        extra.push_str(&format!("[registry]\ninsecure = [\"{h}\"]\n"));
    }
    let cfg = dir.join("pipeline.toml");
    std::fs::write(&cfg, repo_config(&[("fixture", url)], cache, &extra)).unwrap();
    cfg
}

fn run_catalog(cfg: &Path, dir: &Path, extra: &[&str]) -> (bool, serde_json::Value) {
    let mut args = vec![
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "catalog",
        "--json",
        "--jobs",
        "2",
    ];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    let o = pbsimage(&args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    if !o.status.success() {
        assert!(stderr(&o).contains("jobs failed"), "{}", stderr(&o));
    }
    (o.status.success(), v)
}

/// job name → manifest digest, for the jobs that succeeded.
fn digests(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["failure"].is_null())
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_owned(),
                j["manifest_digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_catalog_builds_pushes_once_and_reports() {
    let progs = programs();
    let top = tempfile::tempdir().unwrap();
    let jobs = top.path().join("jobs");
    catalog(&jobs, &progs);
    let reg = FakeRegistry::start();
    let cfg = config(top.path(), &top.path().join("cache"), Some(&reg.host));
    let manifests = top.path().join("manifests");
    let prepull = top.path().join("prepull.yaml");
    let layout = top.path().join("layout");
    let (ok, v) = run_catalog(
        &cfg,
        &jobs,
        &[
            "--push",
            &reg.host,
            "--manifests-out",
            manifests.to_str().unwrap(),
            "--prepull",
            prepull.to_str().unwrap(),
            "--output",
            layout.to_str().unwrap(),
        ],
    );
    // The broken jobs are reported; the other eighteen are built and pushed.
    assert!(!ok);
    assert_eq!(v["succeeded"], 18, "{v:#}");
    assert_eq!(v["failed"], 2);
    let rows = v["jobs"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["job"] == name).unwrap();
    let walltime = &row("broken-walltime")["failure"];
    assert_eq!(walltime["stage"], "parse");
    assert!(
        walltime["error"].as_str().unwrap().contains("job.sh:3:"),
        "{walltime}"
    );
    let lib = &row("broken-lib")["failure"];
    assert_eq!(lib["stage"], "resolve");
    assert!(
        lib["error"].as_str().unwrap().contains("libnothere.so.1"),
        "{lib}"
    );
    // The base layer is one blob in every image; so is each shared package's layer.
    let layout_manifest = |r: &serde_json::Value| -> serde_json::Value {
        let d = r["manifest_digest"].as_str().unwrap();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap())
            .unwrap()
    };
    let good: Vec<&serde_json::Value> = rows.iter().filter(|r| r["failure"].is_null()).collect();
    let bases: BTreeSet<String> = good
        .iter()
        .map(|r| {
            layout_manifest(r)["layers"][0]["digest"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(bases.len(), 1, "{bases:?}");
    let cpp_layers: Vec<Vec<String>> = ["cpp-1", "cpp-2", "cpp-3"]
        .iter()
        .map(|n| {
            layout_manifest(row(n))["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    let n = cpp_layers[0].len();
    assert!(n >= 3);
    // Every layer but the job's own is the same blob in the three C++ images.
    assert_eq!(cpp_layers[0][..n - 1], cpp_layers[1][..n - 1]);
    assert_eq!(cpp_layers[0][..n - 1], cpp_layers[2][..n - 1]);
    assert!(row("cpp-1")["layers_shared"].as_u64().unwrap() >= (n - 1) as u64);
    // Each distinct blob was uploaded exactly once (counted by the registry).
    let mut blobs = BTreeSet::new();
    for r in &good {
        let m = layout_manifest(r);
        blobs.insert(m["config"]["digest"].as_str().unwrap().to_owned());
        for l in m["layers"].as_array().unwrap() {
            blobs.insert(l["digest"].as_str().unwrap().to_owned());
        }
    }
    let st = reg.state();
    let uploads: Vec<&String> = st.uploads.iter().collect();
    let unique: BTreeSet<&String> = uploads.iter().copied().collect();
    assert_eq!(uploads.len(), unique.len(), "a blob was uploaded twice");
    assert_eq!(unique.len(), blobs.len());
    assert_eq!(
        v["bytes_pushed"].as_u64().unwrap() as usize,
        st.uploaded_bytes
    );
    // Each image is tagged in its own repository, its blobs mounted there.
    for r in &good {
        let repo = format!("pbs/{}", r["job"].as_str().unwrap());
        assert!(st.tags.keys().any(|(rp, _)| *rp == repo), "{repo}");
    }
    drop(st);
    // Manifests for the good jobs, a pre-pull DaemonSet for their images.
    let written = std::fs::read_dir(&manifests).unwrap().count();
    assert_eq!(written, 18 * 2, "a Kubernetes manifest and an SBOM per job");
    let ds = std::fs::read_to_string(&prepull).unwrap();
    assert!(ds.contains("kind: DaemonSet"), "{ds}");
    assert_eq!(ds.matches("name: pull-").count(), 18, "{ds}");
    let ds: k8s_openapi::api::apps::v1::DaemonSet = serde_saphyr::from_str(&ds).unwrap();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert!(pbsimage::kube::restricted_violations(&pod).is_empty());
    assert_eq!(pod.init_containers.unwrap().len(), 18);
    // Distribution: far less than a full image per job.
    let ratio = v["distribution"]["ratio"].as_f64().unwrap();
    assert!(ratio < 0.5, "{}", v["distribution"]);
}

#[test]
fn catalog_images_equal_single_builds_and_do_not_depend_on_each_other() {
    let progs = programs();
    let top = tempfile::tempdir().unwrap();
    let jobs = top.path().join("jobs");
    catalog(&jobs, &progs);
    // Two runs on two empty caches: the same digests.
    let cfg_a = config(top.path(), &top.path().join("cache-a"), None);
    let (_, a) = run_catalog(&cfg_a, &jobs, &[]);
    let b_dir = top.path().join("b");
    std::fs::create_dir(&b_dir).unwrap();
    let cfg_b = config(&b_dir, &top.path().join("cache-b"), None);
    let (_, b) = run_catalog(&cfg_b, &jobs, &[]);
    let (da, db) = (digests(&a), digests(&b));
    assert_eq!(da.len(), 18);
    assert_eq!(da, db);
    // Each image equals the job built alone.
    for (name, digest) in &da {
        let script = jobs.join(name).join("job.sh");
        let o = pbsimage(&[
            "-q",
            "--config",
            cfg_a.to_str().unwrap(),
            "build",
            "--json",
            script.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["manifest_digest"].as_str().unwrap(), digest, "{name}");
    }
    // Adding a job changes no other job's image.
    add_job(&jobs, &progs, "cpp-4", Some("fib"), "./fib 4\n");
    let (_, c) = run_catalog(&cfg_b, &jobs, &[]);
    let mut dc = digests(&c);
    assert!(dc.remove("cpp-4").is_some());
    assert_eq!(dc, da);
}

#[test]
fn catalog_toml_overrides_and_isolates_a_missing_script() {
    let progs = programs();
    let top = tempfile::tempdir().unwrap();
    let jobs = top.path().join("jobs");
    add_job(&jobs, &progs, "cpp", Some("fib"), "./fib\n");
    add_job(&jobs, &progs, "script", None, "echo hi\n");
    let toml = top.path().join("catalog.toml");
    std::fs::write(
        &toml,
        "[[job]]\nscript = \"jobs/cpp/job.sh\"\nimage = \"solvers-fib\"\nkind = \"pod\"\n\
         [[job]]\nscript = \"jobs/script/job.sh\"\npackages = [\"fx-data\"]\n\
         [[job]]\nscript = \"jobs/gone/job.sh\"\n",
    )
    .unwrap();
    let cfg = config(top.path(), &top.path().join("cache"), None);
    let (ok, v) = run_catalog(&cfg, &toml, &[]);
    assert!(!ok);
    let rows = v["jobs"].as_array().unwrap();
    assert!(
        rows[0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("pbs/solvers-fib@sha256:"),
        "{}",
        rows[0]
    );
    let pod = std::fs::read_to_string(jobs.join("cpp/job.k8s.yaml")).unwrap();
    assert!(pod.contains("kind: Pod"), "{pod}");
    let sbom = std::fs::read_to_string(jobs.join("script/job.spdx.json")).unwrap();
    assert!(
        sbom.contains("\"fx-data\""),
        "the extra package is in the image"
    );
    assert_eq!(rows[2]["failure"]["stage"], "parse");
    assert!(
        rows[2]["failure"]["error"]
            .as_str()
            .unwrap()
            .contains("jobs/gone/job.sh"),
        "{}",
        rows[2]
    );
}

#[test]
fn past_the_layer_budget_the_packages_most_jobs_need_keep_their_layers() {
    let progs = programs();
    let top = tempfile::tempdir().unwrap();
    let jobs = top.path().join("jobs");
    for i in 1..=4 {
        add_job(&jobs, &progs, &format!("cpp-{i}"), Some("fib"), "./fib\n");
    }
    // cpp-4 also needs fx-data: libgcc, libstdc++ and fx-data beside the base, with room for
    // one package layer (base + 2 + the job's own).
    let toml = top.path().join("catalog.toml");
    std::fs::write(
        &toml,
        "[[job]]\nscript = \"jobs/cpp-1/job.sh\"\n[[job]]\nscript = \"jobs/cpp-2/job.sh\"\n\
         [[job]]\nscript = \"jobs/cpp-3/job.sh\"\n\
         [[job]]\nscript = \"jobs/cpp-4/job.sh\"\npackages = [\"fx-data\"]\n",
    )
    .unwrap();
    let cfg = config(top.path(), &top.path().join("cache"), None);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}[image]\nmax-layers = 4\n")).unwrap();
    let layout = top.path().join("layout");
    let (ok, v) = run_catalog(&cfg, &toml, &["--output", layout.to_str().unwrap()]);
    assert!(ok, "{v:#}");
    let layers = |i: usize| -> Vec<String> {
        let d = v["jobs"][i]["manifest_digest"].as_str().unwrap();
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap(),
        )
        .unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let (cpp, extra) = (layers(0), layers(3));
    assert_eq!(extra.len(), 4);
    // libgcc (needed by all four jobs) keeps its layer, shared with the other images;
    // fx-data (one job) is merged, although by name it would have come first.
    let shared: Vec<&String> = extra.iter().filter(|d| cpp.contains(d)).collect();
    assert_eq!(shared.len(), 2, "base and libgcc: {extra:?} {cpp:?}");
    assert_eq!(extra[..2], cpp[..2]);
}

#[test]
fn a_catalog_lock_records_every_job_and_refuses_drift() {
    let progs = programs();
    let top = tempfile::tempdir().unwrap();
    let jobs = top.path().join("jobs");
    add_job(&jobs, &progs, "cpp", Some("fib"), "./fib\n");
    add_job(&jobs, &progs, "script", None, "echo hi\n");
    let cfg = config(top.path(), &top.path().join("cache"), None);
    let lock = top.path().join("catalog.lock");
    let (ok, first) = run_catalog(&cfg, &jobs, &["--lock", lock.to_str().unwrap()]);
    assert!(ok);
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains("job = \"cpp/job.sh\"") && text.contains("job = \"script/job.sh\""),
        "{text}"
    );
    let (ok, again) = run_catalog(&cfg, &jobs, &["--locked", lock.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(digests(&first), digests(&again));
    // The repository moved on for one job's entry: that job fails, the other is built.
    let i = text.find("repomd-sha256 = \"").unwrap() + "repomd-sha256 = \"".len();
    let mut moved = text.clone();
    moved.replace_range(i..i + 4, "0000");
    std::fs::write(&lock, moved).unwrap();
    let (ok, v) = run_catalog(&cfg, &jobs, &["--locked", lock.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(v["failed"], 1, "{v:#}");
    let failed = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| !j["failure"].is_null())
        .unwrap();
    assert_eq!(failed["failure"]["stage"], "lock");
    assert!(
        failed["failure"]["error"]
            .as_str()
            .unwrap()
            .contains("repo `fixture` changed"),
        "{failed}"
    );
}

/// `--shard I/N`: N builders with their own caches, meeting only in the registry, build every
/// job exactly once and give the digests one process gives; a bad shard spec is refused.
#[test]
fn shards_cover_the_catalog_once_with_the_same_digests() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    for i in 0..20 {
        let d = cat.join(format!("job-{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("job.sh"),
            format!("#!/bin/bash\n#PBS -N job-{i:02}\necho {i}\n"),
        )
        .unwrap();
    }
    // One process, one registry.
    let one = crate::build::Registry::start();
    let cache = dir.path().join("cache-one");
    let cfg = config(dir.path(), &cache, Some(&one.host));
    let one_lock = dir.path().join("one.lock");
    let (ok, v) = run_catalog(
        &cfg,
        &cat,
        &["--push", &one.host, "--lock", one_lock.to_str().unwrap()],
    );
    assert!(ok, "{v}");
    let all = digests(&v);
    assert_eq!(all.len(), 20);
    // Three shards at once, each with its own cache, into another registry.
    let shared = crate::build::Registry::start();
    let children: Vec<_> = (1..=3)
        .map(|i| {
            let d = dir.path().join(format!("shard-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let cfg = config(&d, &d.join("cache"), Some(&shared.host));
            Command::new(env!("CARGO_BIN_EXE_pbsimage"))
                .args(["-q", "--config", cfg.to_str().unwrap(), "catalog", "--json"])
                .args([
                    "--push",
                    &shared.host,
                    "--shard",
                    &format!("{i}/3"),
                    "--lock",
                ])
                .arg(dir.path().join(format!("shard-{i}.lock")))
                .arg(&cat)
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut reports = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for (job, digest) in digests(&v) {
            assert!(
                seen.insert(job.clone(), digest).is_none(),
                "{job} built twice"
            );
        }
        let f = dir.path().join(format!("shard-{}.json", i + 1));
        std::fs::write(&f, &o.stdout).unwrap();
        reports.push(f);
    }
    assert_eq!(
        seen, all,
        "the shards together are the catalog, with the same digests"
    );
    // Merged, the shard reports are the single-process report (timings and bytes sent aside).
    let prepull = dir.path().join("prepull.yaml");
    let mut args = vec![
        "catalog-merge",
        "--json",
        "--prepull",
        prepull.to_str().unwrap(),
    ];
    args.extend(reports.iter().map(|r| r.to_str().unwrap()));
    let locks: Vec<String> = (1..=3)
        .map(|i| {
            dir.path()
                .join(format!("shard-{i}.lock"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for l in &locks {
        args.extend(["--lock", l.as_str()]);
    }
    let merged_lock = dir.path().join("merged.lock");
    args.extend(["--lock-out", merged_lock.to_str().unwrap()]);
    let o = pbsimage(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let merged: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The shards' locks, merged, are the single-process lock (whose images went to the
    // other registry).
    assert_eq!(
        std::fs::read_to_string(&merged_lock).unwrap(),
        std::fs::read_to_string(&one_lock)
            .unwrap()
            .replace(&one.host, &shared.host)
    );
    let fields = |r: &serde_json::Value| {
        let jobs: Vec<serde_json::Value> = r["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                serde_json::json!([
                    j["job"],
                    j["manifest_digest"],
                    j["layers"],
                    j["layers_shared"],
                    j["layers_own"]
                ])
            })
            .collect();
        serde_json::json!([
            r["catalog"],
            jobs,
            r["succeeded"],
            r["failed"],
            r["unique_layers"],
            r["unique_bytes"],
            r["distribution"]
        ])
    };
    assert_eq!(fields(&merged), fields(&v));
    assert!(
        std::fs::read_to_string(&prepull)
            .unwrap()
            .contains("kind: DaemonSet")
    );
    // A report of another catalog revision is refused, naming the file; so is a shard given
    // twice.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("x")).unwrap();
    std::fs::write(other.join("x/job.sh"), "#!/bin/bash\necho x\n").unwrap();
    let (ok, w) = run_catalog(&cfg, &other, &[]);
    assert!(ok, "{w}");
    let f = dir.path().join("other.json");
    std::fs::write(&f, w.to_string()).unwrap();
    let o = pbsimage(&[
        "catalog-merge",
        reports[0].to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("another catalog revision"),
        "{}",
        stderr(&o)
    );
    let nonempty = reports
        .iter()
        .find(|r| {
            std::fs::read_to_string(r)
                .unwrap()
                .contains("manifest_digest")
        })
        .unwrap();
    let o = pbsimage(&[
        "catalog-merge",
        nonempty.to_str().unwrap(),
        nonempty.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is in two shard reports"),
        "{}",
        stderr(&o)
    );
    // Bad specs.
    for bad in ["3/2", "0/3", "1", "a/b"] {
        let o = pbsimage(&[
            "--config",
            cfg.to_str().unwrap(),
            "catalog",
            "--shard",
            bad,
            cat.to_str().unwrap(),
        ]);
        assert!(!o.status.success(), "{bad}");
        assert!(stderr(&o).contains("is not I/N"), "{bad}: {}", stderr(&o));
    }
}

/// A catalog of three jobs over the fixture repository and an errata repository whose
/// revision `updates` points at (a symlink switched between runs).
struct Errata {
    top: tempfile::TempDir,
    cfg: PathBuf,
    catalog: PathBuf,
    lock: PathBuf,
    manifests: PathBuf,
    layout: PathBuf,
    registry: String,
}

impl Errata {
    fn new(registry: &str) -> Errata {
        let top = tempfile::tempdir().unwrap();
        let t = top.path();
        let cat = t.join("cat");
        for j in ["ssl-a", "ssl-b", "plain"] {
            std::fs::create_dir_all(cat.join(j)).unwrap();
            std::fs::write(
                cat.join(j).join("job.sh"),
                format!("#!/bin/bash\n#PBS -N {j}\necho {j}\n"),
            )
            .unwrap();
        }
        std::fs::write(
            cat.join("catalog.toml"),
            "[[job]]\nscript = \"ssl-a/job.sh\"\npackages = [\"fx-ssl\"]\n\
             [[job]]\nscript = \"ssl-b/job.sh\"\npackages = [\"fx-ssl\", \"fx-zlib\"]\n\
             [[job]]\nscript = \"plain/job.sh\"\npackages = [\"fx-zlib\"]\n",
        )
        .unwrap();
        let main = format!("file://{}", fixture_repos().join("main").display());
        let updates = format!("file://{}", t.join("updates").display());
        let mut extra = BASE.to_owned();
        extra.push_str(&format!("[registry]\ninsecure = [\"{registry}\"]\n"));
        let cfg = t.join("pipeline.toml");
        let text = repo_config(
            &[("fixture", main), ("updates", updates)],
            &t.join("cache"),
            &extra,
        );
        std::fs::write(&cfg, text).unwrap();
        Errata {
            cfg,
            catalog: cat.join("catalog.toml"),
            lock: t.join("catalog.lock"),
            manifests: t.join("manifests"),
            layout: t.join("layout"),
            registry: registry.to_owned(),
            top,
        }
    }

    /// Points `updates` at a repository directory.
    fn revision(&self, dir: &Path) {
        let link = self.top.path().join("updates");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir, link).unwrap();
    }

    fn run(&self, extra: &[&str]) -> (bool, serde_json::Value) {
        let mut args = vec![
            "--push",
            self.registry.as_str(),
            "--manifests-out",
            self.manifests.to_str().unwrap(),
            "--output",
            self.layout.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_catalog(&self.cfg, &self.catalog, &args)
    }

    fn update(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["--update", "--locked", self.lock.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (ok, v) = self.run(&args);
        assert!(ok, "{v:#}");
        v
    }
}

fn row<'a>(v: &'a serde_json::Value, job: &str) -> &'a serde_json::Value {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["job"] == job)
        .unwrap_or_else(|| panic!("no row {job}: {v:#}"))
}

/// `--update`: an errata repository moves from v1 to v2 (fx-ssl 1.0-1 → 1.0-2 with a
/// security advisory in updateinfo.xml, added by modifyrepo_c): exactly the two jobs that
/// contain fx-ssl are rebuilt and pushed, the report names the advisory, its CVE and the
/// versions; the third job keeps its digest and its manifest file; the lock is rewritten.
/// Then v3 (a bugfix-only advisory) with `--security-only` rebuilds nothing.
#[test]
fn an_errata_update_rebuilds_exactly_the_jobs_that_contain_the_library() {
    let reg = crate::build::Registry::start();
    let e = Errata::new(&reg.host);
    let repos = fixture_repos();
    e.revision(&repos.join("update-v1"));
    let (ok, first) = e.run(&["--lock", e.lock.to_str().unwrap()]);
    assert!(ok, "{first:#}");
    let lock_v1 = std::fs::read_to_string(&e.lock).unwrap();
    assert!(lock_v1.contains("[job.image]"), "{lock_v1}");
    // The manifests of jobs the update keeps must not be written again.
    let plain_manifest = e.manifests.join("plain.k8s.yaml");
    let marked = format!(
        "{}# untouched\n",
        std::fs::read_to_string(&plain_manifest).unwrap()
    );
    std::fs::write(&plain_manifest, &marked).unwrap();

    e.revision(&repos.join("update-v2"));
    let v = e.update(&[]);
    let u = &v["update"];
    assert_eq!(
        (&u["rebuilt"], &u["unchanged"], &u["new"]),
        (&2.into(), &1.into(), &0.into()),
        "{v:#}"
    );
    assert_eq!(u["advisories"][0]["id"], "FXSA-2026:0001", "{u:#}");
    assert_eq!(u["advisories"][0]["type"], "security");
    assert_eq!(u["advisories"][0]["cves"][0], "CVE-2026-0001");
    for job in ["ssl-a", "ssl-b"] {
        let r = row(&v, job);
        assert_eq!(r["update"]["status"], "rebuilt", "{r:#}");
        let c = &r["update"]["changes"];
        assert_eq!(c.as_array().unwrap().len(), 1, "{r:#}");
        assert_eq!(
            (&c[0]["name"], &c[0]["from"], &c[0]["to"]),
            (&"fx-ssl".into(), &"1.0-1.fx".into(), &"1.0-2.fx".into())
        );
        assert_eq!(c[0]["advisories"][0]["severity"], "Important");
        assert_ne!(
            r["manifest_digest"],
            row(&first, job)["manifest_digest"],
            "{job} was rebuilt"
        );
        assert!(r["bytes_new"].as_u64().unwrap() > 0, "{job} was pushed");
    }
    let plain = row(&v, "plain");
    assert_eq!(plain["update"]["status"], "unchanged");
    assert_eq!(plain["reference"], row(&first, "plain")["reference"]);
    assert_eq!(plain["bytes_new"], 0);
    assert_eq!(std::fs::read_to_string(&plain_manifest).unwrap(), marked);
    // Only the new fx-ssl layer and two configs reach a node that held the old images.
    let pull = u["node_pull_bytes"].as_u64().unwrap();
    assert!(pull > 0 && pull < 64 << 10, "{pull}");
    let lock_v2 = std::fs::read_to_string(&e.lock).unwrap();
    assert_ne!(lock_v1, lock_v2);
    assert!(lock_v2.contains("fx-ssl-1.0-2.fx.x86_64"), "{lock_v2}");
    // The human table says the same.
    let o = pbsimage(&[
        "-q",
        "--config",
        e.cfg.to_str().unwrap(),
        "catalog",
        "--update",
        "--locked",
        e.lock.to_str().unwrap(),
        "--lock-out",
        e.top.path().join("scratch.lock").to_str().unwrap(),
        "--output",
        e.layout.to_str().unwrap(),
        "--manifests-out",
        e.top.path().join("scratch").to_str().unwrap(),
        e.catalog.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("0 rebuilt, 0 new, 3 unchanged"),
        "{}",
        stdout(&o)
    );

    // v3: fx-ssl 1.0-3 with a bugfix advisory only.
    e.revision(&repos.join("update-v3"));
    let v = e.update(&["--security-only"]);
    let u = &v["update"];
    assert_eq!((&u["rebuilt"], &u["held"]), (&0.into(), &2.into()), "{v:#}");
    assert_eq!(row(&v, "ssl-a")["update"]["status"], "held");
    assert_eq!(
        row(&v, "ssl-a")["update"]["changes"][0]["advisories"][0]["id"],
        "FXBA-2026:0002"
    );
    assert_eq!(v["bytes_pushed"], 0);
    assert_eq!(std::fs::read_to_string(&e.lock).unwrap(), lock_v2);
    // Without --security-only the bugfix is rebuilt.
    let v = e.update(&[]);
    assert_eq!(v["update"]["rebuilt"], 2, "{v:#}");
}

/// An updateinfo.xml with broken XML, or with a type dnf does not know, is a warning: the
/// rebuild still happens.
#[test]
fn odd_advisories_are_warnings_and_the_rebuild_still_happens() {
    require("modifyrepo_c", "createrepo-c");
    let reg = crate::build::Registry::start();
    let e = Errata::new(&reg.host);
    let repos = fixture_repos();
    e.revision(&repos.join("update-v1"));
    let (ok, _) = e.run(&["--lock", e.lock.to_str().unwrap()]);
    assert!(ok);
    let v1_lock = std::fs::read(&e.lock).unwrap();
    for (case, xml, warning) in [
        (
            "broken",
            "<?xml version=\"1.0\"?>\n<updates>\n  <update type=\"security\"><id>X</id>\n</updates>\n",
            "could not be read",
        ),
        (
            "unknown",
            "<?xml version=\"1.0\"?>\n<updates>\n  <update type=\"hotfix\"><id>FXHA-1</id><pkglist><collection><package name=\"fx-ssl\" epoch=\"0\" version=\"1.0\" release=\"2.fx\" arch=\"x86_64\"/></collection></pkglist></update>\n</updates>\n",
            "unknown type `hotfix`",
        ),
    ] {
        let dir = e.top.path().join(format!("update-{case}"));
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(repos.join("update-v2"))
                .arg(&dir),
        );
        let file = e.top.path().join("updateinfo.xml");
        std::fs::write(&file, xml).unwrap();
        run_ok(
            Command::new("modifyrepo_c")
                .arg("--mdtype=updateinfo")
                .arg(&file)
                .arg(dir.join("repodata")),
        );
        e.revision(&dir);
        std::fs::write(&e.lock, &v1_lock).unwrap();
        let v = e.update(&[]);
        assert_eq!(v["update"]["rebuilt"], 2, "{case}: {v:#}");
        let warnings = v["update"]["warnings"].to_string();
        assert!(warnings.contains(warning), "{case}: {warnings}");
        if case == "unknown" {
            assert_eq!(
                row(&v, "ssl-a")["update"]["changes"][0]["advisories"][0]["type"],
                "hotfix"
            );
        }
    }
    // --update needs the lock it updates from.
    let o = pbsimage(&["catalog", "--update", e.catalog.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--locked"), "{}", stderr(&o));
}

/// pbsimage's own image, built by pbsimage from the fixture repository: a job whose binary
/// (`#PBS -B`) is pbsimage itself, its libraries (libsolv, libgcc_s, libm, libc) and CA
/// certificates resolved like any job's; it runs. Then `--emit-build-job` writes the Indexed
/// Job that runs `--shard auto/N` from that image: valid for Kubernetes, restricted.
#[test]
fn the_build_job_runs_shards_from_pbsimages_own_image() {
    require("umoci", "umoci");
    require("objcopy", "binutils");
    let top = tempfile::tempdir().unwrap();
    let t = top.path();
    let job = t.join("builder");
    std::fs::create_dir_all(&job).unwrap();
    run_ok(
        Command::new("objcopy")
            .arg("--strip-debug")
            .arg(env!("CARGO_BIN_EXE_pbsimage"))
            .arg(job.join("pbsimage")),
    );
    std::fs::write(
        job.join("job.sh"),
        "#!/bin/sh\n#PBS -N pbsimage\n#PBS -B pbsimage\nexec ./pbsimage \"$@\"\n",
    )
    .unwrap();
    let url = format!("file://{}", fixture_repos().join("main").display());
    let mut extra = BASE.to_owned();
    extra.push_str("[needs]\nextra = [\"ca-certificates\"]\n");
    let cfg = t.join("pipeline.toml");
    std::fs::write(
        &cfg,
        repo_config(&[("fixture", url)], &t.join("cache"), &extra),
    )
    .unwrap();
    let layout = t.join("layout");
    let v = crate::build::build(&cfg, &job.join("job.sh"), &layout);
    let reference = v["reference"].as_str().unwrap().to_owned();
    let bundle = t.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!(
                "{}:{}",
                layout.display(),
                v["tag"].as_str().unwrap()
            ))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    for f in [
        "pbs/job/pbsimage",
        "usr/lib64/libsolv.so.1",
        "etc/pki/tls/certs/ca-bundle.crt",
    ] {
        assert!(root.join(f).exists(), "{f} is not in the builder image");
    }
    assert!(
        rustix::process::getuid().is_root(),
        "running the image needs chroot, so root (CI runs as root)"
    );
    let o = run_ok(
        Command::new("/usr/sbin/chroot")
            .arg(&root)
            .args(["/pbs/job/pbsimage", "--version"]),
    );
    assert!(stdout(&o).starts_with("pbsimage "), "{}", stdout(&o));

    // The build Job over a catalog, from that image.
    let cat = t.join("cat");
    for i in 0..3 {
        let d = cat.join(format!("job-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("job.sh"),
            format!("#!/bin/bash\n#PBS -N job-{i}\necho {i}\n"),
        )
        .unwrap();
    }
    let out = t.join("build-job.yaml");
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "catalog",
        cat.to_str().unwrap(),
        "--emit-build-job",
        out.to_str().unwrap(),
        "--build-shards",
        "3",
        "--builder-image",
        &format!("registry.example:5000/{reference}"),
        "--push",
        "registry.example:5000",
        "--registry-secret",
        "regcred",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let yaml = std::fs::read_to_string(&out).unwrap();
    validate_kubernetes(std::slice::from_ref(&out));
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    assert_eq!(docs.len(), 2, "{yaml}");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_saphyr::from_str(docs[0]).unwrap();
    let pipeline = &cm.data.unwrap()["pipeline.toml"];
    assert!(pipeline.contains("dir = \"/cache/pbsimage\""), "{pipeline}");
    let job: k8s_openapi::api::batch::v1::Job = serde_saphyr::from_str(docs[1]).unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pbsimage::kube::restricted_violations(&pod),
        Vec::<String>::new()
    );
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap().join(" ");
    assert!(
        args.contains("--shard auto/3") && args.contains("--push registry.example:5000"),
        "{args}"
    );
    assert_eq!(c.command.clone().unwrap(), ["/pbs/job/pbsimage"]);
    let volumes = serde_json::to_string(&pod.volumes).unwrap();
    assert!(
        volumes.contains("regcred") && volumes.contains("emptyDir"),
        "{volumes}"
    );

    // `--shard auto/N` in a pod: JOB_COMPLETION_INDEX 1 is shard 2 of 3.
    let run = |index: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pbsimage"));
        c.args(["-q", "--config", cfg.to_str().unwrap(), "catalog", "--json"])
            .args(["--shard", "auto/3", "--output"])
            .arg(t.join("shard-layout"))
            .arg("--manifests-out")
            .arg(t.join("shard-manifests"))
            .arg(&cat)
            .env_remove("JOB_COMPLETION_INDEX");
        if let Some(i) = index {
            c.env("JOB_COMPLETION_INDEX", i);
        }
        c.output().unwrap()
    };
    let o = run(Some("1"));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["shard"], "2/3", "{r:#}");
    for bad in [None, Some("x")] {
        let o = run(bad);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("JOB_COMPLETION_INDEX"),
            "{}",
            stderr(&o)
        );
    }
}
