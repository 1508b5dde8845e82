//! `pbsimage.lock`: the repository revisions and the chosen packages, with reasons, so a
//! later `build --locked` can refuse to drift.

use serde::{Deserialize, Serialize};

use super::Resolution;
use crate::repo::Repo;

/// The lock file's default name, beside the job script.
pub const LOCK_FILE: &str = "pbsimage.lock";

/// A repository as a lock records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LockRepo {
    /// Repository id.
    pub id: String,
    /// repomd.xml's `<revision>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// sha256 of repomd.xml.
    pub repomd_sha256: String,
}

/// A package as a lock records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LockPackage {
    /// `name-evr.arch`.
    pub nevra: String,
    /// Repository id.
    pub repo: String,
    /// The package file's checksum (`sha256:<hex>`).
    pub checksum: String,
    /// Part of the base layer.
    pub base: bool,
    /// Why it is in the image.
    pub why: String,
}

/// A job's resolution, as `pbsimage.lock` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Lock {
    /// Format version (1).
    pub version: u32,
    /// The job (its script, or its key in a catalog).
    pub job: String,
    /// The repositories, with their revisions.
    #[serde(rename = "repo")]
    pub repos: Vec<LockRepo>,
    /// The packages.
    #[serde(rename = "package")]
    pub packages: Vec<LockPackage>,
    /// The image built from them (a catalog's lock records it): what `catalog --update`
    /// keeps while the packages stay the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<LockImage>,
}

/// An image as a catalog lock records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockImage {
    /// The digest-pinned reference (with the registry host once pushed).
    pub reference: String,
    /// The image manifest's digest.
    pub manifest_digest: String,
    /// Its layers' and config's digests and sizes, bottom to top: what a node already
    /// holds when it holds this image.
    #[serde(default, rename = "blob")]
    pub blobs: Vec<LockBlob>,
}

impl LockImage {
    /// The blobs as (digest, size) pairs.
    pub fn blob_pairs(&self) -> Vec<(String, u64)> {
        self.blobs
            .iter()
            .map(|b| (b.digest.clone(), b.size))
            .collect()
    }
}

/// A blob of a locked image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockBlob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Lock {
    /// The lock of a resolution.
    pub fn new(job: &str, repos: &[Repo], res: &Resolution) -> Lock {
        Lock {
            version: 1,
            job: job.to_owned(),
            repos: repos
                .iter()
                .map(|r| LockRepo {
                    id: r.source.id.clone(),
                    revision: r.index.revision.clone(),
                    repomd_sha256: r.index.repomd_sha256.clone(),
                })
                .collect(),
            packages: res
                .packages
                .iter()
                .map(|p| LockPackage {
                    nevra: p.nevra.clone(),
                    repo: p.repo.clone(),
                    checksum: p.checksum.to_string(),
                    base: p.base,
                    why: p.why.clone(),
                })
                .collect(),
            image: None,
        }
    }

    /// The lock as TOML.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!("# pbsimage.lock: written by `pbsimage resolve --lock`; do not edit.\n{body}")
    }

    /// What differs between a lock and a fresh resolution (empty: no drift).
    pub fn drift(&self, other: &Lock) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.repos {
            match other.repos.iter().find(|o| o.id == r.id) {
                Some(o) if o.repomd_sha256 != r.repomd_sha256 => out.push(format!(
                    "repo `{}` changed: locked repomd {} is now {}",
                    r.id,
                    &r.repomd_sha256[..12.min(r.repomd_sha256.len())],
                    &o.repomd_sha256[..12.min(o.repomd_sha256.len())]
                )),
                None => out.push(format!("repo `{}` is no longer configured", r.id)),
                _ => {}
            }
        }
        let names = |l: &Lock| {
            l.packages
                .iter()
                .map(|p| (p.nevra.clone(), p.checksum.clone()))
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (a, b) = (names(self), names(other));
        for (n, _) in a.difference(&b) {
            out.push(format!("locked package {n} is no longer chosen"));
        }
        for (n, _) in b.difference(&a) {
            out.push(format!("package {n} would now be chosen"));
        }
        out
    }
}

/// A catalog's lock: one [`Lock`] per job, keyed by the script's path relative to the
/// catalog. Written by `pbsimage catalog --lock`, enforced by `--locked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CatalogLock {
    /// Format version (1).
    pub version: u32,
    /// Every job's lock.
    #[serde(rename = "job", default)]
    pub jobs: Vec<Lock>,
}

impl CatalogLock {
    /// The catalog lock as TOML.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!("# catalog lock: written by `pbsimage catalog --lock`; do not edit.\n{body}")
    }

    /// The lock of the job with `key`.
    pub fn job(&self, key: &str) -> Option<&Lock> {
        self.jobs.iter().find(|l| l.job == key)
    }

    /// The shards' locks as one, jobs in key order. A job in two locks is an error: its key.
    pub fn merge(locks: Vec<CatalogLock>) -> Result<CatalogLock, String> {
        let mut jobs: Vec<Lock> = locks.into_iter().flat_map(|l| l.jobs).collect();
        jobs.sort_by(|a, b| a.job.cmp(&b.job));
        if let Some(w) = jobs.windows(2).find(|w| w[0].job == w[1].job) {
            return Err(w[0].job.clone());
        }
        Ok(CatalogLock { version: 1, jobs })
    }
}
