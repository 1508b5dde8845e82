//! Manifest: [`JobSpec`] + image reference → Kubernetes objects (k8s-openapi types).
//!
//! [`Emitter::emit`] maps PBS semantics onto a batch/v1 Job (default) or a Pod. The container
//! always runs the same fixed wrapper ([`WRAPPER_PATH`], source in [`WRAPPER_SCRIPT`]); every
//! job-specific value reaches it through structured `env`, never through the command line.
//! Pods follow the restricted Pod Security Standard unless the config opts out of it.

pub mod build_job;
mod emit;
pub mod jobset;
pub mod mpijob;
pub mod ssh;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec,
    SeccompProfile, SecurityContext, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::config::{KubeKind, KubeSettings};
use crate::job::JobSpec;

/// Where the wrapper lives in every image pbsimage builds.
pub const WRAPPER_PATH: &str = "/usr/libexec/pbsimage/pbs-job";
/// The wrapper's source; the image stage installs it at [`WRAPPER_PATH`].
pub const WRAPPER_SCRIPT: &str = include_str!("pbs-job.sh");
/// Where the MPI launchers' remote shell lives in every image (Open MPI's `plm_rsh_agent`,
/// Hydra's `HYDRA_LAUNCHER_EXEC` in the ssh modes of `[kube] mpi`).
pub const RSH_PATH: &str = "/usr/libexec/pbsimage/pbs-rsh";
/// The remote shell's source; the image stage installs it at [`RSH_PATH`].
pub const RSH_SCRIPT: &str = include_str!("pbs-rsh.sh");
/// The container command: the same for every job.
pub const COMMAND: [&str; 1] = [WRAPPER_PATH];
/// Scratch directory (`TMPDIR`), an emptyDir over the image's `/tmp`.
pub const TMP_DIR: &str = "/tmp";
/// The job user's home directory (`HOME`), an emptyDir.
pub const HOME_DIR: &str = crate::config::JOB_HOME;
/// The user name when neither `[kube] run-as-name` nor the build host names the uid.
pub const DEFAULT_USER: &str = "pbsuser";
/// Hex digits of the script's sha256 in object names (`hello-world-3f2a9c1e`).
pub const NAME_DIGEST_LEN: usize = 8;
/// Job names longer than this cannot be Indexed Jobs (pod hostnames add `-<index>`).
pub const INDEXED_NAME_MAX: usize = 52;
/// JobSet names longer than this leave no room in pod host names
/// (`<jobset>-node-<element>-<node>`, at most 63).
pub const JOBSET_NAME_MAX: usize = 40;

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const LABEL_JOB: &str = "pbsimage.io/job";
const ANN: &str = "pbsimage.io/";

/// Why a manifest cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The job cannot run as a bare Pod.
    #[error("{what} cannot run as a Pod")]
    PodCannot {
        /// What the Pod cannot express.
        what: String,
    },
    /// The pods would run as uid or gid 0 without `allow-root`.
    #[error("refusing to run job `{job}` as uid 0")]
    Root {
        /// The job's name.
        job: String,
    },
    /// The job's ssh key pair cannot be made.
    #[error("cannot make the ssh key of job `{job}`")]
    SshKey {
        /// The job's name.
        job: String,
        /// Why.
        #[source]
        source: ssh::SshKeyError,
    },
    /// The objects cannot be serialized as YAML.
    #[error("cannot serialize the manifest")]
    Serialize(#[source] serde_saphyr::ser_error::Error),
    /// A resource beyond what Kubernetes can express.
    #[error("job `{job}`: {what} is more than Kubernetes can express")]
    TooLarge {
        /// The job's name.
        job: String,
        /// The resource and its size.
        what: String,
    },
    /// `--name-suffix` is not a DNS label.
    #[error("--name-suffix `{0}` is not a lowercase DNS label of at most 20 characters")]
    Suffix(String),
    /// An array of multi-node jobs without `allow-jobset`.
    #[error("job `{job}`: an array of multi-node jobs cannot be expressed as one Kubernetes Job")]
    ArrayOfMultiNode {
        /// The job's name.
        job: String,
    },
    /// `--generate-name` on a job whose pods must know the name.
    #[error("job `{job}`: --generate-name cannot name a multi-node job")]
    Generate {
        /// The job's name.
        job: String,
    },
    /// `--run-as` (or the configured ids) is not a valid uid/gid.
    #[error("--run-as `{given}`: {why}")]
    RunAs {
        /// What was given.
        given: String,
        /// Why it is refused.
        why: String,
    },
}

