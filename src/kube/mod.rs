//! Manifest: [`JobSpec`] + image reference → Kubernetes objects (k8s-openapi types).
//!
//! [`Emitter::emit`] maps PBS semantics onto a batch/v1 Job (default) or a Pod. The container
//! always runs the same fixed wrapper ([`WRAPPER_PATH`], source in [`WRAPPER_SCRIPT`]); every
//! job-specific value reaches it through structured `env`, never through the command line.
//! Pods follow the restricted Pod Security Standard unless the config opts out of it.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec as K8sJobSpec, SuccessPolicy, SuccessPolicyRule};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    NFSVolumeSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::config::{KubeKind, KubeSettings, OutputVolume};
use crate::image::ImageRef;
use crate::job::{JobSpec, Join};

/// Where the wrapper lives in every image pbsimage builds.
pub const WRAPPER_PATH: &str = "/usr/libexec/pbsimage/pbs-job";
/// The wrapper's source; the image stage installs it at [`WRAPPER_PATH`].
pub const WRAPPER_SCRIPT: &str = include_str!("pbs-job.sh");
/// The container command: the same for every job.
pub const COMMAND: [&str; 1] = [WRAPPER_PATH];
/// Scratch directory (`TMPDIR`), an emptyDir.
pub const TMP_DIR: &str = "/pbs/tmp";
/// Job names longer than this cannot be Indexed Jobs (pod hostnames add `-<index>`).
pub const INDEXED_NAME_MAX: usize = 52;

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const LABEL_JOB: &str = "pbsimage.io/job";
const ANN: &str = "pbsimage.io/";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{what} cannot run as a Pod")]
    PodCannot { what: String },
    #[error("refusing to run job `{job}` as uid 0")]
    Root { job: String },
    #[error("cannot serialize the manifest")]
    Serialize(#[source] serde_saphyr::ser_error::Error),
}

impl KubeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            KubeError::PodCannot { .. } => Some("use --kind job (an Indexed Job)".into()),
            KubeError::Root { .. } => {
                Some("pass --run-as UID:GID, set [kube] run-as-user, or allow-root = true".into())
            }
            KubeError::Serialize(_) => None,
        }
    }
}

/// A user and group id for the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// One emitted object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Job(Box<Job>),
    Pod(Box<Pod>),
    Service(Box<Service>),
}

/// The objects for one job, in apply order, plus what did not map.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub objects: Vec<Object>,
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Multi-document YAML, `---` between documents.
    pub fn to_yaml(&self) -> Result<String, KubeError> {
        let mut out = String::new();
        for (i, o) in self.objects.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            // Plain or quoted scalars only: kubectl users expect `image: host/repo@sha256:...`
            // on one line, not folded blocks.
            let mut options = serde_saphyr::SerializerOptions::default();
            options.prefer_block_scalars = false;
            out.push_str(
                &serde_saphyr::to_string_with_options(o, options).map_err(KubeError::Serialize)?,
            );
        }
        Ok(out)
    }

    /// The Pod spec that will run, whatever the kind.
    pub fn pod_spec(&self) -> Option<&PodSpec> {
        self.objects.iter().find_map(|o| match o {
            Object::Job(j) => j.spec.as_ref()?.template.spec.as_ref(),
            Object::Pod(p) => p.spec.as_ref(),
            Object::Service(_) => None,
        })
    }
}

/// Turns job specs into manifests.
pub struct Emitter<'a> {
    pub settings: &'a KubeSettings,
    /// Where the job's files are in the image (`[image] job-dir`).
    pub job_dir: &'a str,
    pub kind: KubeKind,
    pub run_as: RunAs,
}

/// Per-pod resources and the node layout.
struct Shape {
    nodes: u32,
    cpus: u32,
    gpus: u32,
    memory: Option<u64>,
    /// Slots per node, for PBS_NODEFILE (multi-node only).
    ppn_list: Vec<u32>,
    np: u32,
    ppn: u32,
}

