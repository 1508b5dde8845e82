//! `pipeline.toml` → validated [`Settings`].
//!
//! Keys are kebab-case; unknown keys are rejected with their name and line (serde's
//! `deny_unknown_fields` through the `toml` parser, which reports spans). Values that cannot be
//! valid are rejected while parsing, so they carry a line too; cross-field rules are checked
//! afterwards and name the section.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The committed `pipeline.toml`, used when no config file is given or found.
pub const EMBEDDED_DEFAULT: &str = include_str!("../pipeline.toml");

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config `{}`", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape (the key and line are in the source).
    #[error("invalid config `{origin}`")]
    Parse {
        /// Where the configuration came from.
        origin: String,
        /// The underlying error.
        #[source]
        source: toml::de::Error,
    },
    /// The values are inconsistent or out of range.
    #[error("invalid config `{origin}`: {message}")]
    Invalid {
        /// Where the configuration came from.
        origin: String,
        /// What is wrong.
        message: String,
        /// What to do about it, if anything.
        hint: Option<String>,
    },
}

impl crate::hint::Hint for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Invalid { hint, .. } => hint.clone(),
            ConfigError::Parse { .. } => {
                Some("README.md lists every section and key of pipeline.toml".into())
            }
            ConfigError::Read { .. } => None,
        }
    }
}

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// yum variables: `releasever`, `basearch`, and any others used as `$name` in URLs.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// `[[repo]]`: the repositories, in order.
    #[serde(default, rename = "repo")]
    pub repos: Vec<RepoSettings>,
    /// Read `*.repo` files from this directory as well (yum/dnf format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repos_from: Option<PathBuf>,
    /// `[base]`: the shared base layer.
    #[serde(default)]
    pub base: Base,
    /// `[needs]`: what analysis adds or leaves to the node.
    #[serde(default)]
    pub needs: NeedsSettings,
    /// `[image]`: names, compression, layer budget, job directory.
    #[serde(default)]
    pub image: ImageSettings,
    /// `[registry]`: where and how images are pushed.
    #[serde(default)]
    pub registry: RegistrySettings,
    /// `[cache]`: where the cache lives.
    #[serde(default)]
    pub cache: CacheSettings,
    /// `[kube]`: how manifests are made.
    #[serde(default)]
    pub kube: KubeSettings,
    /// `[fetch]`: when a slow transfer is given up.
    #[serde(default)]
    pub fetch: FetchSettings,
    /// `[sign]`: the key pushed images are signed with (`--sign`).
    #[serde(default)]
    pub sign: SignSettings,
}

/// `[fetch]`: dnf's `minrate` and `timeout` (librepo's `LOWSPEEDLIMIT`/`LOWSPEEDTIME`): a
/// transfer that brings fewer than `minrate` bytes a second over `timeout` seconds is given
/// up (and the next mirror tried), as is a connection that does not answer within
/// `timeout`. Applies to repository metadata and packages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FetchSettings {
    /// Bytes per second below which a transfer counts as stalled (0: only `timeout` of
    /// silence stops it).
    #[serde(default = "default_minrate")]
    pub minrate: u64,
    /// Seconds: the window over which `minrate` is measured, and the longest wait for a
    /// connection or an answer.
    #[serde(default = "default_fetch_timeout")]
    pub timeout: u64,
}

fn default_minrate() -> u64 {
    1000
}

fn default_fetch_timeout() -> u64 {
    30
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            minrate: default_minrate(),
            timeout: default_fetch_timeout(),
        }
    }
}

/// One `[[repo]]` section, as yum's `.repo` files describe a repository.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RepoSettings {
    /// Unique id (`[A-Za-z0-9._:-]`), used in messages, labels and the cache.
    pub id: RepoId,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One or more base URLs (`file://`, `http://`, `https://`, or a path relative to the config).
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub baseurl: Vec<String>,
    /// A URL listing mirrors, one per line (instead of `baseurl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrorlist: Option<String>,
    /// 1 (preferred) to 99 (default), as dnf's `priority`.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Whether the repository is used.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Verify `repomd.xml.asc` with `gpgkey`.
    #[serde(default)]
    pub gpgcheck: bool,
    /// The OpenPGP key (a path or `file://` URL) for `gpgcheck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpgkey: Option<String>,
    /// Extra CA certificate (PEM) for this repository's HTTPS mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslcacert: Option<PathBuf>,
    /// Check TLS certificates (false: not checked, and warned about).
    #[serde(default = "yes")]
    pub sslverify: bool,
    /// Enabled module streams (`name:stream`) for EL8+ modular repos.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
}

