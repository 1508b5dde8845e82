//! libsolv, as dnf drives it: a pool fed from pbsimage's own index, jobs for the needs, and
//! the solver flags libdnf sets. The C side is `shim.c` (built by build.rs against the
//! system libsolv), so that libsolv's structs and constants stay C's business.
//!
//! Ids are libsolv's solvable ids; [`Pool::locate`] maps one back to its repository and
//! package ordinal, which is how the answer returns to [`super::PkgId`]s.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::NonNull;

use super::rich::Rich;
use crate::repo::evr::Cmp;
use crate::repo::metadata::{Dep, Package};

/// libsolv's solvable id.
pub(crate) type Id = c_int;

#[repr(C)]
struct RawPool {
    _private: [u8; 0],
}

#[repr(C)]
struct RawRepo {
    _private: [u8; 0],
}

#[repr(C)]
struct RawResult {
    install: *mut Id,
    ninstall: c_int,
    problems: *mut c_char,
}

unsafe extern "C" {
    fn pbs_pool_new(arch: *const c_char) -> *mut RawPool;
    fn pbs_pool_free(pool: *mut RawPool);
    fn pbs_repo_new(
        pool: *mut RawPool,
        name: *const c_char,
        priority: c_int,
        cost: c_int,
    ) -> *mut RawRepo;
    fn pbs_solvable_new(
        repo: *mut RawRepo,
        name: *const c_char,
        evr: *const c_char,
        arch: *const c_char,
    ) -> Id;
    fn pbs_dep_atom(
        pool: *mut RawPool,
        name: *const c_char,
        flags: c_int,
        evr: *const c_char,
    ) -> Id;
    fn pbs_dep_rel(pool: *mut RawPool, a: Id, b: Id, op: c_int) -> Id;
    fn pbs_solvable_dep(repo: *mut RawRepo, p: Id, kind: c_int, dep: Id, pre: c_int) -> c_int;
    fn pbs_solvable_self_provide(repo: *mut RawRepo, p: Id);
    fn pbs_repo_done(repo: *mut RawRepo);
    fn pbs_pool_ready(pool: *mut RawPool);
    fn pbs_solve(
        pool: *mut RawPool,
        n: c_int,
        kinds: *const c_int,
        deps: *const Id,
        ids: *const Id,
        starts: *const c_int,
        lens: *const c_int,
        best: c_int,
        weak: c_int,
    ) -> *mut RawResult;
    fn pbs_result_free(r: *mut RawResult);
    fn pbs_pool_file_requires(pool: *mut RawPool) -> *mut c_char;
    fn pbs_free(p: *mut c_char);
    fn pbs_solvable_provide_file(pool: *mut RawPool, p: Id, path: *const c_char);
}

/// Dependency kinds, numbered as in shim.c.
#[derive(Clone, Copy)]
enum Kind {
    Provides = 0,
    Requires = 1,
    Conflicts = 2,
    Obsoletes = 3,
    Recommends = 4,
    Suggests = 5,
    Supplements = 6,
    Enhances = 7,
}

/// libsolv's REL_* bits of a comparison.
fn rel_flags(cmp: Option<Cmp>) -> c_int {
    match cmp {
        None => 0,
        Some(Cmp::Gt) => 1,
        Some(Cmp::Eq) => 2,
        Some(Cmp::Ge) => 3,
        Some(Cmp::Lt) => 4,
        Some(Cmp::Le) => 6,
    }
}

/// A C string of `s`; metadata strings with a NUL in them (hostile input) are cut there.
fn cstr(s: &str) -> CString {
    let cut = s.split('\0').next().unwrap_or_default();
    CString::new(cut).expect("no NUL left")
}

/// What a job asks for.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// Any provider of a capability or file, versioned or rich (`dnf install 'libc.so.6()(64bit)'`).
    Provides(Dep),
    /// Any one of these packages (dnf's selector of a package set).
    OneOf(Vec<Id>),
}

/// One loaded repository's solvables.
struct RepoSpan {
    /// The first solvable's id (they are consecutive).
    start: Id,
    /// The package ordinal (in its repository's index) of each solvable.
    ordinals: Vec<u32>,
}

