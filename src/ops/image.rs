//! Image: the OCI config and manifest of a job's layers, named from the `[image]` templates,
//! written into an OCI layout.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Context, Layers, OpsError};
use crate::image::oci::{Image, ImageSpec};
use crate::job::{JobName, JobSpec};
use crate::needs::Needs;
use crate::repo::Repo;

/// PATH of every image (the loader's and EL's defaults).
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where an image goes: `[image] repository` and `tag` with `{name}`, `{queue}` and
/// `{script-digest}` filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The repository path (without the registry host).
    pub repository: String,
    /// The tag.
    pub tag: String,
}

/// Fills the `[image]` templates for a job. `name` replaces the job's name (a catalog's
/// per-job `image`); `script_digest` is the script's sha256 hex.
pub fn image_name(
    ctx: &Context,
    job: &JobSpec,
    name: Option<&str>,
    script_digest: &str,
) -> ImageName {
    let s = &ctx.config.settings;
    let dns = name
        .map(str::to_owned)
        .unwrap_or_else(|| job.name.dns_label(63));
    let queue = job.queue.as_deref().unwrap_or(&s.kube.default_queue);
    let queue = JobName::new(queue)
        .map(|q| q.dns_label(63))
        .unwrap_or_default();
    let fill = |t: &str| {
        t.replace("{name}", &dns)
            .replace("{queue}", &queue)
            .replace("{script-digest}", &script_digest[..12])
    };
    ImageName {
        repository: fill(&s.image.repository),
        tag: fill(&s.image.tag),
    }
}

/// The image's labels: its title and job, the script's digest, each repository's revision.
fn labels(job: &JobSpec, repos: &[Repo], script_digest: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            job.name.to_string(),
        ),
        ("io.pbsimage.job".to_string(), job.name.to_string()),
        (
            "io.pbsimage.script-sha256".to_string(),
            script_digest.to_owned(),
        ),
    ]);
    for r in repos {
        labels.insert(
            format!("io.pbsimage.repo.{}", r.source.id),
            r.index.repomd_sha256.clone(),
        );
    }
    labels
}

/// What an image is made of.
pub struct ImageInput<'a> {
    /// The job (name, for labels).
    pub job: &'a JobSpec,
    /// Its needs (the architecture).
    pub needs: &'a Needs,
    /// The repositories it was resolved against (revisions, for labels).
    pub repos: &'a [Repo],
    /// Its layers, bottom to top.
    pub layers: &'a Layers,
    /// The script's sha256 hex.
    pub script_digest: &'a str,
}

/// Assembles the image (config and manifest) and writes it into the OCI layout at `layout`
/// under `tag`, one writer of a layout at a time.
pub fn image(
    ctx: &Context,
    input: &ImageInput<'_>,
    layout: &Path,
    tag: &str,
) -> Result<Image, OpsError> {
    let ImageInput {
        job,
        needs,
        repos,
        layers,
        script_digest,
    } = *input;
    let spec = ImageSpec {
        arch: needs.arch,
        env: std::iter::once(PATH.to_owned())
            .chain(
                crate::image::packages::library_path(&layers.library_dirs)
                    .map(|p| format!("LD_LIBRARY_PATH={p}")),
            )
            .collect(),
        entrypoint: vec![crate::kube::WRAPPER_PATH.into()],
        working_dir: ctx.config.settings.image.job_dir.clone(),
        user: layers.user.map(|u| format!("{}:{}", u.uid, u.gid)),
        labels: labels(job, repos, script_digest),
        epoch: layers.options.epoch,
    };
    let image = crate::image::oci::assemble(&spec, &layers.stack)?;
    // One writer of a layout at a time (its index.json lists every image).
    let where_ = std::path::absolute(layout).unwrap_or_else(|_| layout.to_owned());
    let key = crate::digest::sha256_hex_of(where_.to_string_lossy().as_bytes());
    let _lock = ctx.cache.lock(&format!("layout-{}", &key[..16]))?;
    crate::image::oci::write_layout(layout, &image, &layers.stack, tag)?;
    Ok(image)
}
