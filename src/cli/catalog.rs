//! `pbsimage catalog DIR|catalog.toml`: every job's image, one push plan, manifests, and a
//! summary (a table, or `--json`) with the distribution cost.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::Printer;
use super::args::CatalogArgs;
use crate::catalog::{self, Failure};
use crate::config::Config;

#[derive(serde::Serialize)]
struct JobRow {
    job: String,
    script: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_digest: Option<String>,
    layers: usize,
    /// Layers this image shares with another image of the catalog.
    layers_shared: usize,
    layers_own: usize,
    /// Bytes this job added: uploaded when pushing, else newly built layers.
    bytes_new: u64,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_out: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
}

pub fn run(args: &CatalogArgs, config: Config, printer: &Printer) -> Result<()> {
    let started = std::time::Instant::now();
    let jobs = catalog::discover(&args.catalog)?;
    let (layout, run_as) =
        super::build::layout_and_run_as(args.output.as_deref(), args.run_as.as_deref(), &config)?;
    let target = super::build::push_target(&args.registry, &config, args.offline)?;
    let mut ctx = super::context(config, args.offline, printer)?;
    // Per-stage bars would interleave across jobs; the catalog shows its own.
    ctx.reporter = std::sync::Arc::new(crate::progress::Silent);
    let bar = super::progress::interactive(printer.quiet).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message(format!("building {} jobs", jobs.len()));
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let root = if args.catalog.is_dir() {
        args.catalog.clone()
    } else {
        args.catalog.parent().map(PathBuf::from).unwrap_or_default()
    };
    let locked = match &args.locked {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--locked: cannot read `{}`", path.display()))?;
            Some(
                toml::from_str::<crate::resolve::lock::CatalogLock>(&text).with_context(|| {
                    format!("`{}` is not a pbsimage catalog lock", path.display())
                })?,
            )
        }
        None => None,
    };
    let results = catalog::build(
        &ctx,
        &jobs,
        &catalog::Options {
            jobs: args.jobs.unwrap_or(cores),
            layout: layout.clone(),
            root,
            locked,
        },
    )?;
    if let Some(path) = &args.lock {
        let lock = crate::resolve::lock::CatalogLock {
            version: 1,
            jobs: results
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|j| j.lock.clone()))
                .collect(),
        };
        crate::cache::write_file_atomic(path, lock.to_toml().as_bytes())
            .with_context(|| format!("cannot write the lock file `{}`", path.display()))?;
    }
    // The images built, with their job's index.
    let (built_at, images): (Vec<usize>, Vec<&crate::pipeline::Built>) = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|j| (i, &j.built)))
        .unzip();
    // One push plan for every image built.
    let mut pushed: BTreeMap<usize, Result<(String, crate::registry::PushReport), Failure>> =
        BTreeMap::new();
    let pushing = target.is_some();
    if let Some(t) = target {
        if let Some(b) = &bar {
            b.set_message(format!("pushing {} images to {}", images.len(), t.host));
        }
        let out = ctx.push_many(&images, &t.host, t.plain_http, t.credentials)?;
        for (&i, r) in built_at.iter().zip(out) {
            pushed.insert(
                i,
                r.map_err(|e| Failure {
                    stage: "push",
                    error: e.to_string(),
                    hint: e.hint(),
                }),
            );
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let counts = catalog::layer_counts(&images);
    let s = &ctx.config.settings;
    let mut rows = Vec::new();
    let mut seen_new = std::collections::BTreeSet::new();
    let mut references: Vec<(String, String)> = Vec::new();
    for (i, (job, r)) in jobs.iter().zip(&results).enumerate() {
        let name_of = |spec: Option<&crate::job::JobSpec>| {
            spec.map(|s| s.name.to_string()).unwrap_or_else(|| {
                job.script
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| job.script.display().to_string())
            })
        };
        let jb = match r {
            Err(f) => {
                rows.push(JobRow {
                    job: name_of(None),
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
                });
                continue;
            }
            Ok(jb) => jb,
        };
        let b = &jb.built;
        let layers = &b.layers.layers;
        let shared = layers
            .iter()
            .filter(|l| counts.get(&l.layer.digest).copied().unwrap_or(0) > 1)
            .count();
        let mut row = JobRow {
            job: name_of(Some(&jb.spec)),
            script: job.script.clone(),
            reference: Some(b.reference.clone()),
            manifest_digest: Some(b.image.manifest_digest.clone()),
            layers: layers.len(),
            layers_shared: shared,
            layers_own: layers.len() - shared,
            bytes_new: layers
                .iter()
                .filter(|l| !l.cached && seen_new.insert(l.layer.digest.clone()))
                .map(|l| l.layer.size)
                .sum(),
            seconds: jb.seconds,
            manifest_out: None,
            failure: None,
        };
        let mut reference = b.reference.clone();
        match pushed.get(&i) {
            Some(Ok((r, report))) => {
                reference = r.clone();
                row.reference = Some(r.clone());
                row.bytes_new = report.bytes;
            }
            Some(Err(f)) => {
                row.failure = Some(f.clone());
                rows.push(row);
                continue;
            }
            None => {}
        }
        // The manifest and SBOM, beside the script or in --manifests-out.
        let written = (|| -> Result<PathBuf> {
            let (dir, stem) = match &args.manifests_out {
                Some(d) => (d.clone(), jb.spec.name.dns_label(63)),
                None => (
                    job.script.parent().map(PathBuf::from).unwrap_or_default(),
                    job.script
                        .file_stem()
                        .map(|x| x.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "job".into()),
                ),
            };
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
            let out = dir.join(format!("{stem}.k8s.yaml"));
            super::build::write_outputs(
                s,
                &jb.spec,
                b,
                &reference,
                job.kind.or(args.kind).unwrap_or(s.kube.kind),
                run_as,
                &out,
                &dir.join(format!("{stem}.spdx.json")),
            )?;
            Ok(out)
        })();
        match written {
            Ok(p) => {
                row.manifest_out = Some(p);
                references.push((jb.spec.name.dns_label(40), reference));
            }
            Err(e) => {
                row.failure = Some(Failure {
                    stage: "manifest",
                    error: format!("{e:#}"),
                    hint: None,
                });
            }
        }
        rows.push(row);
    }
    if let Some(path) = &args.prepull {
        let yaml = crate::kube::prepull_daemonset(
            "pbsimage-prepull",
            s.kube.namespace.as_deref(),
            &references,
            run_as,
        )?;
        crate::cache::write_file_atomic(path, yaml.as_bytes())
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let ok_images: Vec<&crate::pipeline::Built> = results
        .iter()
        .zip(&rows)
        .filter(|(_, row)| row.failure.is_none())
        .filter_map(|(r, _)| r.as_ref().ok().map(|j| &j.built))
        .collect();
    let distribution = catalog::distribution(&ok_images);
    let failed = rows.iter().filter(|r| r.failure.is_some()).count();
    let pushed_bytes: u64 = pushed
        .values()
        .filter_map(|r| r.as_ref().ok())
        .map(|(_, rep)| rep.bytes)
        .sum();
    let unique_layers = counts.len();
    if args.json {
        printer.data(&serde_json::to_string_pretty(&serde_json::json!({
            "jobs": rows,
            "succeeded": rows.len() - failed,
            "failed": failed,
            "layout": layout,
            "unique_layers": unique_layers,
            "unique_bytes": distribution.with_reuse,
            "bytes_pushed": pushed_bytes,
            "distribution": distribution,
            "seconds": started.elapsed().as_secs_f64(),
        }))?);
    } else {
        printer.data(&table(&rows));
        printer.data(&format!(
            "{} of {} jobs built in {:.2} s; {} distinct layers, {} bytes{}",
            rows.len() - failed,
            rows.len(),
            started.elapsed().as_secs_f64(),
            unique_layers,
            distribution.with_reuse,
            if pushing {
                format!(", {pushed_bytes} bytes pushed")
            } else {
                String::new()
            }
        ));
        printer.data(&format!(
            "distribution: a node pulls {} bytes to run every job once (layers reused), against {} bytes with a full image per job: {:.3}",
            distribution.with_reuse, distribution.full_images, distribution.ratio
        ));
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} jobs failed (see the summary above)",
            rows.len()
        );
    }
    Ok(())
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
