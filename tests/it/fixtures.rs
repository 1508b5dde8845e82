//! Snapshot tests over the fixture corpus: the parsed JobSpec (or the error), and the
//! emitted YAML. Every manifest must round-trip through k8s-openapi and pass the restricted
//! Pod Security check.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use pbsimage::config::KubeKind;
use pbsimage::hint::Hint;
use pbsimage::kube::{Object, restricted_violations};

use crate::common::*;

#[test]
fn corpus_is_large_enough() {
    assert!(
        fixture_jobs().len() >= 15,
        "fixtures/jobs needs at least 15 jobs"
    );
}

#[test]
fn parsed_job_specs() {
    for dir in fixture_jobs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let value = match parse_fixture(&dir) {
            Ok(job) => serde_json::to_value(&job).unwrap(),
            Err(e) => serde_json::json!({ "error": e.to_string(), "hint": e.hint() }),
        };
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_yaml_snapshot!("parse", value);
        });
    }
}

#[test]
fn bad_inputs_are_errors_with_positions() {
    for (name, want) in [
        (
            "bad-size",
            "job.sh:3:28: invalid value for -l: unknown size unit `xb`",
        ),
        (
            "bad-walltime",
            "job.sh:3:20: invalid value for -l: `xx` in `1:xx:00` is not a number",
        ),
        (
            "bad-nodes",
            "job.sh:2:21: invalid value for -l: ppn must be at least 1",
        ),
        (
            "unterminated-quote",
            "job.sh:2:9: unterminated single quote",
        ),
        ("empty", "is empty"),
        ("binary-garbage", "holds binary data"),
    ] {
        let err = parse_fixture(&std::path::Path::new("fixtures/jobs").join(name))
            .expect_err(name)
            .to_string();
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains(&format!("fixtures/jobs/{name}/job.sh")),
            "{name}: {err}"
        );
    }
}

#[test]
fn emitted_manifests() {
    let config = test_config();
    for dir in fixture_jobs() {
        let Ok(job) = parse_fixture(&dir) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let manifest = emit(&job, &config, KubeKind::Job);
        let yaml = manifest.to_yaml().unwrap();
        let mut snap = yaml.clone();
        for w in &manifest.warnings {
            snap.push_str(&format!("# warning: {w}\n"));
        }
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("job", snap);
        });

        // Round trip: every document deserialises into the k8s-openapi type it came from.
        let docs: Vec<&str> = yaml.split("\n---\n").collect();
        assert_eq!(docs.len(), manifest.objects.len(), "{name}");
        for (doc, obj) in docs.iter().zip(&manifest.objects) {
            match obj {
                Object::Job(j) => {
                    let back: Job = serde_saphyr::from_str(doc).unwrap();
                    assert_eq!(&back, j.as_ref(), "{name}");
                }
                Object::Service(s) => {
                    let back: Service = serde_saphyr::from_str(doc).unwrap();
                    assert_eq!(&back, s.as_ref(), "{name}");
                }
                Object::JobSet(js) => {
                    let back: pbsimage::kube::jobset::JobSet = serde_saphyr::from_str(doc).unwrap();
                    assert_eq!(&back, js.as_ref(), "{name}");
                }
                Object::MpiJob(mj) => {
                    let back: pbsimage::kube::mpijob::MpiJob = serde_saphyr::from_str(doc).unwrap();
                    assert_eq!(&back, mj.as_ref(), "{name}");
                }
                Object::Secret(s) => {
                    let back: k8s_openapi::api::core::v1::Secret =
                        serde_saphyr::from_str(doc).unwrap();
                    assert_eq!(&back, s.as_ref(), "{name}");
                }
                Object::Pod(_) => unreachable!(),
            }
        }
        let pod = manifest.pod_spec().unwrap();
        assert_eq!(restricted_violations(pod), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn single_node_jobs_also_emit_pods() {
    let config = test_config();
    for dir in fixture_jobs() {
        let Ok(job) = parse_fixture(&dir) else {
            continue;
        };
        let multi = job.array.is_some()
            || job
                .resources
                .nodes
                .as_ref()
                .is_some_and(|n| n.node_count() > 1)
            || job
                .resources
                .select
                .as_ref()
                .is_some_and(|s| s.node_count() > 1);
        if multi {
            continue;
        }
        let manifest = emit(&job, &config, KubeKind::Pod);
        let yaml = manifest.to_yaml().unwrap();
        let back: Pod = serde_saphyr::from_str(&yaml).unwrap();
        let Object::Pod(p) = &manifest.objects[0] else {
            panic!()
        };
        assert_eq!(&back, p.as_ref());
        assert_eq!(
            restricted_violations(back.spec.as_ref().unwrap()),
            Vec::<String>::new()
        );
    }
}

/// The paper's Listing 1 ran the job as a privileged Pod with a hostPath mount of the shared
/// directory. `--kind pod` gives the same Pod (image, command running the job, cpu from ppn,
/// the shared output directory, restartPolicy Never) minus privileged and hostPath.
#[test]
fn paper_listing1_pod_equivalent() {
    let job = parse_fixture(std::path::Path::new("fixtures/jobs/paper-listing3-fib")).unwrap();
    let manifest = emit(&job, &test_config(), KubeKind::Pod);
    let yaml = manifest.to_yaml().unwrap();
    insta::assert_snapshot!("paper_listing1_pod", yaml);
    let pod: Pod = serde_saphyr::from_str(&yaml).unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some(image().to_string().as_str()));
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "2");
    assert_eq!(limits["memory"].0, "1Gi");
    assert_eq!(spec.active_deadline_seconds, Some(600 + 60));
    assert!(spec.volumes.iter().flatten().all(|v| v.host_path.is_none()));
    assert_ne!(c.security_context.as_ref().unwrap().privileged, Some(true));
    assert!(yaml.contains("name: pbs-output") && yaml.contains("server: nfs.example.org"));
}

