//! Resolve: a job's needs, the repositories (file lists when a need calls for them) and the
//! packages that satisfy them.

use std::path::Path;

use super::{Context, OpsError};
use crate::elf::Arch;
use crate::job::JobSpec;
use crate::needs::{Needs, NeedsAnalyzer};
use crate::repo::Repo;
use crate::resolve::lock::Lock;
use crate::resolve::{Resolution, ResolveError, Resolver};

/// A job resolved: what it needs, the repositories it was resolved against, and the packages.
pub struct Resolved {
    /// What the job needs.
    pub needs: Needs,
    /// The repositories, as loaded.
    pub repos: Vec<Repo>,
    /// The packages chosen, and why.
    pub resolution: Resolution,
}

/// What the job needs (ELF analysis of its binary, its script's commands, `[needs] extra`).
pub fn needs(ctx: &Context, job: &JobSpec) -> Result<Needs, OpsError> {
    needs_for(&ctx.config, job)
}

/// What `job` needs under `config` (`pbsimage needs` too): the analysis of its binary and
/// script, and what the Kubernetes side adds (the sshd and ssh client of `[kube] mpi`'s ssh
/// modes).
pub fn needs_for(config: &crate::config::Config, job: &JobSpec) -> Result<Needs, OpsError> {
    let s = &config.settings;
    let mut needs = NeedsAnalyzer {
        settings: &s.needs,
        basearch: s.vars.get("basearch").map(String::as_str),
        default_shell: &s.kube.default_shell,
    }
    .analyze(job)?;
    // Sister nodes run sshd, and node 0's mpirun reaches them with ssh.
    if s.kube.mpi.uses_ssh() && crate::kube::node_count(job) > 1 {
        needs.add_extra(
            &["/usr/sbin/sshd".to_owned(), "/usr/bin/ssh".to_owned()],
            &format!("[kube] mpi = \"{}\"", s.kube.mpi.as_str()),
        )?;
    }
    Ok(needs)
}

/// Loads every enabled repository, concurrently; file lists too when one of `needs` has a
/// path that primary.xml cannot list (read concurrently with primary.xml).
pub fn load_repos(ctx: &Context, needs: &[&Needs]) -> Result<Vec<Repo>, OpsError> {
    let with_filelists = needs.iter().any(|n| {
        n.needs.iter().any(|x| {
            let paths = x.kind.paths();
            !paths.is_empty()
                && paths
                    .iter()
                    .all(|p| !crate::repo::RepoIndex::primary_lists(p))
        })
    });
    let sources = crate::repo::sources(&ctx.config)?;
    if sources.is_empty() {
        return Err(OpsError::NoRepos(ctx.config.origin.to_string()));
    }
    let loader = ctx.loader();
    let repos = ctx.block_on(async {
        futures_util::future::join_all(sources.iter().map(|s| loader.load(s, with_filelists))).await
    });
    repos
        .into_iter()
        .map(|r| r.map_err(OpsError::from))
        .collect()
}

/// Package architectures allowed for a job, best first: `[vars] basearch` (else the
/// binary's), the binary's own, then `noarch`.
pub fn arches(ctx: &Context, needs: &Needs) -> Vec<&'static str> {
    let basearch = ctx
        .config
        .settings
        .vars
        .get("basearch")
        .and_then(|b| Arch::parse_basearch(b))
        .unwrap_or(needs.arch);
    let mut out: Vec<&'static str> = Vec::new();
    let arches = basearch
        .package_arches()
        .iter()
        .chain(&needs.package_arches);
    for a in arches.copied().filter(|a| *a != "noarch") {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out.push("noarch");
    out
}

/// Resolves needs and the base packages; loads file lists and tries again when a file need
/// calls for them. An answer read from a cached index found damaged meanwhile is thrown
/// away: that index is removed, built again, and the resolution made again.
pub fn resolve(ctx: &Context, repos: &mut [Repo], needs: &Needs) -> Result<Resolution, OpsError> {
    let answer = resolve_once(ctx, repos, needs);
    if !repos.iter().any(|r| r.index.is_damaged()) {
        return answer;
    }
    let loader = ctx.loader();
    for r in repos.iter_mut() {
        if r.index.is_damaged() {
            tracing::warn!(repo = %r.source.id, "its cached index was damaged: building it again");
            loader.forget(r)?;
            let with_files = r.index.all_files.is_some();
            *r = ctx.block_on(loader.load(&r.source, with_files))?;
        }
    }
    resolve_once(ctx, repos, needs)
}

/// [`resolve`], then, when the script loads modules, again if their modulefiles put
/// commands elsewhere than EL's convention guessed ([`super::modules::refine`]).
pub fn resolve_with_modules(
    ctx: &Context,
    repos: &mut [Repo],
    needs: &mut Needs,
) -> Result<Resolution, OpsError> {
    let first = resolve(ctx, repos, needs)?;
    if super::modules::refine(ctx, needs, &first)? {
        resolve(ctx, repos, needs)
    } else {
        Ok(first)
    }
}

fn resolve_once(ctx: &Context, repos: &mut [Repo], needs: &Needs) -> Result<Resolution, OpsError> {
    let arches = arches(ctx, needs);
    let base = &ctx.config.settings.base.packages;
    let weak = ctx.config.settings.needs.weak_deps;
    match Resolver::new(repos, &arches, weak).resolve(needs, base) {
        Err(ResolveError::NeedsFilelists) => {
            let loader = ctx.loader();
            ctx.block_on(async {
                for r in repos.iter_mut() {
                    loader.load_filelists(r).await?;
                }
                Ok::<(), crate::repo::RepoError>(())
            })?;
            Resolver::new(repos, &arches, weak)
                .resolve(needs, base)
                .map_err(|e| match e {
                    ResolveError::NeedsFilelists => ResolveError::Unsatisfied {
                        failures: Vec::new(),
                    },
                    e => e,
                })
                .map_err(OpsError::from)
        }
        r => Ok(r?),
    }
}

/// Needs, repositories and resolution for one job.
pub fn resolve_job(ctx: &Context, job: &JobSpec) -> Result<Resolved, OpsError> {
    let mut needs = needs(ctx, job)?;
    let mut repos = load_repos(ctx, &[&needs])?;
    let resolution = resolve_with_modules(ctx, &mut repos, &mut needs)?;
    Ok(Resolved {
        needs,
        repos,
        resolution,
    })
}

/// Checks a resolution against a lock file's: same repository revisions, same packages.
pub fn check_lock(path: &Path, lock: &Lock, resolved: &Resolved) -> Result<(), OpsError> {
    let now = Lock::new(&lock.job, &resolved.repos, &resolved.resolution);
    let drift = lock.drift(&now);
    if drift.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Drift {
            path: path.to_owned(),
            drift,
        })
    }
}
