//! Operations: the pipeline's stages joined, one file per stage, each a function with narrow,
//! typed inputs and outputs. The command line calls these and nothing below them.
//!
//! ```text
//! resolve::resolve_job ─▶ fetch::fetch_packages ─▶ layers::layers ─▶ image::image
//!        (Resolved)           (packages as they       (Layers)         (Built)
//!                              arrive, verified)                          │
//!     outputs::write ◀── push::push (PushResults) ◀─────────────────────┘
//! ```
//!
//! [`build::build_job`] is the whole pipeline for one job, read top to bottom;
//! [`catalog::run`] runs it for many jobs with one repository load and one push plan.

pub mod build;
pub mod cache;
pub mod catalog;
pub mod fetch;
pub mod image;
pub mod layers;
pub mod modules;
pub mod outputs;
pub mod push;
pub mod resolve;
pub mod sign;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::Cache;
use crate::config::Config;
use crate::fetch::Transport;
use crate::hint::Hint;

pub use build::{Built, build_job};
pub use layers::Layers;
pub use resolve::Resolved;

/// Why an operation failed: the stage's own error, with its context.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Needs analysis (the job's binary, bundled libraries, `[needs] extra`).
    #[error(transparent)]
    Needs(#[from] crate::needs::NeedsError),
    /// Repository configuration or metadata.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// Resolution.
    #[error(transparent)]
    Resolve(#[from] crate::resolve::ResolveError),
    /// The HTTP client.
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// A package download.
    #[error(transparent)]
    Download(#[from] crate::fetch::download::DownloadError),
    /// Layer planning and building.
    #[error(transparent)]
    Plan(#[from] crate::layer::plan::PlanError),
    /// Reading a package's header or payload.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// Image config, manifest or layout.
    #[error(transparent)]
    Image(#[from] crate::image::oci::ImageError),
    /// The registry.
    #[error(transparent)]
    Push(#[from] crate::registry::PushError),
    /// The cache (I/O, locks, names).
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// The Kubernetes manifest.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// A package that ships a modulefile the script loads cannot be read.
    #[error("cannot read the modulefile in package {package}")]
    Module {
        /// The package.
        package: String,
        /// Why.
        #[source]
        source: Box<crate::rpm::RpmError>,
    },
    /// A job script.
    #[error(transparent)]
    Job(#[from] crate::job::JobError),
    /// A catalog directory or file.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A signing key or a signature.
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
    /// An image has no signature in the registry.
    #[error("{reference} has no signature (no {tag} in its repository)")]
    Unsigned {
        /// The image.
        reference: String,
        /// The tag looked for.
        tag: String,
    },
    /// A worker thread or task could not run.
    #[error("cannot start {what}")]
    Runtime {
        /// What could not start (`the async runtime`, `the job threads`).
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No `[[repo]]` is enabled.
    #[error("no repositories are enabled in {0}")]
    NoRepos(String),
    /// `--locked` and the resolution moved.
    #[error("--locked: the resolution differs from `{}`:\n  {}", path.display(), drift.join("\n  "))]
    Drift {
        /// The lock file.
        path: PathBuf,
        /// What moved, one line each.
        drift: Vec<String>,
    },
    /// A lock file that cannot be read or is not a lock.
    #[error("{what} `{}`: {message}", path.display())]
    Lock {
        /// `--locked`, `lock file`.
        what: &'static str,
        /// The lock file.
        path: PathBuf,
        /// Why it cannot be used.
        message: String,
    },
    /// An output (manifest, SBOM, lock) cannot be written.
    #[error("cannot write `{}`", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::cache::CacheError,
    },
    /// The configured `[image] repository` does not make a valid reference.
    #[error("the configured [image] repository does not make a valid reference")]
    Reference(#[source] crate::image::reference::InvalidImageRef),
    /// `--offline` and a registry to push to.
    #[error("--offline cannot push to `{0}`: drop --offline, or --push and [registry] host")]
    OfflinePush(String),
}

impl Hint for OpsError {
    fn hint(&self) -> Option<String> {
        use crate::fetch::download::DownloadError;
        match self {
            OpsError::Needs(e) => e.hint(),
            OpsError::Repo(e) => e.hint(),
            OpsError::Resolve(e) => e.hint(),
            OpsError::Push(e) => e.hint(),
            OpsError::Kube(e) => e.hint(),
            OpsError::Job(e) => e.hint(),
            OpsError::Catalog(e) => e.hint(),
            OpsError::Sign(e) => e.hint(),
            OpsError::Unsigned { .. } => {
                Some("sign it with `pbsimage build --sign` (or cosign sign --key)".into())
            }
            OpsError::NoRepos(_) => Some("add a [[repo]] section to pipeline.toml".into()),
            OpsError::Drift { path, .. } => Some(format!(
                "if the change is wanted, rewrite the lock with `pbsimage resolve --lock {} <job>`",
                path.display()
            )),
            OpsError::Download(DownloadError::Checksum { .. }) => Some(
                "the mirror serves a different file than its metadata describes; try again or \
                 another mirror"
                    .into(),
            ),
            OpsError::Lock { path, .. } => Some(format!(
                "write it with `pbsimage resolve --lock {} <job>` (a catalog's with `pbsimage \
                 catalog --lock {} <catalog>`)",
                path.display(),
                path.display()
            )),
            OpsError::Plan(e) => e.hint(),
            OpsError::Reference(_) => Some(
                "references look like registry.example.org/pbs/fib@sha256:<64 hex digits>; check \
                 [image] repository"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Limits and switches of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Use only the cache and `file://` repositories.
    pub offline: bool,
    /// Cap on any one metadata file, downloaded or decompressed.
    pub max_metadata_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            offline: false,
            max_metadata_bytes: 4 << 30,
        }
    }
}

/// What jobs built together share: configuration, cache, HTTP client, async runtime and the
/// progress reporter. Nothing job-specific lives here.
pub struct Context {
    /// The pipeline configuration.
    pub config: Config,
    /// Where progress goes (silent unless the CLI sets bars).
    pub reporter: Arc<dyn crate::progress::Reporter>,
    /// The content-addressed cache.
    pub cache: Cache,
    /// The HTTP client (repositories and registries), with the configured CA bundles.
    pub transport: Transport,
    /// Limits and switches.
    pub options: Options,
    runtime: tokio::runtime::Runtime,
}

impl Context {
    /// What `compute` makes, remembered in `bucket` as `<name>.json`: read back when the
    /// record is there and whole, else computed and written (atomically).
    pub fn memo<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        bucket: crate::cache::Bucket,
        name: &str,
        compute: impl FnOnce() -> Result<T, OpsError>,
    ) -> Result<T, OpsError> {
        let dir = self.cache.bucket(bucket)?;
        let file = format!("{name}.json");
        if let Ok(b) = std::fs::read(dir.join(&file))
            && let Ok(v) = serde_json::from_slice(&b)
        {
            return Ok(v);
        }
        let value = compute()?;
        let bytes = serde_json::to_vec(&value).expect("plain data serializes");
        self.cache.write_atomic(&dir, &file, &bytes)?;
        Ok(value)
    }

    /// A context for `config`: the HTTP client, a two-thread async runtime, and the cache
    /// (whose temporary files of processes killed more than an hour ago are swept).
    pub fn new(config: Config, options: Options) -> Result<Context, OpsError> {
        let mut cas: Vec<PathBuf> = Vec::new();
        if let Some(ca) = &config.settings.registry.ca_bundle {
            cas.push(config.base_dir.join(ca));
        }
        for r in &config.settings.repos {
            if let Some(ca) = &r.sslcacert {
                cas.push(config.base_dir.join(ca));
            }
        }
        let fetch = &config.settings.fetch;
        let low_speed = crate::fetch::LowSpeed {
            minrate: fetch.minrate,
            window: std::time::Duration::from_secs(fetch.timeout),
        };
        let transport = Transport::new(&cas, low_speed)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| OpsError::Runtime {
                what: "the async runtime",
                source,
            })?;
        let cache = Cache::new(config.cache_dir());
        let swept = cache.sweep(std::time::Duration::from_secs(3600));
        if swept > 0 {
            tracing::debug!("removed {swept} stale temporary files from the cache");
        }
        Ok(Context {
            reporter: Arc::new(crate::progress::Silent),
            cache,
            config,
            transport,
            options,
            runtime,
        })
    }

    /// Runs a future to completion on the context's runtime (I/O only; CPU work goes to
    /// rayon).
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The repository loader over this context's client and cache.
    pub(crate) fn loader(&self) -> crate::repo::RepoLoader<'_> {
        crate::repo::RepoLoader {
            transport: &self.transport,
            cache: &self.cache,
            max_metadata_bytes: self.options.max_metadata_bytes,
            offline: self.options.offline,
        }
    }

    /// `SOURCE_DATE_EPOCH` when set: package file times newer than it are clamped to it.
    pub fn clamp_mtime(&self) -> Option<u64> {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok())
    }

    /// `SOURCE_DATE_EPOCH` from the environment, else `[image] source-date-epoch`.
    pub fn epoch(&self) -> u64 {
        self.clamp_mtime()
            .unwrap_or(self.config.settings.image.source_date_epoch)
    }
}