impl crate::hint::Hint for KubeError {
    fn hint(&self) -> Option<String> {
        match self {
            KubeError::PodCannot { .. } => Some("use --kind job (an Indexed Job)".into()),
            KubeError::Root { .. } => {
                Some("pass --run-as UID:GID, set [kube] run-as-user, or allow-root = true".into())
            }
            KubeError::RunAs { .. } => Some(
                "--run-as takes UID or UID:GID, numeric, at most 2147483647 (Kubernetes' int32)"
                    .into(),
            ),
            KubeError::TooLarge { .. } => Some(
                "check the -l values: mem and pmem are per job and per process, in binary units \
                 (4gb is 4 GiB)"
                    .into(),
            ),
            KubeError::Serialize(_) | KubeError::SshKey { .. } => None,
            KubeError::ArrayOfMultiNode { .. } => Some(
                "set [kube] allow-jobset = true to emit a JobSet (jobset.x-k8s.io, one Indexed \
                 Job per element; the cluster needs the JobSet controller), or submit the \
                 elements as separate jobs"
                    .into(),
            ),
            KubeError::Suffix(_) => Some("use a-z, 0-9 and `-`, e.g. --name-suffix run2".into()),
            KubeError::Generate { .. } => Some(
                "its pods' host names and Service derive from the Job's name; use \
                 --name-suffix to submit it again"
                    .into(),
            ),
        }
    }
}

/// A user and group id for the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// `runAsUser`.
    pub uid: u32,
    /// `runAsGroup`.
    pub gid: u32,
}

impl RunAs {
    /// `--run-as UID[:GID]` when given, else the `[kube] run-as-*` settings, else the invoking
    /// user. Ids must fit Kubernetes' int32 whatever their source.
    pub fn resolve(
        flag: Option<&str>,
        user: crate::config::IdSetting,
        group: crate::config::IdSetting,
    ) -> Result<RunAs, KubeError> {
        use crate::config::IdSetting;
        let given = flag.unwrap_or_default();
        let bad = |why: String| KubeError::RunAs {
            given: given.to_owned(),
            why,
        };
        let parse = |s: &str| -> Result<u32, KubeError> {
            s.parse()
                .map_err(|_| bad(format!("`{s}` is not a numeric id")))
        };
        let (uid, gid) = match flag {
            Some(f) => match f.split_once(':') {
                Some((u, g)) => (parse(u)?, parse(g)?),
                None => (parse(f)?, parse(f)?),
            },
            None => (
                match user {
                    IdSetting::Id(u) => u,
                    IdSetting::Invoking => rustix::process::getuid().as_raw(),
                },
                match group {
                    IdSetting::Id(g) => g,
                    IdSetting::Invoking => rustix::process::getgid().as_raw(),
                },
            ),
        };
        if uid > i32::MAX as u32 || gid > i32::MAX as u32 {
            let why = format!("uid/gid {uid}:{gid} is out of range for Kubernetes");
            return Err(match flag {
                Some(_) => bad(why),
                None => KubeError::RunAs {
                    given: "[kube] run-as-user/run-as-group".into(),
                    why,
                },
            });
        }
        Ok(RunAs { uid, gid })
    }
}

/// The account a job runs as, as the image's `/etc/passwd` and the pod's environment
/// (`USER`, `LOGNAME`, `HOME`) give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    /// uid and gid.
    pub run_as: RunAs,
    /// The user name (also the primary group's name when the image has no group `gid`).
    pub name: String,
    /// `HOME`: a writable emptyDir.
    pub home: &'static str,
}

