//! `pbsimage catalog DIR|catalog.toml`: every job's image, one push plan, manifests, and a
//! summary (a table, or `--json`) with the distribution cost.

use std::path::PathBuf;

use super::args::CatalogArgs;
use super::{Env, Result};
use crate::ops::catalog::{BuildOptions, CatalogReport, CatalogRun, JobRow};
use crate::ops::update::UpdateStatus;

pub(super) fn exec(args: &CatalogArgs, env: &Env<'_>) -> Result<()> {
    let mut jobs = crate::catalog::discover(&args.catalog)?;
    let root = if args.catalog.is_dir() {
        args.catalog.clone()
    } else {
        args.catalog.parent().map(PathBuf::from).unwrap_or_default()
    };
    let revision = crate::catalog::revision(&jobs, &root);
    let shard = args
        .shard
        .as_deref()
        .map(crate::catalog::Shard::parse)
        .transpose()?;
    if let Some(shard) = &shard {
        jobs = shard.select(jobs, &root);
    }
    let mut ctx = env.context(args.image.offline)?;
    if let Some(out) = &args.emit_build_job {
        return emit_build_job(args, &ctx, out, env);
    }
    // Per-stage bars would interleave across jobs; the catalog shows its own spinner.
    ctx.reporter = std::sync::Arc::new(crate::progress::Silent);
    let (layout, manifests) = super::build::layout_and_choice(
        args.image.output.as_ref(),
        &args.image.object,
        &ctx.config,
    )?;
    let mut locked = args
        .locked
        .as_deref()
        .map(crate::ops::outputs::read_catalog_lock)
        .transpose()?;
    // An update compares with the lock instead of enforcing it, and rewrites it.
    let (update, lock_out) = match (args.update, locked.take()) {
        (true, Some(lock)) => (
            Some(crate::ops::update::UpdateRequest {
                lock,
                security_only: args.security_only,
            }),
            args.update_lock_out.clone().or_else(|| args.locked.clone()),
        ),
        (_, l) => {
            locked = l;
            (None, args.lock.clone())
        }
    };
    let mut push =
        super::build::push_target(&args.image.registry, &ctx.config, args.image.offline)?;
    if let (Some(p), Some(s)) = (push.as_mut(), &shard) {
        p.shard = Some((s.index, s.count));
    }
    let sign = super::sign::signing_key(&args.signing, &ctx.config)?;
    if sign.is_some() && push.is_none() {
        return Err(anyhow::anyhow!(
            "--sign needs a registry to push to (--push HOST or [registry] host)"
        )
        .into());
    }
    let run = CatalogRun {
        build: BuildOptions {
            jobs: args
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            layout,
            root,
            locked,
            user: crate::kube::JobUser::new(&ctx.config.settings.kube, manifests.run_as),
            update,
        },
        push,
        manifests,
        manifests_out: args.manifests_out.clone(),
        lock_out,
        prepull: args.prepull.clone(),
        sign,
        catalog: (revision, shard.map(|s| s.spec())),
    };
    let spinner =
        super::progress::spinner(env.printer.quiet, &format!("building {} jobs", jobs.len()));
    let report = crate::ops::catalog::run(&ctx, &jobs, &run);
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let report = report?;
    if args.json {
        env.printer.json(&report);
    } else {
        env.printer.data(&summary(&report));
    }
    if report.failed > 0 {
        return Err(anyhow::anyhow!(
            "{} of {} jobs failed (see the summary above)",
            report.failed,
            report.jobs.len()
        )
        .into());
    }
    Ok(())
}

