//! The MPI Operator's `MPIJob` (`kubeflow.org/v2beta1`) as far as pbsimage emits it: a
//! multi-node MPI job becomes one launcher (node 0: the job's script, whose `mpirun` starts
//! the ranks over ssh, and ranks of its own) and one worker per other node (a non-root
//! `sshd` on a high port, keyed by the Secret the operator generates and mounts at
//! `sshAuthMountPath`; see [`super::ssh`]). k8s-openapi has only the core
//! API, so the few types are here; field names follow the CRD (../shared/schemas).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The API version of the MPIJobs pbsimage emits.
pub const API_VERSION: &str = "kubeflow.org/v2beta1";

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
    /// The launcher runs ranks too (PBS's node 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_launcher_as_worker: Option<bool>,
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