impl JobUser {
    /// The user for `run_as`: named by `[kube] run-as-name`; else, when the job runs as the
    /// invoking user (`run-as-user = "invoking"`, the submitter, as PBS runs jobs), by the
    /// build host's `/etc/passwd`; else [`DEFAULT_USER`], so that a configured uid gives the
    /// same image on every build host.
    pub fn new(settings: &KubeSettings, run_as: RunAs) -> JobUser {
        let invoking = settings.run_as_user == crate::config::IdSetting::Invoking
            && run_as.uid == rustix::process::getuid().as_raw();
        let name = match &settings.run_as_name {
            Some(n) => n.clone(),
            None if run_as.uid == 0 => "root".into(),
            None if invoking => invoking_user_name().unwrap_or_else(|| DEFAULT_USER.into()),
            None => DEFAULT_USER.into(),
        };
        JobUser {
            run_as,
            name,
            home: HOME_DIR,
        }
    }

    /// `/etc/passwd` and `/etc/group` with this user's lines: `passwd` and `group` are the
    /// image's (empty when it has none; then `root` is written first). The user's line
    /// replaces a line of the same uid (so that `getpwuid` agrees with the pod's `USER` and
    /// `HOME`); a group of the same gid is kept. A name another id has gives the new line
    /// `<name>-<id>`. Returns the texts and a line per change.
    pub fn add_to(&self, passwd: &str, group: &str) -> (String, String, Vec<String>) {
        let field = |line: &str, i: usize| line.split(':').nth(i).map(str::to_owned);
        let id_of = |line: &str| field(line, 2).and_then(|f| f.parse::<u32>().ok());
        let start = |text: &str, root: &str| {
            let mut t = if text.trim().is_empty() {
                root.to_owned()
            } else {
                text.to_owned()
            };
            if !t.ends_with('\n') {
                t.push('\n');
            }
            t
        };
        let passwd = start(passwd, "root:x:0:0:root:/root:/bin/sh\n");
        let mut group = start(group, "root:x:0:\n");
        let mut report = Vec::new();
        let RunAs { uid, gid } = self.run_as;
        let unique = |text: &str, id: u32| {
            let taken = text
                .lines()
                .any(|l| field(l, 0).as_deref() == Some(&self.name) && id_of(l) != Some(id));
            if taken {
                format!("{}-{id}", self.name)
            } else {
                self.name.clone()
            }
        };
        if !group.lines().any(|l| id_of(l) == Some(gid)) {
            let g = unique(&group, gid);
            group.push_str(&format!("{g}:x:{gid}:\n"));
            report.push(format!("group {g}: gid {gid} (the job's run-as group)"));
        }
        let u = unique(&passwd, uid);
        let line = format!("{u}:x:{uid}:{gid}:pbsimage job user:{}:/bin/sh", self.home);
        let mut out = String::new();
        let mut replaced = None;
        for l in passwd.lines() {
            if id_of(l) == Some(uid) && replaced.is_none() {
                replaced = field(l, 0);
                out.push_str(&line);
            } else if id_of(l) != Some(uid) {
                out.push_str(l);
            } else {
                continue;
            }
            out.push('\n');
        }
        match replaced {
            Some(old) if old == u && passwd.contains(&line) => {}
            Some(old) => report.push(format!(
                "user {u}: uid {uid} (the job's run-as user, instead of {old})"
            )),
            None => {
                out.push_str(&line);
                out.push('\n');
                report.push(format!("user {u}: uid {uid} (the job's run-as user)"));
            }
        }
        (out, group, report)
    }
}

/// The invoking user's name in the build host's `/etc/passwd`, read once per process (a
/// catalog emits a manifest and a job layer per job).
fn invoking_user_name() -> Option<String> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let uid = rustix::process::getuid().as_raw();
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|t| passwd_name(&t, uid))
            .filter(|n| is_user_name(n))
    })
    .clone()
}

/// The name `passwd` gives `uid`.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_owned())
    })
}

pub use crate::config::is_user_name;

