//! Update: a catalog resolved again against today's repositories and compared, job by job,
//! with its lock — packages added, removed, upgraded, each with the advisories
//! (`updateinfo.xml`) that explain it — deciding which images are rebuilt.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Context;
use crate::repo::evr::Evr;
use crate::repo::updateinfo::{Advisory, AdvisoryKind};
use crate::repo::{Advisories, Repo};
use crate::resolve::lock::Lock;

/// What `--update` was asked to do.
pub struct UpdateRequest {
    /// The lock the catalog was built with (each job's packages and image).
    pub lock: crate::resolve::lock::CatalogLock,
    /// Rebuild only the jobs whose change includes a security advisory.
    pub security_only: bool,
}

/// An advisory as a report names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AdvisoryRef {
    /// Its id.
    pub id: String,
    /// `security`, `bugfix`, `enhancement`, `newpackage` or the repository's own word.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its severity, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The CVEs it references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
}

impl AdvisoryRef {
    fn of(a: &Advisory) -> AdvisoryRef {
        AdvisoryRef {
            id: a.id.clone(),
            kind: a.kind.as_str().to_owned(),
            severity: a.severity.clone(),
            cves: a.cves.clone(),
        }
    }

    /// A security advisory.
    pub fn is_security(&self) -> bool {
        self.kind == AdvisoryKind::Security.as_str()
    }
}

/// One package's change in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// The version in the lock (`[epoch:]version-release`); none for an added package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The version now chosen; none for a removed package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The advisories that ship this change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisories: Vec<AdvisoryRef>,
}

impl PackageChange {
    /// `openssl-libs 3.0.7-24.el9 → 3.0.7-27.el9`, `+ name 1.0-1`, `- name 1.0-1`.
    pub fn describe(&self) -> String {
        match (&self.from, &self.to) {
            (Some(f), Some(t)) if f == t => format!("{} {f} (rebuilt)", self.name),
            (Some(f), Some(t)) => format!("{} {f} → {t}", self.name),
            (None, Some(t)) => format!("+ {} {t}", self.name),
            (Some(f), None) => format!("- {} {f}", self.name),
            (None, None) => self.name.clone(),
        }
    }
}

/// What an update did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateStatus {
    /// Same packages: the image, its digest and its manifest are kept.
    Unchanged,
    /// Its packages changed: rebuilt.
    Rebuilt,
    /// Not in the lock (or no image recorded there): built.
    New,
    /// Changed, but no security advisory is part of the change (`--security-only`): kept.
    Held,
}

/// A job's update.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobUpdate {
    /// What was done.
    pub status: UpdateStatus,
    /// Its packages' changes against the lock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PackageChange>,
}

impl JobUpdate {
    /// Whether a security advisory is part of the change.
    pub fn has_security(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.advisories.iter().any(AdvisoryRef::is_security))
    }
}

/// The update over the whole catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateSummary {
    /// Jobs rebuilt because their packages changed.
    pub rebuilt: usize,
    /// Jobs built because the lock did not have them.
    pub new: usize,
    /// Jobs whose images were kept.
    pub unchanged: usize,
    /// Jobs changed but kept by `--security-only`.
    pub held: usize,
    /// Every advisory part of some job's change.
    pub advisories: Vec<AdvisoryRef>,
    /// Bytes a node that holds every image of the lock pulls to hold every image now
    /// (the blobs no image of the lock had).
    pub node_pull_bytes: u64,
    /// Only jobs with a security advisory were rebuilt.
    pub security_only: bool,
    /// What was odd in the repositories' advisories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The advisories of every repository; a repository whose advisories cannot be read gives
/// a warning and none (the update goes on: the package changes are still known). The
/// warnings go into the update's report (its table and `--json`).
pub fn advisories(ctx: &Context, repos: &[Repo]) -> (Vec<Advisories>, Vec<String>) {
    let loader = ctx.loader();
    let read = ctx.block_on(futures_util::future::join_all(
        repos.iter().map(|r| loader.updateinfo(r)),
    ));
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    for (repo, r) in repos.iter().zip(read) {
        match r {
            Ok(Some(a)) => {
                warnings.extend(a.warnings.iter().cloned());
                out.push(a);
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "the advisories of repo `{}` could not be read, so no change names one: {}",
                repo.source.id,
                crate::hint::chain(&e)
            )),
        }
    }
    (out, warnings)
}

/// `name-[epoch:]version-release.arch` split into (name, arch, evr).
fn split_nevra(nevra: &str) -> Option<(&str, &str, &str)> {
    let (nevr, arch) = nevra.rsplit_once('.')?;
    let (nev, _rel) = nevr.rsplit_once('-')?;
    let (name, _ver) = nev.rsplit_once('-')?;
    Some((name, arch, &nevr[name.len() + 1..]))
}