fn shape(job: &JobSpec, warnings: &mut Vec<String>) -> Shape {
    let r = &job.resources;
    let top_gpus = r.ngpus.unwrap_or(0);
    let (nodes, cpus, gpus, chunk_mem, ppn_list, np) = if let Some(sel) = &r.select {
        let per: Vec<u32> = sel
            .chunks
            .iter()
            .flat_map(|c| {
                std::iter::repeat_n(c.mpiprocs.or(c.ncpus).unwrap_or(1), c.count as usize)
            })
            .collect();
        let cpus = sel
            .chunks
            .iter()
            .map(|c| c.ncpus.unwrap_or(1))
            .max()
            .unwrap_or(1);
        let gpus = sel
            .chunks
            .iter()
            .map(|c| c.ngpus.unwrap_or(0))
            .max()
            .unwrap_or(0);
        let mem = sel
            .chunks
            .iter()
            .filter_map(|c| c.mem)
            .map(|m| m.bytes())
            .max();
        if sel.chunks.len() > 1 {
            warnings
                .push("select chunks differ: every pod gets the largest chunk's resources".into());
        }
        if sel.chunks.iter().any(|c| !c.other.is_empty()) {
            warnings.push("select chunk resources other than ncpus, mem, ngpus, mpiprocs and ompthreads are not mapped".into());
        }
        (
            sel.node_count(),
            cpus,
            gpus.max(top_gpus),
            mem,
            per,
            sel.slots(),
        )
    } else if let Some(n) = &r.nodes {
        let per: Vec<u32> = n
            .groups
            .iter()
            .flat_map(|g| std::iter::repeat_n(g.ppn, g.count as usize))
            .collect();
        let cpus = n.groups.iter().map(|g| g.ppn).max().unwrap_or(1);
        let gpus = n.groups.iter().map(|g| g.gpus).max().unwrap_or(0);
        if n.groups.len() > 1
            && n.groups
                .windows(2)
                .any(|w| w[0].ppn != w[1].ppn || w[0].gpus != w[1].gpus)
        {
            warnings
                .push("node groups differ: every pod gets the largest group's resources".into());
        }
        if n.groups
            .iter()
            .any(|g| g.host.is_some() || !g.properties.is_empty())
        {
            warnings.push(
                "node host names and properties in nodes= are not mapped; use queue node selectors"
                    .into(),
            );
        }
        if r.procs.is_some() {
            warnings.push("procs is ignored when nodes is given".into());
        }
        (
            n.node_count(),
            cpus,
            gpus.max(top_gpus),
            None,
            per,
            n.slots(),
        )
    } else {
        let cpus = r.procs.or(r.ncpus).unwrap_or(1);
        (1, cpus, top_gpus, None, vec![cpus], cpus)
    };
    let ppn = ppn_list.first().copied().unwrap_or(1);
    let per_node_mem = r.mem.map(|m| m.bytes().div_ceil(u64::from(nodes)));
    let per_proc_mem = r.pmem.map(|m| m.bytes().saturating_mul(u64::from(cpus)));
    let memory = [chunk_mem, per_node_mem, per_proc_mem]
        .into_iter()
        .flatten()
        .max();
    if r.vmem.is_some() || r.pvmem.is_some() {
        warnings.push("vmem/pvmem have no Kubernetes equivalent; recorded in annotations".into());
    }
    if r.cput.is_some() {
        warnings.push("cput is not enforced; recorded in annotations".into());
    }
    Shape {
        nodes,
        cpus,
        gpus,
        memory,
        ppn_list,
        np,
        ppn,
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..Default::default()
        }),
    }
}

/// Joins `path` below `base`; `..` components are dropped.
fn join_under(base: &str, path: &str) -> String {
    let mut out = base.trim_end_matches('/').to_owned();
    for c in path.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            continue;
        }
        out.push('/');
        out.push_str(c);
    }
    if path.ends_with('/') {
        out.push('/');
    }
    out
}

