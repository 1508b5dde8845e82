//! Resolve: [`Needs`] → the packages that satisfy them, with the full Requires closure.
//!
//! libsolv decides, as it does for dnf: the pool is fed from pbsimage's own index (`solv`),
//! the jobs are those `dnf install` makes, and the solver flags are libdnf's (`best`, weak
//! deps, obsoletes, conflicts, Suggests/Supplements, arch and priority policy, backtracking to
//! older versions). The answer is then explained by a walk over the requirements restricted
//! to it (why-chains, what each package satisfies); when libsolv finds no answer, the walk
//! unrestricted names what cannot be met (the GLIBC explanation), else libsolv's problems do.
//!
//! The walk works through a queue of requirements. For each it takes the
//! visible providers (modularity and architecture filters applied), drops obsoleted ones,
//! prefers a package already chosen, and otherwise ranks them close to dnf: repository
//! priority (then order in the config), architecture (exact, then i686 for 32-bit needs, then
//! noarch), the newest EVR per name, the requirer's own source RPM, then the name in byte
//! order (as libsolv does; the fixture oracle showed dnf does not prefer shorter names). The capabilities of one soname (`libc.so.6()(64bit)`,
//! `libc.so.6(GLIBC_2.34)(64bit)`, …) are resolved together: one package must provide every
//! needed version. Rich dependencies are evaluated against the chosen set until nothing
//! changes. Every chosen package keeps the chain of why it was chosen.

pub mod lock;
mod rich;
mod solv;
#[cfg(test)]
mod tests;

use std::cell::{Cell, OnceCell, RefCell};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use serde::Serialize;

use crate::needs::{NeedKind, Needs};
use crate::repo::Repo;
use crate::repo::RepoIndex;
use crate::repo::evr::{Cmp, Evr, ranges_overlap, rpmvercmp};
use crate::repo::metadata::{Dep, Package};
use rich::Rich;

/// A package in one of the loaded repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PkgId {
    /// Index of its repository.
    pub repo: u16,
    /// Index of the package in that repository's index.
    pub idx: u32,
}

/// One requirement that could not be met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What is needed and by what.
    pub message: String,
    /// What might help (the nearest candidates, a rebuild).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Why a resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {} requirement{}:\n{}", failures.len(), if failures.len() == 1 { "" } else { "s" },
        failures.iter().map(|f| format!("  - {}", f.message)).collect::<Vec<_>>().join("\n"))]
    /// Requirements no package meets.
    Unsatisfied {
        /// Each requirement that could not be met.
        failures: Vec<Failure>,
    },
    /// A file need was not in primary.xml: load filelists.xml and resolve again.
    #[error("file lists are needed")]
    NeedsFilelists,
    /// Chosen packages conflict with each other.
    #[error("chosen packages conflict:\n{}", .0.join("\n"))]
    Conflicts(Vec<String>),
}

impl crate::hint::Hint for ResolveError {
    fn hint(&self) -> Option<String> {
        match self {
            ResolveError::Unsatisfied { failures } => {
                let h: Vec<String> = failures.iter().filter_map(|f| f.hint.clone()).collect();
                (!h.is_empty()).then(|| h.join("\nhint: "))
            }
            _ => None,
        }
    }
}

/// A chosen package and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chosen {
    /// Name.
    pub name: String,
    /// `[epoch:]version-release`.
    pub evr: String,
    /// Architecture.
    pub arch: String,
    /// `name-evr.arch`.
    pub nevra: String,
    /// Repository id.
    pub repo: String,
    /// The package file's checksum from primary.xml (`sha256:<hex>` in JSON).
    #[serde(serialize_with = "display")]
    pub checksum: crate::digest::Checksum,
    /// Location of the package file, relative to `base_url`.
    pub href: String,
    /// The repository's base URL the metadata came from.
    pub base_url: String,
    /// Other base URLs of the repository (its other mirrors), tried in turn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Package file size.
    pub size: u64,
    /// Installed size.
    pub installed_size: u64,
    /// License.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Source RPM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sourcerpm: Option<String>,
    /// Part of the shared base layer (`[base] packages` and what they pull in).
    pub base: bool,
    /// `libstdc++-8.5.0-4.el8 ← libstdc++.so.6()(64bit) ← a.out`
    pub why: String,
    /// Every requirement this package satisfies.
    pub satisfies: Vec<String>,
    /// Where it is in the loaded repositories.
    #[serde(skip)]
    pub id: PkgId,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The outcome of resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Sorted by name, then arch.
    pub packages: Vec<Chosen>,
    /// Weak dependencies skipped, optional needs unmet.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum By {
    Origin(String),
    Base,
    Package(PkgId),
}

enum Item {
    /// Capabilities of one soname (or a single capability): one package must provide all.
    Group(Vec<Dep>, By),
    Rich(Rich, String, By),
    /// A file, by any of several paths.
    Paths(Vec<String>, String, By, bool),
}

/// How a file need is named in [`Chosen::satisfies`] and in failures: `file <first path>`.
pub fn file_label(paths: &[String]) -> Option<String> {
    paths.first().map(|p| format!("file {p}"))
}

/// The soname family of a capability: (soname, version, marker). Only the forms rpm's ELF
/// dependency generator writes are sonames: `libfoo.so.1`, `libfoo.so.1(VER)`, and with the
/// `(64bit)` marker `libfoo.so.1()(64bit)`, `libfoo.so.1(VER)(64bit)`; the name before the first
/// parenthesis must be a shared object's (`*.so*`). `mvn(org.x:y.so)` or `perl(Foo::Bar)` are not.
pub fn soname_family(cap: &str) -> Option<(&str, &str, &str)> {
    let (base, marker) = match cap.strip_suffix("(64bit)") {
        Some(b) => (b, "(64bit)"),
        None => (cap, ""),
    };
    let name = base.split('(').next().unwrap_or(base);
    let is_so = name.find(".so").is_some_and(|i| {
        name[i + 3..]
            .chars()
            .all(|c| c == '.' || c.is_ascii_digit())
    });
    if !is_so || name.contains(char::is_whitespace) {
        return None;
    }
    match base.find('(') {
        None if marker.is_empty() => Some((base, "", "")),
        None => None,
        Some(open) => {
            let ver = base[open + 1..].strip_suffix(')')?;
            (!ver.contains('(') && !ver.contains(')')).then(|| (&base[..open], ver, marker))
        }
    }
}

