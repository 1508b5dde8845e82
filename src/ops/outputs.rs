//! Outputs: the files a build leaves beside the job (or in a given directory) — the
//! Kubernetes manifest, the SPDX SBOM — and the lock files, read and written.

use std::path::{Path, PathBuf};

use super::{Built, OpsError};
use crate::config::{KubeKind, Settings};
use crate::image::ImageRef;
use crate::job::JobSpec;
use crate::kube::{Emitter, RunAs};
use crate::resolve::lock::{CatalogLock, LOCK_FILE, Lock};

/// Where a job's manifest and SBOM go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutputPaths {
    /// `<stem>.k8s.yaml`
    pub manifest: PathBuf,
    /// `<stem>.spdx.json`
    pub sbom: PathBuf,
}

impl OutputPaths {
    /// Beside the script, named after its stem (`job.sh` → `job.k8s.yaml`, `job.spdx.json`).
    pub fn beside(script: &Path) -> OutputPaths {
        let stem = script
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job".into());
        let dir = script.parent().unwrap_or(Path::new(""));
        OutputPaths::in_dir(dir, &stem)
    }

    /// In `dir`, named `<stem>.k8s.yaml` and `<stem>.spdx.json`.
    pub fn in_dir(dir: &Path, stem: &str) -> OutputPaths {
        OutputPaths {
            manifest: dir.join(format!("{stem}.k8s.yaml")),
            sbom: dir.join(format!("{stem}.spdx.json")),
        }
    }
}

/// How the Kubernetes objects are made.
#[derive(Debug, Clone)]
pub struct ManifestChoice {
    /// Job or Pod.
    pub kind: KubeKind,
    /// Who the pods run as.
    pub run_as: RunAs,
    /// How the objects are named.
    pub naming: crate::kube::Naming,
}

/// Writes the Kubernetes manifest (running `reference`) and the SPDX SBOM of a built job,
/// each atomically; creates their directories.
pub fn write(
    settings: &Settings,
    job: &JobSpec,
    built: &Built,
    reference: &str,
    choice: &ManifestChoice,
    paths: &OutputPaths,
) -> Result<(), OpsError> {
    let image = ImageRef::parse(reference).map_err(OpsError::Reference)?;
    let mut manifest = Emitter {
        settings: &settings.kube,
        job_dir: &settings.image.job_dir,
        kind: choice.kind,
        run_as: choice.run_as,
        naming: choice.naming.clone(),
    }
    .emit(job, &image)?;
    write_manifest(&paths.manifest, &mut manifest)?;
    write_file(&paths.sbom, &sbom(job, built, reference))
}

/// Writes `manifest` to `path` (atomically, owner-readable). A Secret the file already has
/// under the same name keeps its data: a rebuilt job keeps its ssh key, and its manifest
/// applies again unchanged.
pub fn write_manifest(path: &Path, manifest: &mut crate::kube::Manifest) -> Result<(), OpsError> {
    if manifest.has_secret()
        && let Ok(previous) = std::fs::read_to_string(path)
    {
        manifest.keep_secrets_of(&previous);
    }
    write_file(path, manifest.to_yaml()?.as_bytes())
}

/// The SPDX 2.3 SBOM of a built image pushed as `reference` (JSON bytes): the file beside
/// the manifest, and the artifact `--sign` attaches in the registry.
pub fn sbom(job: &JobSpec, built: &Built, reference: &str) -> Vec<u8> {
    let doc = crate::image::packages::spdx(
        &crate::image::packages::SbomSubject {
            name: job.name.as_str(),
            repository: reference.split_once('@').map_or(reference, |(r, _)| r),
            manifest_digest: &built.image.manifest_digest,
            created: built.layers.options.epoch,
        },
        &built.layers.packages,
    );
    serde_json::to_vec_pretty(&doc).expect("JSON values serialize")
}

/// Writes a file atomically, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OpsError> {
    let output = |source| OpsError::Output {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| {
            output(crate::cache::CacheError::Io {
                path: dir.to_owned(),
                source,
            })
        })?;
    }
    crate::cache::write_file_atomic(path, bytes).map_err(output)
}

/// The lock file of a job: `given`, else `pbsimage.lock` beside the script.
pub fn lock_path(given: Option<&Path>, script: &Path) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| script.with_file_name(LOCK_FILE))
}

fn read_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    kind: &str,
) -> Result<T, OpsError> {
    let text = std::fs::read_to_string(path).map_err(|e| OpsError::Lock {
        what,
        path: path.to_owned(),
        message: format!("cannot read it: {e}"),
    })?;
    toml::from_str(&text).map_err(|e| OpsError::Lock {
        what,
        path: path.to_owned(),
        message: format!("not a pbsimage {kind}: {e}"),
    })
}

/// Reads a job's lock file (for `--locked`).
pub fn read_lock(path: &Path) -> Result<Lock, OpsError> {
    read_toml(path, "--locked", "lock file")
}

/// Reads a catalog's lock file (for `catalog --locked`).
pub fn read_catalog_lock(path: &Path) -> Result<CatalogLock, OpsError> {
    read_toml(path, "--locked", "catalog lock")
}

/// Writes a job's lock file.
pub fn write_lock(path: &Path, lock: &Lock) -> Result<(), OpsError> {
    write_file(path, lock.to_toml().as_bytes())
}

/// Writes a catalog's lock file.
pub fn write_catalog_lock(path: &Path, lock: &CatalogLock) -> Result<(), OpsError> {
    write_file(path, lock.to_toml().as_bytes())
}