impl Emitter<'_> {
    pub fn emit(&self, job: &JobSpec, image: &ImageRef) -> Result<Manifest, KubeError> {
        let mut warnings = Vec::new();
        let s = self.settings;
        let shape = shape(job, &mut warnings);
        let multi_node = shape.nodes > 1;
        let indexed = multi_node || job.array.is_some();
        if self.kind == KubeKind::Pod {
            if multi_node {
                return Err(KubeError::PodCannot {
                    what: format!("a job on {} nodes", shape.nodes),
                });
            }
            if job.array.is_some() {
                return Err(KubeError::PodCannot {
                    what: "a job array".into(),
                });
            }
        }
        if (self.run_as.uid == 0 || self.run_as.gid == 0) && !s.allow_root {
            return Err(KubeError::Root {
                job: job.name.to_string(),
            });
        }
        if !image.is_pinned() {
            warnings.push(format!(
                "image `{image}` is not pinned by digest; nodes may run different content"
            ));
        }
        let name = job
            .name
            .dns_label(if indexed { INDEXED_NAME_MAX } else { 63 });
        let queue = job.queue.clone().unwrap_or_else(|| s.default_queue.clone());
        let mapping = s.queues.get(&queue);
        if mapping.is_none() && !s.queues.is_empty() {
            warnings.push(format!(
                "queue `{queue}` has no [kube.queues] entry; no queue labels applied"
            ));
        }

        // Labels and annotations.
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), "pbsimage".to_owned()),
            (LABEL_JOB.to_owned(), name.clone()),
        ]);
        if let Some(m) = mapping {
            labels.extend(m.labels.clone());
        }
        let mut annotations = BTreeMap::from([
            (format!("{ANN}pbs-name"), job.name.to_string()),
            (format!("{ANN}queue"), queue.clone()),
        ]);
        if let Some(f) = job.script.file_name() {
            annotations.insert(format!("{ANN}script"), f.to_string_lossy().into_owned());
        }
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                annotations.insert(format!("{ANN}{k}"), v);
            }
        };
        put("account", job.account.clone());
        put("server", job.server.clone());
        put("priority", job.priority.map(|p| p.to_string()));
        put("mail-events", job.mail_events.clone());
        put("mail-users", Some(job.mail_users.join(",")));
        let r = &job.resources;
        let mut unmapped: Vec<String> = r.other.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (k, v) in [("vmem", r.vmem), ("pvmem", r.pvmem)] {
            if let Some(v) = v {
                unmapped.push(format!("{k}={v}"));
            }
        }
        if let Some(c) = r.cput {
            unmapped.push(format!("cput={c}"));
        }
        unmapped.sort();
        put("resources-unmapped", Some(unmapped.join(",")));
        put(
            "attributes",
            Some(
                job.attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        );
        let meta = ObjectMeta {
            name: Some(name.clone()),
            namespace: s.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            ..Default::default()
        };

        // Environment: PBS's variables, then the wrapper's, then the job's -v list.
        let script_name = job
            .script
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.sh".into());
        let mut envs = vec![
            env("PBS_JOBNAME", job.name.as_str()),
            env_field("PBS_JOBID", "metadata.name"),
            env("PBS_QUEUE", queue.clone()),
            env("PBS_O_QUEUE", queue.clone()),
            env("PBS_ENVIRONMENT", "PBS_BATCH"),
            env("PBS_O_WORKDIR", self.job_dir),
            env("PBS_NP", shape.np.to_string()),
            env("PBS_NUM_NODES", shape.nodes.to_string()),
            env("PBS_NUM_PPN", shape.ppn.to_string()),
            env("TMPDIR", TMP_DIR),
        ];
        if let Some(w) = r.walltime {
            envs.push(env("PBS_WALLTIME", w.secs().to_string()));
        }
        envs.push(env(
            "PBSIMAGE_SCRIPT",
            join_under(self.job_dir, &script_name),
        ));
        let shell = job
            .shell
            .clone()
            .or_else(|| job.shebang.clone())
            .unwrap_or_else(|| s.default_shell.clone());
        envs.push(env("PBSIMAGE_SHELL", shell));
        if !job.script_args.is_empty() {
            envs.push(env("PBSIMAGE_ARGS", job.script_args.join(" ")));
        }
        let mut volumes = vec![Volume {
            name: "pbs-tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }];
        let mut mounts = vec![VolumeMount {
            name: "pbs-tmp".into(),
            mount_path: TMP_DIR.into(),
            ..Default::default()
        }];
        match &s.output_volume {
            Some(vol) => {
                let mount = vol.mount_path();
                envs.push(env("PBSIMAGE_OUTPUT_DIR", mount));
                let resolve = |p: &str, warnings: &mut Vec<String>| {
                    if p.starts_with('/')
                        && !p.starts_with(&format!("{}/", mount.trim_end_matches('/')))
                    {
                        let base = p.rsplit('/').find(|c| !c.is_empty()).unwrap_or("");
                        warnings.push(format!(
                            "output path `{p}` is outside the output volume ({mount}); writing `{base}` there"
                        ));
                        join_under(mount, base)
                    } else if p.starts_with('/') {
                        p.to_owned()
                    } else {
                        join_under(mount, p)
                    }
                };
                if let Some(p) = &job.stdout_path {
                    envs.push(env("PBSIMAGE_STDOUT", resolve(p, &mut warnings)));
                }
                if let Some(p) = &job.stderr_path {
                    envs.push(env("PBSIMAGE_STDERR", resolve(p, &mut warnings)));
                }
                match job.join {
                    Join::Oe => envs.push(env("PBSIMAGE_JOIN", "oe")),
                    Join::Eo => envs.push(env("PBSIMAGE_JOIN", "eo")),
                    Join::N => {}
                }
                let source = Volume {
                    name: "pbs-output".into(),
                    ..Default::default()
                };
                volumes.push(match vol {
                    OutputVolume::Nfs { server, path, .. } => Volume {
                        nfs: Some(NFSVolumeSource {
                            server: server.clone(),
                            path: path.clone(),
                            read_only: None,
                        }),
                        ..source
                    },
                    OutputVolume::Pvc { claim, .. } => Volume {
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: claim.clone(),
                            read_only: None,
                        }),
                        ..source
                    },
                    OutputVolume::HostPath { path, .. } => Volume {
                        host_path: Some(HostPathVolumeSource {
                            path: path.clone(),
                            type_: Some("Directory".into()),
                        }),
                        ..source
                    },
                });
                mounts.push(VolumeMount {
                    name: "pbs-output".into(),
                    mount_path: mount.into(),
                    ..Default::default()
                });
            }
            None => {
                if job.stdout_path.is_some() || job.stderr_path.is_some() {
                    warnings.push(
                        "-o/-e need [kube.output-volume]; output goes to the container log".into(),
                    );
                }
            }
        }
        if let Some(m) = job.umask {
            envs.push(env("PBSIMAGE_UMASK", format!("{m:03o}")));
        }
        if let Some(a) = &job.array {
            envs.push(env("PBSIMAGE_ARRAY", a.compact()));
        }
        if multi_node {
            envs.push(env(
                "PBSIMAGE_PPN_LIST",
                shape
                    .ppn_list
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ));
            envs.push(env("PBSIMAGE_HOST_PREFIX", name.clone()));
            envs.push(env("PBSIMAGE_SUBDOMAIN", name.clone()));
        }
        let reserved: Vec<String> = envs.iter().map(|e| e.name.clone()).collect();
        for v in &job.env {
            if reserved.contains(&v.name) || v.name.starts_with("PBSIMAGE_") {
                warnings.push(format!(
                    "-v {} would override a variable pbsimage sets; ignored",
                    v.name
                ));
                continue;
            }
            envs.push(env(&v.name, v.value.clone()));
        }

        // Resources: requests = limits.
        let mut res = BTreeMap::from([("cpu".to_owned(), Quantity(shape.cpus.to_string()))]);
        if let Some(m) = shape.memory {
            res.insert(
                "memory".into(),
                Quantity(crate::job::resources::Size::from_bytes(m).to_quantity()),
            );
        }
        if shape.gpus > 0 {
            res.insert(s.gpu_resource.clone(), Quantity(shape.gpus.to_string()));
        }

        let working_dir = match &job.workdir {
            Some(d) if d.starts_with('/') => d.clone(),
            Some(d) => join_under(self.job_dir, d),
            None => self.job_dir.to_owned(),
        };
        let restricted = restricted_container(self.run_as);
        let container = Container {
            name: "job".into(),
            image: Some(image.to_string()),
            image_pull_policy: Some(
                if image.is_pinned() {
                    "IfNotPresent"
                } else {
                    "Always"
                }
                .into(),
            ),
            command: Some(COMMAND.iter().map(|c| c.to_string()).collect()),
            working_dir: Some(working_dir),
            env: Some(envs),
            resources: Some(ResourceRequirements {
                limits: Some(res.clone()),
                requests: Some(res),
                ..Default::default()
            }),
            security_context: Some(restricted),
            volume_mounts: Some(mounts),
            ..Default::default()
        };
        let deadline = r
            .walltime
            .map(|w| i64::try_from(w.secs().saturating_add(s.walltime_slack)).unwrap_or(i64::MAX));
        let pod_spec = PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: deadline,
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            priority_class_name: mapping.and_then(|m| m.priority_class.clone()),
            node_selector: mapping
                .map(|m| m.node_selector.clone())
                .filter(|n| !n.is_empty()),
            subdomain: multi_node.then(|| name.clone()),
            security_context: Some(PodSecurityContext {
                fs_group: s.output_volume.as_ref().map(|_| i64::from(self.run_as.gid)),
                ..restricted_pod(self.run_as)
            }),
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        };
        let backoff = if job.rerunnable == Some(true) {
            s.rerun_limit
        } else {
            0
        };

        let mut objects = Vec::new();
        match self.kind {
            KubeKind::Pod => {
                if job.hold {
                    warnings.push("-h (hold) cannot be expressed on a Pod; ignored".into());
                }
                objects.push(Object::Pod(Box::new(Pod {
                    metadata: meta,
                    spec: Some(pod_spec),
                    status: None,
                })));
            }
            KubeKind::Job => {
                let template = PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels.clone()),
                        ..Default::default()
                    }),
                    spec: Some(pod_spec),
                };
                let mut spec = K8sJobSpec {
                    template,
                    backoff_limit: Some(backoff),
                    suspend: job.hold.then_some(true),
                    ..Default::default()
                };
                if let Some(a) = &job.array {
                    let n = i32::try_from(a.len()).unwrap_or(i32::MAX);
                    spec.completion_mode = Some("Indexed".into());
                    spec.completions = Some(n);
                    spec.parallelism = Some(
                        a.slot_limit
                            .map(|l| i32::try_from(l).unwrap_or(i32::MAX).min(n))
                            .unwrap_or(n),
                    );
                    // Array elements fail and retry independently, as in PBS.
                    spec.backoff_limit = None;
                    spec.backoff_limit_per_index = Some(backoff);
                } else if multi_node {
                    let n = i32::try_from(shape.nodes).unwrap_or(i32::MAX);
                    spec.completion_mode = Some("Indexed".into());
                    spec.completions = Some(n);
                    spec.parallelism = Some(n);
                    // The job is done when node 0 (the script's node) is done.
                    spec.success_policy = Some(SuccessPolicy {
                        rules: vec![SuccessPolicyRule {
                            succeeded_indexes: Some("0".into()),
                            succeeded_count: None,
                        }],
                    });
                }
                objects.push(Object::Job(Box::new(Job {
                    metadata: meta.clone(),
                    spec: Some(spec),
                    status: None,
                })));
                if multi_node {
                    objects.push(Object::Service(Box::new(Service {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: s.namespace.clone(),
                            labels: Some(BTreeMap::from([
                                (MANAGED_BY.to_owned(), "pbsimage".to_owned()),
                                (LABEL_JOB.to_owned(), name.clone()),
                            ])),
                            ..Default::default()
                        },
                        spec: Some(ServiceSpec {
                            cluster_ip: Some("None".into()),
                            publish_not_ready_addresses: Some(true),
                            selector: Some(BTreeMap::from([(
                                "batch.kubernetes.io/job-name".to_owned(),
                                name.clone(),
                            )])),
                            ..Default::default()
                        }),
                        status: None,
                    })));
                }
            }
        }
        Ok(Manifest { objects, warnings })
    }
}

