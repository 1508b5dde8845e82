//! The MPI Operator's `MPIJob` (`kubeflow.org/v2beta1`) as far as pbsimage emits it: a
//! multi-node MPI job becomes one launcher (the job's script, whose `mpirun` starts the ranks
//! over ssh) and one worker per node (a non-root `sshd` on a high port, keyed by the Secret
//! the operator generates and mounts at `sshAuthMountPath`). k8s-openapi has only the core
//! API, so the few types are here; field names follow the CRD (../shared/schemas).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The API version of the MPIJobs pbsimage emits.
pub const API_VERSION: &str = "kubeflow.org/v2beta1";
/// The port the workers' sshd listens on (non-root: above 1024).
pub const SSH_PORT: u16 = 2222;

/// An MPIJob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpiJob {
    /// `kubeflow.org/v2beta1`.
    pub api_version: String,
    /// `MPIJob`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// Launcher and workers.
    pub spec: MpiJobSpec,
}

/// `spec` of an MPIJob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MpiJobSpec {
    /// MPI slots per worker (PBS `ppn`).
    pub slots_per_worker: i32,
    /// Retries, deadline, suspension, clean-up.
    pub run_policy: RunPolicy,
    /// Where the operator mounts the generated ssh key pair and `authorized_keys`.
    pub ssh_auth_mount_path: String,
    /// `OpenMPI`, `Intel` or `MPICH`.
    pub mpi_implementation: String,
    /// `Launcher` and `Worker`.
    pub mpi_replica_specs: BTreeMap<String, ReplicaSpec>,
}

/// `runPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// `Running`: the workers go when the launcher ends.
    pub clean_pod_policy: String,
    /// Launcher retries (`#PBS -r y`).
    pub backoff_limit: i32,
    /// The walltime (with `[kube] walltime-slack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Created suspended (`-h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// `mpiReplicaSpecs.<Launcher|Worker>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// Pods.
    pub replicas: i32,
    /// `Never`: a failed launcher is retried by the operator's backoff, not in place.
    pub restart_policy: String,
    /// The pod.
    pub template: PodTemplateSpec,
}

/// The workers' command: a non-root sshd, configured on its command line (the image needs no
/// sshd_config of its own), its host key the operator's generated key.
pub fn worker_command(ssh_dir: &str, home: &str) -> Vec<String> {
    let mut c: Vec<String> = ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for o in [
        format!("Port={SSH_PORT}"),
        format!("HostKey={ssh_dir}/id_rsa"),
        format!("AuthorizedKeysFile={ssh_dir}/authorized_keys"),
        format!("PidFile={home}/sshd.pid"),
        "StrictModes=no".into(),
        "PasswordAuthentication=no".into(),
        "UsePAM=no".into(),
    ] {
        c.push("-o".into());
        c.push(o);
    }
    c
}

/// How the launcher's `mpirun` reaches the workers' sshd (Open MPI's and MPICH's settings).
pub fn launcher_env() -> Vec<(&'static str, String)> {
    let args = format!(
        "-p {SSH_PORT} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectionAttempts=10"
    );
    vec![
        ("OMPI_MCA_plm_rsh_args", args.clone()),
        ("HYDRA_LAUNCHER_EXTRA_ARGS", args),
    ]
}
