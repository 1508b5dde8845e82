//! Catalogs: many jobs built at once, sharing one repository index, one cache and one push.
//!
//! A catalog is a directory (each job a subdirectory with its script, or a script file with
//! `#PBS` lines directly in it) or a `catalog.toml`:
//!
//! ```toml
//! [[job]]
//! script = "solvers/fib/job.sh"   # relative to catalog.toml
//! image = "solvers-fib"           # replaces {name} in [image] repository and tag
//! packages = ["fx-data"]          # needed besides what analysis finds
//! kind = "pod"                    # the Kubernetes object (default: [kube] kind)
//! ```
//!
//! [`build`] parses and analyses every job, loads the repositories once (file lists when any
//! job needs them), resolves each job, then builds them `jobs` at a time. Packages are
//! fetched once and each layer is built once whatever the number of jobs that share it (the
//! cache locks per package and per layer). Layers are the same a job gets from `pbsimage
//! build` — the base, then one layer per package in name order — so a catalog image has the
//! digest of the job built alone, and adding a job to a catalog changes no other image; what
//! jobs share (the base, `libstdc++`, …) is one blob in every image. Only a job with more
//! packages than its layer budget is laid out knowing the catalog: the packages most of its
//! jobs need keep their own layers and the rarest are merged. A failing job is reported with
//! its stage and error; the others go on.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::KubeKind;
use crate::job::JobSpec;
use crate::needs::Needs;
use crate::pipeline::{Built, Context, PipelineError};

/// One job of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogJob {
    pub script: PathBuf,
    /// Replaces `{name}` in the image templates.
    pub image: Option<String>,
    /// Package names or capabilities needed besides what analysis finds.
    pub packages: Vec<String>,
    pub kind: Option<KubeKind>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog `{}`: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("catalog `{}` has no jobs", path.display())]
    Empty { path: PathBuf },
}

impl CatalogError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CatalogError::Empty { .. } => Some(
                "a catalog directory holds one directory per job (with job.sh, or a .pbs or .sh \
                 script with #PBS lines), or use a catalog.toml with [[job]] script = \"...\""
                    .into(),
            ),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default, rename = "job")]
    jobs: Vec<JobEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct JobEntry {
    script: PathBuf,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    kind: Option<KubeKind>,
}