/// A libsolv pool. Not `Send`: it lives and dies on one thread.
pub(crate) struct Pool {
    raw: NonNull<RawPool>,
    repos: Vec<RepoSpan>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool was created by pbs_pool_new and is freed once, here.
        unsafe { pbs_pool_free(self.raw.as_ptr()) }
    }
}

impl Pool {
    /// An empty pool for packages of `arch` (and what libsolv deems compatible: noarch,
    /// i686 beside x86_64, …).
    pub(crate) fn new(arch: &str) -> Pool {
        let a = cstr(arch);
        // SAFETY: a valid C string; the shim returns a fresh pool.
        let raw = unsafe { pbs_pool_new(a.as_ptr()) };
        Pool {
            raw: NonNull::new(raw).expect("libsolv allocates or aborts"),
            repos: Vec::new(),
        }
    }

    /// Adds a repository's `packages` (ordinal in its index, package), in ordinal order.
    /// `priority` and `cost` are dnf's.
    pub(crate) fn add_repo<'p>(
        &mut self,
        name: &str,
        priority: u32,
        cost: u32,
        packages: impl Iterator<Item = (u32, &'p Package)>,
    ) {
        let n = cstr(name);
        let clamp = |v: u32| c_int::try_from(v).unwrap_or(c_int::MAX);
        // SAFETY: the pool is live; the name is a valid C string (copied by libsolv).
        let repo =
            unsafe { pbs_repo_new(self.raw.as_ptr(), n.as_ptr(), clamp(priority), clamp(cost)) };
        let mut start = None;
        let mut ordinals = Vec::new();
        for (ordinal, p) in packages {
            let id = self.add_package(repo, p);
            start.get_or_insert(id);
            ordinals.push(ordinal);
        }
        // SAFETY: as above.
        unsafe { pbs_repo_done(repo) };
        debug_assert!(ordinals.is_sorted());
        self.repos.push(RepoSpan {
            start: start.unwrap_or(0),
            ordinals,
        });
    }

    /// The paths packages require (for their owners to provide, as libsolv's
    /// addfileprovides does from file lists).
    pub(crate) fn file_requires(&mut self) -> Vec<String> {
        // SAFETY: the pool is live; the shim returns NULL or a string it allocated.
        unsafe {
            let p = pbs_pool_file_requires(self.raw.as_ptr());
            if p.is_null() {
                return Vec::new();
            }
            let out = CStr::from_ptr(p)
                .to_string_lossy()
                .lines()
                .map(str::to_owned)
                .collect();
            pbs_free(p);
            out
        }
    }

    /// Lets the package `ordinal` of repository `repo` provide `path` (if it is in the pool).
    pub(crate) fn provide_file(&mut self, repo: usize, ordinal: u32, path: &str) {
        let Some(id) = self.id(repo, ordinal) else {
            return;
        };
        let c = cstr(path);
        // SAFETY: the pool is live and `id` one of its solvables.
        unsafe { pbs_solvable_provide_file(self.raw.as_ptr(), id, c.as_ptr()) }
    }

    fn add_package(&mut self, repo: *mut RawRepo, p: &Package) -> Id {
        let (name, evr, arch) = (cstr(&p.name), cstr(&p.evr.to_string()), cstr(&p.arch));
        // SAFETY: a live repository; C strings valid for the call (libsolv interns them).
        let id = unsafe { pbs_solvable_new(repo, name.as_ptr(), evr.as_ptr(), arch.as_ptr()) };
        let lists: [(&[Dep], Kind); 8] = [
            (&p.provides, Kind::Provides),
            (&p.requires, Kind::Requires),
            (&p.conflicts, Kind::Conflicts),
            (&p.obsoletes, Kind::Obsoletes),
            (&p.recommends, Kind::Recommends),
            (&p.suggests, Kind::Suggests),
            (&p.supplements, Kind::Supplements),
            (&p.enhances, Kind::Enhances),
        ];
        for (deps, kind) in lists {
            // rpm itself provides rpmlib(…); libsolv's own rpm-md reader drops them too.
            for d in deps.iter().filter(|d| !d.name.starts_with("rpmlib(")) {
                self.add_dep(repo, id, kind, d);
            }
        }
        // SAFETY: as above.
        unsafe { pbs_solvable_self_provide(repo, id) };
        id
    }

