//! [`Emitter::emit`]: one job spec → its Kubernetes objects. The pod template is built once
//! by [`Emitter::pod_spec`]; each object kind (Pod, Job, Indexed Job + headless Service) is
//! assembled around it, so a new kind is one new function.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec as K8sJobSpec, JobTemplateSpec, SuccessPolicy, SuccessPolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, HostPathVolumeSource, NFSVolumeSource,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretVolumeSource, SecurityContext, Service, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    ANN, COMMAND, Emitter, HOME_DIR, INDEXED_NAME_MAX, JOBSET_NAME_MAX, JobUser, KubeError,
    LABEL_JOB, MANAGED_BY, Manifest, NAME_DIGEST_LEN, Naming, Object, Shape, TMP_DIR, env,
    env_field, jobset, join_under, mpijob, restricted_container, restricted_pod, shape, ssh,
};
use crate::config::{KubeKind, MpiMode, QueueMapping, VolumeSource};
use crate::image::ImageRef;
use crate::job::{JobSpec, Join};

/// What every object of one job shares: its name, queue, shape and the warnings so far.
struct Plan<'s> {
    name: String,
    queue: String,
    mapping: Option<&'s QueueMapping>,
    shape: Shape,
    multi_node: bool,
    warnings: Vec<String>,
}