#[test]
fn mapping_details() {
    let config = test_config();
    let get = |name: &str| {
        let job = parse_fixture(&std::path::Path::new("fixtures/jobs").join(name)).unwrap();
        emit(&job, &config, KubeKind::Job)
    };
    let job_of = |m: &pbsimage::kube::Manifest| match &m.objects[0] {
        Object::Job(j) => j.spec.clone().unwrap(),
        _ => panic!(),
    };
    // Arrays: Indexed Job, parallelism from %limit, per-index retries from -r y.
    let a = job_of(&get("array-torque"));
    assert_eq!(a.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((a.completions, a.parallelism), (Some(10), Some(2)));
    assert_eq!(a.backoff_limit_per_index, Some(3));
    // Multi-node: Indexed Job + headless Service, success when node 0 succeeds.
    let m = get("multinode-mpi");
    assert_eq!(m.objects.len(), 2);
    let mj = job_of(&m);
    assert_eq!((mj.completions, mj.parallelism), (Some(2), Some(2)));
    assert_eq!(
        mj.success_policy.unwrap().rules[0]
            .succeeded_indexes
            .as_deref(),
        Some("0")
    );
    let Object::Service(svc) = &m.objects[1] else {
        panic!()
    };
    assert_eq!(
        svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    let pod = m.pod_spec().unwrap();
    // The name carries the script's digest; the Service and subdomain are that name.
    let name = svc.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("mpi-pi-") && name.len() == "mpi-pi-".len() + 8,
        "{name}"
    );
    assert_eq!(pod.subdomain.as_deref(), Some(name.as_str()));
    // pmem × ppn = 4 GiB per pod
    let lim = pod.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .limits
        .clone()
        .unwrap();
    assert_eq!(lim["memory"].0, "4Gi");
    // GPUs and queue mapping.
    let g = get("gpu");
    let gp = g.pod_spec().unwrap();
    let lim = gp.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .limits
        .clone()
        .unwrap();
    assert_eq!(lim["nvidia.com/gpu"].0, "2");
    assert_eq!(lim["memory"].0, "64Gi");
    assert_eq!(gp.priority_class_name.as_deref(), Some("hpc-gpu"));
    // Hold → suspended Job; -r y → backoffLimit.
    let h = job_of(&get("hold-rerun"));
    assert_eq!(h.suspend, Some(true));
    assert_eq!(h.backoff_limit, Some(3));
}

#[test]
fn pods_refuse_arrays_and_multi_node() {
    let config = test_config();
    for name in ["array-torque", "multinode-mpi", "pbspro-select"] {
        let job = parse_fixture(&std::path::Path::new("fixtures/jobs").join(name)).unwrap();
        let err = try_emit(&job, &config, KubeKind::Pod).unwrap_err();
        assert!(
            err.to_string().contains("cannot run as a Pod"),
            "{name}: {err}"
        );
    }
}

#[test]
fn root_is_refused_unless_allowed() {
    let config = test_config();
    let job = parse_fixture(std::path::Path::new("fixtures/jobs/paper-listing2-script")).unwrap();
    let e = pbsimage::kube::Emitter {
        settings: &config.settings.kube,
        job_dir: "/pbs/job",
        kind: KubeKind::Job,
        run_as: pbsimage::kube::RunAs { uid: 0, gid: 0 },
        naming: Default::default(),
    };
    assert!(e.emit(&job, &image()).is_err());
}

/// Every Debian package a script or test reads is in scripts/deps, which .ci/run and
/// scripts/demo install from: the host packages fixture-repos packages (`# from:` lines,
/// read with dpkg-query, for both lists), and each package a test's `require` names.
#[test]
fn every_debian_package_read_is_installed_by_its_script() {
    let list = |which: &str| -> std::collections::BTreeSet<String> {
        let o = std::process::Command::new("scripts/deps")
            .args([which, "--list"])
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (demo, ci) = (list("demo"), list("ci"));
    assert!(demo.is_subset(&ci), "the tests run the demo's steps too");
    for e in std::fs::read_dir("fixtures/rpms/host").unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for from in text.lines().filter_map(|l| l.strip_prefix("# from: ")) {
            assert!(
                demo.contains(from.trim()),
                "fixture-repos reads {from}; scripts/deps demo lacks it"
            );
        }
    }
    let mut sources = vec![std::path::PathBuf::from("tests/it")];
    while let Some(d) = sources.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, _) in text.match_indices("require(\"") {
                let call = &text[i..text[i..].find(')').map_or(text.len(), |j| i + j)];
                let args: Vec<&str> = call.split('"').collect();
                if let Some(pkg) = args.get(3) {
                    assert!(
                        ci.contains(*pkg),
                        "{} requires the package {pkg}; scripts/deps ci lacks it",
                        p.display()
                    );
                }
            }
        }
    }
}

