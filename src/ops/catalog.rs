//! Catalog: many jobs built at once — parsed and analysed in parallel, one repository load,
//! resolved one after another (an in-memory index), built `jobs` at a time sharing packages
//! and layers, pushed as one plan, each job's manifest and SBOM written — with one job's
//! failure isolated to its row of the report.
//!
//! Layers are the same a job gets from `pbsimage build` (the base, then one layer per package
//! in name order), so a catalog image has the digest of the job built alone and adding a job
//! changes no other image. Only past a job's layer budget does the catalog matter: the
//! packages most of its jobs need keep their own layers and the rarest are merged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use super::build::JobOptions;
use super::layers::Popularity;
use super::outputs::{ManifestChoice, OutputPaths};
use super::push::{PushTarget, Pushed};
use super::update::{self, JobUpdate, UpdateRequest, UpdateStatus, UpdateSummary};
use super::{Built, Context, OpsError};
use crate::catalog::{CatalogJob, lock_key};
use crate::hint::Hint;
use crate::job::JobSpec;
use crate::needs::Needs;
use crate::repo::Repo;
use crate::resolve::Resolution;
use crate::resolve::lock::{CatalogLock, Lock, LockBlob, LockImage};

/// Why a job of a catalog failed: the stage, the error with its causes, and a hint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobFailure {
    /// `parse`, `needs`, `resolve`, `lock`, `build`, `push`, `sign`, `attach` or `manifest`.
    pub stage: String,
    /// The error and its causes, on one line.
    pub error: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl JobFailure {
    fn new<E: std::error::Error + Hint>(stage: &'static str, e: &E) -> JobFailure {
        JobFailure {
            stage: stage.to_owned(),
            error: crate::hint::chain(e),
            hint: e.hint(),
        }
    }
}

/// A job built.
pub struct JobBuild {
    /// The job as parsed.
    pub spec: JobSpec,
    /// What it needs.
    pub needs: Needs,
    /// Its image.
    pub built: Built,
    /// Its resolution, as a catalog lock records it.
    pub lock: Lock,
    /// Parse, analysis, resolution and build of this job.
    pub seconds: f64,
    /// With `--update`: why it was built.
    pub update: Option<JobUpdate>,
}

/// A job of the catalog: built, kept (an update found no reason to rebuild it), or failed.
pub enum JobOutcome {
    /// Built.
    Built(Box<JobBuild>),
    /// Kept as its lock entry records it (`--update`).
    Kept {
        /// The job's name.
        name: crate::job::JobName,
        /// The entry, with its image.
        lock: Box<Lock>,
        /// Why it was kept.
        update: JobUpdate,
    },
    /// Failed at some stage.
    Failed(JobFailure),
}

impl JobOutcome {
    /// The job built, if it was.
    pub fn built(&self) -> Option<&JobBuild> {
        match self {
            JobOutcome::Built(jb) => Some(jb),
            _ => None,
        }
    }
}

/// Every job's outcome, and what was odd in the repositories' advisories (`--update`).
pub struct CatalogBuild {
    /// One per job, in catalog order.
    pub outcomes: Vec<JobOutcome>,
    /// Advisory warnings.
    pub warnings: Vec<String>,
    /// Each pushed (or not) image's result, by its job's index.
    pub pushed: BTreeMap<usize, Result<Pushed, JobFailure>>,
}

/// How a catalog's images are built.
pub struct BuildOptions {
    /// Jobs built at once.
    pub jobs: usize,
    /// The OCI layout every image goes into.
    pub layout: PathBuf,
    /// Lock entries are keyed by the script's path relative to this directory.
    pub root: PathBuf,
    /// With a lock, a job whose resolution differs from its entry fails (stage `lock`).
    pub locked: Option<CatalogLock>,
    /// Who the jobs run as (their `/etc/passwd` entry).
    pub user: crate::kube::JobUser,
    /// Rebuild only what changed since this lock (`--update`).
    pub update: Option<UpdateRequest>,
}