impl Emitter<'_> {
    /// The objects for `job` running `image`, in apply order, with what did not map.
    pub fn emit(&self, job: &JobSpec, image: &ImageRef) -> Result<Manifest, KubeError> {
        let mut plan = self.plan(job, image)?;
        let (meta, labels) = self.metadata(job, &plan);
        let mut pod_spec = self.pod_spec(job, image, &mut plan);
        let mut secret = None;
        if plan.multi_node && self.kind == KubeKind::Job && self.settings.mpi == MpiMode::Ssh {
            secret = Some(self.ssh_secret(job, &plan, &labels)?);
            add_ssh(&mut pod_spec, &plan.name);
        }
        let objects = match self.kind {
            KubeKind::Pod => {
                if job.hold {
                    plan.warnings
                        .push("-h (hold) cannot be expressed on a Pod; ignored".into());
                }
                vec![Object::Pod(Box::new(Pod {
                    metadata: meta,
                    spec: Some(pod_spec),
                    status: None,
                }))]
            }
            KubeKind::Job if self.is_mpijob(job, &plan) => {
                vec![self.mpijob(job, &plan, meta, labels, pod_spec)]
            }
            KubeKind::Job if plan.multi_node && job.array.is_some() => {
                vec![self.jobset(job, &mut plan, meta, labels, pod_spec)]
            }
            KubeKind::Job => {
                let mut objects = vec![self.job(job, &plan, meta, labels, pod_spec)];
                if plan.multi_node {
                    objects.push(self.headless_service(&plan.name));
                }
                objects
            }
        };
        // The Secret first: the pods mount it.
        let objects = secret.into_iter().chain(objects).collect();
        Ok(Manifest {
            objects,
            warnings: plan.warnings,
        })
    }

    /// Checks what the kind and the run-as user allow, and names the job.
    fn plan(&self, job: &JobSpec, image: &ImageRef) -> Result<Plan<'_>, KubeError> {
        let mut warnings = Vec::new();
        let s = self.settings;
        let shape = shape(job, &mut warnings)?;
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
        let queue = job.queue.clone().unwrap_or_else(|| s.default_queue.clone());
        let mapping = s.queues.get(&queue);
        if mapping.is_none() && !s.queues.is_empty() {
            warnings.push(format!(
                "queue `{queue}` has no [kube.queues] entry; no queue labels applied"
            ));
        }
        if multi_node && self.naming == Naming::Generate {
            return Err(KubeError::Generate {
                job: job.name.to_string(),
            });
        }
        if multi_node && s.mpi == MpiMode::None {
            warnings.push(format!(
                "a job on {} nodes with [kube] mpi = \"none\": the other nodes' pods only wait, \
                 and nothing lets node 0's mpirun start ranks on them; set [kube] mpi = \"ssh\" \
                 (or \"mpi-operator\" where the MPI Operator runs)",
                shape.nodes
            ));
        }
        let jobset = multi_node && job.array.is_some();
        if jobset && !s.allow_jobset {
            return Err(KubeError::ArrayOfMultiNode {
                job: job.name.to_string(),
            });
        }
        let max = match (jobset, indexed) {
            (true, _) => JOBSET_NAME_MAX,
            (false, true) => INDEXED_NAME_MAX,
            (false, false) => 63,
        };
        Ok(Plan {
            name: self.object_name(job, max)?,
            queue,
            mapping,
            shape,
            multi_node,
            warnings,
        })
    }

    /// `<name>-<script digest>[-<suffix>]`, at most `max` characters: different scripts
    /// never share a name, the same script keeps its name (for `kubectl apply`).
    fn object_name(&self, job: &JobSpec, max: usize) -> Result<String, KubeError> {
        let digest: String = job.script_sha256.chars().take(NAME_DIGEST_LEN).collect();
        let suffix = match &self.naming {
            Naming::Suffix(s) => {
                if s.is_empty() || s.len() > 20 || !is_dns_label_part(s) {
                    return Err(KubeError::Suffix(s.clone()));
                }
                format!("-{digest}-{s}")
            }
            Naming::Digest | Naming::Generate => format!("-{digest}"),
        };
        let suffix = if digest.is_empty() {
            String::new()
        } else {
            suffix
        };
        Ok(format!(
            "{}{suffix}",
            job.name.dns_label(max.saturating_sub(suffix.len()))
        ))
    }

    /// The object's metadata (name, labels, the PBS attributes as annotations) and the
    /// labels pods get.
    fn metadata(&self, job: &JobSpec, plan: &Plan<'_>) -> (ObjectMeta, BTreeMap<String, String>) {
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), "pbsimage".to_owned()),
            (LABEL_JOB.to_owned(), plan.name.clone()),
        ]);
        if let Some(m) = plan.mapping {
            labels.extend(m.labels.clone());
        }
        let generate = self.naming == Naming::Generate;
        let meta = ObjectMeta {
            name: (!generate).then(|| plan.name.clone()),
            generate_name: generate.then(|| format!("{}-", plan.name)),
            namespace: self.settings.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: Some(annotations(job, &plan.queue)),
            ..Default::default()
        };
        (meta, labels)
    }

    /// The pod every object kind runs: the one container (the wrapper), its environment,
    /// resources and volumes, restricted security, the walltime as a deadline.
    fn pod_spec(&self, job: &JobSpec, image: &ImageRef, plan: &mut Plan<'_>) -> PodSpec {
        let s = self.settings;
        let mut envs = self.pbs_env(job, plan);
        let (volumes, mounts) = self.volumes(job, &mut envs, &mut plan.warnings);
        self.wrapper_env(job, plan, &mut envs);
        // The container starts in the working directory; a relative -d is made and entered
        // by the wrapper once the job's files are there (the runtime would make it as root).
        let work_dir = &s.work_dir;
        let working_dir = match &job.workdir {
            Some(d) if d.starts_with('/') => {
                // A directory of the submit host (/home/alice/run): the job's files are not
                // there. Kept in the pbsimage.io/workdir annotation.
                plan.warnings.push(format!(
                    "-d {d} is a directory of the submit host; the job runs in its working \
                     directory {work_dir} (the path is kept in annotation {ANN}workdir)"
                ));
                work_dir.clone()
            }
            Some(d) => {
                envs.push(env("PBSIMAGE_CHDIR", join_under(work_dir, d)));
                work_dir.clone()
            }
            None => work_dir.clone(),
        };
        user_env(job, &mut envs, &mut plan.warnings);
        let res = resources(&plan.shape, &s.gpu_resource);
        let pull = if image.is_pinned() {
            "IfNotPresent"
        } else {
            "Always"
        };
        let container = Container {
            name: "job".into(),
            image: Some(image.to_string()),
            image_pull_policy: Some(pull.into()),
            command: Some(COMMAND.iter().map(|c| c.to_string()).collect()),
            working_dir: Some(working_dir),
            env: Some(envs),
            resources: Some(ResourceRequirements {
                limits: Some(res.clone()),
                requests: Some(res),
                ..Default::default()
            }),
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(s.read_only_root),
                ..restricted_container(self.run_as)
            }),
            volume_mounts: Some(mounts),
            ..Default::default()
        };
        let deadline = job
            .resources
            .walltime
            .map(|w| i64::try_from(w.secs().saturating_add(s.walltime_slack)).unwrap_or(i64::MAX));
        PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: deadline,
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            priority_class_name: plan.mapping.and_then(|m| m.priority_class.clone()),
            node_selector: Some(self.node_selector(job, plan)).filter(|n| !n.is_empty()),
            subdomain: plan.multi_node.then(|| plan.name.clone()),
            security_context: Some(PodSecurityContext {
                fs_group: s.output_volume.as_ref().map(|_| i64::from(self.run_as.gid)),
                ..restricted_pod(self.run_as)
            }),
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }
    }

    /// The queue's node selector, plus the GPU model a job asks for (`[kube.gpu-models]`);
    /// other chunk resources are named in a warning with their line.
    fn node_selector(&self, job: &JobSpec, plan: &mut Plan<'_>) -> BTreeMap<String, String> {
        let mut selector = plan
            .mapping
            .map(|m| m.node_selector.clone())
            .unwrap_or_default();
        let r = &job.resources;
        let chunk_other = r
            .select
            .iter()
            .flat_map(|s| &s.chunks)
            .flat_map(|c| &c.other);
        for (name, value) in chunk_other.chain(&r.other) {
            let line = directive_line(job, name);
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            match self.settings.gpu_models.get(name) {
                Some(label) => match selector.get(label) {
                    Some(v) if v != value => plan.warnings.push(format!(
                        "{name}={value}{at}: node selector {label} is already {v}; kept"
                    )),
                    _ => {
                        selector.insert(label.clone(), value.clone());
                    }
                },
                None if r.other.contains_key(name) => {} // warned by the parser
                None => plan.warnings.push(format!(
                    "select chunk resource `{name}={value}`{at} is not mapped (add it to \
                     [kube.gpu-models] if it names a GPU model); recorded"
                )),
            }
        }
        selector
    }

    /// PBS's own variables, and where the wrapper finds the script and its shell.
    fn pbs_env(&self, job: &JobSpec, plan: &Plan<'_>) -> Vec<EnvVar> {
        let shape = &plan.shape;
        let mut envs = vec![
            env("PBS_JOBNAME", job.name.as_str()),
            env_field("PBS_JOBID", "metadata.name"),
            env("PBS_QUEUE", plan.queue.clone()),
            env("PBS_O_QUEUE", plan.queue.clone()),
            env("PBS_ENVIRONMENT", "PBS_BATCH"),
            env("PBS_O_WORKDIR", self.settings.work_dir.clone()),
            env("PBS_NP", shape.np.to_string()),
            env("PBS_NUM_NODES", shape.nodes.to_string()),
            env("PBS_NUM_PPN", shape.ppn.to_string()),
            env("TMPDIR", TMP_DIR),
        ];
        if let Some(w) = job.resources.walltime {
            envs.push(env("PBS_WALLTIME", w.secs().to_string()));
        }
        let user = JobUser::new(self.settings, self.run_as);
        envs.push(env("HOME", user.home));
        envs.push(env("USER", user.name.clone()));
        envs.push(env("LOGNAME", user.name));
        envs.push(env("PBSIMAGE_SEED", self.job_dir));
        let script_name = job
            .script
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.sh".into());
        envs.push(env(
            "PBSIMAGE_SCRIPT",
            join_under(self.job_dir, &script_name),
        ));
        let shell = job
            .shell
            .clone()
            .or_else(|| job.shebang.clone())
            .unwrap_or_else(|| self.settings.default_shell.clone());
        envs.push(env("PBSIMAGE_SHELL", shell));
        if !job.script_args.is_empty() {
            envs.push(env("PBSIMAGE_ARGS", job.script_args.join(" ")));
        }
        envs
    }

    /// The scratch volume, and the output volume with the `-o`/`-e`/`-j` paths on it.
    fn volumes(
        &self,
        job: &JobSpec,
        envs: &mut Vec<EnvVar>,
        warnings: &mut Vec<String>,
    ) -> (Vec<Volume>, Vec<VolumeMount>) {
        // Where the job writes, whatever the root filesystem: its working directory (filled
        // from the image by the wrapper), $HOME and /tmp.
        let scratch = [
            ("pbs-work", self.settings.work_dir.as_str()),
            ("pbs-home", HOME_DIR),
            ("pbs-tmp", TMP_DIR),
        ];
        let mut volumes: Vec<Volume> = scratch
            .iter()
            .map(|(name, _)| Volume {
                name: (*name).into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            })
            .collect();
        let mut mounts: Vec<VolumeMount> = scratch
            .iter()
            .map(|(name, path)| VolumeMount {
                name: (*name).into(),
                mount_path: (*path).into(),
                ..Default::default()
            })
            .collect();
        if let Some(sw) = &self.settings.software_volume {
            volumes.push(volume("pbs-software", sw.source(), true));
            mounts.push(VolumeMount {
                name: "pbs-software".into(),
                mount_path: sw.mount_path().into(),
                read_only: Some(true),
                ..Default::default()
            });
            if !sw.modulepath().is_empty() {
                // The image's module directories first, then the site's.
                let path: Vec<&str> = crate::needs::MODULE_ROOTS
                    .iter()
                    .copied()
                    .chain(sw.modulepath().iter().map(String::as_str))
                    .collect();
                envs.push(env("MODULEPATH", path.join(":")));
            }
        }
        let Some(vol) = &self.settings.output_volume else {
            if job.stdout_path.is_some() || job.stderr_path.is_some() {
                warnings.push(
                    "-o/-e need [kube.output-volume]; output goes to the container log".into(),
                );
            }
            return (volumes, mounts);
        };
        let mount = vol.mount_path();
        envs.push(env("PBSIMAGE_OUTPUT_DIR", mount));
        if self.settings.collect {
            envs.push(env("PBSIMAGE_COLLECT", "1"));
        }
        if let Some(p) = &job.stdout_path {
            envs.push(env("PBSIMAGE_STDOUT", output_path(mount, p, warnings)));
        }
        if let Some(p) = &job.stderr_path {
            envs.push(env("PBSIMAGE_STDERR", output_path(mount, p, warnings)));
        }
        match job.join {
            Join::Oe => envs.push(env("PBSIMAGE_JOIN", "oe")),
            Join::Eo => envs.push(env("PBSIMAGE_JOIN", "eo")),
            Join::N => {}
        }
        volumes.push(volume("pbs-output", vol.source(), false));
        mounts.push(VolumeMount {
            name: "pbs-output".into(),
            mount_path: mount.into(),
            ..Default::default()
        });
        (volumes, mounts)
    }

    /// umask, array and multi-node variables for the wrapper.
    fn wrapper_env(&self, job: &JobSpec, plan: &Plan<'_>, envs: &mut Vec<EnvVar>) {
        if let Some(m) = job.umask {
            envs.push(env("PBSIMAGE_UMASK", format!("{m:03o}")));
        }
        if let Some(a) = &job.array {
            envs.push(env("PBSIMAGE_ARRAY", a.compact()));
        }
        if !plan.multi_node {
            return;
        }
        let ppn: Vec<String> = plan.shape.ppn_list.iter().map(u32::to_string).collect();
        envs.push(env("PBSIMAGE_PPN_LIST", ppn.join(",")));
        let name = &plan.name;
        if self.is_mpijob(job, plan) {
            // The MPI Operator's host names: the launcher is node 0, the workers the others,
            // all under the job's Service.
            let nodes: Vec<String> = std::iter::once(format!("{name}-launcher.{name}"))
                .chain((1..plan.shape.nodes).map(|i| format!("{name}-worker-{}.{name}", i - 1)))
                .collect();
            envs.push(env("PBSIMAGE_NODES", nodes.join(",")));
            return;
        }
        if job.array.is_some() {
            // In a JobSet: the element is the replicated Job's index, and host names are
            // <jobset>-node-<element>-<node>.<jobset>.
            envs.push(env_field(
                "PBSIMAGE_ARRAY_INDEX",
                &format!("metadata.labels['{}']", jobset::JOB_INDEX_LABEL),
            ));
            envs.push(env(
                "PBSIMAGE_HOST_PREFIX",
                format!("{name}-{}", jobset::REPLICATED_JOB),
            ));
        } else {
            envs.push(env("PBSIMAGE_HOST_PREFIX", name.clone()));
        }
        envs.push(env("PBSIMAGE_SUBDOMAIN", name.clone()));
    }

    /// Whether the job becomes an MPIJob: a multi-node job, not an array, with
    /// `[kube] mpi = "mpi-operator"`.
    fn is_mpijob(&self, job: &JobSpec, plan: &Plan<'_>) -> bool {
        self.kind == KubeKind::Job
            && plan.multi_node
            && job.array.is_none()
            && self.settings.mpi == MpiMode::MpiOperator
    }

    /// Retries: `[kube] rerun-limit` for `#PBS -r y`, else none.
    fn backoff(&self, job: &JobSpec) -> i32 {
        if job.rerunnable == Some(true) {
            self.settings.rerun_limit
        } else {
            0
        }
    }

    /// A batch/v1 Job around the pod: Indexed for arrays (per-index retries) and for
    /// multi-node jobs (done when node 0 is).
    fn job(
        &self,
        job: &JobSpec,
        plan: &Plan<'_>,
        meta: ObjectMeta,
        labels: BTreeMap<String, String>,
        pod_spec: PodSpec,
    ) -> Object {
        let backoff = self.backoff(job);
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
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
        } else if plan.multi_node {
            let n = i32::try_from(plan.shape.nodes).unwrap_or(i32::MAX);
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
        Object::Job(Box::new(Job {
            metadata: meta,
            spec: Some(spec),
            status: None,
        }))
    }

    /// A JobSet for an array of multi-node jobs: one replicated Job (the multi-node Indexed
    /// Job, pod template and all) per array element; JobSet makes the headless Service.
    fn jobset(
        &self,
        job: &JobSpec,
        plan: &mut Plan<'_>,
        meta: ObjectMeta,
        labels: BTreeMap<String, String>,
        pod_spec: PodSpec,
    ) -> Object {
        let array = job.array.as_ref().expect("a JobSet is for arrays");
        if array.slot_limit.is_some() {
            plan.warnings.push(
                "the array's slot limit (%N) has no JobSet equivalent: every element may run at \
                 once"
                    .into(),
            );
        }
        let elements = i32::try_from(array.len()).unwrap_or(i32::MAX);
        let one = JobSpec {
            array: None,
            hold: false,
            ..job.clone()
        };
        let Object::Job(element) =
            self.job(&one, plan, ObjectMeta::default(), labels.clone(), pod_spec)
        else {
            unreachable!("job() makes a Job")
        };
        Object::JobSet(Box::new(jobset::JobSet {
            api_version: jobset::API_VERSION.into(),
            kind: "JobSet".into(),
            metadata: meta,
            spec: jobset::JobSetSpec {
                replicated_jobs: vec![jobset::ReplicatedJob {
                    name: jobset::REPLICATED_JOB.into(),
                    replicas: elements,
                    template: JobTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..Default::default()
                        }),
                        spec: element.spec,
                    },
                }],
                network: Some(jobset::Network {
                    enable_dns_hostnames: Some(true),
                    subdomain: Some(plan.name.clone()),
                    publish_not_ready_addresses: Some(true),
                }),
                suspend: job.hold.then_some(true),
            },
        }))
    }

    /// An MPIJob (the MPI Operator) for a multi-node job: the launcher is node 0, as PBS's
    /// mother superior (it runs the job's script and ranks of its own:
    /// `runLauncherAsWorker`), the workers the other nodes; PBS_NODEFILE lists the
    /// launcher then the workers (the host names the operator gives them), `ppn` lines
    /// each. Node 0's `mpirun` reaches the workers' non-root sshd (the wrapper's sister
    /// mode) through pbsimage's remote shell, with the key pair the operator generates and
    /// mounts in the job's home. The operator makes the headless Service, so pbsimage emits
    /// none.
    fn mpijob(
        &self,
        job: &JobSpec,
        plan: &Plan<'_>,
        meta: ObjectMeta,
        labels: BTreeMap<String, String>,
        pod_spec: PodSpec,
    ) -> Object {
        let template = |spec: PodSpec| PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels.clone()),
                ..Default::default()
            }),
            spec: Some(spec),
        };
        let workers = plan.shape.nodes.saturating_sub(1);
        let deadline = pod_spec.active_deadline_seconds;
        let mut launcher = pod_spec.clone();
        launcher.subdomain = None;
        if let Some(envs) = launcher.containers[0].env.as_mut() {
            envs.push(env("PBSIMAGE_ROLE", "launcher"));
            envs.extend(ssh::env(true, false));
        }
        let mut worker = pod_spec;
        worker.subdomain = None;
        worker.active_deadline_seconds = None;
        let c = &mut worker.containers[0];
        c.name = "worker".into();
        if let Some(envs) = c.env.as_mut() {
            envs.push(env("PBSIMAGE_ROLE", "worker"));
            envs.extend(ssh::env(false, true));
        }
        let backoff = self.backoff(job);
        let replica = |replicas: u32, spec: PodSpec| mpijob::ReplicaSpec {
            replicas: i32::try_from(replicas).unwrap_or(i32::MAX),
            restart_policy: "Never".into(),
            template: template(spec),
        };
        Object::MpiJob(Box::new(mpijob::MpiJob {
            api_version: mpijob::API_VERSION.into(),
            kind: "MPIJob".into(),
            metadata: meta,
            spec: mpijob::MpiJobSpec {
                slots_per_worker: i32::try_from(plan.shape.ppn).unwrap_or(i32::MAX),
                run_launcher_as_worker: Some(true),
                run_policy: mpijob::RunPolicy {
                    clean_pod_policy: "Running".into(),
                    backoff_limit: backoff,
                    active_deadline_seconds: deadline,
                    suspend: job.hold.then_some(true),
                },
                ssh_auth_mount_path: ssh::ssh_dir(),
                mpi_implementation: "OpenMPI".into(),
                mpi_replica_specs: BTreeMap::from([
                    ("Launcher".to_string(), replica(1, launcher)),
                    ("Worker".to_string(), replica(workers, worker)),
                ]),
            },
        }))
    }

    /// The Secret holding job `plan.name`'s ssh key pair (`[kube] mpi = "ssh"`).
    fn ssh_secret(
        &self,
        job: &JobSpec,
        plan: &Plan<'_>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Object, KubeError> {
        let secret = ssh::secret(&plan.name, self.settings.namespace.clone(), labels.clone())
            .map_err(|source| KubeError::SshKey {
                job: job.name.to_string(),
                source,
            })?;
        Ok(Object::Secret(Box::new(secret)))
    }

    /// The headless Service that gives a multi-node job's pods their host names.
    fn headless_service(&self, name: &str) -> Object {
        Object::Service(Box::new(Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: self.settings.namespace.clone(),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.to_owned(), "pbsimage".to_owned()),
                    (LABEL_JOB.to_owned(), name.to_owned()),
                ])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                publish_not_ready_addresses: Some(true),
                selector: Some(BTreeMap::from([(
                    "batch.kubernetes.io/job-name".to_owned(),
                    name.to_owned(),
                )])),
                ..Default::default()
            }),
            status: None,
        }))
    }
}