/// `--emit-build-job FILE`: the Indexed Job that builds the catalog on the cluster.
fn emit_build_job(
    args: &CatalogArgs,
    ctx: &crate::ops::Context,
    out: &std::path::Path,
    env: &Env<'_>,
) -> Result<()> {
    let config = &ctx.config;
    let push =
        super::build::push_target(&args.image.registry, config, false)?.ok_or_else(|| {
            anyhow::anyhow!(
                "--emit-build-job: the pods push to a registry: give --push HOST or [registry] host"
            )
        })?;
    if args.build_shards == 0 {
        return Err(anyhow::anyhow!("--build-shards must be at least 1").into());
    }
    let (_, manifests) =
        super::build::layout_and_choice(args.image.output.as_ref(), &args.image.object, config)?;
    // The pods' settings: these, with the cache in the pod's own volume.
    let mut settings = config.settings.clone();
    settings.cache.dir = Some("/cache/pbsimage".into());
    let pipeline_toml = toml::to_string(&settings)
        .map_err(|e| anyhow::anyhow!("cannot write the pods' pipeline.toml: {e}"))?;
    let catalog = args.catalog_path.clone().unwrap_or_else(|| {
        if args.catalog.is_dir() {
            ".".into()
        } else {
            args.catalog
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    });
    let yaml = crate::kube::build_job::catalog_build_job(&crate::kube::build_job::BuildJob {
        name: "pbsimage-catalog-build",
        namespace: config.settings.kube.namespace.as_deref(),
        shards: args.build_shards,
        image: args.builder_image.as_deref().unwrap_or_default(),
        binary: &args.builder_binary,
        pipeline_toml: &pipeline_toml,
        catalog: &catalog,
        claim: &args.catalog_claim,
        registry: &push.host,
        registry_secret: args.registry_secret.as_deref(),
        plain_http: push.plain_http,
        run_as: manifests.run_as,
    })?;
    crate::ops::outputs::write_file(out, yaml.as_bytes())?;
    env.printer.data(&format!(
        "wrote {}: an Indexed Job of {} pods building the catalog from {} into {}",
        out.display(),
        args.build_shards,
        args.builder_image.as_deref().unwrap_or_default(),
        push.host
    ));
    Ok(())
}

/// With `--update`: what changed in each image, with its advisories, and the totals.
fn update_section(r: &CatalogReport) -> Option<String> {
    let u = r.update.as_ref()?;
    let mut out = vec![format!(
        "update: {} rebuilt, {} new, {} unchanged{}; a node holding the old images pulls {}",
        u.rebuilt,
        u.new,
        u.unchanged,
        if u.security_only {
            format!(", {} held (--security-only: no security advisory)", u.held)
        } else {
            String::new()
        },
        human(u.node_pull_bytes),
    )];
    for row in &r.jobs {
        let Some(up) = &row.update else { continue };
        let status = match (&row.failure, up.status) {
            (Some(_), _) => "failed",
            (None, UpdateStatus::Unchanged) => "unchanged",
            (None, UpdateStatus::Rebuilt) => "rebuilt",
            (None, UpdateStatus::New) => "new",
            (None, UpdateStatus::Held) => "held",
        };
        out.push(format!("  {}  {status}", row.job));
        for c in &up.changes {
            let advisories: Vec<String> = c
                .advisories
                .iter()
                .map(|a| {
                    let mut s = format!("{} ({}", a.id, a.kind);
                    if let Some(sev) = &a.severity {
                        s.push_str(&format!(", {sev}"));
                    }
                    if !a.cves.is_empty() {
                        s.push_str(&format!(": {}", a.cves.join(" ")));
                    }
                    s + ")"
                })
                .collect();
            if advisories.is_empty() {
                out.push(format!("    {}", c.describe()));
            } else {
                out.push(format!("    {}  {}", c.describe(), advisories.join(", ")));
            }
        }
    }
    out.extend(u.warnings.iter().map(|w| format!("warning: {w}")));
    Some(out.join("\n"))
}

/// The table and the two summary lines (and, with `--update`, what changed).
fn summary(r: &CatalogReport) -> String {
    let base = summary_lines(r);
    match update_section(r) {
        Some(u) => format!("{base}\n{u}"),
        None => base,
    }
}

fn summary_lines(r: &CatalogReport) -> String {
    let pushed = if r.pushed {
        format!(", {} bytes pushed", r.bytes_pushed)
    } else {
        String::new()
    };
    format!(
        "{}\n{} of {} jobs built in {:.2} s; {} distinct layers, {} bytes{pushed}\n\
         distribution: a node pulls {} bytes to run every job once (layers reused), against {} \
         bytes with a full image per job: {:.3}",
        table(&r.jobs),
        r.succeeded,
        r.jobs.len(),
        r.seconds,
        r.unique_layers,
        r.distribution.with_reuse,
        r.distribution.with_reuse,
        r.distribution.full_images,
        r.distribution.ratio
    )
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn table(rows: &[JobRow]) -> String {
    let mut lines = vec![[
        "JOB".to_string(),
        "LAYERS shared/own".into(),
        "NEW".into(),
        "TIME".into(),
        "IMAGE OR ERROR".into(),
    ]];
    for r in rows {
        lines.push([
            r.job.clone(),
            if r.failure.is_some() && r.layers == 0 {
                "-".into()
            } else {
                format!("{}/{}", r.layers_shared, r.layers_own)
            },
            human(r.bytes_new),
            format!("{:.2}s", r.seconds),
            match &r.failure {
                Some(f) => format!("FAILED at {}: {}", f.stage, f.error.replace('\n', " ")),
                None => r.reference.clone().unwrap_or_default(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|l| {
            let mut s = String::new();
            for c in 0..4 {
                s.push_str(&format!("{:<w$}  ", l[c], w = widths[c]));
            }
            s.push_str(&l[4]);
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `pbsimage catalog-merge`: the shard reports as one catalog report.
pub(super) fn merge(args: &super::args::MergeArgs, env: &Env<'_>) -> Result<()> {
    let mut reports = Vec::new();
    for path in &args.reports {
        let bad = |why: String| crate::ops::catalog::MergeError::Read {
            path: path.clone(),
            why,
        };
        let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let report: CatalogReport = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not a catalog --json report: {e}")))?;
        reports.push((path.clone(), report));
    }
    let report = crate::ops::catalog::merge(reports)?;
    if let Some(out) = &args.lock_out {
        let mut locks = Vec::new();
        for path in &args.locks {
            locks.push(crate::ops::outputs::read_catalog_lock(path)?);
        }
        let merged = crate::resolve::lock::CatalogLock::merge(locks).map_err(|job| {
            anyhow::anyhow!(
                "job `{job}` is in two of the shards' locks; give each shard's lock once"
            )
        })?;
        crate::ops::outputs::write_catalog_lock(out, &merged)?;
    }
    if let Some(path) = &args.prepull {
        let config = env.config()?;
        let k = &config.settings.kube;
        let run_as = crate::kube::RunAs::resolve(None, k.run_as_user, k.run_as_group)?;
        let images: Vec<(String, String)> = report
            .jobs
            .iter()
            .filter_map(|j| Some((j.job.clone(), j.reference.clone()?)))
            .collect();
        let yaml = crate::kube::prepull_daemonset(
            "pbsimage-prepull",
            k.namespace.as_deref(),
            &images,
            run_as,
        )?;
        crate::ops::outputs::write_file(path, yaml.as_bytes())?;
    }
    if args.json {
        env.printer.json(&report);
    } else {
        env.printer.data(&summary(&report));
    }
    Ok(())
}