/// How a job's objects are named: `<name>-<script digest>` (the same for the same script,
/// so `kubectl apply` updates it), plus a fixed suffix, or left to the API server
/// (`generateName`, a new object on every `kubectl create`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Naming {
    /// `<name>-<digest>`.
    #[default]
    Digest,
    /// `<name>-<digest>-<suffix>` (`--name-suffix`).
    Suffix(String),
    /// `generateName: <name>-<digest>-` (`--generate-name`; not for multi-node jobs, whose
    /// Service and host names need the name beforehand).
    Generate,
}

/// One emitted object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    /// A batch/v1 Job.
    Job(Box<Job>),
    /// A Pod.
    Pod(Box<Pod>),
    /// A headless Service (multi-node jobs).
    Service(Box<Service>),
    /// A JobSet (arrays of multi-node jobs, with `allow-jobset`).
    JobSet(Box<jobset::JobSet>),
    /// An MPIJob (multi-node jobs, with `[kube] mpi = "mpi-operator"`).
    MpiJob(Box<mpijob::MpiJob>),
    /// The job's ssh key pair (multi-node jobs, with `[kube] mpi = "ssh"`).
    Secret(Box<k8s_openapi::api::core::v1::Secret>),
}

/// The objects for one job, in apply order, plus what did not map.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The objects, in apply order.
    pub objects: Vec<Object>,
    /// PBS semantics that did not map.
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Whether the objects include a Secret (its file should be readable by its owner only).
    pub fn has_secret(&self) -> bool {
        self.objects.iter().any(|o| matches!(o, Object::Secret(_)))
    }

    /// Keeps the data of each Secret that `previous` (the manifest file this one replaces)
    /// has under the same name and namespace: a rebuilt job's manifest then applies again
    /// unchanged (its Secret is immutable, and its pods keep the key they were given).
    /// Returns how many Secrets were kept.
    pub fn keep_secrets_of(&mut self, previous: &str) -> usize {
        let old: Vec<k8s_openapi::api::core::v1::Secret> = previous
            .split("\n---\n")
            .filter(|d| d.lines().any(|l| l.trim() == "kind: Secret"))
            .filter_map(|d| serde_saphyr::from_str(d).ok())
            .collect();
        let mut kept = 0;
        for o in &mut self.objects {
            let Object::Secret(s) = o else { continue };
            if let Some(prev) = old.iter().find(|p| {
                p.metadata.name == s.metadata.name && p.metadata.namespace == s.metadata.namespace
            }) && prev
                .data
                .as_ref()
                .is_some_and(|d| s.data.as_ref().is_some_and(|n| n.keys().eq(d.keys())))
            {
                s.data = prev.data.clone();
                kept += 1;
            }
        }
        kept
    }

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
            Object::Service(_) | Object::Secret(_) => None,
            Object::JobSet(s) => s
                .spec
                .replicated_jobs
                .first()?
                .template
                .spec
                .as_ref()?
                .template
                .spec
                .as_ref(),
            // The launcher: the pod that runs the script.
            Object::MpiJob(m) => m
                .spec
                .mpi_replica_specs
                .get("Launcher")?
                .template
                .spec
                .as_ref(),
        })
    }
}

/// Turns job specs into manifests.
pub struct Emitter<'a> {
    /// `[kube]`.
    pub settings: &'a KubeSettings,
    /// Where the job's files are in the image (`[image] job-dir`).
    pub job_dir: &'a str,
    /// Job or Pod.
    pub kind: KubeKind,
    /// Who the pods run as.
    pub run_as: RunAs,
    /// How the objects are named.
    pub naming: Naming,
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

/// Nodes, cpus, GPUs, memory per chunk, slots per node and total slots of a job's shape.
type ShapeParts = (u32, u32, u32, Option<u64>, Vec<u32>, u32);