/// Whether a file looks like a job script: `.sh` or `.pbs` with a `#PBS` line.
fn is_script(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !matches!(ext, "sh" | "pbs") || !path.is_file() {
        return false;
    }
    std::fs::read(path)
        .map(|b| b.windows(4).any(|w| w == b"#PBS"))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CatalogError::Read {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// The jobs of a catalog directory or `catalog.toml`, in a stable order.
pub fn discover(path: &Path) -> Result<Vec<CatalogJob>, CatalogError> {
    let job = |script: PathBuf| CatalogJob {
        script,
        image: None,
        packages: Vec::new(),
        kind: None,
    };
    let jobs = if path.is_dir() {
        let mut jobs = Vec::new();
        for entry in sorted_entries(path)? {
            if entry.is_dir() {
                let named = entry.join("job.sh");
                if named.is_file() {
                    jobs.push(job(named));
                    continue;
                }
                let scripts: Vec<PathBuf> = sorted_entries(&entry)?
                    .into_iter()
                    .filter(|p| is_script(p))
                    .collect();
                jobs.extend(scripts.into_iter().map(job));
            } else if is_script(&entry) {
                jobs.push(job(entry));
            }
        }
        jobs
    } else {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: CatalogFile = toml::from_str(&text).map_err(|e| CatalogError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.jobs
            .into_iter()
            .map(|e| CatalogJob {
                script: base.join(e.script),
                image: e.image,
                packages: e.packages,
                kind: e.kind,
            })
            .collect()
    };
    if jobs.is_empty() {
        return Err(CatalogError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(jobs)
}

/// A job's key in a catalog lock: its script relative to the catalog's directory.
pub fn lock_key(root: &Path, script: &Path) -> String {
    script
        .strip_prefix(root)
        .unwrap_or(script)
        .to_string_lossy()
        .into_owned()
}

/// Why a job failed: the stage, the error with its causes, and a hint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub stage: &'static str,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

impl Failure {
    fn pipeline(stage: &'static str, e: &PipelineError) -> Failure {
        Failure {
            stage,
            error: chain(e),
            hint: e.hint(),
        }
    }
}

/// A job built.
pub struct JobBuild {
    pub spec: JobSpec,
    pub needs: Needs,
    pub built: Built,
    /// The job's resolution, as a catalog lock records it.
    pub lock: crate::resolve::lock::Lock,
    /// Parse, analysis, resolution and build of this job.
    pub seconds: f64,
}

/// A job parsed and analysed, or why not.
type Prepared = Result<(JobSpec, Needs), Failure>;

/// How a catalog is built.
pub struct Options {
    /// Jobs built at once.
    pub jobs: usize,
    /// The OCI layout every image goes into.
    pub layout: PathBuf,
    /// Lock entries are keyed by the script's path relative to this directory.
    pub root: PathBuf,
    /// With a lock, a job whose resolution differs from its entry fails (stage `lock`).
    pub locked: Option<crate::resolve::lock::CatalogLock>,
}

/// Builds every job of the catalog into `opts.layout`. Errors that stop every job (no
/// repository can be loaded) are the outer error; each job's own failure is its result.
pub fn build(
    ctx: &Context,
    jobs: &[CatalogJob],
    opts: &Options,
) -> Result<Vec<Result<JobBuild, Failure>>, PipelineError> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("pbsimage-job-{i}"))
        .build()
        .map_err(|e| PipelineError::Runtime(std::io::Error::other(e)))?;
    let env = crate::job::ProcessEnv;
    // Parse and analyse, each job on its own.
    let prepared: Vec<(Prepared, f64)> = pool.install(|| {
        jobs.par_iter()
            .map(|j| {
                let t = std::time::Instant::now();
                let r = (|| {
                    let spec = crate::job::ScriptParser::new(&env)
                        .parse(&j.script)
                        .map_err(|e| Failure {
                            stage: "parse",
                            error: chain(&e),
                            hint: e.hint(),
                        })?;
                    let mut needs = ctx
                        .needs(&spec)
                        .map_err(|e| Failure::pipeline("needs", &e))?;
                    needs
                        .add_extra(&j.packages, "catalog packages")
                        .map_err(|e| Failure {
                            stage: "needs",
                            error: chain(&e),
                            hint: e.hint(),
                        })?;
                    Ok((spec, needs))
                })();
                (r, t.elapsed().as_secs_f64())
            })
            .collect()
    });
    // One load of the repositories for all of them.
    let all_needs: Vec<&Needs> = prepared
        .iter()
        .filter_map(|(r, _)| r.as_ref().ok().map(|(_, n)| n))
        .collect();
    let mut repos = if all_needs.is_empty() {
        Vec::new()
    } else {
        ctx.load_repos_for_all(&all_needs)?
    };
    // Resolution is quick (an in-memory index): one job after another.
    let mut resolved = Vec::with_capacity(jobs.len());
    for ((r, secs), j) in prepared.into_iter().zip(jobs) {
        let t = std::time::Instant::now();
        let r = r.and_then(|(spec, needs)| {
            let res = ctx
                .resolve(&mut repos, &needs)
                .map_err(|e| Failure::pipeline("resolve", &e))?;
            let key = lock_key(&opts.root, &j.script);
            let lock = crate::resolve::lock::Lock::new(&key, &repos, &res);
            if let Some(locked) = &opts.locked {
                let drift = match locked.job(&key) {
                    None => vec![format!("`{key}` is not in the lock")],
                    Some(l) => l.drift(&lock),
                };
                if !drift.is_empty() {
                    return Err(Failure {
                        stage: "lock",
                        error: format!(
                            "--locked: the resolution differs from the lock: {}",
                            drift.join("; ")
                        ),
                        hint: Some(
                            "if the change is wanted, rewrite the lock with `pbsimage catalog --lock`"
                                .into(),
                        ),
                    });
                }
            }
            Ok((spec, needs, res, lock))
        });
        resolved.push((r, secs + t.elapsed().as_secs_f64()));
    }
    // How many jobs need each package: past a job's layer budget, the widely shared keep
    // their own layers.
    let mut popularity = crate::pipeline::Popularity::new();
    for (r, _) in &resolved {
        if let Ok((_, _, res, _)) = r {
            for p in &res.packages {
                *popularity.entry(p.nevra.clone()).or_insert(0) += 1;
            }
        }
    }
    let (repos, popularity) = (&repos, &popularity);
    Ok(pool.install(|| {
        resolved
            .into_par_iter()
            .zip(jobs.par_iter())
            .map(|((r, secs), j)| {
                let (spec, needs, res, lock) = r?;
                let t = std::time::Instant::now();
                let built = ctx
                    .build_resolved(
                        &spec,
                        &needs,
                        repos,
                        &res,
                        &opts.layout,
                        &crate::pipeline::JobOptions {
                            name: j.image.as_deref(),
                            popularity: Some(popularity),
                        },
                    )
                    .map_err(|e| Failure::pipeline("build", &e))?;
                Ok(JobBuild {
                    spec,
                    needs,
                    built,
                    lock,
                    seconds: secs + t.elapsed().as_secs_f64(),
                })
            })
            .collect()
    }))
}

/// What nodes pull: with layer reuse (each distinct blob once) against the paper's method
/// (every job's whole image to every node).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Distribution {
    /// Bytes a node pulls to run every job once, reusing layers.
    pub with_reuse: u64,
    /// Bytes a node receives with a full image per job.
    pub full_images: u64,
    /// `with_reuse / full_images`.
    pub ratio: f64,
}

/// Distribution cost of the given images (layers and configs, compressed sizes).
pub fn distribution(images: &[&Built]) -> Distribution {
    let mut seen = std::collections::BTreeSet::new();
    let (mut with_reuse, mut full) = (0u64, 0u64);
    for b in images {
        let blobs = b
            .layers
            .layers
            .iter()
            .map(|l| (l.layer.digest.as_str(), l.layer.size))
            .chain(std::iter::once((
                b.image.config_digest.as_str(),
                b.image.config.len() as u64,
            )));
        for (d, size) in blobs {
            full += size;
            if seen.insert(d.to_owned()) {
                with_reuse += size;
            }
        }
    }
    Distribution {
        with_reuse,
        full_images: full,
        ratio: if full == 0 {
            0.0
        } else {
            with_reuse as f64 / full as f64
        },
    }
}

/// How many of the images have each layer.
pub fn layer_counts(images: &[&Built]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for b in images {
        let mut mine: Vec<&str> = b
            .layers
            .layers
            .iter()
            .map(|l| l.layer.digest.as_str())
            .collect();
        mine.sort();
        mine.dedup();
        for d in mine {
            *counts.entry(d.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_catalog_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("b-job")).unwrap();
        std::fs::write(p.join("b-job/job.sh"), "#!/bin/sh\n#PBS -N b\n").unwrap();
        std::fs::create_dir_all(p.join("a-job")).unwrap();
        std::fs::write(p.join("a-job/run.pbs"), "#PBS -N a\n").unwrap();
        std::fs::write(p.join("a-job/notes.sh"), "echo no directives\n").unwrap();
        std::fs::write(p.join("top.sh"), "#!/bin/sh\n#PBS -N top\n").unwrap();
        std::fs::write(p.join("README"), "#PBS in prose\n").unwrap();
        let jobs = discover(p).unwrap();
        let names: Vec<String> = jobs
            .iter()
            .map(|j| j.script.strip_prefix(p).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a-job/run.pbs", "b-job/job.sh", "top.sh"]);

        let toml = p.join("catalog.toml");
        std::fs::write(
            &toml,
            "[[job]]\nscript = \"b-job/job.sh\"\nimage = \"bee\"\npackages = [\"fx-data\"]\nkind = \"pod\"\n",
        )
        .unwrap();
        let jobs = discover(&toml).unwrap();
        assert_eq!(jobs[0].script, p.join("b-job/job.sh"));
        assert_eq!(jobs[0].image.as_deref(), Some("bee"));
        assert_eq!(jobs[0].kind, Some(KubeKind::Pod));
        std::fs::write(&toml, "[[job]]\nscrpt = \"x\"\n").unwrap();
        let e = discover(&toml).unwrap_err().to_string();
        assert!(e.contains("catalog.toml") && e.contains("scrpt"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            discover(empty.path()),
            Err(CatalogError::Empty { .. })
        ));
    }
}