/// A solver job before the pool exists: a package set, or any provider of a dependency.
enum Spec {
    OneOf(Vec<PkgId>),
    Provides(Dep),
}

/// What the jobs reach (see [`Resolver::pool`]).
#[derive(Default)]
struct Reach {
    set: BTreeSet<PkgId>,
    queue: Vec<PkgId>,
    /// Names whose every package was reached.
    names: HashSet<String>,
    /// Dependencies already expanded.
    deps: HashSet<String>,
}

impl Reach {
    fn push(&mut self, id: PkgId) {
        if self.set.insert(id) {
            self.queue.push(id);
        }
    }
}

/// The atoms of a rich dependency.
fn rich_atoms(r: &Rich, out: &mut Vec<Dep>) {
    match r {
        Rich::Atom(d) => out.push(d.clone()),
        Rich::And(v) | Rich::Or(v) | Rich::With(v) => v.iter().for_each(|x| rich_atoms(x, out)),
        Rich::If(a, c, e) | Rich::Unless(a, c, e) => {
            rich_atoms(a, out);
            rich_atoms(c, out);
            if let Some(e) = e {
                rich_atoms(e, out);
            }
        }
        Rich::Without(a, b) => {
            rich_atoms(a, out);
            rich_atoms(b, out);
        }
    }
}

/// dnf's default repository cost.
const DEFAULT_COST: u32 = 1000;

fn dep(name: &str) -> Dep {
    Dep {
        name: name.to_owned(),
        cmp: None,
        evr: None,
        pre: false,
    }
}

/// Resolves needs against loaded repositories.
pub struct Resolver<'a> {
    repos: &'a [Repo],
    /// Allowed package architectures, best first.
    arches: Vec<String>,
    weak_deps: bool,
    /// Packages some visible package obsoletes (for the walk's choice; computed when first
    /// needed: an explanation of a failure).
    obsoleted: OnceCell<HashSet<PkgId>>,
    missing_filelists: Cell<bool>,
    /// While explaining the solver's answer: the only packages that may be chosen.
    allowed: RefCell<Option<HashSet<PkgId>>>,
    /// While making the solver's jobs: every architecture the pool's may install (libsolv's
    /// architecture policy decides, as dnf's does).
    all_arches: Cell<bool>,
}

struct State {
    chosen: Vec<PkgId>,
    set: HashSet<PkgId>,
    reasons: BTreeMap<PkgId, Vec<(String, By)>>,
    base: BTreeSet<PkgId>,
    failures: Vec<Failure>,
    warnings: Vec<String>,
    queue: VecDeque<Item>,
    /// Rich dependencies waiting for a condition.
    pending: Vec<(Rich, String, By)>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `repos` for packages of `arches` (best first).
    pub fn new(repos: &'a [Repo], arches: &[&str], weak_deps: bool) -> Resolver<'a> {
        Resolver {
            repos,
            arches: arches.iter().map(|s| s.to_string()).collect(),
            weak_deps,
            obsoleted: OnceCell::new(),
            missing_filelists: Cell::new(false),
            allowed: RefCell::new(None),
            all_arches: Cell::new(false),
        }
    }

    fn pkg(&self, id: PkgId) -> &'a Package {
        self.repos[id.repo as usize].index.package(id.idx)
    }

    fn arch_rank(&self, arch: &str) -> Option<usize> {
        self.arches.iter().position(|a| a == arch)
    }

    fn visible(&self, id: PkgId) -> bool {
        let repo = &self.repos[id.repo as usize];
        if repo.hidden.contains(&id.idx) {
            return false;
        }
        match self.allowed.borrow().as_ref() {
            Some(allowed) => allowed.contains(&id),
            None => self.all_arches.get() || self.arch_rank(&self.pkg(id).arch).is_some(),
        }
    }

    fn replaying(&self) -> bool {
        self.allowed.borrow().is_some()
    }

    fn compute_obsoleted(&self) -> HashSet<PkgId> {
        let mut out = HashSet::new();
        for (r, repo) in self.repos.iter().enumerate() {
            for (i, o) in repo.index.obsoletes() {
                let qid = PkgId {
                    repo: r as u16,
                    idx: *i,
                };
                if !self.visible(qid) {
                    continue;
                }
                let q = self.pkg(qid);
                for (r2, repo2) in self.repos.iter().enumerate() {
                    for (pi, _) in repo2.index.whatprovides(&o.name) {
                        let pid = PkgId {
                            repo: r2 as u16,
                            idx: pi,
                        };
                        let p = self.pkg(pid);
                        if p.name == o.name
                            && p.name != q.name
                            && ranges_overlap(Some((Cmp::Eq, &p.evr)), o.range())
                        {
                            out.insert(pid);
                        }
                    }
                }
            }
        }
        out
    }