/// Checks a pod spec against the restricted Pod Security Standard (the parts a manifest
/// controls). Returns the violations.
pub fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut v = Vec::new();
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        v.push("host namespaces".to_owned());
    }
    for vol in pod.volumes.iter().flatten() {
        if vol.host_path.is_some() {
            v.push(format!("hostPath volume `{}`", vol.name));
        }
    }
    let psc = pod.security_context.as_ref();
    let pod_non_root = psc.and_then(|p| p.run_as_non_root) == Some(true);
    let pod_seccomp = psc
        .and_then(|p| p.seccomp_profile.as_ref())
        .map(|s| s.type_.as_str());
    if psc.and_then(|p| p.run_as_user) == Some(0) {
        v.push("pod runAsUser 0".to_owned());
    }
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.as_ref();
        if sc.and_then(|s| s.privileged) == Some(true) {
            v.push(format!("container `{}` is privileged", c.name));
        }
        if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            v.push(format!(
                "container `{}` allows privilege escalation",
                c.name
            ));
        }
        let drops_all = sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            v.push(format!(
                "container `{}` does not drop ALL capabilities",
                c.name
            ));
        }
        let adds = sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.as_ref())
            .is_some_and(|a| a.iter().any(|x| x != "NET_BIND_SERVICE"));
        if adds {
            v.push(format!("container `{}` adds capabilities", c.name));
        }
        let non_root = sc.and_then(|s| s.run_as_non_root).unwrap_or(pod_non_root);
        if !non_root {
            v.push(format!("container `{}` may run as root", c.name));
        }
        if sc.and_then(|s| s.run_as_user) == Some(0) {
            v.push(format!("container `{}` runAsUser 0", c.name));
        }
        let seccomp = sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|s| s.type_.as_str())
            .or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            v.push(format!(
                "container `{}` has no RuntimeDefault seccomp profile",
                c.name
            ));
        }
        if c.ports.iter().flatten().any(|p| p.host_port.is_some()) {
            v.push(format!("container `{}` uses host ports", c.name));
        }
    }
    v
}