/// Every manifest pbsimage can make of the fixture jobs — Job and Pod, each output volume
/// type, `generateName`, a read-write root, the catalog's pre-pull DaemonSet — is what the
/// API server of the oldest and the newest supported Kubernetes accepts (strict: no unknown
/// fields).
#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    use pbsimage::kube::{Naming, RunAs};
    let dir = tempfile::tempdir().unwrap();
    let volumes = [
        "", // no output volume
        "[kube.output-volume]\ntype = \"nfs\"\nserver = \"nfs.example.org\"\npath = \"/export\"\n",
        "[kube.output-volume]\ntype = \"pvc\"\nclaim = \"results\"\n",
        "[kube.output-volume]\ntype = \"host-path\"\npath = \"/srv/out\"\n",
    ];
    let mut files = Vec::new();
    for (v, volume) in volumes.iter().enumerate() {
        let text = format!(
            "[kube]\nrun-as-user = 1000\nrun-as-group = 1000\nallow-host-path = true\n\
             allow-jobset = true\nread-only-root = {}\n{volume}",
            v % 2 == 0
        );
        let config = config_from(&text);
        for job_dir in fixture_jobs() {
            let Ok(job) = parse_fixture(&job_dir) else {
                continue;
            };
            for kind in [KubeKind::Job, KubeKind::Pod] {
                for naming in [
                    Naming::Digest,
                    Naming::Suffix("b2".into()),
                    Naming::Generate,
                ] {
                    // Pods cannot be arrays or multi-node jobs; neither can be generateName.
                    let Ok(m) = try_emit_named(&job, &config, kind, naming) else {
                        continue;
                    };
                    let f = dir.path().join(format!("{}.yaml", files.len()));
                    std::fs::write(&f, m.to_yaml().unwrap()).unwrap();
                    files.push(f);
                }
            }
        }
    }
    let ds = pbsimage::kube::prepull_daemonset(
        "pbsimage-prepull",
        Some("hpc"),
        &[
            ("fib".into(), image().to_string()),
            ("hello".into(), image().to_string()),
        ],
        RunAs {
            uid: 1000,
            gid: 1000,
        },
    )
    .unwrap();
    let f = dir.path().join("daemonset.yaml");
    std::fs::write(&f, ds).unwrap();
    files.push(f);
    assert!(files.len() > 100, "{}", files.len());
    // JobSets are custom resources: their CRD's schema checks them.
    let (jobsets, core): (Vec<std::path::PathBuf>, Vec<std::path::PathBuf>) =
        files.into_iter().partition(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("\nkind: JobSet\n")
        });
    assert!(!jobsets.is_empty());
    validate_kubernetes(&core);
    validate_custom_resources("jobset.x-k8s.io_jobsets.yaml", &jobsets);
}

