//! The pipeline, top to bottom: parse → needs → resolve (→ fetch → layers → image → push →
//! manifest as those stages land). One [`Context`] holds what several jobs share.

use std::path::PathBuf;

use crate::cache::Cache;
use crate::config::Config;
use crate::elf::Arch;
use crate::fetch::{FetchError, Transport};
use crate::job::JobSpec;
use crate::needs::{Needs, NeedsAnalyzer, NeedsError};
use crate::repo::{Repo, RepoError, RepoLoader};
use crate::resolve::{Resolution, ResolveError, Resolver};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Needs(#[from] NeedsError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("no repositories are enabled in {0}")]
    NoRepos(String),
}

impl PipelineError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PipelineError::Needs(e) => e.hint(),
            PipelineError::Repo(e) => e.hint(),
            PipelineError::Resolve(e) => e.hint(),
            PipelineError::NoRepos(_) => Some("add a [[repo]] section to pipeline.toml".into()),
            _ => None,
        }
    }
}

/// Limits and switches of a run.
#[derive(Debug, Clone)]
pub struct Options {
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

/// What jobs built together share: configuration, cache, HTTP client, async runtime.
pub struct Context {
    pub config: Config,
    pub cache: Cache,
    pub transport: Transport,
    pub options: Options,
    runtime: tokio::runtime::Runtime,
}

impl Context {
    pub fn new(config: Config, options: Options) -> Result<Context, PipelineError> {
        let mut cas: Vec<PathBuf> = Vec::new();
        if let Some(ca) = &config.settings.registry.ca_bundle {
            cas.push(config.base_dir.join(ca));
        }
        for r in &config.settings.repos {
            if let Some(ca) = &r.sslcacert {
                cas.push(config.base_dir.join(ca));
            }
        }
        let transport = Transport::new(&cas)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(PipelineError::Runtime)?;
        Ok(Context {
            cache: Cache::new(config.cache_dir()),
            config,
            transport,
            options,
            runtime,
        })
    }

    fn loader(&self) -> RepoLoader<'_> {
        RepoLoader {
            transport: &self.transport,
            cache: &self.cache,
            max_metadata_bytes: self.options.max_metadata_bytes,
            offline: self.options.offline,
        }
    }

    /// Loads every enabled repository, concurrently.
    pub fn load_repos(&self) -> Result<Vec<Repo>, PipelineError> {
        self.load_repos_for(None)
    }

    /// Loads every enabled repository; file lists too when `needs` has a path that
    /// primary.xml cannot list (read concurrently with primary.xml).
    pub fn load_repos_for(&self, needs: Option<&Needs>) -> Result<Vec<Repo>, PipelineError> {
        let with_filelists = needs.is_some_and(|n| {
            n.needs.iter().any(|x| {
                x.kind
                    .paths()
                    .iter()
                    .all(|p| !crate::repo::RepoIndex::primary_lists(p))
                    && !x.kind.paths().is_empty()
            })
        });
        let sources = crate::repo::sources(&self.config)?;
        if sources.is_empty() {
            return Err(PipelineError::NoRepos(self.config.origin.to_string()));
        }
        let loader = self.loader();
        let repos = self.runtime.block_on(async {
            futures_util::future::join_all(sources.iter().map(|s| loader.load(s, with_filelists)))
                .await
        });
        repos
            .into_iter()
            .map(|r| r.map_err(PipelineError::from))
            .collect()
    }

    /// What the job needs.
    pub fn needs(&self, job: &JobSpec) -> Result<Needs, PipelineError> {
        let s = &self.config.settings;
        Ok(NeedsAnalyzer {
            settings: &s.needs,
            basearch: s.vars.get("basearch").map(String::as_str),
            default_shell: &s.kube.default_shell,
        }
        .analyze(job)?)
    }

    /// Package architectures allowed for a job, best first.
    pub fn arches(&self, needs: &Needs) -> Vec<&'static str> {
        let basearch = self
            .config
            .settings
            .vars
            .get("basearch")
            .and_then(|b| Arch::parse_basearch(b))
            .unwrap_or(needs.arch);
        let mut out: Vec<&'static str> = basearch
            .package_arches()
            .iter()
            .copied()
            .filter(|a| *a != "noarch")
            .collect();
        for a in needs
            .package_arches
            .iter()
            .copied()
            .filter(|a| *a != "noarch")
        {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out.push("noarch");
        out
    }

    /// Resolves needs and the base packages; loads file lists when a file need calls for it.
    pub fn resolve(&self, repos: &mut [Repo], needs: &Needs) -> Result<Resolution, PipelineError> {
        let arches = self.arches(needs);
        let base = &self.config.settings.base.packages;
        let weak = self.config.settings.needs.weak_deps;
        let first = Resolver::new(repos, &arches, weak).resolve(needs, base);
        match first {
            Err(ResolveError::NeedsFilelists) => {
                let loader = self.loader();
                self.runtime.block_on(async {
                    for r in repos.iter_mut() {
                        loader.load_filelists(r).await?;
                    }
                    Ok::<(), RepoError>(())
                })?;
                Ok(Resolver::new(repos, &arches, weak)
                    .resolve(needs, base)
                    .map_err(|e| match e {
                        ResolveError::NeedsFilelists => ResolveError::Unsatisfied {
                            failures: Vec::new(),
                        },
                        e => e,
                    })?)
            }
            r => Ok(r?),
        }
    }
}