/// A container security context that meets the restricted Pod Security Standard.
fn restricted_container(run_as: RunAs) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".into()]),
        }),
        run_as_non_root: Some(run_as.uid != 0),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// The pod side of the restricted standard: who runs, and the runtime's seccomp profile.
fn restricted_pod(run_as: RunAs) -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(i64::from(run_as.uid)),
        run_as_group: Some(i64::from(run_as.gid)),
        run_as_non_root: Some(run_as.uid != 0),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// A DaemonSet that warms every node with a catalog's images: one init container per image
/// (it runs `/bin/true`, so the node pulls the image's layers, shared ones once), then a
/// container that sleeps. Restricted Pod Security, like the jobs themselves.
pub fn prepull_daemonset(
    name: &str,
    namespace: Option<&str>,
    images: &[(String, String)],
    run_as: RunAs,
) -> Result<String, KubeError> {
    use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
    use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let small = || ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("1m".into())),
            ("memory".to_string(), Quantity("8Mi".into())),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("64Mi".into())),
        ])),
        ..Default::default()
    };
    let container = |cname: String, image: &str, command: &[&str]| Container {
        name: cname,
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(command.iter().map(|c| c.to_string()).collect()),
        resources: Some(small()),
        security_context: Some(restricted_container(run_as)),
        ..Default::default()
    };
    let init: Vec<Container> = images
        .iter()
        .enumerate()
        .map(|(i, (job, image))| {
            let mut n = format!("pull-{i}-{job}");
            n.truncate(63);
            container(n.trim_end_matches('-').to_owned(), image, &["/bin/true"])
        })
        .collect();
    let Some((_, first)) = images.first() else {
        return Ok(String::new());
    };
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "pbsimage".to_owned(),
        ),
    ]);
    let ds = DaemonSet {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(init),
                    containers: vec![container("wait".into(), first, &["/bin/sleep", "infinity"])],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod(run_as)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(&ds, options).map_err(KubeError::Serialize)
}
