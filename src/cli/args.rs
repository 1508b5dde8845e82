//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::KubeKind;

/// `--kind`: the Kubernetes object that runs the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KindArg {
    /// A batch/v1 Job (an Indexed Job for arrays and multi-node jobs).
    Job,
    /// A bare Pod (single-node, non-array jobs only).
    Pod,
}

impl From<KindArg> for KubeKind {
    fn from(k: KindArg) -> KubeKind {
        match k {
            KindArg::Job => KubeKind::Job,
            KindArg::Pod => KubeKind::Pod,
        }
    }
}

/// Turn a TORQUE/PBS batch job into an OCI image and a Kubernetes manifest, without Docker.
#[derive(Debug, Parser)]
#[command(name = "pbsimage", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// pipeline.toml to use [default: ./pipeline.toml, else the embedded default]
    #[arg(long, global = true, env = "PBSIMAGE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print only data and errors (no warnings).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build the job's image into an OCI layout; print its digest-pinned reference and write
    /// the Job (or Pod) that runs it.
    Build(BuildArgs),
    /// Build (and push) a whole catalog of jobs at once: shared layers, one push plan, a
    /// summary with the distribution cost.
    Catalog(Box<CatalogArgs>),
    /// Parse a job script's #PBS directives and show the job spec.
    Parse(ParseArgs),
    /// Show what a job needs from the repositories (ELF and script analysis), and why.
    Needs(NeedsArgs),
    /// Resolve a job's needs to packages from the configured repositories.
    Resolve(ResolveArgs),
    /// Fetch the packages and build the image's layers (into the cache).
    Layers(LayersArgs),
    /// Print the Kubernetes Job (or Pod) that runs a job from an image.
    Manifest(ManifestArgs),
    /// Inspect and maintain the cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Write a signing key pair in cosign's format (`<prefix>.key`, `<prefix>.pub`); the
    /// password comes from COSIGN_PASSWORD or --password-stdin.
    Keygen(KeygenArgs),
    /// Check an image's sigstore signature against a public key.
    Verify(VerifyArgs),
    /// Merge the `catalog --shard I/N --json` reports of a catalog's shards into one report
    /// (and its pre-pull DaemonSet).
    CatalogMerge(MergeArgs),
    /// Write what a cluster needs to admit only images signed by a key: podman/CRI-O
    /// policy.json and registries.d, and a Kyverno ClusterPolicy.
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// The shard reports (`catalog --json` output), one file each.
    #[arg(required = true)]
    pub(crate) reports: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write the pre-pull DaemonSet of every image.
    #[arg(long, value_name = "FILE")]
    pub(crate) prepull: Option<PathBuf>,
    /// A shard's lock (`catalog --shard I/N --lock FILE`), once per shard.
    #[arg(long = "lock", value_name = "FILE", requires = "lock_out")]
    pub(crate) locks: Vec<PathBuf>,
    /// Write the shards' locks, merged, here.
    #[arg(long, value_name = "FILE", requires = "locks")]
    pub(crate) lock_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where the pair goes: PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub(crate) output_key_prefix: PathBuf,
    /// Read the key's password from standard input [default: COSIGN_PASSWORD].
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The image: host[:port]/repository[:tag|@sha256:...].
    pub(crate) reference: String,
    /// The public key (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// Reach the registry over plain HTTP.
    #[arg(long)]
    pub(crate) plain_http: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// The public key images must be signed with.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// The registry and repository prefix the policy covers: host[:port][/prefix].
    #[arg(long, value_name = "SCOPE")]
    pub(crate) scope: String,
    /// The directory the files go to: policy.json, registries.d/pbsimage.yaml,
    /// kyverno-policy.yaml.
    #[arg(long, value_name = "DIR")]
    pub(crate) output: PathBuf,
}