/// An array of multi-node jobs is a JobSet with allow-jobset (refused without it): one
/// replicated Job per element, each the multi-node Indexed Job the Job path makes, with the
/// same pod template but for the element index; valid against the JobSet CRD.
#[test]
fn an_array_of_multi_node_jobs_is_a_jobset() {
    use pbsimage::kube::jobset::{JOB_INDEX_LABEL, JobSet};
    let config = test_config();
    let job = parse_fixture(std::path::Path::new("fixtures/jobs/array-mpi")).unwrap();
    let m = emit(&job, &config, KubeKind::Job);
    let [Object::JobSet(js)] = &m.objects[..] else {
        panic!("{:?}", m.objects)
    };
    let js: &JobSet = js;
    let name = js.metadata.name.clone().unwrap();
    assert!(name.starts_with("sweep-"), "{name}");
    let rj = &js.spec.replicated_jobs[0];
    assert_eq!((rj.name.as_str(), rj.replicas), ("node", 4));
    let element = rj.template.spec.as_ref().unwrap();
    assert_eq!(element.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(
        (element.completions, element.parallelism),
        (Some(2), Some(2))
    );
    let network = js.spec.network.as_ref().unwrap();
    assert_eq!(network.subdomain.as_deref(), Some(name.as_str()));
    // The element's pod template is the multi-node Job path's, but for how the element is
    // found: the replicated Job's index (a pod label) and the host names it gives.
    let single = pbsimage::job::JobSpec {
        array: None,
        ..job.clone()
    };
    let mj = emit(&single, &config, KubeKind::Job);
    let strip = |p: &k8s_openapi::api::core::v1::PodSpec| {
        let mut p = p.clone();
        p.containers[0].env.as_mut().unwrap().retain(|e| {
            !matches!(
                e.name.as_str(),
                "PBSIMAGE_ARRAY" | "PBSIMAGE_ARRAY_INDEX" | "PBSIMAGE_HOST_PREFIX"
            )
        });
        p
    };
    let in_jobset = element.template.spec.as_ref().unwrap();
    assert_eq!(strip(in_jobset), strip(mj.pod_spec().unwrap()));
    let envs = in_jobset.containers[0].env.as_ref().unwrap();
    let index = envs
        .iter()
        .find(|e| e.name == "PBSIMAGE_ARRAY_INDEX")
        .unwrap();
    let field = &index
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap()
        .field_path;
    assert_eq!(field, &format!("metadata.labels['{JOB_INDEX_LABEL}']"));
    assert!(restricted_violations(in_jobset).is_empty());
    // Valid against the JobSet CRD.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("jobset.yaml");
    std::fs::write(&f, m.to_yaml().unwrap()).unwrap();
    validate_custom_resources("jobset.x-k8s.io_jobsets.yaml", &[f]);
    // Without allow-jobset: refused, with the hint to enable it.
    let off = config_from("[kube]\nrun-as-user = 1000\nrun-as-group = 1000\n");
    let err = try_emit(&job, &off, KubeKind::Job).unwrap_err();
    assert!(err.hint().unwrap().contains("allow-jobset"), "{err}");
}

/// `[kube] mpi = "mpi-operator"`: a multi-node job becomes a Kubeflow MPIJob — one launcher
/// running the script (its PBS_NODEFILE names the workers, its mpirun reaches their sshd
/// port), one worker per node running a non-root sshd with the operator's keys — valid
/// against the MPI Operator's CRD, every pod restricted; the image needs sshd and ssh.
#[test]
fn a_multi_node_job_is_an_mpijob_with_the_mpi_operator() {
    use pbsimage::kube::mpijob::MpiJob;
    use pbsimage::kube::ssh::SSH_PORT;
    let config =
        config_from("[kube]\nrun-as-user = 1000\nrun-as-group = 1000\nmpi = \"mpi-operator\"\n");
    let job = parse_fixture(std::path::Path::new("fixtures/jobs/multinode-mpi")).unwrap();
    let m = emit(&job, &config, KubeKind::Job);
    let [Object::MpiJob(mj)] = &m.objects[..] else {
        panic!("{:?}", m.objects)
    };
    let mj: &MpiJob = mj;
    assert_eq!(mj.api_version, "kubeflow.org/v2beta1");
    assert_eq!(mj.spec.slots_per_worker, 4);
    assert_eq!(
        mj.spec.run_policy.active_deadline_seconds,
        Some(2 * 3600 + 60)
    );
    // PBS's node 0 is the launcher, and runs ranks too; the other node is a worker.
    assert_eq!(mj.spec.run_launcher_as_worker, Some(true));
    let launcher = &mj.spec.mpi_replica_specs["Launcher"];
    let worker = &mj.spec.mpi_replica_specs["Worker"];
    assert_eq!((launcher.replicas, worker.replicas), (1, 1));
    let name = mj.metadata.name.clone().unwrap();
    let lpod = launcher.template.spec.as_ref().unwrap();
    let wpod = worker.template.spec.as_ref().unwrap();
    for p in [lpod, wpod] {
        assert_eq!(restricted_violations(p), Vec::<String>::new());
        assert!(p.subdomain.is_none(), "the operator names the pods");
        assert_eq!(
            p.containers[0].command.as_deref(),
            Some(&["/usr/libexec/pbsimage/pbs-job".to_owned()][..]),
            "both run the wrapper"
        );
    }
    let env = |k: &str| container_env(lpod, k);
    assert_eq!(
        env("PBSIMAGE_NODES"),
        Some(format!("{name}-launcher.{name},{name}-worker-0.{name}"))
    );
    assert_eq!(env("PBSIMAGE_HOST_PREFIX"), None);
    assert_eq!(env("PBSIMAGE_PPN_LIST").as_deref(), Some("4,4"));
    assert_eq!(env("PBSIMAGE_ROLE").as_deref(), Some("launcher"));
    assert_eq!(
        env("OMPI_MCA_plm_rsh_agent").as_deref(),
        Some("/usr/libexec/pbsimage/pbs-rsh")
    );
    assert!(
        env("OMPI_MCA_plm_rsh_args")
            .unwrap()
            .contains(&format!("-p {SSH_PORT}")),
        "{:?}",
        env("OMPI_MCA_plm_rsh_args")
    );
    assert_eq!(
        container_env(wpod, "PBSIMAGE_ROLE").as_deref(),
        Some("worker")
    );
    assert_eq!(
        container_env(wpod, "PBSIMAGE_SISTER").as_deref(),
        Some("sshd")
    );
    assert_eq!(
        container_env(wpod, "PBSIMAGE_SSH_DIR"),
        Some(mj.spec.ssh_auth_mount_path.clone())
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mpijob.yaml");
    std::fs::write(&file, m.to_yaml().unwrap()).unwrap();
    validate_custom_resources("kubeflow.org_mpijobs.yaml", std::slice::from_ref(&file));
    // Arrays of multi-node jobs stay JobSets (an MPIJob has no array); single-node jobs Jobs.
    let single = parse_fixture(std::path::Path::new("fixtures/jobs/openmp")).unwrap();
    assert!(matches!(
        &emit(&single, &config, KubeKind::Job).objects[..],
        [Object::Job(_)]
    ));
    // The image gets an sshd and an ssh client.
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        "[vars]\nbasearch = \"x86_64\"\n[kube]\nrun-as-user = 1000\nrun-as-group = 1000\nmpi = \"mpi-operator\"\n",
    )
    .unwrap();
    let script = dir.path().join("job.sh");
    std::fs::write(
        &script,
        "#!/bin/bash\n#PBS -N ranks\n#PBS -l nodes=2:ppn=4\nmpirun -np 8 hostname\n",
    )
    .unwrap();
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "needs",
        script.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert!(
        text.contains("/usr/sbin/sshd") && text.contains("/usr/bin/ssh"),
        "{text}{}",
        stderr(&o)
    );
}

/// `[kube] mpi = "ssh"`, for clusters without the MPI Operator: the Indexed Job and its
/// headless Service as before, plus a Secret with a fresh Ed25519 key pair that every pod
/// mounts in the job's home (group-readable: the pods' fsGroup is the job's group); node 0
/// launches through pbsimage's remote shell, the others run sshd. Arrays of multi-node jobs
/// (JobSets) share one Secret. Everything passes kubernetes-validate and the restricted check.
#[test]
fn a_multi_node_job_in_ssh_mode_carries_its_key_as_a_secret() {
    use k8s_openapi::api::core::v1::Secret;
    let config = config_from(
        "[kube]\nrun-as-user = 1000\nrun-as-group = 1000\nmpi = \"ssh\"\nallow-jobset = true\n",
    );
    let job = parse_fixture(std::path::Path::new("fixtures/jobs/multinode-mpi")).unwrap();
    let m = emit(&job, &config, KubeKind::Job);
    assert!(m.has_secret());
    let [Object::Secret(secret), Object::Job(j), Object::Service(_)] = &m.objects[..] else {
        panic!("{:?}", m.objects)
    };
    let name = j.metadata.name.clone().unwrap();
    assert_eq!(secret.metadata.name, Some(format!("{name}-ssh")));
    let data = secret.data.as_ref().unwrap();
    assert_eq!(data["authorized_keys"], data["id_rsa.pub"]);
    assert!(String::from_utf8_lossy(&data["id_rsa"].0).contains("OPENSSH PRIVATE KEY"));
    let pod = j.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(restricted_violations(pod), Vec::<String>::new());
    assert_eq!(
        pod.security_context.as_ref().unwrap().fs_group,
        Some(1000),
        "the key is readable through the job's group"
    );
    let vol = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "pbs-ssh")
        .expect("the key's volume");
    let sv = vol.secret.as_ref().unwrap();
    assert_eq!(sv.secret_name, Some(format!("{name}-ssh")));
    assert_eq!(sv.default_mode, Some(0o440));
    let c = &pod.containers[0];
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "pbs-ssh")
        .unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/pbs/home/.ssh", Some(true))
    );
    let env = |k: &str| container_env(pod, k);
    assert_eq!(env("PBSIMAGE_SISTER").as_deref(), Some("sshd"));
    assert_eq!(
        env("HYDRA_LAUNCHER_EXEC").as_deref(),
        Some("/usr/libexec/pbsimage/pbs-rsh")
    );
    assert_eq!(
        env("PBSIMAGE_ROLE"),
        None,
        "node 0 launches, the others serve"
    );
    // Each emission makes a new key.
    let again = emit(&job, &config, KubeKind::Job);
    let Object::Secret(s2) = &again.objects[0] else {
        panic!()
    };
    assert_ne!(s2.data, secret.data);
    let back: Secret =
        serde_saphyr::from_str(m.to_yaml().unwrap().split("\n---\n").next().unwrap()).unwrap();
    assert_eq!(&back, secret.as_ref());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssh.yaml");
    std::fs::write(&file, m.to_yaml().unwrap()).unwrap();
    validate_kubernetes(std::slice::from_ref(&file));
    // An array of multi-node jobs: one Secret, then the JobSet whose pods mount it.
    let array = parse_fixture(std::path::Path::new("fixtures/jobs/array-mpi")).unwrap();
    let am = emit(&array, &config, KubeKind::Job);
    let [Object::Secret(_), Object::JobSet(js)] = &am.objects[..] else {
        panic!("{:?}", am.objects)
    };
    let yaml = serde_saphyr::to_string(js.as_ref()).unwrap();
    assert!(
        yaml.contains("pbs-ssh") && yaml.contains("PBSIMAGE_SISTER"),
        "{yaml}"
    );
    let file = dir.path().join("jobset.yaml");
    std::fs::write(&file, yaml).unwrap();
    validate_custom_resources("jobset.x-k8s.io_jobsets.yaml", std::slice::from_ref(&file));
}