    /// Visible packages providing `d`.
    fn providers(&self, d: &Dep) -> Vec<PkgId> {
        let mut out = Vec::new();
        for (r, repo) in self.repos.iter().enumerate() {
            if d.name.starts_with('/') {
                for idx in repo.index.owners(&d.name) {
                    let id = PkgId {
                        repo: r as u16,
                        idx,
                    };
                    if self.visible(id) && !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
            for (idx, prov) in repo.index.whatprovides(&d.name) {
                let id = PkgId {
                    repo: r as u16,
                    idx,
                };
                if self.visible(id) && ranges_overlap(prov.range(), d.range()) && !out.contains(&id)
                {
                    out.push(id);
                }
            }
        }
        if out.is_empty() && d.name.starts_with('/') && !RepoIndex::primary_lists(&d.name) {
            let unloaded = self
                .repos
                .iter()
                .any(|r| r.index.all_files.is_none() && r.index.filelists.is_some());
            if unloaded {
                self.missing_filelists.set(true);
            }
        }
        out
    }

    fn provides(&self, id: PkgId, d: &Dep) -> bool {
        let p = self.pkg(id);
        if d.name.starts_with('/')
            && (p.files.iter().any(|f| f == &d.name)
                || self.repos[id.repo as usize]
                    .index
                    .owners(&d.name)
                    .contains(&id.idx))
        {
            return true;
        }
        p.provides
            .iter()
            .any(|pr| pr.name == d.name && ranges_overlap(pr.range(), d.range()))
    }

    fn satisfied(&self, st: &State, d: &Dep) -> Option<PkgId> {
        st.chosen.iter().copied().find(|&id| self.provides(id, d))
    }

    fn repo_key(&self, id: PkgId) -> (u32, usize) {
        let s = &self.repos[id.repo as usize].source;
        (s.priority, s.order)
    }

    /// The best of `cands` for a requirer; `None` if empty.
    fn best(&self, st: &State, mut cands: Vec<PkgId>, by: &By) -> Option<PkgId> {
        // Explaining libsolv's answer, the candidates are its choice already.
        if !self.replaying() {
            let obsoleted = self.obsoleted.get_or_init(|| self.compute_obsoleted());
            let unobsoleted: Vec<PkgId> = cands
                .iter()
                .copied()
                .filter(|c| !obsoleted.contains(c))
                .collect();
            if !unobsoleted.is_empty() {
                cands = unobsoleted;
            }
        }
        if let Some(c) = cands.iter().find(|c| st.set.contains(c)) {
            return Some(*c);
        }
        // Another version of a chosen name.arch cannot be installed beside it.
        cands.retain(|&c| {
            let p = self.pkg(c);
            !st.chosen.iter().any(|&o| {
                let q = self.pkg(o);
                q.name == p.name && q.arch == p.arch
            })
        });
        // Per name: highest priority, best arch, newest EVR.
        let mut by_name: BTreeMap<&str, Vec<PkgId>> = BTreeMap::new();
        for c in cands {
            by_name
                .entry(self.pkg(c).name.as_str())
                .or_default()
                .push(c);
        }
        let arch = |c: PkgId| self.arch_rank(&self.pkg(c).arch).unwrap_or(usize::MAX);
        let mut finalists: Vec<PkgId> = by_name
            .into_values()
            .filter_map(|group| {
                let top = group.iter().map(|&c| self.repo_key(c).0).min()?;
                let group: Vec<PkgId> = group
                    .into_iter()
                    .filter(|&c| self.repo_key(c).0 == top)
                    .collect();
                let best_arch = group.iter().map(|&c| arch(c)).min()?;
                group
                    .into_iter()
                    .filter(|&c| arch(c) == best_arch)
                    .max_by(|&a, &b| {
                        self.pkg(a)
                            .evr
                            .cmp_total(&self.pkg(b).evr)
                            .then_with(|| self.repo_key(b).1.cmp(&self.repo_key(a).1))
                            .then_with(|| b.cmp(&a))
                    })
            })
            .collect();
        let srpm = match by {
            By::Package(p) => self.pkg(*p).sourcerpm.as_deref(),
            _ => None,
        };
        finalists.sort_by(|&a, &b| {
            let (pa, pb) = (self.pkg(a), self.pkg(b));
            self.repo_key(a)
                .cmp(&self.repo_key(b))
                .then_with(|| arch(a).cmp(&arch(b)))
                .then_with(|| {
                    let sa = srpm.is_some() && pa.sourcerpm.as_deref() == srpm;
                    let sb = srpm.is_some() && pb.sourcerpm.as_deref() == srpm;
                    sb.cmp(&sa)
                })
                // dnf (libsolv) breaks the remaining ties by name in byte order.
                .then_with(|| pa.name.cmp(&pb.name))
        });
        finalists.first().copied()
    }

    fn label(&self, by: &By) -> String {
        match by {
            By::Origin(o) => o.clone(),
            By::Base => "[base]".into(),
            By::Package(p) => self.short(*p),
        }
    }

    fn short(&self, id: PkgId) -> String {
        let p = self.pkg(id);
        format!("{}-{}", p.name, p.evr)
    }

    fn repo_ids(&self) -> String {
        self.repos
            .iter()
            .map(|r| r.source.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn add(&self, st: &mut State, id: PkgId, why: String, by: By) {
        st.reasons.entry(id).or_default().push((why, by.clone()));
        if by == By::Base || matches!(&by, By::Package(p) if st.base.contains(p)) {
            st.base.insert(id);
        }
        if !st.set.insert(id) {
            return;
        }
        st.chosen.push(id);
        let p = self.pkg(id);
        let mut deps: Vec<&Dep> = p.requires.iter().collect();
        if self.weak_deps {
            deps.extend(p.recommends.iter());
        }
        self.enqueue(st, deps.into_iter().cloned().collect(), By::Package(id));
    }

    /// Queues requirements, grouping the capabilities of one soname.
    fn enqueue(&self, st: &mut State, deps: Vec<Dep>, by: By) {
        let mut groups: BTreeMap<(String, String), Vec<Dep>> = BTreeMap::new();
        for d in deps {
            if d.name.starts_with("rpmlib(") {
                continue;
            }
            if d.is_rich() {
                match rich::parse(&d.name) {
                    Ok(r) => st
                        .queue
                        .push_back(Item::Rich(r, d.name.clone(), by.clone())),
                    Err(e) => st
                        .warnings
                        .push(format!("{}: {e}; ignored", self.label(&by))),
                }
                continue;
            }
            let key = match soname_family(&d.name) {
                Some((so, _, marker)) => (so.to_owned(), marker.to_owned()),
                None => (d.name.clone(), "\u{0}single".to_owned()),
            };
            groups.entry(key).or_default().push(d);
        }
        for (_, g) in groups {
            st.queue.push_back(Item::Group(g, by.clone()));
        }
    }

    fn fail_group(&self, st: &mut State, deps: &[Dep], by: &By) {
        let who = self.label(by);
        if let Some((so, _, marker)) = soname_family(&deps[0].name) {
            let base_cap = if marker.is_empty() {
                so.to_owned()
            } else {
                format!("{so}(){marker}")
            };
            let holders = self.providers(&dep(&base_cap));
            if let Some(b) = self.best(st, holders, by) {
                let p = self.pkg(b);
                let versions: Vec<&str> = p
                    .provides
                    .iter()
                    .filter_map(|pr| soname_family(&pr.name))
                    .filter(|(s, v, m)| *s == so && *m == marker && !v.is_empty())
                    .map(|(_, v, _)| v)
                    .collect();
                let missing: Vec<&str> = deps
                    .iter()
                    .filter(|d| !self.provides(b, d))
                    .filter_map(|d| soname_family(&d.name).map(|(_, v, _)| v))
                    .collect();
                let newest = versions.iter().copied().max_by(|a, b| rpmvercmp(a, b));
                let up_to = match newest {
                    Some(v) => format!("provides up to {v}"),
                    None => "provides no symbol versions".into(),
                };
                st.failures.push(Failure {
                    message: format!(
                        "{who} needs {} from {so} but the newest {} in repos {} {up_to} ({})",
                        missing.join(", "),
                        p.name,
                        self.repo_ids(),
                        p.nevra()
                    ),
                    // Only the job's own binary can be rebuilt; a repository package needs
                    // a repository that matches it.
                    hint: Some(match by {
                        By::Package(_) => format!(
                            "{who} and {} come from repositories of different ages: add a repository with a newer {}, or one with a build of {who} for this {}",
                            p.nevra(),
                            p.name,
                            p.name
                        ),
                        _ => format!(
                            "rebuild the binary against an older {so}, or add a repository with a newer {}",
                            p.name
                        ),
                    }),
                });
                return;
            }
        }
        let d = &deps[0];
        let mut hint = None;
        let nearest = self.nearest(&d.name);
        if !nearest.is_empty() {
            hint = Some(format!("nearest: {}", nearest.join(", ")));
        }
        st.failures.push(Failure {
            message: format!(
                "`{d}` is needed by {who}; no package in repos {} provides it",
                self.repo_ids()
            ),
            hint,
        });
    }

    /// Provides whose names share the stem of `name` (`libgfortran.so.5()(64bit)` →
    /// `libgfortran.so.4 in libgfortran4-8.3.1`).
    fn nearest(&self, name: &str) -> Vec<String> {
        let stem = match name.find(".so") {
            Some(i) => &name[..i + 3],
            None => name.split('(').next().unwrap_or(name),
        };
        if stem.len() < 3 {
            return Vec::new();
        }
        let mut out = BTreeSet::new();
        for (r, repo) in self.repos.iter().enumerate() {
            for (key, i) in repo.index.provides_with_prefix(stem) {
                let id = PkgId {
                    repo: r as u16,
                    idx: i,
                };
                let key = String::from_utf8_lossy(key);
                if key == name || !self.visible(id) {
                    continue;
                }
                let p = self.pkg(id);
                let shown = soname_family(&key)
                    .map(|(s, _, _)| s.to_owned())
                    .unwrap_or_else(|| key.to_string());
                out.insert(format!("{shown} in {}-{}", p.name, p.evr));
                if out.len() >= 3 {
                    return out.into_iter().collect();
                }
            }
        }
        out.into_iter().collect()
    }

    /// Whether `r` holds for the chosen set.
    fn holds(&self, st: &State, r: &Rich) -> bool {
        match r {
            Rich::Atom(d) => self.satisfied(st, d).is_some(),
            Rich::And(v) => v.iter().all(|x| self.holds(st, x)),
            Rich::Or(v) => v.iter().any(|x| self.holds(st, x)),
            Rich::If(a, c, e) => {
                if self.holds(st, c) {
                    self.holds(st, a)
                } else {
                    e.as_ref().is_none_or(|e| self.holds(st, e))
                }
            }
            Rich::Unless(a, c, e) => {
                if !self.holds(st, c) {
                    self.holds(st, a)
                } else {
                    e.as_ref().is_none_or(|e| self.holds(st, e))
                }
            }
            Rich::With(v) => st.chosen.iter().any(|&id| {
                v.iter()
                    .all(|x| matches!(x, Rich::Atom(d) if self.provides(id, d)))
            }),
            Rich::Without(a, b) => st.chosen.iter().any(|&id| {
                matches!(a.as_ref(), Rich::Atom(d) if self.provides(id, d))
                    && !matches!(b.as_ref(), Rich::Atom(d) if self.provides(id, d))
            }),
        }
    }

    /// Installs what makes `r` hold; false if impossible. Conditions that do not hold yet
    /// are parked in `pending`.
    fn require_rich(&self, st: &mut State, r: &Rich, text: &str, by: &By) -> bool {
        if self.holds(st, r) {
            return true;
        }
        match r {
            Rich::Atom(d) => {
                let cands = self.providers(d);
                match self.best(st, cands, by) {
                    Some(id) => {
                        self.add(st, id, format!("{d} (in {text})"), by.clone());
                        true
                    }
                    None => false,
                }
            }
            Rich::And(v) => v.iter().all(|x| self.require_rich(st, x, text, by)),
            Rich::Or(v) => v.iter().any(|x| {
                let cands = match x {
                    Rich::Atom(d) => self.providers(d),
                    _ => vec![PkgId { repo: 0, idx: 0 }],
                };
                !cands.is_empty() && self.require_rich(st, x, text, by)
            }),
            Rich::If(a, c, e) | Rich::Unless(a, c, e) => {
                let cond = self.holds(st, c);
                let take_a = if matches!(r, Rich::If(..)) {
                    cond
                } else {
                    !cond
                };
                if take_a {
                    self.require_rich(st, a, text, by)
                } else if let Some(e) = e {
                    self.require_rich(st, e, text, by)
                } else {
                    true
                }
            }
            Rich::With(v) => {
                let mut cands: Option<Vec<PkgId>> = None;
                for x in v {
                    let Rich::Atom(d) = x else { return false };
                    let p = self.providers(d);
                    cands = Some(match cands {
                        None => p,
                        Some(c) => c.into_iter().filter(|i| p.contains(i)).collect(),
                    });
                }
                match self.best(st, cands.unwrap_or_default(), by) {
                    Some(id) => {
                        self.add(st, id, text.to_owned(), by.clone());
                        true
                    }
                    None => false,
                }
            }
            Rich::Without(a, b) => {
                let (Rich::Atom(da), Rich::Atom(db)) = (a.as_ref(), b.as_ref()) else {
                    return false;
                };
                let cands: Vec<PkgId> = self
                    .providers(da)
                    .into_iter()
                    .filter(|&i| !self.provides(i, db))
                    .collect();
                match self.best(st, cands, by) {
                    Some(id) => {
                        self.add(st, id, text.to_owned(), by.clone());
                        true
                    }
                    None => false,
                }
            }
        }
    }

    fn rich_failure(&self, text: &str, by: &By) -> Failure {
        Failure {
            message: format!(
                "`{text}` is needed by {}; no combination of packages in repos {} satisfies it",
                self.label(by),
                self.repo_ids()
            ),
            hint: None,
        }
    }

    fn has_condition(r: &Rich) -> bool {
        match r {
            Rich::If(..) | Rich::Unless(..) => true,
            Rich::And(v) | Rich::Or(v) | Rich::With(v) => v.iter().any(Self::has_condition),
            Rich::Without(a, b) => Self::has_condition(a) || Self::has_condition(b),
            Rich::Atom(_) => false,
        }
    }

    fn process(&self, st: &mut State) {
        while let Some(item) = st.queue.pop_front() {
            match item {
                Item::Group(deps, by) => {
                    if deps.iter().all(|d| self.satisfied(st, d).is_some()) {
                        // already met: remember who else relies on it
                        if let Some(id) = self.satisfied(st, &deps[0]) {
                            st.reasons
                                .entry(id)
                                .or_default()
                                .push((deps[0].to_string(), by));
                        }
                        continue;
                    }
                    let mut cands: Option<Vec<PkgId>> = None;
                    for d in &deps {
                        let p = self.providers(d);
                        cands = Some(match cands {
                            None => p,
                            Some(c) => c.into_iter().filter(|i| p.contains(i)).collect(),
                        });
                    }
                    match self.best(st, cands.unwrap_or_default(), &by) {
                        Some(id) => {
                            let why = deps
                                .iter()
                                .find(|d| {
                                    soname_family(&d.name).is_some_and(|(_, v, _)| v.is_empty())
                                })
                                .unwrap_or(&deps[0])
                                .to_string();
                            self.add(st, id, why, by);
                        }
                        // The solver may meet one soname's versions from several packages.
                        None if self.replaying() && deps.len() > 1 => {
                            for d in deps {
                                st.queue.push_back(Item::Group(vec![d], by.clone()));
                            }
                        }
                        None if self.replaying() => {}
                        None => self.fail_group(st, &deps, &by),
                    }
                }
                Item::Paths(paths, label, by, optional) => {
                    let ds: Vec<Dep> = paths.iter().map(|p| dep(p)).collect();
                    if let Some(id) = ds.iter().find_map(|d| self.satisfied(st, d)) {
                        st.reasons.entry(id).or_default().push((label, by));
                        continue;
                    }
                    let cands: Vec<PkgId> = ds.iter().flat_map(|d| self.providers(d)).collect();
                    match self.best(st, cands, &by) {
                        Some(id) => self.add(st, id, label, by),
                        None if optional => st.warnings.push(format!(
                            "{label} ({}) is in no package of repos {}; assuming the cluster provides it",
                            self.label(&by),
                            self.repo_ids()
                        )),
                        None => st.failures.push(Failure {
                            message: format!(
                                "{label} is needed by {}; no package in repos {} has {}",
                                self.label(&by),
                                self.repo_ids(),
                                paths.join(" or ")
                            ),
                            hint: None,
                        }),
                    }
                }
                Item::Rich(r, text, by) => {
                    if Self::has_condition(&r) && self.holds(st, &r) {
                        st.pending.push((r, text, by));
                        continue;
                    }
                    if !self.require_rich(st, &r, &text, &by) {
                        st.failures.push(self.rich_failure(&text, &by));
                    } else if Self::has_condition(&r) {
                        st.pending.push((r, text, by));
                    }
                }
            }
        }
    }

    /// Resolves `needs` plus the `[base]` packages, as `dnf install` would: libsolv decides
    /// (with libdnf's flags and `best`), then the walk over the requirements explains the
    /// answer (why-chains). When libsolv finds no answer, the walk without the solver's
    /// answer names what cannot be met (the GLIBC explanation), else libsolv's problems do.
    pub fn resolve(&self, needs: &Needs, base: &[String]) -> Result<Resolution, ResolveError> {
        self.missing_filelists.set(false);
        *self.allowed.borrow_mut() = None;
        let t = std::time::Instant::now();
        self.all_arches.set(true);
        let (specs, warnings, unmet) = self.jobs(needs, base);
        let pool = self.pool(&specs);
        self.all_arches.set(false);
        if self.missing_filelists.get() {
            return Err(ResolveError::NeedsFilelists);
        }
        tracing::debug!("libsolv pool ready in {:?}", t.elapsed());
        let jobs: Vec<solv::Job> = specs
            .iter()
            .map(|s| match s {
                Spec::OneOf(set) => solv::Job::OneOf(
                    set.iter()
                        .filter_map(|p| pool.id(p.repo as usize, p.idx))
                        .collect(),
                ),
                Spec::Provides(d) => solv::Job::Provides(d.clone()),
            })
            .collect();
        let answer = if unmet {
            Err(Vec::new())
        } else {
            pool.solve(&jobs, true, self.weak_deps)
        };
        tracing::debug!(
            jobs = jobs.len(),
            solved = answer.is_ok(),
            "libsolv solved in {:?}",
            t.elapsed()
        );
        match answer {
            Ok(ids) => {
                let set: HashSet<PkgId> = ids
                    .iter()
                    .filter_map(|&i| pool.locate(i))
                    .map(|(repo, idx)| PkgId {
                        repo: repo as u16,
                        idx,
                    })
                    .collect();
                *self.allowed.borrow_mut() = Some(set.clone());
                let mut st = self.walk(needs, base);
                self.adopt_rest(&mut st, &set);
                tracing::debug!("answer explained in {:?}", t.elapsed());
                *self.allowed.borrow_mut() = None;
                st.failures.clear();
                st.warnings.extend(warnings);
                Ok(self.finish(st))
            }
            Err(problems) => {
                let mut st = self.walk(needs, base);
                if !st.failures.is_empty() {
                    if self.missing_filelists.get() {
                        return Err(ResolveError::NeedsFilelists);
                    }
                    let mut seen = HashSet::new();
                    st.failures.retain(|f| seen.insert(f.message.clone()));
                    return Err(ResolveError::Unsatisfied {
                        failures: st.failures,
                    });
                }
                self.check_conflicts(&st)?;
                Err(ResolveError::Unsatisfied {
                    failures: problems
                        .into_iter()
                        .map(|message| Failure {
                            message,
                            hint: None,
                        })
                        .collect(),
                })
            }
        }
    }

    /// A libsolv pool of what the jobs can reach: their candidates and, transitively, every
    /// provider of what those require (and recommend, with weak deps), every package of a
    /// reached name (other versions and architectures: libsolv's arch and best rules), and
    /// with weak deps what supplements a reached package. Nothing outside it can be installed
    /// by these jobs, so libsolv's answer is the one it gives on the whole repositories, as dnf
    /// does, without feeding it every package of every run. Hidden (modular) packages are
    /// not reached.
    fn pool(&self, specs: &[Spec]) -> solv::Pool {
        let mut reach = Reach::default();
        for s in specs {
            match s {
                Spec::OneOf(set) => set.iter().for_each(|&p| reach.push(p)),
                Spec::Provides(d) => self.expand(&mut reach, d),
            }
        }
        loop {
            while let Some(id) = reach.queue.pop() {
                let p = self.pkg(id);
                if reach.names.insert(p.name.clone()) {
                    for (r, repo) in self.repos.iter().enumerate() {
                        for (idx, _) in repo.index.named(&p.name) {
                            let other = PkgId {
                                repo: r as u16,
                                idx,
                            };
                            if self.visible(other) {
                                reach.push(other);
                            }
                        }
                    }
                }
                for d in &p.requires {
                    self.expand(&mut reach, d);
                }
                if self.weak_deps {
                    for d in &p.recommends {
                        self.expand(&mut reach, d);
                    }
                }
            }
            if !self.weak_deps || !self.reach_supplements(&mut reach) {
                break;
            }
        }
        let mut pool = solv::Pool::new(self.arches.first().map_or("noarch", String::as_str));
        for (r, repo) in self.repos.iter().enumerate() {
            let r = r as u16;
            let in_repo = reach.set.range(
                PkgId { repo: r, idx: 0 }..=PkgId {
                    repo: r,
                    idx: u32::MAX,
                },
            );
            pool.add_repo(
                &repo.source.id,
                repo.source.priority,
                DEFAULT_COST,
                in_repo.map(|id| (id.idx, self.pkg(*id))),
            );
        }
        // Files are not in the pool: the paths its packages require are provided by their
        // owners (primary.xml's lists, filelists.xml's once loaded), as libsolv's
        // addfileprovides does for dnf. File needs of the job select owners directly.
        for path in pool.file_requires() {
            for (r, repo) in self.repos.iter().enumerate() {
                for idx in repo.index.owners(&path) {
                    pool.provide_file(r, idx, &path);
                }
            }
        }
        pool.ready();
        tracing::debug!(packages = reach.set.len(), "libsolv pool");
        pool
    }

    /// Reaches the providers of `d` (of every atom of a rich dependency).
    fn expand(&self, reach: &mut Reach, d: &Dep) {
        if d.name.starts_with("rpmlib(") || !reach.deps.insert(d.to_string()) {
            return;
        }
        if d.is_rich() {
            if let Ok(r) = rich::parse(&d.name) {
                let mut atoms = Vec::new();
                rich_atoms(&r, &mut atoms);
                for a in atoms {
                    self.expand(reach, &a);
                }
            }
            return;
        }
        for p in self.providers(d) {
            reach.push(p);
        }
    }

    /// Reaches packages that supplement something a reached package provides (any atom
    /// of their Supplements: a superset of what libsolv may add). Whether any was new.
    fn reach_supplements(&self, reach: &mut Reach) -> bool {
        let mut provided: HashSet<&str> = HashSet::new();
        for &id in &reach.set {
            let p = self.pkg(id);
            provided.insert(p.name.as_str());
            provided.extend(p.provides.iter().map(|d| d.name.as_str()));
        }
        let mut new = false;
        for (r, repo) in self.repos.iter().enumerate() {
            for (idx, d) in repo.index.supplements() {
                let id = PkgId {
                    repo: r as u16,
                    idx: *idx,
                };
                if reach.set.contains(&id) || !self.visible(id) {
                    continue;
                }
                let hit = if d.is_rich() {
                    let mut atoms = Vec::new();
                    if let Ok(r) = rich::parse(&d.name) {
                        rich_atoms(&r, &mut atoms);
                    }
                    atoms.iter().any(|a| provided.contains(a.name.as_str()))
                } else {
                    provided.contains(d.name.as_str())
                };
                if hit {
                    reach.push(id);
                    new = true;
                }
            }
        }
        new
    }

    /// The solver's jobs, as `dnf install` makes them (dnf's Subject: a name selects that
    /// name's packages and what obsoletes them; anything else, its providers). Files and
    /// commands select any owner of any of their paths. Also the warnings for optional needs
    /// nothing provides, and whether a required one has no candidate at all.
    fn jobs(&self, needs: &Needs, base: &[String]) -> (Vec<Spec>, Vec<String>, bool) {
        let mut jobs = Vec::new();
        let mut warnings = Vec::new();
        let mut unmet = false;
        for b in base {
            jobs.push(self.spec_job(b));
        }
        for n in &needs.needs {
            match &n.kind {
                NeedKind::Capability(c) => jobs.push(self.spec_job(c.as_str())),
                NeedKind::File(_) | NeedKind::Command(_) => {
                    let mut cands: Vec<PkgId> = Vec::new();
                    for path in n.kind.paths() {
                        for c in self.providers(&dep(&path)) {
                            if !cands.contains(&c) {
                                cands.push(c);
                            }
                        }
                    }
                    if !cands.is_empty() {
                        jobs.push(Spec::OneOf(cands));
                    } else if n.optional {
                        let origin = n.origins.first().map(String::as_str).unwrap_or_default();
                        let what = match &n.kind {
                            NeedKind::Command(c) => format!("command `{c}`"),
                            _ => format!("file {}", n.kind.paths()[0]),
                        };
                        warnings.push(format!(
                            "{what} ({}) is in no package of repos {}; assuming the cluster provides it",
                            origin.rsplit_once(": ").map_or(origin, |x| x.0),
                            self.repo_ids()
                        ));
                    } else {
                        unmet = true;
                    }
                }
            }
        }
        (jobs, warnings, unmet)
    }

    /// `dnf install <spec>`: the packages named `spec` and those that obsolete them, else
    /// any provider of `spec`.
    fn spec_job(&self, spec: &str) -> Spec {
        let d = Dep::parse_spec(spec).unwrap_or_else(|| dep(spec));
        if d.cmp.is_some() || d.is_rich() {
            return Spec::Provides(d);
        }
        let spec = d.name.as_str();
        let named: Vec<PkgId> = self
            .providers(&dep(spec))
            .into_iter()
            .filter(|&i| self.pkg(i).name == spec)
            .collect();
        if named.is_empty() {
            return Spec::Provides(d);
        }
        let mut set = named.clone();
        for (r, repo) in self.repos.iter().enumerate() {
            for (i, o) in repo.index.obsoletes() {
                let id = PkgId {
                    repo: r as u16,
                    idx: *i,
                };
                if o.name != spec || set.contains(&id) || !self.visible(id) {
                    continue;
                }
                let hits = named
                    .iter()
                    .any(|&n| ranges_overlap(Some((Cmp::Eq, &self.pkg(n).evr)), o.range()));
                if hits {
                    set.push(id);
                }
            }
        }
        Spec::OneOf(set)
    }

    /// The requirement walk: from the needs and the base packages through every package's
    /// Requires (and Recommends with weak deps). Unrestricted, it is the explanation of a
    /// failure; restricted to the solver's answer, the why of every package.
    fn walk(&self, needs: &Needs, base: &[String]) -> State {
        let mut st = State {
            chosen: Vec::new(),
            set: HashSet::new(),
            reasons: BTreeMap::new(),
            base: BTreeSet::new(),
            failures: Vec::new(),
            warnings: Vec::new(),
            queue: VecDeque::new(),
            pending: Vec::new(),
        };
        for b in base {
            st.queue.push_back(Item::Group(vec![dep(b)], By::Base));
        }
        self.process(&mut st);
        // Capabilities grouped by soname across the whole job.
        let mut caps: BTreeMap<(String, String), (Vec<Dep>, Vec<String>)> = BTreeMap::new();
        for n in &needs.needs {
            let origin = n
                .origins
                .first()
                .map(|o| o.split(": ").next().unwrap_or(o).to_owned())
                .unwrap_or_default();
            match &n.kind {
                NeedKind::Capability(c) => {
                    let d = Dep::parse_spec(c.as_str()).unwrap_or_else(|| dep(c.as_str()));
                    if d.is_rich() {
                        match rich::parse(&d.name) {
                            Ok(r) => st.queue.push_back(Item::Rich(
                                r,
                                d.name.clone(),
                                By::Origin(origin),
                            )),
                            Err(e) => st.warnings.push(format!("{}: {e}; ignored", d.name)),
                        }
                        continue;
                    }
                    let key = match soname_family(c.as_str()) {
                        Some((so, _, m)) => (so.to_owned(), m.to_owned()),
                        None => (c.to_string(), "\u{0}".into()),
                    };
                    let e = caps.entry(key).or_default();
                    e.0.push(d);
                    if !e.1.contains(&origin) {
                        e.1.push(origin);
                    }
                }
                NeedKind::File(paths) => st.queue.push_back(Item::Paths(
                    paths.clone(),
                    file_label(paths).unwrap_or_default(),
                    By::Origin(origin),
                    n.optional,
                )),
                NeedKind::Command(c) => st.queue.push_back(Item::Paths(
                    n.kind.paths(),
                    format!("command `{c}`"),
                    By::Origin(
                        n.origins
                            .first()
                            .map(|o| o.rsplit_once(": ").map(|x| x.0).unwrap_or(o).to_owned())
                            .unwrap_or_default(),
                    ),
                    n.optional,
                )),
            }
        }
        for (_, (deps, origins)) in caps {
            st.queue
                .push_back(Item::Group(deps, By::Origin(origins.join(", "))));
        }
        self.process(&mut st);
        // Conditional rich dependencies, re-evaluated until the chosen set stops growing.
        loop {
            let before = st.chosen.len();
            for (r, text, by) in std::mem::take(&mut st.pending) {
                if !self.holds(&st, &r) && !self.require_rich(&mut st, &r, &text, &by) {
                    st.failures.push(self.rich_failure(&text, &by));
                }
                st.pending.push((r, text, by));
            }
            self.process(&mut st);
            if st.chosen.len() == before {
                break;
            }
        }
        st
    }

    /// Packages of the solver's answer the walk did not reach: weak dependencies (a chosen
    /// package recommends them, or they supplement one) and what they require.
    fn adopt_rest(&self, st: &mut State, set: &HashSet<PkgId>) {
        let mut rest: Vec<PkgId> = set
            .iter()
            .filter(|i| !st.set.contains(i))
            .copied()
            .collect();
        rest.sort();
        while !rest.is_empty() {
            let pos = rest
                .iter()
                .position(|&id| self.weak_reason(st, id).is_some())
                .unwrap_or(0);
            let id = rest.remove(pos);
            let (why, by) = self.weak_reason(st, id).unwrap_or_else(|| {
                (
                    "libsolv's choice".to_owned(),
                    By::Origin("the solver".into()),
                )
            });
            self.add(st, id, why, by);
            self.process(st);
            rest.retain(|i| !st.set.contains(i));
        }
    }

    fn weak_reason(&self, st: &State, id: PkgId) -> Option<(String, By)> {
        for &c in &st.chosen {
            let p = self.pkg(c);
            for d in p.recommends.iter().chain(&p.suggests) {
                if self.provides(id, d) {
                    return Some((format!("{d} (weak)"), By::Package(c)));
                }
            }
        }
        for d in &self.pkg(id).supplements {
            if let Some(c) = self.satisfied(st, d) {
                return Some((format!("supplements {d}"), By::Package(c)));
            }
        }
        None
    }

    fn finish(&self, mut st: State) -> Resolution {
        let mut packages: Vec<Chosen> = st.chosen.iter().map(|&id| self.chosen(&st, id)).collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name).then(a.arch.cmp(&b.arch)));
        st.warnings.sort();
        st.warnings.dedup();
        Resolution {
            packages,
            warnings: st.warnings,
        }
    }

    fn check_conflicts(&self, st: &State) -> Result<(), ResolveError> {
        let mut out = Vec::new();
        for &a in &st.chosen {
            for c in &self.pkg(a).conflicts {
                for &b in &st.chosen {
                    if a != b && self.provides(b, c) {
                        out.push(format!(
                            "  {} conflicts with `{c}`, provided by {}",
                            self.pkg(a).nevra(),
                            self.pkg(b).nevra()
                        ));
                    }
                }
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(ResolveError::Conflicts(out))
        }
    }

    fn why(&self, st: &State, id: PkgId) -> String {
        let mut parts = vec![self.short(id)];
        let mut cur = id;
        let mut seen = HashSet::from([id]);
        while let Some((cap, by)) = st.reasons.get(&cur).and_then(|r| r.first()) {
            parts.push(cap.clone());
            match by {
                By::Package(p) if seen.insert(*p) => {
                    parts.push(self.short(*p));
                    cur = *p;
                }
                By::Package(_) => break,
                other => {
                    parts.push(self.label(other));
                    break;
                }
            }
        }
        parts.join(" ← ")
    }

    fn chosen(&self, st: &State, id: PkgId) -> Chosen {
        let p = self.pkg(id);
        let repo = &self.repos[id.repo as usize];
        let mut satisfies: Vec<String> = st
            .reasons
            .get(&id)
            .into_iter()
            .flatten()
            .map(|(cap, by)| format!("{cap} ← {}", self.label(by)))
            .collect();
        satisfies.dedup();
        Chosen {
            name: p.name.clone(),
            evr: p.evr.to_string(),
            arch: p.arch.clone(),
            nevra: p.nevra(),
            repo: repo.source.id.clone(),
            checksum: p.checksum.clone(),
            href: p.href.clone(),
            base_url: p
                .base
                .clone()
                .unwrap_or_else(|| repo.index.base_url.clone()),
            mirrors: match &p.base {
                // An xml:base names the one place the package lives.
                Some(_) => Vec::new(),
                None => repo
                    .source
                    .baseurls
                    .iter()
                    .filter(|m| {
                        m.trim_end_matches('/') != repo.index.base_url.trim_end_matches('/')
                    })
                    .cloned()
                    .collect(),
            },
            size: p.size,
            installed_size: p.installed_size,
            license: p.license.clone(),
            sourcerpm: p.sourcerpm.clone(),
            base: st.base.contains(&id),
            why: self.why(st, id),
            satisfies,
            id,
        }
    }
}

/// Sorts EVRs newest first (for listings).
pub fn newest_first(a: &Evr, b: &Evr) -> Ordering {
    b.cmp_total(a)
}