/// A job parsed and analysed, or why not; with the seconds it took.
type Prepared = (Result<(JobSpec, Needs), JobFailure>, f64);
/// A job resolved (and checked against the lock), or why not; with the seconds so far.
type ResolvedJob = (Result<(JobSpec, Needs, Resolution, Lock), JobFailure>, f64);

/// Builds every job of the catalog into `opts.layout` (with an update, only the jobs whose
/// packages changed). Errors that stop every job (no repository can be loaded) are the outer
/// error; each job's own failure is its outcome.
pub fn build_all(
    ctx: &Context,
    jobs: &[CatalogJob],
    opts: &BuildOptions,
    push: Option<PushPlan<'_>>,
) -> Result<CatalogBuild, OpsError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("pbsimage-job-{i}"))
        .build()
        .map_err(|e| OpsError::Runtime {
            what: "the job threads",
            source: std::io::Error::other(e),
        })?;
    let prepared: Vec<Prepared> =
        pool.install(|| jobs.par_iter().map(|j| prepare(ctx, j)).collect());
    let (repos, resolved) = resolve_all(ctx, jobs, prepared, opts)?;
    let (advisories, warnings) = match &opts.update {
        Some(_) if !repos.is_empty() => update::advisories(ctx, &repos),
        _ => Default::default(),
    };
    let popularity = popularity(&resolved);
    let build_one = |((r, secs), j): (ResolvedJob, &CatalogJob)| {
        let (spec, needs, res, lock) = match r {
            Ok(r) => r,
            Err(f) => return JobOutcome::Failed(f),
        };
        let update = match &opts.update {
            None => None,
            Some(u) => {
                let old = u.lock.job(&lock.job);
                match update::decide(old, &lock, &advisories, u.security_only) {
                    (update, Some(kept)) => {
                        return JobOutcome::Kept {
                            name: spec.name.clone(),
                            lock: Box::new(kept),
                            update,
                        };
                    }
                    (update, None) => Some(update),
                }
            }
        };
        let t = Instant::now();
        let job_opts = JobOptions {
            name: j.image.as_deref(),
            popularity: Some(&popularity),
            user: Some(&opts.user),
        };
        match super::build::build_resolved(
            ctx,
            &spec,
            &needs,
            &repos,
            &res,
            &opts.layout,
            &job_opts,
        ) {
            Ok(built) => JobOutcome::Built(Box::new(JobBuild {
                spec,
                needs,
                built,
                lock,
                seconds: secs + t.elapsed().as_secs_f64(),
                update,
            })),
            Err(e) => JobOutcome::Failed(JobFailure::new("build", &e)),
        }
    };
    // Built a batch at a time; each batch is pushed (on another thread) while the next one
    // builds, so the registry's work overlaps the build's.
    let (outcomes, pushed) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<JobOutcome>)>(1);
        let pusher = s.spawn(move || {
            let mut done = Vec::new();
            for (offset, batch) in rx {
                let pushed = match &push {
                    Some(p) => push_built(ctx, &batch, Some(p.target), p.key)?,
                    None => BTreeMap::new(),
                };
                done.push((offset, batch, pushed));
            }
            Ok::<_, OpsError>(done)
        });
        let mut items = resolved.into_iter().zip(jobs.iter());
        let mut offset = 0;
        loop {
            let chunk: Vec<(ResolvedJob, &CatalogJob)> = items.by_ref().take(BATCH).collect();
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            let batch: Vec<JobOutcome> =
                pool.install(|| chunk.into_par_iter().map(&build_one).collect());
            if tx.send((offset, batch)).is_err() {
                break;
            }
            offset += n;
        }
        drop(tx);
        let done = pusher.join().map_err(|_| OpsError::Runtime {
            what: "the push thread",
            source: std::io::Error::other("it panicked"),
        })??;
        let (mut outcomes, mut pushed) = (Vec::with_capacity(jobs.len()), BTreeMap::new());
        for (offset, batch, p) in done {
            outcomes.extend(batch);
            pushed.extend(p.into_iter().map(|(i, r)| (offset + i, r)));
        }
        Ok::<_, OpsError>((outcomes, pushed))
    })?;
    Ok(CatalogBuild {
        outcomes,
        warnings,
        pushed,
    })
}