/// The changes from `old` to `new`, by package name and architecture, in name order; each
/// with the advisories that ship it.
pub fn changes(old: &Lock, new: &Lock, advisories: &[Advisories]) -> Vec<PackageChange> {
    let index = |l: &Lock| {
        l.packages
            .iter()
            .filter_map(|p| {
                let (n, a, evr) = split_nevra(&p.nevra)?;
                Some((
                    (n.to_owned(), a.to_owned()),
                    (evr.to_owned(), p.checksum.clone()),
                ))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (before, after) = (index(old), index(new));
    let keys: std::collections::BTreeSet<&(String, String)> =
        before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (b, a) = (before.get(key), after.get(key));
        if b == a {
            continue;
        }
        let (name, arch) = key;
        let advisories = match a {
            Some((to, _)) => {
                let (from, to) = (b.map(|(f, _)| Evr::parse(f)), Evr::parse(to));
                let mut refs: Vec<AdvisoryRef> = advisories
                    .iter()
                    .flat_map(|r| &r.advisories)
                    .filter(|adv| adv.covers(name, arch, from.as_ref(), &to))
                    .map(AdvisoryRef::of)
                    .collect();
                refs.sort();
                refs.dedup();
                refs
            }
            None => Vec::new(),
        };
        out.push(PackageChange {
            name: name.clone(),
            arch: arch.clone(),
            from: b.map(|(f, _)| f.clone()),
            to: a.map(|(t, _)| t.clone()),
            advisories,
        });
    }
    out
}

/// What to do with a job: its old lock entry (if any, with its image) and its new
/// resolution. `Some(entry)`: keep the image that entry records.
pub fn decide(
    old: Option<&Lock>,
    new: &Lock,
    advisories: &[Advisories],
    security_only: bool,
) -> (JobUpdate, Option<Lock>) {
    let Some(old) = old.filter(|o| o.image.is_some()) else {
        let update = JobUpdate {
            status: UpdateStatus::New,
            changes: Vec::new(),
        };
        return (update, None);
    };
    let changes = changes(old, new, advisories);
    let mut update = JobUpdate {
        status: UpdateStatus::Rebuilt,
        changes,
    };
    if update.changes.is_empty() {
        update.status = UpdateStatus::Unchanged;
        return (update, Some(old.clone()));
    }
    if security_only && !update.has_security() {
        update.status = UpdateStatus::Held;
        return (update, Some(old.clone()));
    }
    (update, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::lock::{LockImage, LockPackage};

    fn lock(pkgs: &[(&str, &str)]) -> Lock {
        Lock {
            version: 1,
            job: "a/job.sh".into(),
            repos: Vec::new(),
            packages: pkgs
                .iter()
                .map(|(n, c)| LockPackage {
                    nevra: (*n).into(),
                    repo: "r".into(),
                    checksum: (*c).into(),
                    base: false,
                    why: String::new(),
                })
                .collect(),
            image: Some(LockImage {
                reference: "r/a@sha256:00".into(),
                manifest_digest: "sha256:00".into(),
                blobs: Vec::new(),
            }),
        }
    }

    fn advisory(id: &str, kind: AdvisoryKind, name: &str, evr: &str) -> Advisories {
        Advisories {
            repo: "r".into(),
            advisories: vec![Advisory {
                id: id.into(),
                kind,
                severity: Some("Important".into()),
                title: None,
                cves: vec!["CVE-2026-0001".into()],
                packages: vec![crate::repo::updateinfo::AdvisoryPackage {
                    name: name.into(),
                    arch: "x86_64".into(),
                    evr: Evr::parse(evr),
                }],
            }],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn nevras_split_with_epochs_and_dashes() {
        assert_eq!(
            split_nevra("openssl-libs-1:3.0.7-27.el9.x86_64"),
            Some(("openssl-libs", "x86_64", "1:3.0.7-27.el9"))
        );
        assert_eq!(split_nevra("a-1-2.noarch"), Some(("a", "noarch", "1-2")));
        assert_eq!(split_nevra("nodash.x86_64"), None);
    }

    #[test]
    fn upgrades_additions_removals_and_their_advisories() {
        let old = lock(&[
            ("fx-ssl-1.0-1.fx.x86_64", "sha256:1"),
            ("gone-2-1.x86_64", "sha256:2"),
            ("same-1-1.x86_64", "sha256:3"),
        ]);
        let new = lock(&[
            ("fx-ssl-1.0-2.fx.x86_64", "sha256:4"),
            ("added-1-1.x86_64", "sha256:5"),
            ("same-1-1.x86_64", "sha256:3"),
        ]);
        let adv = [advisory(
            "FXSA-1",
            AdvisoryKind::Security,
            "fx-ssl",
            "1.0-2.fx",
        )];
        let c = changes(&old, &new, &adv);
        let d: Vec<String> = c.iter().map(PackageChange::describe).collect();
        assert_eq!(
            d,
            ["+ added 1-1", "fx-ssl 1.0-1.fx → 1.0-2.fx", "- gone 2-1"]
        );
        assert_eq!(c[1].advisories[0].id, "FXSA-1");
        assert!(c[0].advisories.is_empty());

        let (u, keep) = decide(Some(&old), &new, &adv, true);
        assert_eq!(u.status, UpdateStatus::Rebuilt);
        assert!(keep.is_none());
        let bugfix = [advisory(
            "FXBA-2",
            AdvisoryKind::Bugfix,
            "fx-ssl",
            "1.0-2.fx",
        )];
        let (u, keep) = decide(Some(&old), &new, &bugfix, true);
        assert_eq!(u.status, UpdateStatus::Held);
        assert_eq!(keep.as_ref(), Some(&old));
        let (u, keep) = decide(Some(&old), &old, &adv, false);
        assert_eq!(u.status, UpdateStatus::Unchanged);
        assert!(keep.is_some());
        let (u, keep) = decide(None, &new, &adv, false);
        assert_eq!(u.status, UpdateStatus::New);
        assert!(keep.is_none());
    }
}
