//! The pipeline, top to bottom: parse → needs → resolve (→ fetch → layers → image → push →
//! manifest as those stages land). One [`Context`] holds what several jobs share.

use std::path::PathBuf;

use crate::cache::Cache;
use crate::config::Config;
use crate::elf::Arch;
use crate::fetch::download::{Download, DownloadError, Downloader};
use crate::fetch::{FetchError, Transport};
use crate::job::JobSpec;
use crate::layer::plan::{self, BuiltLayer, JobFile, JobSource, LocalPackage, PlanError};
use crate::needs::{Needs, NeedsAnalyzer, NeedsError};
use crate::repo::{Repo, RepoError, RepoLoader};
use crate::resolve::{Resolution, ResolveError, Resolver};
use futures_util::StreamExt;

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
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Image(#[from] crate::image::oci::ImageError),
    #[error(transparent)]
    Push(#[from] crate::registry::PushError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("no repositories are enabled in {0}")]
    NoRepos(String),
    #[error("--locked: the resolution differs from `{}`:\n  {}", path.display(), drift.join("\n  "))]
    Drift {
        path: std::path::PathBuf,
        drift: Vec<String>,
    },
}

impl PipelineError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PipelineError::Needs(e) => e.hint(),
            PipelineError::Repo(e) => e.hint(),
            PipelineError::Resolve(e) => e.hint(),
            PipelineError::NoRepos(_) => Some("add a [[repo]] section to pipeline.toml".into()),
            PipelineError::Push(e) => e.hint(),
            PipelineError::Drift { path, .. } => Some(format!(
                "if the change is wanted, rewrite the lock with `pbsimage resolve --lock {} <job>`",
                path.display()
            )),
            PipelineError::Download(DownloadError::Checksum { .. }) => {
                Some("the mirror serves a different file than its metadata describes; try again or another mirror".into())
            }
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
    /// Where progress goes (silent unless the CLI sets bars).
    pub reporter: std::sync::Arc<dyn crate::progress::Reporter>,
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
        let cache = Cache::new(config.cache_dir());
        // Temporary files of processes killed more than an hour ago.
        let swept = cache.sweep(std::time::Duration::from_secs(3600));
        if swept > 0 {
            tracing::debug!("removed {swept} stale temporary files from the cache");
        }
        Ok(Context {
            reporter: std::sync::Arc::new(crate::progress::Silent),
            cache,
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
        self.load_repos_for_all(needs.as_slice())
    }

    /// As [`Context::load_repos_for`], for several jobs at once (a catalog): one load.
    pub fn load_repos_for_all(&self, needs: &[&Needs]) -> Result<Vec<Repo>, PipelineError> {
        let with_filelists = needs.iter().any(|n| {
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

/// The threads that build layers: one per core, its own pool. `rayon::spawn` would use the
/// pool of the calling thread, and a catalog builds jobs on a pool whose threads wait for
/// their layers: the layers would queue behind their own waiters.
fn layer_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("pbsimage-layer-{i}"))
            .build()
            .expect("cannot start the layer threads")
    })
}

/// The layers of one job's image, bottom to top.
#[derive(Debug, Clone)]
pub struct Layers {
    pub layers: Vec<BuiltLayer>,
    pub conflicts: Vec<String>,
    pub options: crate::layer::LayerOptions,
    /// Every package in the image, from its RPM header.
    pub packages: Vec<crate::image::packages::ImagePackage>,
    /// Directories named in the packages' `/etc/ld.so.conf.d/*.conf`, in package order.
    pub library_dirs: Vec<String>,
}

impl Context {
    /// Downloads the resolved packages into the cache (verified), plans and builds the
    /// layers, and builds the job's own layer on top.
    /// `popularity` (a catalog's: package NEVRA → jobs needing it) decides which packages keep
    /// their own layers when a job has more than the layer budget.
    pub fn layers(
        &self,
        job: &JobSpec,
        needs: &Needs,
        res: &Resolution,
        popularity: Option<&Popularity>,
    ) -> Result<Layers, PipelineError> {
        let items: Vec<Download> = res
            .packages
            .iter()
            .map(|p| {
                let (algo, hex) = p
                    .checksum
                    .split_once(':')
                    .unwrap_or(("sha256", &p.checksum));
                Download {
                    name: p.nevra.clone(),
                    urls: std::iter::once(&p.base_url)
                        .chain(&p.mirrors)
                        .map(|b| crate::repo::join_url(b, &p.href))
                        .collect(),
                    checksum: crate::repo::checksum::Checksum::new(algo, hex)
                        .expect("from metadata"),
                    size: p.size,
                }
            })
            .collect();
        let n = res.packages.len();
        let mut locals: Vec<LocalPackage> = res
            .packages
            .iter()
            .map(|p| LocalPackage {
                nevra: p.nevra.clone(),
                name: p.name.clone(),
                path: std::path::PathBuf::new(),
                sha256: String::new(),
                base: p.base,
            })
            .collect();
        let s = &self.config.settings;
        let epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(s.image.source_date_epoch);
        let compression = s.image.compression;
        let planned = match popularity {
            Some(pop) => plan::plan_ranked(&locals, s.image.max_layers, &|p| {
                pop.get(&p.nevra).copied().unwrap_or(0)
            }),
            None => plan::plan(&locals, s.image.max_layers),
        };
        // The base packages fix the layout and owners; they are fetched first, and every
        // other layer is built (on rayon) as soon as its packages have arrived.
        let base: Vec<usize> = (0..n).filter(|&i| locals[i].base).collect();
        let layout: Vec<usize> = if base.is_empty() {
            (0..n).collect()
        } else {
            base
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (!layout.contains(&i), std::cmp::Reverse(items[i].size), i));
        let downloader = Downloader {
            transport: &self.transport,
            cache: &self.cache,
            concurrency: 4,
            reporter: self.reporter.as_ref(),
            offline: self.options.offline,
        };
        let mut files: Vec<Option<Vec<crate::rpm::FileInfo>>> = vec![None; n];
        let mut infos: Vec<Option<crate::rpm::PackageInfo>> = vec![None; n];
        let mut opts: Option<crate::layer::LayerOptions> = None;
        let mut started = vec![false; planned.len()];
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<BuiltLayer, PlanError>)>();
        let start_ready = |opts: &crate::layer::LayerOptions,
                           locals: &[LocalPackage],
                           files: &[Option<Vec<crate::rpm::FileInfo>>],
                           started: &mut [bool]| {
            for (li, l) in planned.iter().enumerate() {
                if started[li] || !l.packages.iter().all(|&j| files[j].is_some()) {
                    continue;
                }
                started[li] = true;
                let pkgs: Vec<LocalPackage> =
                    l.packages.iter().map(|&j| locals[j].clone()).collect();
                let fs: Vec<Vec<crate::rpm::FileInfo>> = l
                    .packages
                    .iter()
                    .map(|&j| files[j].clone().unwrap_or_default())
                    .collect();
                let (cache, o, label, tx) = (
                    self.cache.clone(),
                    opts.clone(),
                    l.label.clone(),
                    tx.clone(),
                );
                layer_pool().spawn(move || {
                    let pr: Vec<&LocalPackage> = pkgs.iter().collect();
                    let fr: Vec<&[crate::rpm::FileInfo]> = fs.iter().map(Vec::as_slice).collect();
                    let _ = tx.send((li, plan::build_layer(&cache, &label, &pr, &fr, &o)));
                });
            }
        };
        self.reporter
            .start("download", items.iter().map(|i| i.size).sum(), true);
        let fetched = self.runtime.block_on(async {
            let mut stream = futures_util::stream::iter(order)
                .map(|i| {
                    let (d, item) = (&downloader, &items[i]);
                    async move { (i, d.fetch(item).await) }
                })
                .buffer_unordered(downloader.concurrency);
            while let Some((i, r)) = stream.next().await {
                let path = r?;
                locals[i].sha256 = path
                    .file_name()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default();
                locals[i].path = path;
                // Reading a header takes a few milliseconds.
                let reader = crate::rpm::RpmReader::open(&locals[i].path)
                    .map_err(|e| PlanError::from(crate::layer::LayerError::from(e)))?;
                files[i] = Some(reader.files);
                infos[i] = Some(reader.info);
                if opts.is_none() && layout.iter().all(|&j| files[j].is_some()) {
                    let lp: Vec<&LocalPackage> = layout.iter().map(|&j| &locals[j]).collect();
                    let lf: Vec<&[crate::rpm::FileInfo]> = layout
                        .iter()
                        .map(|&j| files[j].as_deref().unwrap_or_default())
                        .collect();
                    opts = Some(plan::options_for(&lp, &lf, epoch, compression)?);
                }
                if let Some(o) = &opts {
                    start_ready(o, &locals, &files, &mut started);
                }
            }
            Ok::<(), PipelineError>(())
        });
        self.reporter.finish();
        fetched?;
        let opts = match opts {
            Some(o) => o,
            None => plan::options_for(&[], &[], epoch, compression)?,
        };
        start_ready(&opts, &locals, &files, &mut started);
        drop(tx);
        self.reporter.start("layers", planned.len() as u64, false);
        let mut built: Vec<Option<BuiltLayer>> = vec![None; planned.len()];
        let mut first_err = None;
        for (li, r) in rx {
            self.reporter.advance(1);
            match r {
                Ok(b) => built[li] = Some(b),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.reporter.finish();
        if let Some(e) = first_err {
            return Err(e.into());
        }
        let mut layers: Vec<BuiltLayer> = built.into_iter().flatten().collect();
        let all_files: Vec<Vec<crate::rpm::FileInfo>> =
            files.into_iter().map(Option::unwrap_or_default).collect();
        let conflicts = plan::conflicts(&locals, &all_files, &planned);
        let packages: Vec<crate::image::packages::ImagePackage> = infos
            .into_iter()
            .zip(&locals)
            .zip(&res.packages)
            .filter_map(|((info, l), p)| {
                Some(crate::image::packages::ImagePackage {
                    info: info?,
                    sha256: l.sha256.clone(),
                    repo: p.repo.clone(),
                })
            })
            .collect();
        let mut library_dirs = Vec::new();
        for (l, f) in locals.iter().zip(&all_files) {
            if crate::image::packages::has_ld_conf(f) {
                library_dirs.extend(self.ld_conf_dirs(l)?);
            }
        }
        let mut job_files = self.job_files(job, needs);
        job_files.push(JobFile {
            dest: "/var/lib/rpmmanifest/container-manifest-2".into(),
            mode: 0o644,
            source: JobSource::Bytes(
                crate::image::packages::rpm_manifest(&packages, opts.epoch).into_bytes(),
            ),
        });
        layers.push(plan::build_job_layer(&self.cache, &opts, &job_files)?);
        Ok(Layers {
            layers,
            conflicts,
            options: opts,
            packages,
            library_dirs,
        })
    }

    /// The `/etc/ld.so.conf.d` directories of a package, remembered per RPM digest (reading
    /// them means decompressing the payload).
    fn ld_conf_dirs(&self, p: &LocalPackage) -> Result<Vec<String>, PipelineError> {
        let dir = self.cache.dir(&["ldconf-v1"]).map_err(PlanError::from)?;
        let name = format!("{}.json", p.sha256);
        if let Ok(b) = std::fs::read(dir.join(&name))
            && let Ok(d) = serde_json::from_slice(&b)
        {
            return Ok(d);
        }
        let dirs = crate::image::packages::ld_conf_dirs(&p.path)
            .map_err(|e| PlanError::from(crate::layer::LayerError::from(e)))?;
        self.cache
            .write_atomic(
                &dir,
                &name,
                &serde_json::to_vec(&dirs).expect("serializable"),
            )
            .map_err(PlanError::from)?;
        Ok(dirs)
    }

    /// The job's own files: the wrapper, the script, the binary and its bundled libraries.
    pub fn job_files(&self, job: &JobSpec, needs: &Needs) -> Vec<JobFile> {
        let dir = self
            .config
            .settings
            .image
            .job_dir
            .trim_end_matches('/')
            .to_owned();
        let script_dir = job
            .script
            .parent()
            .unwrap_or(std::path::Path::new(""))
            .to_owned();
        let mut files = vec![JobFile {
            dest: crate::kube::WRAPPER_PATH.into(),
            mode: 0o755,
            source: JobSource::Bytes(crate::kube::WRAPPER_SCRIPT.as_bytes().to_vec()),
        }];
        let name = job
            .script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.sh".into());
        files.push(JobFile {
            dest: format!("{dir}/{name}"),
            mode: 0o755,
            source: JobSource::Path(job.script.clone()),
        });
        if let Some(bin) = &job.binary {
            let rel = bin.strip_prefix(&script_dir).unwrap_or(bin);
            files.push(JobFile {
                dest: format!("{dir}/{}", rel.display()),
                mode: 0o755,
                source: JobSource::Path(bin.clone()),
            });
        }
        for b in &needs.bundled {
            files.push(JobFile {
                dest: format!("{dir}/{}", b.path.display()),
                mode: 0o755,
                source: JobSource::Path(script_dir.join(&b.path)),
            });
        }
        files
    }
}

/// Package NEVRA → how many jobs of a catalog need it.
pub type Popularity = std::collections::BTreeMap<String, usize>;

/// Per-job choices of [`Context::build_resolved`].
#[derive(Default)]
pub struct JobOptions<'a> {
    /// Replaces the job's name in the `[image] repository` and `tag` templates (a catalog's
    /// per-job `image`).
    pub name: Option<&'a str>,
    /// See [`Context::layers`].
    pub popularity: Option<&'a Popularity>,
}

/// A built image in an OCI layout.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: crate::image::oci::Image,
    pub layers: Layers,
    /// `repository@sha256:...`
    pub reference: String,
    pub repository: String,
    pub tag: String,
    pub layout: std::path::PathBuf,
    /// Seconds per stage: `resolve` (needs, metadata, resolution), `layers` (download and
    /// layers), `image` (config, manifest, layout).
    pub timings: std::collections::BTreeMap<&'static str, f64>,
}