fn default_priority() -> u32 {
    99
}
fn yes() -> bool {
    true
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A repository id: letters, digits, `-`, `_`, `.`, `:`; used in cache paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

impl TryFrom<String> for RepoId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if ok {
            Ok(RepoId(s))
        } else {
            Err(format!(
                "`{s}` is not a valid repo id (letters, digits, '-', '_', '.', ':'; not starting with '.')"
            ))
        }
    }
}

impl From<RepoId> for String {
    fn from(r: RepoId) -> String {
        r.0
    }
}

impl RepoId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[base]`: packages every image shares as one layer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Base {
    /// Packages (or capabilities) that form the shared base layer of every image.
    #[serde(default)]
    pub packages: Vec<String>,
}

/// `[needs]`: additions to what analysis finds.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NeedsSettings {
    /// Extra capabilities every job needs (e.g. `glibc-langpack-en`, NSS modules).
    #[serde(default)]
    pub extra: Vec<String>,
    /// Sonames the node provides (glob patterns); never resolved from repos.
    #[serde(default)]
    pub host_provided: Vec<String>,
    /// Follow weak dependencies (Recommends) too.
    #[serde(default)]
    pub weak_deps: bool,
    /// Modules the site provides from a mounted software tree (glob patterns, `intel/*`):
    /// `module load` of them needs nothing from the repositories.
    #[serde(default)]
    pub modules_from_host: Vec<String>,
    /// What provides the `module` command: environment-modules (the default) or Lmod.
    #[serde(default)]
    pub module_system: ModuleSystem,
}

/// `[needs] module-system`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleSystem {
    /// Environment Modules (`/etc/profile.d/modules.sh`, EL's `environment-modules`).
    #[default]
    EnvironmentModules,
    /// Lmod (`/usr/share/lmod/lmod/init/profile`, EL's `Lmod`).
    Lmod,
}

/// Layer compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// gzip, as concatenated members written in parallel (`tar+gzip`).
    #[default]
    Gzip,
    /// zstd (`tar+zstd`).
    Zstd,
}

/// `[image]`: how images are named and built.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageSettings {
    /// Repository name template; placeholders: `{name}` (DNS-safe job name), `{queue}`.
    #[serde(default = "default_repository")]
    pub repository: String,
    /// Tag template; placeholders: `{name}`, `{queue}`, `{script-digest}` (12 hex digits).
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Layer compression.
    #[serde(default)]
    pub compression: Compression,
    /// At most this many layers per image (1..=127); past it, the rarest packages are merged.
    #[serde(default = "default_max_layers")]
    pub max_layers: u32,
    /// File times in layers when `SOURCE_DATE_EPOCH` is not set.
    #[serde(default = "default_epoch")]
    pub source_date_epoch: u64,
    /// Where the job's own files (script, binary, `$ORIGIN` libraries) live in the image.
    #[serde(default = "default_job_dir")]
    pub job_dir: String,
}

fn default_repository() -> String {
    "pbs/{name}".into()
}
fn default_tag() -> String {
    "{script-digest}".into()
}
fn default_max_layers() -> u32 {
    64
}
fn default_epoch() -> u64 {
    315_532_800 // 1980-01-01T00:00:00Z
}
fn default_job_dir() -> String {
    "/pbs/job".into()
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            repository: default_repository(),
            tag: default_tag(),
            compression: Compression::default(),
            max_layers: default_max_layers(),
            source_date_epoch: default_epoch(),
            job_dir: default_job_dir(),
        }
    }
}

/// `[sign]`: sigstore signatures.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SignSettings {
    /// The private key (cosign's encrypted format, or a PKCS#8 P-256 PEM), relative to this
    /// file. Its password comes from `COSIGN_PASSWORD` or `--key-password-stdin`, never from
    /// here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `[registry]`: where images are pushed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistrySettings {
    /// Default registry (`host[:port]`); unset means the OCI layout is the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Registries reached over plain HTTP (`host[:port]`). Never implied, not even for localhost.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) trusted for registries, besides the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// Blobs uploaded at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Where the shards of a catalog (`--shard I/N`) first place every blob, so a shard that
    /// needs a blob another shard already sent finds it there (HEAD) and mounts it instead of
    /// uploading it again.
    #[serde(default = "default_blob_repository")]
    pub blob_repository: String,
}

fn default_blob_repository() -> String {
    "pbsimage/blobs".into()
}

fn default_parallel() -> usize {
    4
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            host: None,
            insecure: Vec::new(),
            ca_bundle: None,
            parallel: default_parallel(),
            blob_repository: default_blob_repository(),
        }
    }
}

/// `[cache]`: where the cache lives.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CacheSettings {
    /// Cache directory; relative paths are relative to the config file. Default: `cache/`
    /// beside the config (or the user cache dir for the embedded default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// The Kubernetes object that runs a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeKind {
    /// A batch/v1 Job (Indexed for arrays and multi-node jobs).
    #[default]
    Job,
    /// A bare Pod (single-node, non-array jobs only).
    Pod,
}

/// `run-as-user = "invoking"` or a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IdSetting {
    /// The user running pbsimage.
    #[default]
    #[serde(with = "invoking")]
    Invoking,
    /// This numeric id.
    Id(u32),
}

mod invoking {
    use serde::{Deserialize, Deserializer, Serializer};
    pub(super) fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("invoking")
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = String::deserialize(d)?;
        if s == "invoking" {
            Ok(())
        } else {
            Err(serde::de::Error::custom(format!(
                "expected \"invoking\" or a number, found \"{s}\""
            )))
        }
    }
}

/// Where PBS output files (`<name>.o<id>`, `-o`, `-e`) are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    tag = "type",
    deny_unknown_fields
)]
pub enum OutputVolume {
    /// An NFS export.
    Nfs {
        /// The NFS server.
        server: String,
        /// The exported directory.
        path: String,
        /// Where it is mounted in the container.
        #[serde(default = "default_mount")]
        mount_path: String,
    },
    /// A PersistentVolumeClaim.
    Pvc {
        /// The claim name.
        claim: String,
        /// Where it is mounted in the container.
        #[serde(default = "default_mount")]
        mount_path: String,
    },
    /// A node directory, like the paper's shared directory. Violates the restricted Pod
    /// Security Standard, so it needs `allow-host-path = true`.
    HostPath {
        /// The directory on the node.
        path: String,
        /// Where it is mounted in the container.
        #[serde(default = "default_mount")]
        mount_path: String,
    },
}

fn default_mount() -> String {
    "/pbs/output".into()
}

/// `[kube.software-volume]`: the site's software tree (what `[needs] modules-from-host`
/// modules come from), mounted read-only where the site has it (`/apps`); `modulepath` are
/// its modulefile directories, put on `MODULEPATH` after the image's own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    tag = "type",
    deny_unknown_fields
)]
pub enum SoftwareVolume {
    /// An NFS export.
    Nfs {
        /// The NFS server.
        server: String,
        /// The exported directory.
        path: String,
        /// Where it is mounted in the container (the site's path: `/apps`).
        mount_path: String,
        /// Its modulefile directories.
        #[serde(default)]
        modulepath: Vec<String>,
    },
    /// A PersistentVolumeClaim.
    Pvc {
        /// The claim name.
        claim: String,
        /// Where it is mounted in the container.
        mount_path: String,
        /// Its modulefile directories.
        #[serde(default)]
        modulepath: Vec<String>,
    },
    /// A node directory (needs `allow-host-path = true`).
    HostPath {
        /// The directory on the node.
        path: String,
        /// Where it is mounted in the container.
        mount_path: String,
        /// Its modulefile directories.
        #[serde(default)]
        modulepath: Vec<String>,
    },
}

/// Where a volume's files are, whichever setting names it: what the manifest's volume is made
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeSource<'a> {
    /// An NFS export: server and directory.
    Nfs {
        /// The NFS server.
        server: &'a str,
        /// The exported directory.
        path: &'a str,
    },
    /// A PersistentVolumeClaim.
    Pvc {
        /// The claim name.
        claim: &'a str,
    },
    /// A node directory (needs `allow-host-path = true`).
    HostPath {
        /// The directory on the node.
        path: &'a str,
    },
}

impl SoftwareVolume {
    /// Where the tree's files are.
    pub fn source(&self) -> VolumeSource<'_> {
        match self {
            SoftwareVolume::Nfs { server, path, .. } => VolumeSource::Nfs { server, path },
            SoftwareVolume::Pvc { claim, .. } => VolumeSource::Pvc { claim },
            SoftwareVolume::HostPath { path, .. } => VolumeSource::HostPath { path },
        }
    }

    /// Where the tree is mounted in the container.
    pub fn mount_path(&self) -> &str {
        match self {
            SoftwareVolume::Nfs { mount_path, .. }
            | SoftwareVolume::Pvc { mount_path, .. }
            | SoftwareVolume::HostPath { mount_path, .. } => mount_path,
        }
    }

    /// Its modulefile directories.
    pub fn modulepath(&self) -> &[String] {
        match self {
            SoftwareVolume::Nfs { modulepath, .. }
            | SoftwareVolume::Pvc { modulepath, .. }
            | SoftwareVolume::HostPath { modulepath, .. } => modulepath,
        }
    }
}

impl OutputVolume {
    /// Where the volume's files are.
    pub fn source(&self) -> VolumeSource<'_> {
        match self {
            OutputVolume::Nfs { server, path, .. } => VolumeSource::Nfs { server, path },
            OutputVolume::Pvc { claim, .. } => VolumeSource::Pvc { claim },
            OutputVolume::HostPath { path, .. } => VolumeSource::HostPath { path },
        }
    }

    /// Where the volume is mounted in the container.
    pub fn mount_path(&self) -> &str {
        match self {
            OutputVolume::Nfs { mount_path, .. }
            | OutputVolume::Pvc { mount_path, .. }
            | OutputVolume::HostPath { mount_path, .. } => mount_path,
        }
    }
}

/// What a PBS queue (`-q`) becomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QueueMapping {
    /// Labels the job's objects get.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The pods' `priorityClassName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    /// The pods' `nodeSelector`.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
}

/// `[kube]`: how manifests are made.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KubeSettings {
    /// Namespace of every object (default: none, so the `kubectl` context's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object kind when `--kind` is not given.
    #[serde(default)]
    pub kind: KubeKind,
    /// Where PBS output files go (`-o`, `-e`, `<name>.o<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_volume: Option<OutputVolume>,
    /// The site's software tree, mounted read-only (`[needs] modules-from-host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_volume: Option<SoftwareVolume>,
    /// Allow a `host-path` output volume (breaks the restricted Pod Security Standard).
    #[serde(default)]
    pub allow_host_path: bool,
    /// Queue used when a job has no `-q`.
    #[serde(default = "default_queue")]
    pub default_queue: String,
    /// PBS queue → labels, priority class, node selector.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueMapping>,
    /// The pods' `runAsUser`.
    #[serde(default)]
    pub run_as_user: IdSetting,
    /// The pods' `runAsGroup`.
    #[serde(default)]
    pub run_as_group: IdSetting,
    /// Allow uid 0 in pods (off: a job never runs as root by accident).
    #[serde(default)]
    pub allow_root: bool,
    /// Seconds added to `walltime` for `activeDeadlineSeconds`.
    #[serde(default = "default_slack")]
    pub walltime_slack: u64,
    /// `backoffLimit` for `-r y` jobs (`-r n` and no `-r` give 0).
    #[serde(default = "default_retries")]
    pub rerun_limit: i32,
    /// Extended resource name for GPUs.
    #[serde(default = "default_gpu")]
    pub gpu_resource: String,
    /// Shell for scripts with neither `-S` nor a shebang.
    #[serde(default = "default_shell")]
    pub default_shell: String,
    /// The container's root filesystem is read-only (`readOnlyRootFilesystem`); the job
    /// writes to its working directory, `$HOME` and `/tmp`, which are emptyDirs.
    #[serde(default = "default_true")]
    pub read_only_root: bool,
    /// The job's working directory (`PBS_O_WORKDIR`): an emptyDir the wrapper fills with a
    /// copy of the image's `[image] job-dir` when the job starts.
    #[serde(default = "default_work_dir")]
    pub work_dir: String,
    /// With an output volume: copy what the job created or changed in its working directory
    /// to `<output>/<name>.<jobid>/` when it ends (PBS stage-out), with the default `-o`/`-e`
    /// files.
    #[serde(default = "default_true")]
    pub collect: bool,
    /// The user name of the run-as uid in the image's `/etc/passwd` (`USER`, `LOGNAME`).
    /// Left out: the build host's name for that uid, else `pbsuser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_name: Option<String>,
    /// GPU-model resources (`-l select=1:ngpus=1:gpu_model=v100`, `-l gpu_type=a100`) → the
    /// node label their value must have (`nodeSelector`).
    #[serde(default = "default_gpu_models")]
    pub gpu_models: BTreeMap<String, String>,
    /// An array of multi-node jobs becomes a JobSet (`jobset.x-k8s.io/v1alpha2`; the cluster
    /// needs the JobSet controller). Off: such a job is refused.
    #[serde(default)]
    pub allow_jobset: bool,
    /// How a multi-node job's ranks are started: `none` (an Indexed Job and a headless
    /// Service; the sister pods wait for node 0), `ssh` (the same, and the sister pods run
    /// a non-root sshd keyed by a Secret pbsimage generates for the job, which node 0's
    /// mpirun reaches; the image gets an sshd and an ssh client) or `mpi-operator` (a
    /// Kubeflow MPIJob: the launcher is node 0 and ssh-reachable workers the others; the
    /// cluster needs the MPI Operator, which makes the keys; the image gets sshd and ssh).
    #[serde(default)]
    pub mpi: MpiMode,
}

/// `[kube] mpi`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MpiMode {
    /// An Indexed Job and a headless Service.
    #[default]
    None,
    /// An Indexed Job (a JobSet for arrays) whose sister pods run sshd with a generated key.
    Ssh,
    /// A Kubeflow MPIJob (`kubeflow.org/v2beta1`).
    MpiOperator,
}

impl MpiMode {
    /// Whether the job's pods reach each other over ssh (its image needs sshd and ssh).
    pub fn uses_ssh(self) -> bool {
        matches!(self, MpiMode::Ssh | MpiMode::MpiOperator)
    }

    /// The setting as written in pipeline.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            MpiMode::None => "none",
            MpiMode::Ssh => "ssh",
            MpiMode::MpiOperator => "mpi-operator",
        }
    }
}

fn default_gpu_models() -> BTreeMap<String, String> {
    ["gpu_model", "gpu_type"]
        .into_iter()
        .map(|r| (r.to_owned(), "nvidia.com/gpu.product".to_owned()))
        .collect()
}

/// The job user's home directory in every pod (`HOME`), an emptyDir.
pub const JOB_HOME: &str = "/pbs/home";

/// A portable user name (`useradd`'s rule): letters, digits, `_`, `-`, `.`, starting with a
/// letter or `_`, at most 32 characters.
pub fn is_user_name(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn default_true() -> bool {
    true
}
fn default_work_dir() -> String {
    "/pbs/work".into()
}

fn default_queue() -> String {
    "batch".into()
}
fn default_slack() -> u64 {
    60
}
fn default_retries() -> i32 {
    3
}
fn default_gpu() -> String {
    "nvidia.com/gpu".into()
}
fn default_shell() -> String {
    "/bin/sh".into()
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            namespace: None,
            kind: KubeKind::default(),
            output_volume: None,
            software_volume: None,
            allow_host_path: false,
            default_queue: default_queue(),
            queues: BTreeMap::new(),
            run_as_user: IdSetting::Invoking,
            run_as_group: IdSetting::Invoking,
            allow_root: false,
            walltime_slack: default_slack(),
            rerun_limit: default_retries(),
            gpu_resource: default_gpu(),
            default_shell: default_shell(),
            read_only_root: true,
            work_dir: default_work_dir(),
            collect: true,
            run_as_name: None,
            gpu_models: default_gpu_models(),
            allow_jobset: false,
            mpi: MpiMode::None,
        }
    }
}

/// Where the settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `pipeline.toml` on disk.
    File(PathBuf),
    /// The default compiled into pbsimage.
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Embedded => f.write_str("<embedded pipeline.toml>"),
        }
    }
}

/// Settings plus where they came from, with relative paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The validated settings.
    pub settings: Settings,
    /// Where they came from, for messages.
    pub origin: Origin,
    /// Directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    /// sha256 (hex) of the text the settings were read from (provenance names it).
    pub sha256: String,
}

impl Config {
    /// Loads `path`, or `./pipeline.toml` if it exists, or the embedded default.
    pub fn discover(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load(p),
            None => {
                let local = Path::new("pipeline.toml");
                if local.is_file() {
                    Config::load(local)
                } else {
                    Config::from_str(EMBEDDED_DEFAULT, Origin::Embedded, Path::new("."))
                }
            }
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Config::from_str(&text, Origin::File(path.to_owned()), base)
    }

    /// Parses and validates `text`; relative paths resolve against `base_dir`.
    pub fn from_str(text: &str, origin: Origin, base_dir: &Path) -> Result<Config, ConfigError> {
        let settings: Settings = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        let config = Config {
            settings,
            origin,
            base_dir: base_dir.to_owned(),
            sha256: crate::digest::sha256_hex_of(text.as_bytes()),
        };
        config.validate()?;
        Ok(config)
    }

    fn invalid(&self, message: String, hint: Option<&str>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_string(),
            message,
            hint: hint.map(str::to_owned),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for repo in &self.settings.repos {
            if !seen.insert(repo.id.as_str()) {
                return Err(self.invalid(format!("repo id `{}` appears twice", repo.id), None));
            }
            self.validate_repo(repo)?;
        }
        self.validate_image()?;
        let f = &self.settings.fetch;
        if !(1..=3600).contains(&f.timeout) {
            return Err(self.invalid(
                format!(
                    "[fetch] timeout = {} is outside 1..=3600 seconds",
                    f.timeout
                ),
                Some("dnf's default is 30"),
            ));
        }
        self.validate_kube()
    }

    /// One `[[repo]]`: a source, a priority, known variables and schemes, a key when
    /// checked, modules as name:stream.
    fn validate_repo(&self, repo: &RepoSettings) -> Result<(), ConfigError> {
        match (repo.baseurl.is_empty(), &repo.mirrorlist) {
            (true, None) => {
                return Err(self.invalid(
                    format!("repo `{}` has neither baseurl nor mirrorlist", repo.id),
                    Some("set baseurl = \"https://...\" or mirrorlist = \"https://...\""),
                ));
            }
            (false, Some(_)) => {
                return Err(self.invalid(
                    format!("repo `{}` sets both baseurl and mirrorlist", repo.id),
                    Some("keep one of them"),
                ));
            }
            _ => {}
        }
        if !(1..=99).contains(&repo.priority) {
            return Err(self.invalid(
                format!(
                    "repo `{}`: priority {} is outside 1..=99",
                    repo.id, repo.priority
                ),
                None,
            ));
        }
        for url in repo.baseurl.iter().chain(&repo.mirrorlist) {
            let expanded = self.expand_vars(url).map_err(|v| {
                self.invalid(
                    format!("repo `{}`: unknown variable `${v}` in `{url}`", repo.id),
                    Some("define it under [vars], e.g. releasever = \"9\""),
                )
            })?;
            if let Some((scheme, _)) = expanded.split_once("://")
                && !matches!(scheme, "file" | "http" | "https")
            {
                return Err(self.invalid(
                    format!("repo `{}`: unsupported URL scheme `{scheme}`", repo.id),
                    Some("use file://, http:// or https://"),
                ));
            }
        }
        if repo.gpgcheck && repo.gpgkey.is_none() {
            return Err(self.invalid(
                format!("repo `{}` has gpgcheck = true but no gpgkey", repo.id),
                None,
            ));
        }
        for m in &repo.modules {
            if m.split_once(':')
                .is_none_or(|(n, st)| n.is_empty() || st.is_empty())
            {
                return Err(self.invalid(
                    format!("repo `{}`: module `{m}` is not name:stream", repo.id),
                    None,
                ));
            }
        }
        Ok(())
    }

    /// `[image]`: the layer budget, the name templates, the job directory.
    fn validate_image(&self) -> Result<(), ConfigError> {
        let img = &self.settings.image;
        if !(1..=127).contains(&img.max_layers) {
            return Err(self.invalid(
                format!("[image] max-layers = {} is outside 1..=127", img.max_layers),
                Some("overlay filesystems stack at most 127 layers"),
            ));
        }
        check_template(&img.repository, &["name", "queue"])
            .map_err(|m| self.invalid(format!("[image] repository: {m}"), None))?;
        check_template(&img.tag, &["name", "queue", "script-digest"])
            .map_err(|m| self.invalid(format!("[image] tag: {m}"), None))?;
        if !img.job_dir.starts_with('/') || img.job_dir.split('/').any(|c| c == "..") {
            return Err(self.invalid(
                format!(
                    "[image] job-dir `{}` must be an absolute path without `..`",
                    img.job_dir
                ),
                None,
            ));
        }
        Ok(())
    }

    /// `[kube]`: output volume, run-as ids, shell, rerun limit.
    fn validate_kube(&self) -> Result<(), ConfigError> {
        let k = &self.settings.kube;
        let sources = [
            (
                "output-volume",
                k.output_volume.as_ref().map(OutputVolume::source),
            ),
            (
                "software-volume",
                k.software_volume.as_ref().map(SoftwareVolume::source),
            ),
        ];
        for (key, source) in sources {
            if let Some(VolumeSource::HostPath { .. }) = source
                && !k.allow_host_path
            {
                return Err(self.invalid(
                    format!("[kube] {key} of type host-path needs allow-host-path = true"),
                    Some("hostPath volumes break the restricted Pod Security Standard; prefer nfs or pvc"),
                ));
            }
        }
        if let Some(v) = &k.software_volume {
            let mp = v.mount_path();
            // The job's writable directories: /tmp (TMPDIR), its home, its work dir.
            let reserved = ["/tmp", JOB_HOME, k.work_dir.as_str()];
            if !mp.starts_with('/')
                || mp == "/"
                || reserved
                    .iter()
                    .any(|r| Path::new(mp).starts_with(r) || Path::new(r).starts_with(mp))
            {
                return Err(self.invalid(
                    format!(
                        "[kube] software-volume mount-path `{mp}` must be an absolute directory \
                         apart from /tmp, {JOB_HOME} and the work dir"
                    ),
                    Some("use the path the site's software has on its nodes, such as /apps"),
                ));
            }
            if let Some(bad) = v.modulepath().iter().find(|m| !m.starts_with('/')) {
                return Err(self.invalid(
                    format!("[kube] software-volume modulepath `{bad}` must be absolute"),
                    None,
                ));
            }
        }
        if let Some(v) = &k.output_volume
            && !v.mount_path().starts_with('/')
        {
            return Err(self.invalid(
                format!(
                    "[kube] output-volume mount-path `{}` must be absolute",
                    v.mount_path()
                ),
                None,
            ));
        }
        for (who, id) in [
            ("run-as-user", k.run_as_user),
            ("run-as-group", k.run_as_group),
        ] {
            if id == IdSetting::Id(0) && !k.allow_root {
                return Err(self.invalid(format!("[kube] {who} = 0 needs allow-root = true"), None));
            }
        }
        if !k.default_shell.starts_with('/') {
            return Err(self.invalid("[kube] default-shell must be an absolute path".into(), None));
        }
        if k.rerun_limit < 0 {
            return Err(self.invalid("[kube] rerun-limit cannot be negative".into(), None));
        }
        let job_dir = self.settings.image.job_dir.trim_end_matches('/');
        let work = k.work_dir.trim_end_matches('/');
        if !work.starts_with('/')
            || work.split('/').any(|c| c == "..")
            || work == job_dir
            || work.starts_with(&format!("{job_dir}/"))
            || job_dir.starts_with(&format!("{work}/"))
            || ["", "/tmp", JOB_HOME].contains(&work)
        {
            return Err(self.invalid(
                format!(
                    "[kube] work-dir `{}` must be an absolute path without `..`, apart from \
                     [image] job-dir `{}`, /tmp and {}",
                    k.work_dir, self.settings.image.job_dir, JOB_HOME
                ),
                Some("the working directory is an emptyDir filled from job-dir at start"),
            ));
        }
        if let Some(n) = &k.run_as_name
            && !is_user_name(n)
        {
            return Err(self.invalid(
                format!("[kube] run-as-name `{n}` is not a valid user name"),
                Some(
                    "letters, digits, `_`, `-` and `.`, starting with a letter or `_`, at most 32",
                ),
            ));
        }
        Ok(())
    }

    /// Substitutes `$name` / `${name}` from `[vars]`. Returns the unknown name on failure.
    pub fn expand_vars(&self, s: &str) -> Result<String, String> {
        let vars = &self.settings.vars;
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, consumed) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(end) => (&b[..end], end + 2),
                    None => return Err(after.to_owned()),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
                continue;
            }
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => return Err(name.to_owned()),
            }
            rest = &after[consumed..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The cache directory: `[cache] dir` resolved against the config, else `cache/` beside
    /// the config file, else (embedded default) `$XDG_CACHE_HOME/pbsimage` or
    /// `~/.cache/pbsimage`.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.settings.cache.dir {
            return self.base_dir.join(d);
        }
        match &self.origin {
            Origin::File(_) => self.base_dir.join("cache"),
            Origin::Embedded => std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("pbsimage"))
                .unwrap_or_else(|| PathBuf::from("cache")),
        }
    }
}

/// Checks that `{...}` placeholders are known and braces balance.
fn check_template(t: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{t}`"))?;
        let name = &after[..end];
        if !known.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` in `{t}` (known: {})",
                known
                    .iter()
                    .map(|k| format!("{{{k}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(format!("stray `}}` in `{t}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::from_str(s, Origin::File("p.toml".into()), Path::new("/etc/pbs"))
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::from_str(EMBEDDED_DEFAULT, Origin::Embedded, Path::new(".")).unwrap();
        assert!(!c.settings.repos.is_empty());
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let e = parse("[image]\ncompression = \"gzip\"\nmax-layer = 3\n").unwrap_err();
        let msg = format!("{}", std::error::Error::source(&e).unwrap());
        assert!(msg.contains("line 3") && msg.contains("max-layer"), "{msg}");
    }

    /// Every commented example of the committed pipeline.toml, uncommented block by block
    /// (a block: consecutive `# key = value` / `# [table]` lines), parses.
    #[test]
    fn every_commented_example_parses() {
        let example = |l: &str| {
            let body = l.strip_prefix("# ").unwrap_or("");
            body.starts_with('[')
                || body.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
        };
        let lines: Vec<&str> = EMBEDDED_DEFAULT.lines().collect();
        let mut blocks = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if example(lines[i]) {
                let start = i;
                while i < lines.len() && example(lines[i]) {
                    i += 1;
                }
                blocks.push(start..i);
            } else {
                i += 1;
            }
        }
        assert!(blocks.len() >= 8, "{blocks:?}");
        for b in blocks {
            let text: Vec<&str> = lines
                .iter()
                .enumerate()
                .map(|(n, l)| if b.contains(&n) { &l[2..] } else { l })
                .collect();
            let text = text.join("\n");
            if let Err(e) = Config::from_str(&text, Origin::Embedded, Path::new(".")) {
                panic!(
                    "pipeline.toml lines {}-{} uncommented: {e}",
                    b.start + 1,
                    b.end
                );
            }
        }
    }

    #[test]
    fn software_volume_and_module_system() {
        let c = parse(
            "[needs]\nmodule-system = \"lmod\"\n[kube]\nrun-as-user = 1000\n\
             [kube.software-volume]\ntype = \"nfs\"\nserver = \"nfs\"\npath = \"/export/apps\"\n\
             mount-path = \"/apps\"\nmodulepath = [\"/apps/modulefiles\"]\n",
        )
        .unwrap();
        assert_eq!(c.settings.needs.module_system, ModuleSystem::Lmod);
        let v = c.settings.kube.software_volume.unwrap();
        assert_eq!(
            (v.mount_path(), v.modulepath()),
            ("/apps", &["/apps/modulefiles".to_owned()][..])
        );
        for (bad, why) in [
            (
                "type = \"pvc\"\nclaim = \"a\"\n",
                "missing field `mount-path`",
            ),
            (
                "type = \"pvc\"\nclaim = \"a\"\nmount-path = \"/tmp/apps\"\n",
                "apart from /tmp",
            ),
            (
                "type = \"pvc\"\nclaim = \"a\"\nmount-path = \"/\"\n",
                "apart from /tmp",
            ),
            (
                "type = \"pvc\"\nclaim = \"a\"\nmount-path = \"/apps\"\nmodulepath = [\"m\"]\n",
                "must be absolute",
            ),
            (
                "type = \"host-path\"\npath = \"/x\"\nmount-path = \"/apps\"\n",
                "allow-host-path",
            ),
        ] {
            let e = parse(&format!(
                "[kube]\nrun-as-user = 1000\n[kube.software-volume]\n{bad}"
            ))
            .unwrap_err();
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            assert!(text.contains(why), "{bad}: {text}");
        }
    }

    #[test]
    fn output_volume_takes_mount_path() {
        let c = parse(
            "[kube]\nrun-as-user = 1000\n[kube.output-volume]\ntype = \"pvc\"\nclaim = \"out\"\nmount-path = \"/results\"\n",
        )
        .unwrap();
        assert_eq!(
            c.settings.kube.output_volume.unwrap().mount_path(),
            "/results"
        );
        assert!(
            parse("[kube.output-volume]\ntype = \"pvc\"\nclaim = \"out\"\nmount_path = \"/r\"\n")
                .is_err()
        );
    }

    #[test]
    fn vars_are_substituted() {
        let c = parse(
            "[vars]\nreleasever = \"9\"\nbasearch = \"x86_64\"\n[[repo]]\nid = \"baseos\"\nbaseurl = \"https://m/rocky/$releasever/BaseOS/${basearch}/os/\"\n",
        )
        .unwrap();
        assert_eq!(
            c.expand_vars(&c.settings.repos[0].baseurl[0]).unwrap(),
            "https://m/rocky/9/BaseOS/x86_64/os/"
        );
        let e = parse("[[repo]]\nid = \"a\"\nbaseurl = \"http://x/$releasever\"\n").unwrap_err();
        assert!(e.to_string().contains("releasever"), "{e}");
    }

    #[test]
    fn cross_field_rules() {
        assert!(parse("[[repo]]\nid = \"a\"\n").is_err());
        assert!(parse("[[repo]]\nid = \"a b\"\nbaseurl=\"x\"\n").is_err());
        assert!(parse("[image]\nmax-layers = 500\n").is_err());
        assert!(parse("[image]\ntag = \"{nope}\"\n").is_err());
        assert!(parse("[kube]\nrun-as-user = 0\n").is_err());
        assert!(parse("[kube]\nrun-as-user = \"me\"\n").is_err());
        assert!(parse("[kube.output-volume]\ntype = \"host-path\"\npath = \"/shared\"\n").is_err());
        let c = parse("[kube]\nrun-as-user = 1000\n[kube.output-volume]\ntype = \"nfs\"\nserver = \"nfs1\"\npath = \"/export/pbs\"\n").unwrap();
        assert_eq!(c.settings.kube.run_as_user, IdSetting::Id(1000));
        assert_eq!(c.cache_dir(), Path::new("/etc/pbs/cache"));
    }
}