/// Jobs built before their images are pushed (while the next ones build).
const BATCH: usize = 64;

/// Where a catalog's images are pushed as they are built, and the key that signs them.
pub struct PushPlan<'a> {
    /// The registry.
    pub target: &'a PushTarget,
    /// Sign every image pushed.
    pub key: Option<&'a crate::sign::PrivateKey>,
}

/// Parses and analyses one job.
fn prepare(ctx: &Context, j: &CatalogJob) -> Prepared {
    let t = Instant::now();
    let r = (|| {
        let spec = crate::job::ScriptParser::new(&crate::job::ProcessEnv)
            .parse(&j.script)
            .map_err(|e| JobFailure::new("parse", &e))?;
        let mut needs =
            super::resolve::needs(ctx, &spec).map_err(|e| JobFailure::new("needs", &e))?;
        needs
            .add_extra(&j.packages, "catalog packages")
            .map_err(|e| JobFailure::new("needs", &e))?;
        Ok((spec, needs))
    })();
    (r, t.elapsed().as_secs_f64())
}

/// One load of the repositories for every prepared job, then each job resolved and checked
/// against the lock.
fn resolve_all(
    ctx: &Context,
    jobs: &[CatalogJob],
    prepared: Vec<Prepared>,
    opts: &BuildOptions,
) -> Result<(Vec<Repo>, Vec<ResolvedJob>), OpsError> {
    let all_needs: Vec<&Needs> = prepared
        .iter()
        .filter_map(|(r, _)| r.as_ref().ok().map(|(_, n)| n))
        .collect();
    let mut repos = if all_needs.is_empty() {
        Vec::new()
    } else {
        super::resolve::load_repos(ctx, &all_needs)?
    };
    let mut out = Vec::with_capacity(jobs.len());
    for ((r, secs), j) in prepared.into_iter().zip(jobs) {
        let t = Instant::now();
        let r = r.and_then(|(spec, mut needs)| {
            let resolution = super::resolve::resolve_with_modules(ctx, &mut repos, &mut needs)
                .map_err(|e| JobFailure::new("resolve", &e))?;
            let key = lock_key(&opts.root, &j.script);
            let lock = Lock::new(&key, &repos, &resolution);
            if let Some(locked) = &opts.locked {
                check_locked(locked, &key, &lock)?;
            }
            Ok((spec, needs, resolution, lock))
        });
        out.push((r, secs + t.elapsed().as_secs_f64()));
    }
    Ok((repos, out))
}

/// A job's resolution against its entry in the catalog lock.
fn check_locked(locked: &CatalogLock, key: &str, lock: &Lock) -> Result<(), JobFailure> {
    let drift = match locked.job(key) {
        None => vec![format!("`{key}` is not in the lock")],
        Some(l) => l.drift(lock),
    };
    if drift.is_empty() {
        return Ok(());
    }
    Err(JobFailure {
        stage: "lock".into(),
        error: format!(
            "--locked: the resolution differs from the lock: {}",
            drift.join("; ")
        ),
        hint: Some(
            "if the change is wanted, rewrite the lock with `pbsimage catalog --lock`".into(),
        ),
    })
}

/// How many jobs need each package: past a job's layer budget, the widely shared keep their
/// own layers.
fn popularity(resolved: &[ResolvedJob]) -> Popularity {
    let mut popularity = Popularity::new();
    for (r, _) in resolved {
        if let Ok((_, _, res, _)) = r {
            for p in &res.packages {
                *popularity.entry(p.nevra.clone()).or_insert(0) += 1;
            }
        }
    }
    popularity
}

/// What nodes pull: with layer reuse (each distinct blob once) against the paper's method
/// (every job's whole image to every node).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Distribution {
    /// Bytes a node pulls to run every job once, reusing layers.
    pub with_reuse: u64,
    /// Bytes a node receives with a full image per job.
    pub full_images: u64,
    /// `with_reuse / full_images`.
    pub ratio: f64,
}

/// An image's layers (bottom to top) then its config: digests and sizes.
fn image_blobs(b: &Built) -> Vec<(String, u64)> {
    b.layers
        .stack
        .iter()
        .map(|l| (l.layer.digest.to_string(), l.layer.size))
        .chain(std::iter::once((
            b.image.config_digest.clone(),
            b.image.config.len() as u64,
        )))
        .collect()
}