impl Context {
    /// Needs, repositories and resolution for one job (file lists loaded when needed).
    pub fn resolve_job(
        &self,
        job: &JobSpec,
    ) -> Result<(Needs, Vec<Repo>, Resolution), PipelineError> {
        let needs = self.needs(job)?;
        let mut repos = self.load_repos_for(Some(&needs))?;
        let res = self.resolve(&mut repos, &needs)?;
        Ok((needs, repos, res))
    }

    /// The whole pipeline for one job, up to an OCI layout at `layout`. With `locked`, the
    /// resolution must equal that lock file's (same repository revisions, same packages).
    pub fn build(
        &self,
        job: &JobSpec,
        layout: &std::path::Path,
        locked: Option<(&std::path::Path, &crate::resolve::lock::Lock)>,
    ) -> Result<(Needs, Built), PipelineError> {
        let clock = std::time::Instant::now();
        let (needs, repos, res) = self.resolve_job(job)?;
        if let Some((path, lock)) = locked {
            let now = crate::resolve::lock::Lock::new(&lock.job, &repos, &res);
            let drift = lock.drift(&now);
            if !drift.is_empty() {
                return Err(PipelineError::Drift {
                    path: path.to_owned(),
                    drift,
                });
            }
        }
        let resolve = clock.elapsed().as_secs_f64();
        let mut built =
            self.build_resolved(job, &needs, &repos, &res, layout, &JobOptions::default())?;
        built.timings.insert("resolve", resolve);
        Ok((needs, built))
    }