/// Signing pushed images (`build`, `catalog`).
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// Sign the pushed image with `[sign] key` (cosign format, in the registry).
    #[arg(long)]
    pub(crate) sign: bool,
    /// Sign with this key instead of `[sign] key`.
    #[arg(long, value_name = "FILE")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Read the key's password from standard input [default: COSIGN_PASSWORD].
    #[arg(long, conflicts_with = "password_stdin")]
    pub(crate) key_password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ScriptArgs {
    /// The job script.
    pub(crate) script: PathBuf,
    /// Directive prefix, as qsub -C (empty: no directives are read).
    #[arg(
        short = 'C',
        long = "directive-prefix",
        env = "PBS_DPREFIX",
        default_value = "#PBS",
        value_name = "PREFIX"
    )]
    pub(crate) prefix: String,
}

#[derive(Debug, Args)]
pub(crate) struct ParseArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ManifestArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Image to run, preferably pinned: host/repo@sha256:...
    #[arg(long, value_name = "REF")]
    pub(crate) image: String,
    /// Write the manifest to FILE (owner-readable only) instead of printing it; needed when
    /// it holds the job's ssh key (`[kube] mpi = "ssh"`), whose key a FILE written before
    /// keeps
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) object: ObjectArgs,
}

/// Where images go and what runs them (`build`, `catalog`).
#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// OCI image layout the images are written to [default: oci/ in the cache]
    #[arg(long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) object: ObjectArgs,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// Use only the cache and `file://` repositories (no network; nothing is pushed).
    #[arg(long)]
    pub(crate) offline: bool,
}

/// The Kubernetes object that runs a job (`build`, `catalog`, `manifest`).
#[derive(Debug, Args)]
pub(crate) struct ObjectArgs {
    /// Object kind [default: `[kube] kind` from the config]
    #[arg(long, value_enum)]
    pub(crate) kind: Option<KindArg>,
    /// User and group the pod runs as [default: `[kube] run-as-*`, else the invoking user]
    #[arg(long, value_name = "UID[:GID]")]
    pub(crate) run_as: Option<String>,
    /// Append `-SUFFIX` to the object names (`<name>-<script digest>`), to submit the same
    /// script again with `kubectl create`
    #[arg(long, value_name = "SUFFIX", conflicts_with = "generate_name")]
    pub(crate) name_suffix: Option<String>,
    /// Let the API server name each submission (`generateName`; `kubectl create` makes a new
    /// Job every time). Not for multi-node jobs
    #[arg(long)]
    pub(crate) generate_name: bool,
}