/// The distribution cost of images given as their blobs (digest, size).
fn distribution_of<'b>(images: impl IntoIterator<Item = &'b [(String, u64)]>) -> Distribution {
    let mut seen = BTreeSet::new();
    let (mut with_reuse, mut full) = (0u64, 0u64);
    for (d, size) in images.into_iter().flatten() {
        full += size;
        if seen.insert(d) {
            with_reuse += size;
        }
    }
    Distribution::of(with_reuse, full)
}

impl Distribution {
    /// `with_reuse` against `full_images` bytes.
    fn of(with_reuse: u64, full_images: u64) -> Distribution {
        Distribution {
            with_reuse,
            full_images,
            ratio: if full_images == 0 {
                0.0
            } else {
                with_reuse as f64 / full_images as f64
            },
        }
    }
}

/// How many of the images have each layer; each image given as its blobs, layers then config
/// (see [`image_blobs`]).
pub fn layer_counts<'b>(
    images: impl IntoIterator<Item = &'b [(String, u64)]>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for blobs in images {
        let layers = &blobs[..blobs.len().saturating_sub(1)];
        let mine: BTreeSet<&String> = layers.iter().map(|(d, _)| d).collect();
        for d in mine {
            *counts.entry(d.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// Of an image's blobs (layers then config), how many layers and how many of them another
/// image of `counts` has too.
fn layers_shared(blobs: &[(String, u64)], counts: &BTreeMap<String, usize>) -> (usize, usize) {
    let layers = &blobs[..blobs.len().saturating_sub(1)];
    let shared = layers
        .iter()
        .filter(|(d, _)| counts.get(d).copied().unwrap_or(0) > 1)
        .count();
    (layers.len(), shared)
}

/// One job's row of the catalog report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobRow {
    /// The job's name (`-N`), or its directory when it could not be parsed.
    pub job: String,
    /// Its script.
    pub script: PathBuf,
    /// The digest-pinned reference (with the registry host once pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The image manifest's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Layers in the image.
    pub layers: usize,
    /// Layers this image shares with another image of the catalog.
    pub layers_shared: usize,
    /// Layers only this image has.
    pub layers_own: usize,
    /// Bytes this job added: uploaded when pushing, else newly built layers.
    pub bytes_new: u64,
    /// Seconds spent on this job.
    pub seconds: f64,
    /// Where its manifest went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_out: Option<PathBuf>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// Its layers' digests and sizes, bottom to top, then its config's: what
    /// [`merge`] recomputes sharing and distribution from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<(String, u64)>,
    /// With `--update`: what changed and what was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<JobUpdate>,
}

/// What `pbsimage catalog` did (its `--json` output).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CatalogReport {
    /// The catalog's revision: sha256 of its jobs' paths (all of them, whatever the shard).
    #[serde(default)]
    pub catalog: String,
    /// `I/N` when one shard was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// One row per job, in catalog order.
    pub jobs: Vec<JobRow>,
    /// Jobs built (and pushed, and their manifests written).
    pub succeeded: usize,
    /// Jobs that failed at some stage.
    pub failed: usize,
    /// The OCI layout of every image.
    pub layout: PathBuf,
    /// Distinct layers over all images.
    pub unique_layers: usize,
    /// Their bytes.
    pub unique_bytes: u64,
    /// Bytes uploaded to the registry.
    pub bytes_pushed: u64,
    /// Whether the images were pushed.
    #[serde(skip)]
    pub pushed: bool,
    /// What nodes pull.
    pub distribution: Distribution,
    /// The whole run.
    pub seconds: f64,
    /// With `--update`: its totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSummary>,
}