    /// Layers, image and layout for a resolved job.
    pub fn build_resolved(
        &self,
        job: &JobSpec,
        needs: &Needs,
        repos: &[Repo],
        res: &Resolution,
        layout: &std::path::Path,
        opts: &JobOptions<'_>,
    ) -> Result<Built, PipelineError> {
        let name = opts.name;
        let mut clock = std::time::Instant::now();
        let mut timings = std::collections::BTreeMap::new();
        let mut lap = |stage: &'static str| {
            timings.insert(stage, clock.elapsed().as_secs_f64());
            clock = std::time::Instant::now();
        };
        let layers = self.layers(job, needs, res, opts.popularity)?;
        lap("layers");
        let s = &self.config.settings;
        let dns = name
            .map(str::to_owned)
            .unwrap_or_else(|| job.name.dns_label(63));
        let queue = job
            .queue
            .clone()
            .unwrap_or_else(|| s.kube.default_queue.clone());
        let script_digest = plan::file_sha256(&job.script)?;
        let fill = |t: &str| {
            t.replace("{name}", &dns)
                .replace(
                    "{queue}",
                    &crate::job::JobName::new(&queue)
                        .map(|q| q.dns_label(63))
                        .unwrap_or_default(),
                )
                .replace("{script-digest}", &script_digest[..12])
        };
        let (repository, tag) = (fill(&s.image.repository), fill(&s.image.tag));
        let mut labels = std::collections::BTreeMap::from([
            (
                "org.opencontainers.image.title".to_string(),
                job.name.to_string(),
            ),
            ("io.pbsimage.job".to_string(), job.name.to_string()),
            (
                "io.pbsimage.script-sha256".to_string(),
                script_digest.clone(),
            ),
        ]);
        for r in repos {
            labels.insert(
                format!("io.pbsimage.repo.{}", r.source.id),
                r.index.repomd_sha256.clone(),
            );
        }
        let spec = crate::image::oci::ImageSpec {
            arch: needs.arch,
            env: std::iter::once(
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            )
            .chain(
                crate::image::packages::library_path(&layers.library_dirs)
                    .map(|p| format!("LD_LIBRARY_PATH={p}")),
            )
            .collect(),
            entrypoint: vec![crate::kube::WRAPPER_PATH.into()],
            working_dir: s.image.job_dir.clone(),
            labels,
            epoch: layers.options.epoch,
        };
        let image = crate::image::oci::assemble(&spec, &layers.layers)?;
        {
            // One writer of a layout at a time (its index.json lists every image).
            let where_ = std::path::absolute(layout).unwrap_or_else(|_| layout.to_owned());
            let _lock = self
                .cache
                .lock(&format!(
                    "layout-{}",
                    &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                        where_.to_string_lossy().as_bytes()
                    ))[..16]
                ))
                .map_err(PlanError::from)?;
            crate::image::oci::write_layout(layout, &image, &layers.layers, &tag)?;
        }
        lap("image");
        let reference = format!("{repository}@{}", image.manifest_digest);
        Ok(Built {
            image,
            layers,
            reference,
            repository,
            tag,
            layout: layout.to_owned(),
            timings,
        })
    }
}