/// The line of the first `-l` directive naming resource `name`.
fn directive_line(job: &JobSpec, name: &str) -> Option<u32> {
    job.directives.iter().find_map(|d| {
        let v = d.value.as_deref()?;
        let named = v
            .split([',', ':', '+'])
            .any(|item| item.split('=').next() == Some(name));
        (d.option == "-l" && named).then_some(d.line)
    })
}

/// Lowercase letters, digits and inner `-`: what may follow `<name>-` in a DNS label.
fn is_dns_label_part(s: &str) -> bool {
    !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The PBS attributes that have no Kubernetes field, as `pbsimage.io/` annotations.
fn annotations(job: &JobSpec, queue: &str) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        (format!("{ANN}pbs-name"), job.name.to_string()),
        (format!("{ANN}queue"), queue.to_owned()),
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
    put(
        "workdir",
        job.workdir.clone().filter(|d| d.starts_with('/')),
    );
    put("server", job.server.clone());
    put("priority", job.priority.map(|p| p.to_string()));
    put("mail-events", job.mail_events.clone());
    put("mail-users", Some(job.mail_users.join(",")));
    let r = &job.resources;
    let mut unmapped: Vec<String> = r
        .other
        .iter()
        .map(|(k, v)| match v.as_str() {
            "" => k.clone(),
            v => format!("{k}={v}"),
        })
        .collect();
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
    let attributes: Vec<String> = job
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    put("attributes", Some(attributes.join(",")));
    annotations
}