/// A whole `pbsimage catalog` run.
pub struct CatalogRun {
    /// How images are built.
    pub build: BuildOptions,
    /// Where they are pushed, if anywhere.
    pub push: Option<PushTarget>,
    /// Kind (unless a job's entry says) and run-as of the manifests.
    pub manifests: ManifestChoice,
    /// Where manifests and SBOMs go: this directory (named after the job), else beside
    /// each script.
    pub manifests_out: Option<PathBuf>,
    /// Write every job's resolution here.
    pub lock_out: Option<PathBuf>,
    /// Write a pre-pull DaemonSet for every image here.
    pub prepull: Option<PathBuf>,
    /// Sign every pushed image with this key (after all the manifests).
    pub sign: Option<crate::sign::PrivateKey>,
    /// The catalog's revision ([`crate::catalog::revision`]) and the shard built, if one.
    pub catalog: (String, Option<String>),
}

/// Builds, pushes and writes the outputs of every job of a catalog; the report has a row per
/// job, failed or not. With an update, only the jobs whose packages changed are built,
/// pushed and given new manifests; the lock is rewritten with every job's entry.
pub fn run(
    ctx: &Context,
    jobs: &[CatalogJob],
    run: &CatalogRun,
) -> Result<CatalogReport, OpsError> {
    let started = Instant::now();
    let plan = run.push.as_ref().map(|target| PushPlan {
        target,
        key: run.sign.as_ref(),
    });
    let CatalogBuild {
        outcomes,
        warnings,
        pushed,
    } = build_all(ctx, jobs, &run.build, plan)?;
    // Every image of the catalog now, built or kept: which layers they share.
    let blob_lists: Vec<Vec<(String, u64)>> = outcomes
        .iter()
        .filter_map(|o| match o {
            JobOutcome::Built(jb) => Some(image_blobs(&jb.built)),
            JobOutcome::Kept { lock, .. } => lock.image.as_ref().map(LockImage::blob_pairs),
            JobOutcome::Failed(_) => None,
        })
        .collect();
    let counts = layer_counts(blob_lists.iter().map(Vec::as_slice));
    let mut rows = Vec::new();
    let mut seen_new = BTreeSet::new();
    let mut references: Vec<(String, String)> = Vec::new();
    let mut locks: Vec<Lock> = Vec::new();
    for (i, (job, o)) in jobs.iter().zip(&outcomes).enumerate() {
        let jb = match o {
            JobOutcome::Failed(f) => {
                rows.push(failed_row(job, f));
                // An update keeps a failing job's entry: its image is still the last built.
                let key = lock_key(&run.build.root, &job.script);
                if let Some(old) = run.build.update.as_ref().and_then(|u| u.lock.job(&key)) {
                    locks.push(old.clone());
                }
                continue;
            }
            JobOutcome::Kept { name, lock, update } => {
                let mut row = kept_row(job, lock, update, &counts);
                row.job = name.to_string();
                if let Some(r) = &row.reference {
                    references.push((name.dns_label(40), r.clone()));
                }
                locks.push((**lock).clone());
                rows.push(row);
                continue;
            }
            JobOutcome::Built(jb) => jb,
        };
        let mut row = built_row(job, jb, &counts, &mut seen_new);
        match pushed.get(&i) {
            Some(Ok(p)) => {
                row.reference = Some(p.reference.clone());
                row.bytes_new = p.report.bytes;
            }
            Some(Err(f)) => {
                row.failure = Some(f.clone());
                rows.push(row);
                continue;
            }
            None => {}
        }
        let reference = row.reference.clone().unwrap_or_default();
        match write_job_outputs(ctx, run, job, jb, &reference) {
            Ok(p) => {
                row.manifest_out = Some(p);
                references.push((jb.spec.name.dns_label(40), reference.clone()));
                let mut lock = jb.lock.clone();
                lock.image = Some(LockImage {
                    reference,
                    manifest_digest: jb.built.image.manifest_digest.clone(),
                    blobs: row
                        .blobs
                        .iter()
                        .map(|(digest, size)| LockBlob {
                            digest: digest.clone(),
                            size: *size,
                        })
                        .collect(),
                });
                locks.push(lock);
            }
            Err(f) => row.failure = Some(f),
        }
        rows.push(row);
    }
    if let Some(path) = &run.lock_out {
        locks.sort_by(|a, b| a.job.cmp(&b.job));
        let lock = CatalogLock {
            version: 1,
            jobs: locks,
        };
        super::outputs::write_catalog_lock(path, &lock)?;
    }
    if let Some(path) = &run.prepull {
        let s = &ctx.config.settings;
        let yaml = crate::kube::prepull_daemonset(
            "pbsimage-prepull",
            s.kube.namespace.as_deref(),
            &references,
            run.manifests.run_as,
        )?;
        super::outputs::write_file(path, yaml.as_bytes())?;
    }
    let ok = |r: &&JobRow| r.failure.is_none();
    let distribution = distribution_of(rows.iter().filter(ok).map(|r| r.blobs.as_slice()));
    let update = run
        .build
        .update
        .as_ref()
        .map(|u| update_summary(u, &rows, warnings));
    let failed = rows.iter().filter(|r| r.failure.is_some()).count();
    Ok(CatalogReport {
        catalog: run.catalog.0.clone(),
        shard: run.catalog.1.clone(),
        succeeded: rows.len() - failed,
        failed,
        layout: run.build.layout.clone(),
        unique_layers: counts.len(),
        unique_bytes: distribution.with_reuse,
        bytes_pushed: pushed
            .values()
            .filter_map(|r| r.as_ref().ok())
            .map(|p| p.report.bytes)
            .sum(),
        pushed: run.push.is_some(),
        distribution,
        seconds: started.elapsed().as_secs_f64(),
        update,
        jobs: rows,
    })
}