impl Context {
    /// Pushes a built image to `host` (its `[image] repository`, tag moved last), over plain
    /// HTTP when `plain_http` or `[registry] insecure` names the host. Returns the
    /// digest-pinned reference and what was uploaded.
    pub fn push(
        &self,
        built: &Built,
        host: &str,
        plain_http: bool,
        credentials: Option<crate::registry::auth::Found>,
    ) -> Result<(String, crate::registry::PushReport), PipelineError> {
        self.push_many(&[built], host, plain_http, credentials)?
            .pop()
            .expect("one result per image")
            .map_err(PipelineError::from)
    }

    /// Pushes several built images as one plan (see [`Pusher::push_all`]): each distinct
    /// blob sent once, mounted where other images need it, one image's failure isolated.
    /// Errors that stop every image (credentials, the cache) are the outer error.
    ///
    /// [`Pusher::push_all`]: crate::registry::Pusher::push_all
    pub fn push_many(
        &self,
        built: &[&Built],
        host: &str,
        plain_http: bool,
        credentials: Option<crate::registry::auth::Found>,
    ) -> Result<PushResults, PipelineError> {
        use crate::registry::{Blob, Client, ImagePush, Pusher, auth};
        let plain_http = plain_http
            || self
                .config
                .settings
                .registry
                .insecure
                .iter()
                .any(|h| h == host);
        // Which repository of this registry holds which blob, from earlier pushes.
        let records = self.cache.dir(&["pushes-v1"]).map_err(PlanError::from)?;
        let record_name = format!(
            "{}.json",
            crate::cache::path_segment(host).map_err(PlanError::from)?
        );
        let load = || -> std::collections::BTreeMap<String, String> {
            std::fs::read(records.join(&record_name))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        let credentials = match credentials {
            Some(c) => Some(c),
            None => {
                auth::lookup(host, &auth::auth_files()).map_err(crate::registry::PushError::from)?
            }
        };
        let known = load();
        let images: Vec<ImagePush<'_>> = built
            .iter()
            .map(|b| {
                let mut blobs: Vec<(String, Blob<'_>)> = b
                    .layers
                    .layers
                    .iter()
                    .map(|l| (l.layer.digest.clone(), Blob::File(&l.path)))
                    .collect();
                blobs.push((b.image.config_digest.clone(), Blob::Bytes(&b.image.config)));
                ImagePush {
                    repository: b.repository.clone(),
                    blobs,
                    manifest: &b.image.manifest,
                    manifest_digest: b.image.manifest_digest.clone(),
                    tag: b.tag.clone(),
                }
            })
            .collect();
        let scopes = Pusher::scopes(&images, &known);
        let pusher = Pusher {
            client: Client::new(
                &self.transport.client,
                host,
                plain_http,
                credentials,
                scopes,
            ),
            known: std::sync::Mutex::new(known),
            parallel: self.config.settings.registry.parallel,
        };
        let results = self.runtime.block_on(pusher.push_all(&images));
        {
            let _lock = self
                .cache
                .lock(&format!("pushes-{}", record_name.trim_end_matches(".json")))
                .map_err(PlanError::from)?;
            let mut known = load();
            for (img, r) in images.iter().zip(&results) {
                if r.is_ok() {
                    for (d, _) in &img.blobs {
                        known
                            .entry(d.clone())
                            .or_insert_with(|| img.repository.clone());
                    }
                }
            }
            self.cache
                .write_atomic(
                    &records,
                    &record_name,
                    &serde_json::to_vec(&known).expect("serializable"),
                )
                .map_err(PlanError::from)?;
        }
        Ok(built
            .iter()
            .zip(results)
            .map(|(b, r)| {
                r.map(|report| {
                    (
                        format!("{host}/{}@{}", b.repository, b.image.manifest_digest),
                        report,
                    )
                })
            })
            .collect())
    }
}

/// Per image: the digest-pinned reference and what was sent, or why it failed.
pub type PushResults =
    Vec<Result<(String, crate::registry::PushReport), crate::registry::PushError>>;
