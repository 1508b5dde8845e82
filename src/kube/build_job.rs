//! The catalog build spread over the cluster: an Indexed Job whose pod `k` runs
//! `pbsimage catalog --shard auto/N` (shard k+1 of N, from `JOB_COMPLETION_INDEX`) from
//! pbsimage's own image, each pod with its own cache (an emptyDir), the catalog from a
//! read-only volume claim, the settings from a ConfigMap and the registry credentials from a
//! `kubernetes.io/dockerconfigjson` Secret. The pods meet only in the registry.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{KubeError, RunAs, restricted_container, restricted_pod};

/// Where things are inside a build pod.
const CONFIG_DIR: &str = "/etc/pbsimage";
const CATALOG_DIR: &str = "/catalog";
const CACHE_DIR: &str = "/cache";
const AUTH_DIR: &str = "/run/pbsimage/auth";

/// What the build Job needs to know.
pub struct BuildJob<'a> {
    /// Name of the Job and its ConfigMap.
    pub name: &'a str,
    /// Namespace, if set.
    pub namespace: Option<&'a str>,
    /// How many shards (pods).
    pub shards: u32,
    /// pbsimage's own image, digest-pinned.
    pub image: &'a str,
    /// The pbsimage binary inside it.
    pub binary: &'a str,
    /// The settings the pods use (`[cache] dir` is replaced by the pod's cache).
    pub pipeline_toml: &'a str,
    /// The catalog inside the claim: `.` for a directory at its root, else a path below it
    /// (`catalog.toml`, `jobs/`).
    pub catalog: &'a str,
    /// The volume claim holding the catalog (mounted read-only).
    pub claim: &'a str,
    /// The registry every pod pushes to.
    pub registry: &'a str,
    /// A `kubernetes.io/dockerconfigjson` Secret with the registry's credentials.
    pub registry_secret: Option<&'a str>,
    /// Reach the registry over plain HTTP.
    pub plain_http: bool,
    /// Who the pods run as.
    pub run_as: RunAs,
}

/// The ConfigMap and the Indexed Job, as one YAML stream.
pub fn catalog_build_job(b: &BuildJob<'_>) -> Result<String, KubeError> {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), b.name.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "pbsimage".to_owned(),
        ),
    ]);
    let meta = || ObjectMeta {
        name: Some(b.name.to_owned()),
        namespace: b.namespace.map(str::to_owned),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let config = ConfigMap {
        metadata: meta(),
        data: Some(BTreeMap::from([(
            "pipeline.toml".to_string(),
            b.pipeline_toml.to_owned(),
        )])),
        ..Default::default()
    };
    let catalog = if b.catalog == "." || b.catalog.is_empty() {
        CATALOG_DIR.to_owned()
    } else {
        format!("{CATALOG_DIR}/{}", b.catalog.trim_start_matches('/'))
    };
    let mut args: Vec<String> = [
        "--config",
        &format!("{CONFIG_DIR}/pipeline.toml"),
        "catalog",
        "--shard",
        &format!("auto/{}", b.shards),
        "--push",
        b.registry,
        "--json",
        "--output",
        &format!("{CACHE_DIR}/layout"),
        "--manifests-out",
        &format!("{CACHE_DIR}/manifests"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if b.plain_http {
        args.push("--plain-http".into());
    }
    args.push(catalog);
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("catalog", CATALOG_DIR, true),
        mount("cache", CACHE_DIR, false),
    ];
    let env_var = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..Default::default()
    };
    let mut env = vec![
        env_var("HOME", format!("{CACHE_DIR}/home")),
        env_var("TMPDIR", CACHE_DIR.to_owned()),
    ];
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: b.name.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "catalog".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: b.claim.to_owned(),
                read_only: Some(true),
            }),
            ..Default::default()
        },
        Volume {
            name: "cache".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    if let Some(secret) = b.registry_secret {
        mounts.push(mount("registry-auth", AUTH_DIR, true));
        env.push(env_var(
            "REGISTRY_AUTH_FILE",
            format!("{AUTH_DIR}/.dockerconfigjson"),
        ));
        volumes.push(Volume {
            name: "registry-auth".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut security = restricted_container(b.run_as);
    security.read_only_root_filesystem = Some(true);
    let resources = ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("1".into())),
            ("memory".to_string(), Quantity("512Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("2Gi".into()),
        )])),
        ..Default::default()
    };
    let job = Job {
        metadata: meta(),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(i32::try_from(b.shards).unwrap_or(i32::MAX)),
            parallelism: Some(i32::try_from(b.shards).unwrap_or(i32::MAX)),
            backoff_limit_per_index: Some(1),
            max_failed_indexes: Some(i32::try_from(b.shards).unwrap_or(i32::MAX)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "build".into(),
                        image: Some(b.image.to_owned()),
                        image_pull_policy: Some("IfNotPresent".into()),
                        command: Some(vec![b.binary.to_owned()]),
                        args: Some(args),
                        env: Some(env),
                        volume_mounts: Some(mounts),
                        resources: Some(resources),
                        security_context: Some(security),
                        ..Default::default()
                    }],
                    volumes: Some(volumes),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod(b.run_as)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = true;
    let config = serde_saphyr::to_string_with_options(&config, options.clone())
        .map_err(KubeError::Serialize)?;
    let job = serde_saphyr::to_string_with_options(&job, options).map_err(KubeError::Serialize)?;
    Ok(format!("{config}---\n{job}"))
}
