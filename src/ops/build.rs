//! Build: the whole pipeline for one job, read top to bottom — resolve, (lock check), fetch
//! and layers, image into a layout. Pushing and the files beside the job are the caller's
//! next steps ([`super::push`], [`super::outputs`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::image::{ImageInput, ImageName};
use super::layers::Popularity;
use super::{Context, Layers, OpsError, Resolved};
use crate::image::oci::Image;
use crate::job::JobSpec;
use crate::needs::Needs;
use crate::repo::Repo;
use crate::resolve::Resolution;
use crate::resolve::lock::Lock;

/// Per-job choices of [`build_resolved`].
#[derive(Default)]
pub struct JobOptions<'a> {
    /// Replaces the job's name in the `[image] repository` and `tag` templates (a catalog's
    /// per-job `image`).
    pub name: Option<&'a str>,
    /// See [`super::layers::layers`].
    pub popularity: Option<&'a Popularity>,
    /// The account the job runs as, added to the image's `/etc/passwd` and `/etc/group`.
    pub user: Option<&'a crate::kube::JobUser>,
}

/// A built image in an OCI layout.
#[derive(Debug, Clone)]
pub struct Built {
    /// Config and manifest, with their digests.
    pub image: Image,
    /// Its layers and what they hold.
    pub layers: Layers,
    /// `repository@sha256:...` (without a registry host until pushed).
    pub reference: String,
    /// Repository and tag.
    pub name: ImageName,
    /// The OCI layout it was written to.
    pub layout: PathBuf,
    /// Seconds per stage: `resolve` (needs, metadata, resolution), `layers` (download and
    /// layers), `image` (config, manifest, layout).
    pub timings: BTreeMap<&'static str, f64>,
}

/// The whole pipeline for one job, up to an OCI layout at `layout`. With `locked`, the
/// resolution must equal that lock file's (same repository revisions, same packages).
pub fn build_job(
    ctx: &Context,
    job: &JobSpec,
    layout: &Path,
    locked: Option<(&Path, &Lock)>,
    user: &crate::kube::JobUser,
) -> Result<(Resolved, Built), OpsError> {
    let clock = Instant::now();
    let resolved = super::resolve::resolve_job(ctx, job)?;
    if let Some((path, lock)) = locked {
        super::resolve::check_lock(path, lock, &resolved)?;
    }
    let resolve = clock.elapsed().as_secs_f64();
    let mut built = build_resolved(
        ctx,
        job,
        &resolved.needs,
        &resolved.repos,
        &resolved.resolution,
        layout,
        &JobOptions {
            user: Some(user),
            ..Default::default()
        },
    )?;
    built.timings.insert("resolve", resolve);
    Ok((resolved, built))
}

/// Layers, image and layout for a resolved job.
pub fn build_resolved(
    ctx: &Context,
    job: &JobSpec,
    needs: &Needs,
    repos: &[Repo],
    res: &Resolution,
    layout: &Path,
    opts: &JobOptions<'_>,
) -> Result<Built, OpsError> {
    let mut timings = BTreeMap::new();
    let clock = Instant::now();
    let layers = super::layers::layers(ctx, job, needs, res, opts.popularity, opts.user)?;
    timings.insert("layers", clock.elapsed().as_secs_f64());
    let clock = Instant::now();
    let script_digest = job.script_sha256.clone();
    let name = super::image::image_name(ctx, job, opts.name, &script_digest);
    let input = ImageInput {
        job,
        needs,
        repos,
        layers: &layers,
        script_digest: &script_digest,
    };
    let image = super::image::image(ctx, &input, layout, &name.tag)?;
    timings.insert("image", clock.elapsed().as_secs_f64());
    Ok(Built {
        reference: format!("{}@{}", name.repository, image.manifest_digest),
        image,
        layers,
        name,
        layout: layout.to_owned(),
        timings,
    })
}
