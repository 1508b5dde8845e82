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
//! [`discover`] finds the jobs; the `ops::catalog` stage builds them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::KubeKind;

/// One job of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogJob {
    /// The job script.
    pub script: PathBuf,
    /// Replaces `{name}` in the image templates.
    pub image: Option<String>,
    /// Package names or capabilities needed besides what analysis finds.
    pub packages: Vec<String>,
    /// The Kubernetes object for this job (default: `[kube] kind`).
    pub kind: Option<KubeKind>,
}

/// Why a catalog cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog directory or file cannot be read.
    #[error("cannot read catalog `{}`", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `catalog.toml` is not valid.
    #[error("catalog `{}`: {message}", path.display())]
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The catalog has no job.
    #[error("catalog `{}` has no jobs", path.display())]
    Empty {
        /// The file concerned.
        path: PathBuf,
    },
    /// `--shard` is not `I/N` with 1 ≤ I ≤ N.
    #[error("--shard `{0}` is not I/N with 1 <= I <= N")]
    Shard(String),
    /// `--shard auto/N` without a usable `JOB_COMPLETION_INDEX`.
    #[error("--shard auto/N takes the shard from JOB_COMPLETION_INDEX, which is {}", match value { Some(v) => format!("`{v}`, not a number"), None => "not set".to_owned() })]
    AutoShard {
        /// Its value, if set.
        value: Option<String>,
    },
}

/// The revision of a catalog: sha256 of its jobs' script paths relative to `root`, sorted
/// (shard reports of the same revision can be merged).
pub fn revision(jobs: &[CatalogJob], root: &Path) -> String {
    let mut keys: Vec<String> = jobs.iter().map(|j| job_key(&j.script, root)).collect();
    keys.sort();
    crate::digest::sha256_hex_of(keys.join("\n").as_bytes())
}

/// A job's script path relative to the catalog, `/`-separated.
fn job_key(script: &Path, root: &Path) -> String {
    let rel = script.strip_prefix(root).unwrap_or(script);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// One shard of a catalog (`--shard I/N`): the jobs whose script path, relative to the
/// catalog, hashes to `I - 1` modulo `N`. The assignment depends on the path alone, so N
/// builders given 1/N … N/N build every job exactly once, whatever machine they run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N`, or `auto/N`: shard `JOB_COMPLETION_INDEX + 1` of N (an Indexed Job's
    /// pod k builds shard k+1), the variable read through `env`.
    pub fn parse_with(
        s: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard, CatalogError> {
        let bad = || CatalogError::Shard(s.to_owned());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = if i.trim() == "auto" {
            let v = env("JOB_COMPLETION_INDEX").ok_or(CatalogError::AutoShard { value: None })?;
            v.trim()
                .parse::<u32>()
                .ok()
                .and_then(|k| k.checked_add(1))
                .ok_or(CatalogError::AutoShard { value: Some(v) })?
        } else {
            i.trim().parse().map_err(|_| bad())?
        };
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Parses `I/N` (`auto/N` reads the process environment).
    pub fn parse(s: &str) -> Result<Shard, CatalogError> {
        Shard::parse_with(s, |k| std::env::var(k).ok())
    }

    /// `I/N`.
    pub fn spec(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// Whether the job at `key` (its script's path relative to the catalog, `/`-separated)
    /// is in this shard.
    pub fn contains(&self, key: &str) -> bool {
        let h = crate::digest::sha256_hex_of(key.as_bytes());
        let n = u64::from_str_radix(&h[..16], 16).expect("hex digits");
        n % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// The jobs of `jobs` in this shard, keyed by their path below `root`.
    pub fn select(&self, jobs: Vec<CatalogJob>, root: &Path) -> Vec<CatalogJob> {
        jobs.into_iter()
            .filter(|j| self.contains(&job_key(&j.script, root)))
            .collect()
    }
}

impl crate::hint::Hint for CatalogError {
    fn hint(&self) -> Option<String> {
        match self {
            CatalogError::Shard(_) => Some(
                "shards are numbered from 1: --shard 1/3, --shard 2/3 and --shard 3/3 build a \
                 catalog on three machines"
                    .into(),
            ),
            CatalogError::AutoShard { .. } => Some(
                "auto/N is for the pods of an Indexed Job (`catalog --emit-build-job`), where \
                 Kubernetes sets JOB_COMPLETION_INDEX; elsewhere give --shard I/N"
                    .into(),
            ),
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