/// The shape of a PBS Pro `select=` request: one pod per chunk, the largest chunk's resources.
fn select_shape(
    sel: &crate::job::resources::Select,
    top_gpus: u32,
    warnings: &mut Vec<String>,
) -> ShapeParts {
    let per: Vec<u32> = sel
        .chunks
        .iter()
        .flat_map(|c| std::iter::repeat_n(c.mpiprocs.or(c.ncpus).unwrap_or(1), c.count as usize))
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
        warnings.push("select chunks differ: every pod gets the largest chunk's resources".into());
    }
    for c in &sel.chunks {
        let ncpus = c.ncpus.unwrap_or(1);
        if let Some(ranks) = c.mpiprocs.filter(|&r| r > ncpus) {
            warnings.push(format!(
                "select chunk with mpiprocs={ranks} but ncpus={ncpus}{}: {ranks} ranks share \
                 {ncpus} cpu{} per pod",
                if c.ncpus.is_none() {
                    " (PBS Pro's default)"
                } else {
                    ""
                },
                if ncpus == 1 { "" } else { "s" }
            ));
        }
    }
    (
        sel.node_count(),
        cpus,
        gpus.max(top_gpus),
        mem,
        per,
        sel.slots(),
    )
}

/// The shape of a TORQUE `nodes=` request: one pod per node, the largest group's resources.
fn nodes_shape(
    n: &crate::job::resources::NodeSpec,
    top_gpus: u32,
    procs_given: bool,
    warnings: &mut Vec<String>,
) -> ShapeParts {
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
        warnings.push("node groups differ: every pod gets the largest group's resources".into());
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
    if procs_given {
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
}

/// The shape of a Cray ALPS request: `mppwidth` ranks, `mppnppn` per node (default: all on
/// one), `mppdepth` cpus per rank.
fn cray_shape(width: u32, r: &crate::job::resources::Resources, top_gpus: u32) -> ShapeParts {
    let width = width.max(1);
    let per_node = r.mppnppn.unwrap_or(width).clamp(1, width);
    let depth = r.mppdepth.unwrap_or(1).max(1);
    let nodes = width.div_ceil(per_node);
    let per: Vec<u32> = (0..nodes)
        .map(|i| per_node.min(width - i * per_node))
        .collect();
    (
        nodes,
        per_node.saturating_mul(depth),
        top_gpus,
        None,
        per,
        width,
    )
}

/// How many nodes (pods) a job runs on; 1 when its resources do not say or cannot be read
/// (the emitter reports those).
pub fn node_count(job: &JobSpec) -> u32 {
    shape(job, &mut Vec::new()).map_or(1, |s| s.nodes)
}

fn shape(job: &JobSpec, warnings: &mut Vec<String>) -> Result<Shape, KubeError> {
    let r = &job.resources;
    let top_gpus = r.ngpus.unwrap_or(0);
    let (nodes, cpus, gpus, chunk_mem, ppn_list, np) = if let Some(sel) = &r.select {
        select_shape(sel, top_gpus, warnings)
    } else if let Some(n) = &r.nodes {
        nodes_shape(n, top_gpus, r.procs.is_some(), warnings)
    } else if let Some(width) = r.mppwidth {
        cray_shape(width, r, top_gpus)
    } else if let (Some(size), None, None) = (r.size, r.procs, r.ncpus) {
        // Cray `size=`: cores in all, on one pod.
        (1, size, top_gpus, None, vec![size], size)
    } else {
        let cpus = r.procs.or(r.ncpus).unwrap_or(1);
        (1, cpus, top_gpus, None, vec![cpus], cpus)
    };
    let ppn = ppn_list.first().copied().unwrap_or(1);
    let per_node_mem = r.mem.map(|m| m.bytes().div_ceil(u64::from(nodes.max(1))));
    let per_proc_mem = match r.pmem {
        Some(m) => {
            Some(
                m.bytes()
                    .checked_mul(u64::from(cpus))
                    .ok_or_else(|| KubeError::TooLarge {
                        job: job.name.to_string(),
                        what: format!("pmem={m} times {cpus} processors"),
                    })?,
            )
        }
        None => None,
    };
    let mut memory = [chunk_mem, per_node_mem, per_proc_mem]
        .into_iter()
        .flatten()
        .max();
    // Without mem or pmem, vmem (per job, shared by the nodes) and pvmem (per process) are
    // the memory request: sites that limit vmem mean it as the job's memory.
    let mut from_vmem = false;
    if memory.is_none() {
        let vmem = r.vmem.map(|m| m.bytes().div_ceil(u64::from(nodes.max(1))));
        let pvmem = r.pvmem.and_then(|m| m.bytes().checked_mul(u64::from(cpus)));
        memory = vmem.into_iter().chain(pvmem).max();
        from_vmem = memory.is_some();
        if from_vmem {
            warnings.push(
                "no mem or pmem: vmem/pvmem taken as the memory request (a container limits \
                 resident memory, not address space)"
                    .into(),
            );
        }
    }
    // A Quantity holds at most i64::MAX.
    if let Some(m) = memory
        && m > i64::MAX as u64
    {
        return Err(KubeError::TooLarge {
            job: job.name.to_string(),
            what: format!("{m} bytes of memory per pod"),
        });
    }
    if (r.vmem.is_some() || r.pvmem.is_some()) && !from_vmem {
        warnings.push("vmem/pvmem have no Kubernetes equivalent; recorded in annotations".into());
    }
    if r.cput.is_some() {
        warnings.push("cput is not enforced; recorded in annotations".into());
    }
    Ok(Shape {
        nodes,
        cpus,
        gpus,
        memory,
        ppn_list,
        np,
        ppn,
    })
}

/// An environment variable whose value reaches the job verbatim: the kubelet expands
/// `$(NAME)` in values and turns `$$` into `$`, so every `$` is doubled.
fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into().replace('$', "$$")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> JobUser {
        JobUser {
            run_as: RunAs {
                uid: 1000,
                gid: 1000,
            },
            name: name.into(),
            home: HOME_DIR,
        }
    }

    #[test]
    fn the_job_user_is_added_to_the_images_accounts() {
        let setup_passwd = "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n";
        let setup_group = "root:x:0:\nbin:x:1:\n";
        let (p, g, report) = user("alice").add_to(setup_passwd, setup_group);
        assert_eq!(
            p,
            format!("{setup_passwd}alice:x:1000:1000:pbsimage job user:/pbs/home:/bin/sh\n")
        );
        assert_eq!(g, format!("{setup_group}alice:x:1000:\n"));
        assert_eq!(report.len(), 2, "{report:?}");
        // No account files at all: root first.
        let (p, g, _) = user("alice").add_to("", "");
        assert!(
            p.starts_with("root:x:0:0:") && p.contains("\nalice:x:1000:"),
            "{p}"
        );
        assert!(g.starts_with("root:x:0:\n"), "{g}");
        // The uid taken: its line is replaced (getpwuid must agree with USER and HOME); the
        // gid taken: the group stays.
        let (p, g, report) = user("alice").add_to(
            "root:x:0:0::/root:/bin/sh\nhpc:x:1000:1000::/pbs/job:/bin/bash\n",
            "root:x:0:\nhpc:x:1000:\n",
        );
        assert_eq!(
            p,
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000:pbsimage job user:/pbs/home:/bin/sh\n"
        );
        assert_eq!(g, "root:x:0:\nhpc:x:1000:\n");
        assert!(report[0].contains("instead of hpc"), "{report:?}");
        // The name taken by another uid: the new line is name-uid.
        let (p, _, _) = user("bin").add_to(setup_passwd, setup_group);
        assert!(p.contains("\nbin-1000:x:1000:1000:"), "{p}");
        // Twice is once.
        let (p1, g1, _) = user("alice").add_to(setup_passwd, setup_group);
        let (p2, g2, r2) = user("alice").add_to(&p1, &g1);
        assert_eq!((p1, g1), (p2, g2));
        assert!(r2.is_empty(), "{r2:?}");
    }

    #[test]
    fn user_names() {
        for ok in ["alice", "_svc", "a.b-c_1"] {
            assert!(is_user_name(ok), "{ok}");
        }
        for bad in ["", "1abc", "a b", "a:b", &"x".repeat(33)] {
            assert!(!is_user_name(bad), "{bad}");
        }
        assert_eq!(
            passwd_name("root:x:0:0::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n", 1001).as_deref(),
            Some("bob")
        );
    }
}