/// The update's totals: jobs by status, the advisories, and what a node that holds every
/// image of the lock pulls to hold every image now.
fn update_summary(u: &UpdateRequest, rows: &[JobRow], warnings: Vec<String>) -> UpdateSummary {
    let held: BTreeSet<&str> = u
        .lock
        .jobs
        .iter()
        .filter_map(|l| l.image.as_ref())
        .flat_map(|i| i.blobs.iter().map(|b| b.digest.as_str()))
        .collect();
    let mut pulled = BTreeSet::new();
    let mut s = UpdateSummary {
        security_only: u.security_only,
        warnings,
        ..UpdateSummary::default()
    };
    for r in rows {
        if r.failure.is_none() {
            for (d, size) in &r.blobs {
                if !held.contains(d.as_str()) && pulled.insert(d.as_str()) {
                    s.node_pull_bytes += size;
                }
            }
        }
        let Some(up) = &r.update else { continue };
        match up.status {
            UpdateStatus::Unchanged => s.unchanged += 1,
            UpdateStatus::Held => s.held += 1,
            UpdateStatus::New if r.failure.is_none() => s.new += 1,
            UpdateStatus::Rebuilt if r.failure.is_none() => s.rebuilt += 1,
            _ => {}
        }
        s.advisories
            .extend(up.changes.iter().flat_map(|c| c.advisories.iter().cloned()));
    }
    s.advisories.sort();
    s.advisories.dedup();
    s
}

/// Why shard reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A report cannot be read.
    #[error("cannot read the shard report {}: {why}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Reports of different catalog revisions.
    #[error("{} is a report of another catalog revision ({theirs}, not {ours} as {})", path.display(), first.display())]
    Revision {
        /// The odd report.
        path: PathBuf,
        /// The first report.
        first: PathBuf,
        /// Their revision.
        theirs: String,
        /// The first's.
        ours: String,
    },
    /// A job in two reports.
    #[error("job {} is in two shard reports ({})", script.display(), path.display())]
    Twice {
        /// The job's script.
        script: PathBuf,
        /// The second report naming it.
        path: PathBuf,
    },
}

impl Hint for MergeError {
    fn hint(&self) -> Option<String> {
        match self {
            MergeError::Revision { .. } => Some(
                "merge the reports of one run: every shard built from the same catalog (its \
                 jobs' paths)"
                    .into(),
            ),
            MergeError::Twice { .. } => {
                Some("give each shard's report once; shards I/N of one N never overlap".into())
            }
            MergeError::Read { .. } => {
                Some("give the files `pbsimage catalog --shard I/N --json` printed".into())
            }
        }
    }
}