    fn add_dep(&mut self, repo: *mut RawRepo, id: Id, kind: Kind, d: &Dep) {
        let dep = self.dep_id(d);
        // SAFETY: a live repository and solvable. A rich dependency that does not parse
        // (0) is dropped, as libsolv's own readers do.
        unsafe { pbs_solvable_dep(repo, id, kind as c_int, dep, c_int::from(d.pre)) };
    }

    /// libsolv's id of a dependency: a name, a versioned one, or a rich expression built
    /// from pbsimage's own parse of it (0 if it does not parse).
    fn dep_id(&self, d: &Dep) -> Id {
        if d.is_rich() {
            return match super::rich::parse(&d.name) {
                Ok(r) => self.rich_id(&r),
                Err(_) => 0,
            };
        }
        let name = cstr(&d.name);
        let evr = d.evr.as_ref().map(|e| cstr(&e.to_string()));
        let evr_ptr = evr.as_ref().map_or(std::ptr::null(), |e| e.as_ptr());
        // SAFETY: the pool is live; strings valid for the call (libsolv interns them).
        unsafe { pbs_dep_atom(self.raw.as_ptr(), name.as_ptr(), rel_flags(d.cmp), evr_ptr) }
    }

    /// A rich dependency as libsolv's rpm parser builds it: binary operators folded left,
    /// `(a if b else c)` as IF(a, ELSE(b, c)).
    fn rich_id(&self, r: &Rich) -> Id {
        const AND: c_int = 0;
        const OR: c_int = 1;
        const WITH: c_int = 2;
        const WITHOUT: c_int = 3;
        const IF: c_int = 4;
        const UNLESS: c_int = 5;
        const ELSE: c_int = 6;
        // SAFETY: the pool is live; the shim refuses unknown operators and 0 operands.
        let rel = |a: Id, b: Id, op: c_int| unsafe { pbs_dep_rel(self.raw.as_ptr(), a, b, op) };
        let fold = |v: &[Rich], op: c_int| {
            let mut ids = v.iter().map(|x| self.rich_id(x));
            let first = ids.next().unwrap_or(0);
            ids.fold(first, |acc, x| rel(acc, x, op))
        };
        match r {
            Rich::Atom(d) => self.dep_id(d),
            Rich::And(v) => fold(v, AND),
            Rich::Or(v) => fold(v, OR),
            Rich::With(v) => fold(v, WITH),
            Rich::Without(a, b) => rel(self.rich_id(a), self.rich_id(b), WITHOUT),
            Rich::If(a, c, e) | Rich::Unless(a, c, e) => {
                let op = if matches!(r, Rich::If(..)) {
                    IF
                } else {
                    UNLESS
                };
                let cond = match e {
                    Some(e) => rel(self.rich_id(c), self.rich_id(e), ELSE),
                    None => self.rich_id(c),
                };
                rel(self.rich_id(a), cond, op)
            }
        }
    }

    /// The solvable id of a package, if it is in the pool.
    pub(crate) fn id(&self, repo: usize, ordinal: u32) -> Option<Id> {
        let span = self.repos.get(repo)?;
        let i = span.ordinals.binary_search(&ordinal).ok()?;
        Some(span.start + Id::try_from(i).ok()?)
    }

    /// Where a solvable comes from: (repository, package ordinal).
    pub(crate) fn locate(&self, id: Id) -> Option<(usize, u32)> {
        self.repos.iter().enumerate().find_map(|(r, span)| {
            let i = usize::try_from(id.checked_sub(span.start)?).ok()?;
            span.ordinals.get(i).map(|&o| (r, o))
        })
    }

    /// Indexes what provides what; call once, after the last repository and exclusion.
    pub(crate) fn ready(&mut self) {
        // SAFETY: the pool is live.
        unsafe { pbs_pool_ready(self.raw.as_ptr()) }
    }