/// The job's `-v` variables, except those that would override what pbsimage sets.
fn user_env(job: &JobSpec, envs: &mut Vec<EnvVar>, warnings: &mut Vec<String>) {
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
}

/// Requests = limits: cpu, memory, GPUs under the configured resource name.
fn resources(shape: &Shape, gpu_resource: &str) -> BTreeMap<String, Quantity> {
    let mut res = BTreeMap::from([("cpu".to_owned(), Quantity(shape.cpus.to_string()))]);
    if let Some(m) = shape.memory {
        res.insert(
            "memory".into(),
            Quantity(crate::job::resources::Size::from_bytes(m).to_quantity()),
        );
    }
    if shape.gpus > 0 {
        res.insert(gpu_resource.to_owned(), Quantity(shape.gpus.to_string()));
    }
    res
}

/// An `-o`/`-e` path on the output volume mounted at `mount`: relative paths go below it;
/// absolute ones elsewhere keep only their file name (with a warning).
fn output_path(mount: &str, p: &str, warnings: &mut Vec<String>) -> String {
    if p.starts_with('/') && !p.starts_with(&format!("{}/", mount.trim_end_matches('/'))) {
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
}

/// `[kube] mpi = "ssh"`: every pod mounts the job's Secret in its home (readable by the
/// job's group: root owns the files, so ssh's and sshd's checks of a key's mode pass); node 0
/// launches through pbsimage's remote shell, the other nodes run sshd.
fn add_ssh(spec: &mut PodSpec, name: &str) {
    let sc = spec.security_context.get_or_insert_with(Default::default);
    if sc.fs_group.is_none() {
        sc.fs_group = sc.run_as_group;
    }
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "pbs-ssh".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(ssh::secret_name(name)),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    let c = &mut spec.containers[0];
    c.volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: "pbs-ssh".into(),
            mount_path: ssh::ssh_dir(),
            read_only: Some(true),
            ..Default::default()
        });
    // One template for every node: the wrapper launches on node 0 and serves on the others.
    c.env
        .get_or_insert_with(Vec::new)
        .extend(ssh::env(true, true));
}