impl ObjectArgs {
    /// How the objects are named.
    pub(crate) fn naming(&self) -> crate::kube::Naming {
        match (&self.name_suffix, self.generate_name) {
            (Some(s), _) => crate::kube::Naming::Suffix(s.clone()),
            (None, true) => crate::kube::Naming::Generate,
            (None, false) => crate::kube::Naming::Digest,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct NeedsArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ResolveArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Show why each package is needed.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Write the repository revisions and chosen packages to this lock file.
    #[arg(long, value_name = "FILE")]
    pub(crate) lock: Option<std::path::PathBuf>,
    /// Use only cached repository metadata.
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LayersArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// The user and group the job layer's `/etc/passwd` names [default: `[kube] run-as-*`,
    /// else the invoking user]
    #[arg(long, value_name = "UID[:GID]")]
    pub(crate) run_as: Option<String>,
    /// Use only cached repository metadata.
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// Re-hash every blob and check every index; fails if any is damaged.
    Verify {
        /// Print JSON (`checked`, `bad`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove blobs nothing references, buckets of other versions, and stale temporary files.
    Gc {
        /// Print JSON (`blobs`, `bytes`, `buckets`) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where and how images are pushed (`build`, `catalog`).
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Push to this registry (`host[:port]`) [default: [registry] host, else no push]
    #[arg(long, value_name = "HOST")]
    pub(crate) push: Option<String>,
    /// Push over plain HTTP (a registry on localhost, say); otherwise only hosts in
    /// `[registry] insecure` are reached without TLS.
    #[arg(long)]
    pub(crate) plain_http: bool,
    /// Registry user name (with --password-stdin) [default: the auth files of skopeo,
    /// podman and docker]
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub(crate) username: Option<String>,
    /// Read the registry password or token from standard input.
    #[arg(long, requires = "username")]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Where the Kubernetes manifest goes [default: <job>.k8s.yaml beside the script]
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest_out: Option<std::path::PathBuf>,
    /// Where the SPDX 2.3 SBOM goes [default: <job>.spdx.json beside the script]
    #[arg(long, value_name = "FILE")]
    pub(crate) sbom_out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) image: ImageArgs,
    /// Print a JSON summary instead of the reference.
    #[arg(long)]
    pub(crate) json: bool,
    /// Refuse to build unless the resolution equals the lock file's.
    #[arg(long)]
    pub(crate) locked: bool,
    /// The lock file for --locked [default: pbsimage.lock beside the script]
    #[arg(long, value_name = "FILE", requires = "locked")]
    pub(crate) lock: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) signing: SignArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CatalogArgs {
    /// A directory of jobs (one directory per job) or a catalog.toml.
    pub(crate) catalog: PathBuf,
    /// Jobs built at once [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Where the Kubernetes manifests and SBOMs go, one per job [default: beside each script]
    #[arg(long, value_name = "DIR")]
    pub(crate) manifests_out: Option<PathBuf>,
    /// Also write a DaemonSet that pre-pulls every image onto every node.
    #[arg(long, value_name = "FILE")]
    pub(crate) prepull: Option<PathBuf>,
    /// Build only shard I of N (jobs assigned by their path in the catalog, so N builders
    /// cover every job exactly once); they meet only in the registry. `auto/N`: shard
    /// JOB_COMPLETION_INDEX+1 (in the pods of --emit-build-job's Indexed Job).
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<String>,
    /// Build nothing: write the Kubernetes Indexed Job (and its ConfigMap) that builds this
    /// catalog on the cluster in --build-shards pods, from --builder-image.
    #[arg(long, value_name = "FILE", requires = "builder_image")]
    pub(crate) emit_build_job: Option<PathBuf>,
    /// Pods (shards) of the build Job.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        requires = "emit_build_job"
    )]
    pub(crate) build_shards: u32,
    /// pbsimage's own image (digest-pinned), for the build Job's pods; the binary is at
    /// /pbs/job/pbsimage unless --builder-binary says otherwise.
    #[arg(long, value_name = "REF", requires = "emit_build_job")]
    pub(crate) builder_image: Option<String>,
    /// The pbsimage binary inside --builder-image.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/pbs/job/pbsimage",
        requires = "emit_build_job"
    )]
    pub(crate) builder_binary: String,
    /// The PersistentVolumeClaim holding the catalog, mounted read-only in every pod.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "pbsimage-catalog",
        requires = "emit_build_job"
    )]
    pub(crate) catalog_claim: String,
    /// The catalog's path inside the claim [default: its root for a directory, the file's
    /// name for a catalog.toml].
    #[arg(long, value_name = "PATH", requires = "emit_build_job")]
    pub(crate) catalog_path: Option<String>,
    /// A kubernetes.io/dockerconfigjson Secret with the registry's credentials.
    #[arg(long, value_name = "NAME", requires = "emit_build_job")]
    pub(crate) registry_secret: Option<String>,
    #[command(flatten)]
    pub(crate) image: ImageArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write every job's resolution (and image) to this lock file.
    #[arg(long, value_name = "FILE", conflicts_with = "locked")]
    pub(crate) lock: Option<PathBuf>,
    /// Fail the jobs whose resolution differs from this lock file (with --update: the lock
    /// to update from, rewritten afterwards).
    #[arg(long, value_name = "FILE")]
    pub(crate) locked: Option<PathBuf>,
    /// Resolve every job again and rebuild only those whose packages changed since the
    /// --locked lock, reporting each change with its advisories; the others keep their
    /// images and manifests. The lock is rewritten (or written to --lock-out).
    #[arg(long, requires = "locked")]
    pub(crate) update: bool,
    /// With --update: rebuild only the jobs whose change includes a security advisory.
    #[arg(long, requires = "update")]
    pub(crate) security_only: bool,
    /// With --update: write the new lock here instead of over the --locked file.
    #[arg(long = "lock-out", value_name = "FILE", requires = "update")]
    pub(crate) update_lock_out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) signing: SignArgs,
}
