//! The JobSet API (`jobset.x-k8s.io/v1alpha2`, kubernetes-sigs/jobset) as far as pbsimage
//! emits it: an array of multi-node jobs is one replicated Indexed Job per array element.
//! k8s-openapi has only the core API, so the few types are here; field names follow the CRD.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The API version of the JobSets pbsimage emits.
pub const API_VERSION: &str = "jobset.x-k8s.io/v1alpha2";
/// The pod label JobSet sets to the replicated Job's index (the PBS array element).
pub const JOB_INDEX_LABEL: &str = "jobset.sigs.k8s.io/job-index";
/// The one replicated Job's name: pods are `<jobset>-node-<element>-<node>`.
pub const REPLICATED_JOB: &str = "node";

/// A JobSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSet {
    /// `jobset.x-k8s.io/v1alpha2`.
    pub api_version: String,
    /// `JobSet`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// The replicated Jobs and their network.
    pub spec: JobSetSpec,
}

/// `spec` of a JobSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSetSpec {
    /// The Jobs, each with its replica count.
    pub replicated_jobs: Vec<ReplicatedJob>,
    /// Pod host names and their subdomain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Created suspended (`-h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// `replicatedJobs[]`: `replicas` copies of one Job template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedJob {
    /// The name in the pods' host names.
    pub name: String,
    /// Copies of the Job (the array's elements).
    pub replicas: i32,
    /// The Job.
    pub template: JobTemplateSpec,
}

/// `network`: every pod reachable at `<jobset>-<replicatedJob>-<job>-<pod>.<subdomain>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Pods get DNS host names.
    #[serde(
        default,
        rename = "enableDNSHostnames",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_dns_hostnames: Option<bool>,
    /// The headless Service JobSet makes (default: the JobSet's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// Host names resolve before the pods are ready (the launcher may start first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
}