/// Merges the reports of a catalog's shards into the report one process would have given:
/// the jobs in catalog order, layer sharing, distinct layers and the distribution computed
/// over all of them (`seconds` is the slowest shard's). The reports must be of the same
/// catalog revision, and no job may be in two.
pub fn merge(reports: Vec<(PathBuf, CatalogReport)>) -> Result<CatalogReport, MergeError> {
    let Some((first_path, first)) = reports.first().cloned() else {
        return Err(MergeError::Read {
            path: PathBuf::from("-"),
            why: "no reports given".into(),
        });
    };
    let mut jobs: Vec<JobRow> = Vec::new();
    let mut seen = BTreeSet::new();
    let (mut bytes_pushed, mut seconds, mut pushed) = (0, 0.0f64, false);
    for (path, r) in &reports {
        if r.catalog != first.catalog {
            return Err(MergeError::Revision {
                path: path.clone(),
                first: first_path.clone(),
                theirs: r.catalog.clone(),
                ours: first.catalog.clone(),
            });
        }
        for j in &r.jobs {
            if !seen.insert(j.script.clone()) {
                return Err(MergeError::Twice {
                    script: j.script.clone(),
                    path: path.clone(),
                });
            }
            jobs.push(j.clone());
        }
        bytes_pushed += r.bytes_pushed;
        seconds = seconds.max(r.seconds);
        pushed |= r.pushed;
    }
    jobs.sort_by(|a, b| a.script.cmp(&b.script));
    // Layers (not configs) shared between images, over every shard.
    let counts = layer_counts(jobs.iter().map(|j| j.blobs.as_slice()));
    for j in jobs.iter_mut() {
        if j.failure.is_none() {
            let (layers, shared) = layers_shared(&j.blobs, &counts);
            j.layers_shared = shared;
            j.layers_own = layers - shared;
        }
    }
    let distribution = distribution_of(
        jobs.iter()
            .filter(|j| j.failure.is_none())
            .map(|j| j.blobs.as_slice()),
    );
    let failed = jobs.iter().filter(|j| j.failure.is_some()).count();
    Ok(CatalogReport {
        update: None,
        catalog: first.catalog.clone(),
        shard: None,
        succeeded: jobs.len() - failed,
        failed,
        layout: first.layout.clone(),
        unique_layers: counts.len(),
        unique_bytes: distribution.with_reuse,
        bytes_pushed,
        pushed,
        distribution,
        seconds,
        jobs,
    })
}

/// One push plan for every image built, then (with a key) one for their signatures; results
/// by the job's index. An image whose signature could not be pushed fails at stage `sign`
/// (the image itself is in the registry).
fn push_built(
    ctx: &Context,
    results: &[JobOutcome],
    target: Option<&PushTarget>,
    key: Option<&crate::sign::PrivateKey>,
) -> Result<BTreeMap<usize, Result<Pushed, JobFailure>>, OpsError> {
    let Some(target) = target else {
        return Ok(BTreeMap::new());
    };
    let (built_at, images): (Vec<usize>, Vec<&Built>) = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.built().map(|j| (i, &j.built)))
        .unzip();
    let out = super::push::push(ctx, &images, target)?;
    let mut pushed: BTreeMap<usize, Result<Pushed, JobFailure>> = built_at
        .iter()
        .copied()
        .zip(out)
        .map(|(i, r)| (i, r.map_err(|e| JobFailure::new("push", &e))))
        .collect();
    let Some(key) = key else {
        return Ok(pushed);
    };
    let to_sign: Vec<(usize, super::sign::ToSign)> = built_at
        .iter()
        .zip(&images)
        .filter(|(i, _)| pushed.get(i).is_some_and(Result::is_ok))
        .map(|(&i, b)| {
            (
                i,
                super::sign::ToSign {
                    repository: b.name.repository.clone(),
                    digest: b.image.manifest_digest.clone(),
                },
            )
        })
        .collect();
    let list: Vec<super::sign::ToSign> = to_sign.iter().map(|(_, t)| t.clone()).collect();
    let signed = super::sign::sign(ctx, key, target, &list)?;
    for ((i, _), r) in to_sign.iter().zip(signed) {
        if let Err(e) = r {
            pushed.insert(*i, Err(JobFailure::new("sign", &e)));
            continue;
        }
        // The SBOM and provenance, attached and signed like the image.
        let (Some(Ok(p)), Some(jb)) = (pushed.get(i), results[*i].built()) else {
            continue;
        };
        let repos = super::sign::repo_refs_of_lock(ctx, &jb.lock);
        // The job's build began its `seconds` ago.
        let started = super::sign::unix_now().saturating_sub(jb.seconds as u64);
        let reference = p.reference.clone();
        let b = super::sign::PushedBuild {
            job: &jb.spec,
            built: &jb.built,
            reference: &reference,
            repos: &repos,
            started,
        };
        if let Err(e) = super::sign::attach_build(ctx, key, target, &b) {
            pushed.insert(*i, Err(JobFailure::new("attach", &e)));
        }
    }
    Ok(pushed)
}