/// Volume `name` over `source`; `read_only` as the volume source says it (NFS, PVC).
fn volume(name: &str, source: VolumeSource<'_>, read_only: bool) -> Volume {
    let ro = read_only.then_some(true);
    let v = Volume {
        name: name.into(),
        ..Default::default()
    };
    match source {
        VolumeSource::Nfs { server, path } => Volume {
            nfs: Some(NFSVolumeSource {
                server: server.into(),
                path: path.into(),
                read_only: ro,
            }),
            ..v
        },
        VolumeSource::Pvc { claim } => Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                read_only: ro,
            }),
            ..v
        },
        VolumeSource::HostPath { path } => Volume {
            host_path: Some(HostPathVolumeSource {
                path: path.into(),
                type_: Some("Directory".into()),
            }),
            ..v
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::config::{Config, KubeSettings, Origin};
    use crate::kube::{RunAs, restricted_violations};

    fn settings() -> KubeSettings {
        Config::from_str("", Origin::Embedded, Path::new("."))
            .expect("the embedded default")
            .settings
            .kube
    }

    fn job(directives: &str) -> JobSpec {
        let script = format!("#!/bin/bash\n#PBS -N demo\n{directives}\n./a.out\n");
        crate::job::ScriptParser::new(&BTreeMap::<String, String>::new())
            .parse_bytes(Path::new("job.sh"), script.as_bytes())
            .expect("a valid script")
    }

    fn pinned() -> ImageRef {
        ImageRef::parse(&format!(
            "registry.example.org/pbs/demo@sha256:{}",
            "a".repeat(64)
        ))
        .expect("a reference")
    }

    fn emit(kind: KubeKind, directives: &str) -> Result<Manifest, KubeError> {
        let s = settings();
        Emitter {
            settings: &s,
            job_dir: "/pbs/job",
            kind,
            run_as: RunAs {
                uid: 1000,
                gid: 1000,
            },
            naming: Default::default(),
        }
        .emit(&job(directives), &pinned())
    }

    fn the_job(m: &Manifest) -> &K8sJobSpec {
        m.objects
            .iter()
            .find_map(|o| match o {
                Object::Job(j) => j.spec.as_ref(),
                _ => None,
            })
            .expect("a Job")
    }

    fn env_of(m: &Manifest, name: &str) -> Option<String> {
        m.pod_spec()?.containers[0]
            .env
            .as_ref()?
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    fn limit(m: &Manifest, r: &str) -> Option<String> {
        let res = m.pod_spec()?.containers[0].resources.as_ref()?;
        res.limits.as_ref()?.get(r).map(|q| q.0.clone())
    }

    #[test]
    fn pbs_resources_map_to_the_pod() {
        // (directives, cpu, memory, PBS_NP, PBS_NUM_NODES)
        let cases = [
            ("#PBS -l nodes=1:ppn=2,mem=4gb", "2", Some("4Gi"), "2", "1"),
            ("#PBS -l ncpus=3", "3", None, "3", "1"),
            ("#PBS -l nodes=2:ppn=4", "4", None, "8", "2"),
            (
                "#PBS -l select=1:ncpus=8:mem=512mb",
                "8",
                Some("512Mi"),
                "8",
                "1",
            ),
        ];
        for (d, cpu, mem, np, nodes) in cases {
            let m = emit(KubeKind::Job, d).unwrap_or_else(|e| panic!("{d}: {e}"));
            assert_eq!(limit(&m, "cpu").as_deref(), Some(cpu), "{d}");
            assert_eq!(limit(&m, "memory").as_deref(), mem, "{d}");
            assert_eq!(env_of(&m, "PBS_NP").as_deref(), Some(np), "{d}");
            assert_eq!(env_of(&m, "PBS_NUM_NODES").as_deref(), Some(nodes), "{d}");
            let pod = m.pod_spec().expect("a pod");
            assert!(restricted_violations(pod).is_empty(), "{d}");
        }
    }

    #[test]
    fn object_kinds_follow_the_job_shape() {
        // (directives, completions, parallelism, indexed, a headless Service)
        let cases = [
            ("", None, None, false, false),
            ("#PBS -t 1-3", Some(3), Some(3), true, false),
            ("#PBS -t 0-9%2", Some(10), Some(2), true, false),
            ("#PBS -l nodes=3:ppn=1", Some(3), Some(3), true, true),
        ];
        for (d, completions, parallelism, indexed, service) in cases {
            let m = emit(KubeKind::Job, d).unwrap_or_else(|e| panic!("{d}: {e}"));
            let j = the_job(&m);
            assert_eq!(j.completions, completions, "{d}");
            assert_eq!(j.parallelism, parallelism, "{d}");
            assert_eq!(
                j.completion_mode.as_deref() == Some("Indexed"),
                indexed,
                "{d}"
            );
            let has_service = m.objects.iter().any(|o| matches!(o, Object::Service(_)));
            assert_eq!(has_service, service, "{d}");
            assert_eq!(
                m.pod_spec().and_then(|p| p.subdomain.clone()).is_some(),
                service,
                "{d}"
            );
        }
    }

    #[test]
    fn walltime_rerun_and_hold() {
        let slack = settings().walltime_slack as i64;
        let m = emit(
            KubeKind::Job,
            "#PBS -l walltime=01:00:00\n#PBS -r y\n#PBS -h",
        )
        .unwrap();
        let j = the_job(&m);
        assert_eq!(
            m.pod_spec().unwrap().active_deadline_seconds,
            Some(3600 + slack)
        );
        assert_eq!(j.backoff_limit, Some(settings().rerun_limit));
        assert_eq!(j.suspend, Some(true));
        let m = emit(KubeKind::Job, "#PBS -t 1-2\n#PBS -r y").unwrap();
        let j = the_job(&m);
        assert_eq!(j.backoff_limit, None, "arrays retry per index");
        assert_eq!(j.backoff_limit_per_index, Some(settings().rerun_limit));
    }

    #[test]
    fn pods_refuse_what_a_pod_cannot_be() {
        for d in ["#PBS -t 1-3", "#PBS -l nodes=2:ppn=1"] {
            assert!(
                matches!(emit(KubeKind::Pod, d), Err(KubeError::PodCannot { .. })),
                "{d}"
            );
        }
        let m = emit(KubeKind::Pod, "#PBS -h").unwrap();
        assert!(matches!(m.objects[..], [Object::Pod(_)]));
        assert!(
            m.warnings.iter().any(|w| w.contains("-h")),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn variables_and_their_guards() {
        let m = emit(
            KubeKind::Job,
            "#PBS -v FOO=bar,PBS_JOBNAME=x,PBSIMAGE_SHELL=/bin/zsh",
        )
        .unwrap();
        assert_eq!(env_of(&m, "FOO").as_deref(), Some("bar"));
        assert_eq!(env_of(&m, "PBS_JOBNAME").as_deref(), Some("demo"));
        assert_eq!(env_of(&m, "PBSIMAGE_SHELL").as_deref(), Some("/bin/bash"));
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
    }

    #[test]
    fn absurd_resources_are_refused() {
        let err = emit(KubeKind::Job, "#PBS -l nodes=1:ppn=1000000,pmem=16000000gb").unwrap_err();
        assert!(matches!(err, KubeError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("pmem"), "{err}");
    }

    #[test]
    fn root_and_unpinned_images() {
        let s = settings();
        let root = Emitter {
            settings: &s,
            job_dir: "/pbs/job",
            kind: KubeKind::Job,
            run_as: RunAs { uid: 0, gid: 0 },
            naming: Default::default(),
        };
        assert!(matches!(
            root.emit(&job(""), &pinned()),
            Err(KubeError::Root { .. })
        ));
        let user = Emitter {
            run_as: RunAs {
                uid: 1000,
                gid: 1000,
            },
            naming: Default::default(),
            ..root
        };
        let floating = ImageRef::parse("registry.example.org/pbs/demo:latest").unwrap();
        let m = user.emit(&job(""), &floating).unwrap();
        let c = &m.pod_spec().unwrap().containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert!(
            m.warnings.iter().any(|w| w.contains("not pinned")),
            "{:?}",
            m.warnings
        );
    }

    fn emitter(s: &KubeSettings) -> Emitter<'_> {
        Emitter {
            settings: s,
            job_dir: "/pbs/job",
            kind: KubeKind::Job,
            run_as: RunAs {
                uid: 1000,
                gid: 1000,
            },
            naming: Naming::Digest,
        }
    }

    fn job_bytes(script: &str) -> JobSpec {
        crate::job::ScriptParser::new(&BTreeMap::<String, String>::new())
            .parse_bytes(Path::new("job.sh"), script.as_bytes())
            .expect("a valid script")
    }

    fn name_of(
        e: &Emitter<'_>,
        job: &JobSpec,
    ) -> Result<(Option<String>, Option<String>), KubeError> {
        let m = e.emit(job, &pinned())?;
        let Object::Job(j) = &m.objects[0] else {
            panic!("a Job")
        };
        Ok((j.metadata.name.clone(), j.metadata.generate_name.clone()))
    }

    #[test]
    fn names_follow_the_script_not_only_its_name() {
        let s = settings();
        let mut e = emitter(&s);
        // The paper's two listings are both `exampleJob`: two objects.
        let a = job_bytes("#!/bin/bash\n#PBS -N exampleJob\n./a.out\n");
        let b = job_bytes("#!/bin/bash\n#PBS -N exampleJob\necho hi\n");
        let (na, _) = name_of(&e, &a).unwrap();
        let (nb, _) = name_of(&e, &b).unwrap();
        let na = na.unwrap();
        assert_ne!(Some(na.clone()), nb);
        assert!(na.starts_with("examplejob-") && na.len() <= 63, "{na}");
        // The same script, the same name (kubectl apply updates it).
        assert_eq!(name_of(&e, &a).unwrap().0.unwrap(), na);
        // --name-suffix: a new name, still a DNS label within the limit.
        e.naming = Naming::Suffix("run2".into());
        let (n2, _) = name_of(&e, &a).unwrap();
        assert_eq!(n2.unwrap(), format!("{na}-run2"));
        let long = job_bytes(&format!(
            "#!/bin/bash\n#PBS -N {}\n#PBS -t 1-2\necho\n",
            "x".repeat(200)
        ));
        let (nl, _) = name_of(&e, &long).unwrap();
        let nl = nl.unwrap();
        assert!(
            nl.len() <= INDEXED_NAME_MAX && nl.ends_with("-run2"),
            "{nl}"
        );
        for bad in ["Run2", "-x", "a_b", &"x".repeat(21)] {
            e.naming = Naming::Suffix(bad.to_string());
            assert!(
                matches!(name_of(&e, &a), Err(KubeError::Suffix(_))),
                "{bad}"
            );
        }
        // --generate-name: the server names it; a multi-node job cannot be.
        e.naming = Naming::Generate;
        let (n, g) = name_of(&e, &a).unwrap();
        assert_eq!((n, g), (None, Some(format!("{na}-"))));
        let mpi = job_bytes("#!/bin/bash\n#PBS -N mpi\n#PBS -l nodes=2:ppn=1\nmpirun ./a\n");
        assert!(matches!(
            e.emit(&mpi, &pinned()),
            Err(KubeError::Generate { .. })
        ));
    }

    #[test]
    fn the_site_software_tree_is_mounted_read_only_with_its_modulefiles() {
        let mut s = settings();
        s.software_volume = Some(crate::config::SoftwareVolume::Nfs {
            server: "nfs.example.org".into(),
            path: "/export/apps".into(),
            mount_path: "/apps".into(),
            modulepath: vec!["/apps/modulefiles".into()],
        });
        let m = emitter(&s).emit(&job(""), &pinned()).unwrap();
        let pod = m.pod_spec().unwrap();
        let v = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "pbs-software")
            .unwrap();
        let nfs = v.nfs.as_ref().unwrap();
        assert_eq!(
            (nfs.server.as_str(), nfs.path.as_str(), nfs.read_only),
            ("nfs.example.org", "/export/apps", Some(true))
        );
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "pbs-software")
            .unwrap();
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            ("/apps", Some(true))
        );
        let path = env_of(&m, "MODULEPATH").unwrap();
        assert!(
            path.starts_with("/usr/share/modulefiles:") && path.ends_with(":/apps/modulefiles"),
            "{path}"
        );
        assert!(restricted_violations(pod).is_empty());
        // Without modulefile directories, MODULEPATH is the image's own business.
        s.software_volume = Some(crate::config::SoftwareVolume::Pvc {
            claim: "apps".into(),
            mount_path: "/apps".into(),
            modulepath: vec![],
        });
        let m = emitter(&s).emit(&job(""), &pinned()).unwrap();
        assert_eq!(env_of(&m, "MODULEPATH"), None);
    }

    #[test]
    fn the_job_writes_only_to_its_volumes() {
        let m = emit(KubeKind::Job, "").unwrap();
        let pod = m.pod_spec().unwrap();
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|v| v.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/pbs/work", "/pbs/home", "/tmp"]);
        assert_eq!(c.working_dir.as_deref(), Some("/pbs/work"));
        for (k, v) in [
            ("PBS_O_WORKDIR", "/pbs/work"),
            ("PBSIMAGE_SEED", "/pbs/job"),
            ("HOME", "/pbs/home"),
            ("USER", "pbsuser"),
            ("LOGNAME", "pbsuser"),
            ("TMPDIR", "/tmp"),
        ] {
            assert_eq!(env_of(&m, k).as_deref(), Some(v), "{k}");
        }
        let mut s = settings();
        s.read_only_root = false;
        s.run_as_name = Some("alice".into());
        let m = emitter(&s).emit(&job("#PBS -d sub"), &pinned()).unwrap();
        let c = &m.pod_spec().unwrap().containers[0];
        assert_eq!(
            c.security_context
                .as_ref()
                .unwrap()
                .read_only_root_filesystem,
            Some(false)
        );
        assert_eq!(c.working_dir.as_deref(), Some("/pbs/work"));
        assert_eq!(
            env_of(&m, "PBSIMAGE_CHDIR").as_deref(),
            Some("/pbs/work/sub")
        );
        assert_eq!(env_of(&m, "USER").as_deref(), Some("alice"));
    }

    fn selector(m: &Manifest) -> BTreeMap<String, String> {
        m.pod_spec()
            .and_then(|p| p.node_selector.clone())
            .unwrap_or_default()
    }

    fn warned(m: &Manifest, needle: &str) -> bool {
        m.warnings.iter().any(|w| w.contains(needle))
    }

    /// Directive forms qsub accepts, each row citing the qsub behaviour it mirrors.
    #[test]
    fn what_qsub_accepts() {
        // Sizes: to_size() in TORQUE's and OpenPBS's attr_fn_size.c: the b is optional, any
        // case.
        for (d, mem) in [
            ("#PBS -l select=1:ncpus=8:mem=10G", "10Gi"),
            ("#PBS -l mem=500m", "500Mi"),
            ("#PBS -l mem=7500M", "7500Mi"),
            ("#PBS -l mem=1t", "1Ti"),
        ] {
            let m = emit(KubeKind::Job, d).unwrap_or_else(|e| panic!("{d}: {e}"));
            assert_eq!(limit(&m, "memory").as_deref(), Some(mem), "{d}");
        }
        // PBS Pro takes valueless resources: NCI Gadi's -l wd, no warning (the job starts in
        // its working directory anyway); it stays in the annotations.
        let m = emit(KubeKind::Job, "#PBS -l wd\n#PBS -l walltime=1:00:00").unwrap();
        let j = job("#PBS -l wd");
        assert!(j.warnings.is_empty(), "{:?}", j.warnings);
        assert_eq!(j.resources.other.get("wd").map(String::as_str), Some(""));
        let Object::Job(o) = &m.objects[0] else {
            panic!()
        };
        let ann = o.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["pbsimage.io/resources-unmapped"], "wd");
        // Both qsubs match the prefix alone: `#PBS-A proj` is a directive.
        let j = job("#PBS-A proj\n#PBS-l walltime=1:00:00");
        assert_eq!(j.account.as_deref(), Some("proj"));
        assert_eq!(j.resources.walltime.map(|w| w.secs()), Some(3600));
        assert!(j.warnings.is_empty(), "{:?}", j.warnings);
        // TORQUE's resource-manager extension, -W x:...
        let j = job("#PBS -W x:nmatchpolicy:exactnode");
        assert_eq!(j.attributes["x"], "nmatchpolicy:exactnode");
        // Cray ALPS: mppwidth ranks, mppnppn per node, mppdepth cpus per rank; size = cores.
        let m = emit(KubeKind::Job, "#PBS -l mppwidth=16,mppnppn=12,mppdepth=2").unwrap();
        assert_eq!(limit(&m, "cpu").as_deref(), Some("24"));
        assert_eq!(env_of(&m, "PBS_NP").as_deref(), Some("16"));
        assert_eq!(env_of(&m, "PBS_NUM_NODES").as_deref(), Some("2"));
        assert_eq!(env_of(&m, "PBSIMAGE_PPN_LIST").as_deref(), Some("12,4"));
        let m = emit(KubeKind::Job, "#PBS -l size=36").unwrap();
        assert_eq!(limit(&m, "cpu").as_deref(), Some("36"));
        assert!(job("#PBS -l size=36").warnings.is_empty());
        // vmem as the memory request when mem/pmem are absent, with a note.
        let m = emit(KubeKind::Job, "#PBS -l vmem=64gb").unwrap();
        assert_eq!(limit(&m, "memory").as_deref(), Some("64Gi"));
        assert!(
            warned(&m, "vmem/pvmem taken as the memory request"),
            "{:?}",
            m.warnings
        );
        let m = emit(KubeKind::Job, "#PBS -l nodes=1:ppn=4,pvmem=2gb").unwrap();
        assert_eq!(limit(&m, "memory").as_deref(), Some("8Gi"));
        let m = emit(KubeKind::Job, "#PBS -l mem=4gb,vmem=64gb").unwrap();
        assert_eq!(limit(&m, "memory").as_deref(), Some("4Gi"));
        // -v copies named variables from qsub's environment; the submit host's paths and
        // identity are not copied, with one warning naming them; NAME=value still passes.
        let env = BTreeMap::from([
            ("PATH".to_owned(), "/home/alice/bin:/usr/bin".to_owned()),
            ("HOME".to_owned(), "/home/alice".to_owned()),
            ("PROJECT".to_owned(), "p1".to_owned()),
        ]);
        let j = crate::job::ScriptParser::new(&env)
            .parse_bytes(
                Path::new("job.sh"),
                b"#!/bin/bash\n#PBS -v PATH,LD_LIBRARY_PATH,HOME,PROJECT,OMP_NUM_THREADS=4\nx\n",
            )
            .unwrap();
        let names: Vec<&str> = j.env.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["PROJECT", "OMP_NUM_THREADS"]);
        let host: Vec<&String> = j
            .warnings
            .iter()
            .map(|w| &w.message)
            .filter(|m| m.contains("submit host"))
            .collect();
        assert_eq!(host.len(), 1, "{:?}", j.warnings);
        assert!(
            host[0].starts_with("PATH, LD_LIBRARY_PATH, HOME are"),
            "{}",
            host[0]
        );
        // select=4:mpiprocs=8 without ncpus: PBS Pro's default ncpus=1, and a warning.
        let m = emit(KubeKind::Job, "#PBS -l select=4:mpiprocs=8").unwrap();
        assert_eq!(limit(&m, "cpu").as_deref(), Some("1"));
        assert!(
            warned(&m, "mpiprocs=8 but ncpus=1 (PBS Pro's default)"),
            "{:?}",
            m.warnings
        );
        // GPU models → node selector ([kube.gpu-models]); other chunk resources named with
        // their line.
        let m = emit(KubeKind::Job, "#PBS -l select=1:ngpus=1:gpu_model=v100").unwrap();
        assert_eq!(selector(&m)["nvidia.com/gpu.product"], "v100");
        assert_eq!(limit(&m, "nvidia.com/gpu").as_deref(), Some("1"));
        let m = emit(KubeKind::Job, "#PBS -l select=1:ncpus=2:fabric=ib").unwrap();
        assert!(warned(&m, "`fabric=ib` (line 3)"), "{:?}", m.warnings);
        // One warning for a directive's stray words; one for all late directives.
        let j = job("#PBS -N x a b c d e f g");
        assert_eq!(j.warnings.len(), 1, "{:?}", j.warnings);
        assert!(
            j.warnings[0].message.contains("and 3 more"),
            "{:?}",
            j.warnings
        );
        let late: String = (0..10).map(|i| format!("#PBS -l mem={i}gb\n")).collect();
        let j = job_bytes(&format!("#!/bin/bash\necho first\n{late}"));
        assert_eq!(j.warnings.len(), 1, "{:?}", j.warnings);
        assert!(
            j.warnings[0]
                .message
                .starts_with("10 directives after the first command")
        );
    }
}