    /// Solves `jobs` as `dnf install` would (`best`: dnf's `best=True`; `weak`:
    /// `install_weak_deps`). Returns the solvables to install, or libsolv's problem lines.
    pub(crate) fn solve(
        &self,
        jobs: &[Job],
        best: bool,
        weak: bool,
    ) -> Result<Vec<Id>, Vec<String>> {
        let mut kinds = Vec::with_capacity(jobs.len());
        let mut deps: Vec<Id> = Vec::with_capacity(jobs.len());
        let mut ids: Vec<Id> = Vec::new();
        let mut starts = Vec::with_capacity(jobs.len());
        let mut lens = Vec::with_capacity(jobs.len());
        let count = |n: usize| c_int::try_from(n).expect("fewer than 2^31 packages");
        for j in jobs {
            starts.push(count(ids.len()));
            let (k, dep) = match j {
                Job::Provides(d) => (1, self.dep_id(d)),
                Job::OneOf(set) => {
                    ids.extend_from_slice(set);
                    (2, 0)
                }
            };
            lens.push(count(ids.len()) - starts.last().copied().unwrap_or(0));
            kinds.push(k);
            deps.push(dep);
        }
        let n = c_int::try_from(jobs.len()).expect("fewer than 2^31 jobs");
        // SAFETY: every array holds `n` elements that outlive the call; the pool is ready.
        let r = unsafe {
            pbs_solve(
                self.raw.as_ptr(),
                n,
                kinds.as_ptr(),
                deps.as_ptr(),
                ids.as_ptr(),
                starts.as_ptr(),
                lens.as_ptr(),
                c_int::from(best),
                c_int::from(weak),
            )
        };
        // SAFETY: the shim returns a result it allocated; read it, then free it once.
        unsafe {
            let res = &*r;
            let out = if res.problems.is_null() {
                let n = usize::try_from(res.ninstall).unwrap_or(0);
                let ids = if n == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(res.install, n).to_vec()
                };
                Ok(ids)
            } else {
                let text = CStr::from_ptr(res.problems).to_string_lossy().into_owned();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines.dedup();
                Err(lines)
            };
            pbs_result_free(r);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::evr::Evr;

    /// An unversioned dependency on `name`.
    fn plain(name: &str) -> Dep {
        Dep {
            name: name.to_owned(),
            cmp: None,
            evr: None,
            pre: false,
        }
    }

    fn pkg(name: &str, version: &str, provides: &[&str], requires: &[&str]) -> Package {
        let mut p = Package {
            name: name.to_owned(),
            arch: "x86_64".to_owned(),
            evr: Evr::new(None, version, Some("1")),
            href: format!("{name}.rpm"),
            ..Package::empty()
        };
        p.provides = provides.iter().map(|s| plain(s)).collect();
        p.requires = requires.iter().map(|s| plain(s)).collect();
        p
    }

    #[test]
    fn solves_and_backtracks_to_an_older_version() {
        // app needs lib; lib-2 needs what nothing provides, lib-1 is installable: dnf (and
        // libsolv) take lib-1.
        let pkgs = [
            pkg("app", "1", &[], &["lib"]),
            pkg("lib", "2", &[], &["missing"]),
            pkg("lib", "1", &[], &[]),
        ];
        let mut pool = Pool::new("x86_64");
        pool.add_repo("r", 99, 1000, (0..).zip(pkgs.iter()));
        pool.ready();
        let ids = pool
            .solve(&[Job::Provides(plain("app"))], true, false)
            .unwrap();
        let mut got: Vec<String> = ids
            .iter()
            .map(|&i| {
                let (_, o) = pool.locate(i).unwrap();
                pkgs[o as usize].nevra()
            })
            .collect();
        got.sort();
        assert_eq!(got, ["app-1-1.x86_64", "lib-1-1.x86_64"]);
        // Nothing provides `nope`: the problem says so.
        let err = pool
            .solve(&[Job::Provides(plain("nope"))], true, false)
            .unwrap_err();
        assert!(err.iter().any(|l| l.contains("nope")), "{err:?}");
    }
}