/// The name of a job that could not be parsed: its directory, else its script.
fn name_of_unparsed(job: &CatalogJob) -> String {
    job.script
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| job.script.display().to_string())
}

fn failed_row(job: &CatalogJob, f: &JobFailure) -> JobRow {
    JobRow {
        job: name_of_unparsed(job),
        script: job.script.clone(),
        reference: None,
        manifest_digest: None,
        layers: 0,
        layers_shared: 0,
        layers_own: 0,
        bytes_new: 0,
        seconds: 0.0,
        manifest_out: None,
        failure: Some(f.clone()),
        blobs: Vec::new(),
        update: None,
    }
}

/// The row of a job an update kept: its image as the lock records it.
fn kept_row(
    job: &CatalogJob,
    lock: &Lock,
    update: &JobUpdate,
    counts: &BTreeMap<String, usize>,
) -> JobRow {
    let image = lock.image.as_ref();
    let blobs = image.map(LockImage::blob_pairs).unwrap_or_default();
    let (layers, shared) = layers_shared(&blobs, counts);
    JobRow {
        job: name_of_unparsed(job),
        script: job.script.clone(),
        reference: image.map(|i| i.reference.clone()),
        manifest_digest: image.map(|i| i.manifest_digest.clone()),
        layers,
        layers_shared: shared,
        layers_own: layers - shared,
        bytes_new: 0,
        seconds: 0.0,
        manifest_out: None,
        failure: None,
        blobs,
        update: Some(update.clone()),
    }
}

fn built_row(
    job: &CatalogJob,
    jb: &JobBuild,
    counts: &BTreeMap<String, usize>,
    seen_new: &mut BTreeSet<String>,
) -> JobRow {
    let b = &jb.built;
    let blobs = image_blobs(b);
    let (layers, shared) = layers_shared(&blobs, counts);
    JobRow {
        job: jb.spec.name.to_string(),
        script: job.script.clone(),
        reference: Some(b.reference.clone()),
        manifest_digest: Some(b.image.manifest_digest.clone()),
        layers,
        layers_shared: shared,
        layers_own: layers - shared,
        bytes_new: b
            .layers
            .stack
            .iter()
            .filter(|l| !l.cached && seen_new.insert(l.layer.digest.to_string()))
            .map(|l| l.layer.size)
            .sum(),
        seconds: jb.seconds,
        manifest_out: None,
        failure: None,
        blobs,
        update: jb.update.clone(),
    }
}

/// The manifest and SBOM of one job, beside its script or in `manifests_out`.
fn write_job_outputs(
    ctx: &Context,
    run: &CatalogRun,
    job: &CatalogJob,
    jb: &JobBuild,
    reference: &str,
) -> Result<PathBuf, JobFailure> {
    let paths = match &run.manifests_out {
        Some(d) => OutputPaths::in_dir(d, &jb.spec.name.dns_label(63)),
        None => OutputPaths::beside(&job.script),
    };
    let choice = ManifestChoice {
        kind: job.kind.unwrap_or(run.manifests.kind),
        ..run.manifests.clone()
    };
    super::outputs::write(
        &ctx.config.settings,
        &jb.spec,
        &jb.built,
        reference,
        &choice,
        &paths,
    )
    .map_err(|e| JobFailure::new("manifest", &e))?;
    Ok(paths.manifest)
}
