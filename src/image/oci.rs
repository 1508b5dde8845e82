//! OCI image config and manifest (oci-spec types), written byte-for-byte deterministically,
//! and the OCI image layout on disk.
//!
//! oci-spec keeps labels and annotations in hash maps; everything is serialized through
//! `serde_json::Value`, whose maps are sorted, so the same inputs give the same bytes.

use crate::digest::sha256_digest_of as sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, Digest, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::layer::plan::BuiltLayer;

/// Why an image cannot be assembled or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An OCI structure could not be built.
    #[error("cannot build the image {what}: {message}")]
    Spec {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The layout cannot be written.
    #[error("cannot write the OCI layout at `{}`", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn spec(what: &'static str) -> impl Fn(oci_spec::OciSpecError) -> ImageError {
    move |e| ImageError::Spec {
        what,
        message: e.to_string(),
    }
}

/// What goes into an image besides its layers.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The image's architecture (from the job's binary).
    pub arch: crate::elf::Arch,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// The entrypoint (the job wrapper).
    pub entrypoint: Vec<String>,
    /// The working directory (the job directory).
    pub working_dir: String,
    /// `uid:gid` the job runs as, when known at build time.
    pub user: Option<String>,
    /// Labels (also written as manifest annotations).
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch, for `created` (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

/// An assembled image: the config and manifest bytes and their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The config's bytes, byte-stable JSON.
    pub config: Vec<u8>,
    /// `sha256:` of the config.
    pub config_digest: String,
    /// The manifest's bytes, byte-stable JSON.
    pub manifest: Vec<u8>,
    /// `sha256:` of the manifest: the image's digest.
    pub manifest_digest: String,
}

/// RFC 3339 UTC time of a Unix time (civil-from-days, no time zone database involved).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn oci_arch(a: crate::elf::Arch) -> Arch {
    use crate::elf::Arch as A;
    match a {
        A::X86_64 => Arch::Amd64,
        // An i686 job's image runs on amd64 nodes (its packages are of the x86_64
        // basearch and i686 multilib, as dnf installs them there).
        A::I686 => Arch::Amd64,
        A::Aarch64 => Arch::ARM64,
        A::Ppc64le => Arch::PowerPC64le,
        A::Ppc64 => Arch::PowerPC64,
        A::S390x => Arch::s390x,
        A::Riscv64 => Arch::RISCV64,
        A::Armv7hl => Arch::ARM,
    }
}

/// Stable JSON bytes: maps sorted, no insignificant white space.
fn stable_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(&serde_json::to_value(v).expect("serializable")).expect("serializable")
}

/// Builds the config and manifest for `layers` (bottom first).
pub fn assemble(spec_: &ImageSpec, layers: &[BuiltLayer]) -> Result<Image, ImageError> {
    let created = rfc3339(spec_.epoch);
    let diff_ids: Vec<String> = layers.iter().map(|l| l.layer.diff_id.to_string()).collect();
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(format!(
                    "pbsimage {}: {}",
                    env!("CARGO_PKG_VERSION"),
                    l.label
                ))
                .comment(l.layer.packages.join(" "))
                .build()
                .map_err(spec("history"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = ConfigBuilder::default();
    if let Some(u) = &spec_.user {
        config = config.user(u.clone());
    }
    let config = config
        .env(spec_.env.clone())
        .entrypoint(spec_.entrypoint.clone())
        .working_dir(spec_.working_dir.clone())
        .labels(
            spec_
                .labels
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(spec("config"))?;
    let image_config = ImageConfigurationBuilder::default()
        .created(created)
        .architecture(oci_arch(spec_.arch))
        .os(Os::Linux)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(spec("rootfs"))?,
        )
        .history(history)
        .build()
        .map_err(spec("configuration"))?;
    let config_bytes = stable_json(&image_config);
    let config_digest = sha256(&config_bytes);
    let descriptor = |media: MediaType, digest: &str, size: u64| -> Result<_, ImageError> {
        DescriptorBuilder::default()
            .media_type(media)
            .digest(digest.parse::<Digest>().map_err(spec("digest"))?)
            .size(size)
            .build()
            .map_err(spec("descriptor"))
    };
    let layer_descs = layers
        .iter()
        .map(|l| {
            let mut d = descriptor(
                l.layer.media_type.clone(),
                l.layer.digest.as_ref(),
                l.layer.size,
            )?;
            if !l.layer.annotations.is_empty() {
                d.set_annotations(Some(l.layer.annotations.clone().into_iter().collect()));
            }
            Ok(d)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_bytes.len() as u64,
        )?)
        .layers(layer_descs)
        // The config's labels (job, script digest, repository revisions, title) also as
        // manifest annotations, which registries and scanners show without the config.
        .annotations(
            spec_
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(std::iter::once((
                    "org.opencontainers.image.created".to_string(),
                    rfc3339(spec_.epoch),
                )))
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(spec("manifest"))?;
    let manifest_bytes = stable_json(&manifest);
    let manifest_digest = sha256(&manifest_bytes);
    Ok(Image {
        config: config_bytes,
        config_digest,
        manifest: manifest_bytes,
        manifest_digest,
    })
}

/// Whether the layout already holds this blob: the same file as the cache's (a hard link,
/// checked by inode without reading it), or the same small bytes (configs, manifests). A
/// layout blob that is neither is replaced.
fn blob_in_place(dest: &Path, bytes: Option<&[u8]>, from: Option<&Path>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(d) = std::fs::metadata(dest) else {
        return false;
    };
    match (bytes, from) {
        (Some(b), _) => d.len() == b.len() as u64 && std::fs::read(dest).is_ok_and(|x| x == b),
        // The same inode as the cache's blob; across file systems (where the blob had to be
        // copied) the size is trusted, as the cache's own blob is checked when reused.
        (None, Some(src)) => std::fs::metadata(src).is_ok_and(|s| {
            (s.dev(), s.ino()) == (d.dev(), d.ino()) || (s.dev() != d.dev() && s.len() == d.len())
        }),
        _ => false,
    }
}

/// Writes `image` under the reference name `tag` into the OCI image layout at `dir` (made
/// when missing; other images stay). Callers serialize writers of one layout.
pub fn write_layout(
    dir: &Path,
    image: &Image,
    layers: &[BuiltLayer],
    tag: &str,
) -> Result<(), ImageError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Io {
            path: path.clone(),
            source,
        }
    };
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    let put = |digest: &str, bytes: Option<&[u8]>, from: Option<&Path>| -> Result<(), ImageError> {
        let hex = digest.trim_start_matches("sha256:");
        let dest = blobs.join(hex);
        if blob_in_place(&dest, bytes, from) {
            return Ok(());
        }
        let tmp = blobs.join(format!(".tmp-{hex}"));
        match (bytes, from) {
            (Some(b), _) => std::fs::write(&tmp, b).map_err(io(&tmp))?,
            (None, Some(src)) => {
                if std::fs::hard_link(src, &tmp).is_err() {
                    std::fs::copy(src, &tmp).map_err(io(&tmp))?;
                }
            }
            _ => unreachable!("a blob has bytes or a source"),
        }
        std::fs::rename(&tmp, &dest).map_err(io(&dest))
    };
    for l in layers {
        put(l.layer.digest.as_ref(), None, Some(&l.path))?;
    }
    put(&image.config_digest, Some(&image.config), None)?;
    put(&image.manifest_digest, Some(&image.manifest), None)?;
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io(&layout))?;
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(
            image
                .manifest_digest
                .parse::<Digest>()
                .map_err(spec("digest"))?,
        )
        .size(image.manifest.len() as u64)
        .annotations(
            [(
                "org.opencontainers.image.ref.name".to_string(),
                tag.to_string(),
            )]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(spec("descriptor"))?;
    // Other images of the layout keep their entries; an entry with this name is replaced.
    let path = dir.join("index.json");
    let ref_name = |d: &oci_spec::image::Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.ref.name").cloned())
            .unwrap_or_default()
    };
    let mut manifests: Vec<oci_spec::image::Descriptor> = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice::<oci_spec::image::ImageIndex>(&b)
            .map(|i| i.manifests().clone())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    manifests.retain(|d| ref_name(d) != tag);
    manifests.push(desc);
    manifests.sort_by_key(|d| (ref_name(d), d.digest().to_string()));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(spec("index"))?;
    let tmp = dir.join(".tmp-index.json");
    std::fs::write(&tmp, stable_json(&index)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Checks an OCI image layout: every image in `index.json`, its manifest, config and layers
/// are present and hash to their names. Blobs are hashed as they are read, once each.
pub fn verify_layout(dir: &Path) -> crate::cache::Verification {
    check_layout(dir).0
}

/// Makes an OCI layout consistent again: removes blobs that do not hash to their names and
/// the index entries of images that lack a blob or had a damaged one. Returns the number of
/// blobs and entries removed.
pub fn prune_layout(dir: &Path) -> Result<usize, ImageError> {
    let (v, broken) = check_layout(dir);
    let mut removed = 0;
    for bad in &v.bad {
        removed += usize::from(std::fs::remove_file(bad).is_ok());
    }
    if broken.is_empty() {
        return Ok(removed);
    }
    let path = dir.join("index.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(removed);
    };
    let mut index: oci_spec::image::ImageIndex =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Spec {
            what: "index",
            message: e.to_string(),
        })?;
    let keep: Vec<_> = index
        .manifests()
        .iter()
        .filter(|m| !broken.contains(m.digest().as_ref()))
        .cloned()
        .collect();
    removed += index.manifests().len() - keep.len();
    index.set_manifests(keep);
    crate::cache::write_file_atomic(&path, &stable_json(&index)).map_err(|e| ImageError::Spec {
        what: "index",
        message: e.to_string(),
    })?;
    Ok(removed)
}

/// The layout's check, and the digests of the manifests whose images are incomplete.
fn check_layout(
    dir: &Path,
) -> (
    crate::cache::Verification,
    std::collections::BTreeSet<String>,
) {
    let mut v = crate::cache::Verification::default();
    let mut broken = std::collections::BTreeSet::new();
    let index = dir.join("index.json");
    let Ok(bytes) = std::fs::read(&index) else {
        return (v, broken);
    };
    v.checked += 1;
    let Ok(index_doc) = serde_json::from_slice::<oci_spec::image::ImageIndex>(&bytes) else {
        v.bad.push(index.display().to_string());
        return (v, broken);
    };
    // Each blob hashed once, streamed (layers can be large): digest → whether it is good.
    let blobs_dir = dir.join("blobs/sha256");
    let mut good: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
    let mut check = |digest: &str, v: &mut crate::cache::Verification| -> bool {
        let hex = digest.trim_start_matches("sha256:").to_owned();
        if let Some(&ok) = good.get(&hex) {
            return ok;
        }
        let path = blobs_dir.join(&hex);
        v.checked += 1;
        let ok = match std::fs::File::open(&path) {
            Ok(f) => {
                let hashed = crate::digest::hash_reader(
                    std::io::BufReader::new(f),
                    crate::digest::Algo::Sha256,
                );
                let ok = hashed.is_ok_and(|(h, _)| h == hex);
                if !ok {
                    v.bad.push(path.display().to_string());
                }
                ok
            }
            Err(_) => false,
        };
        good.insert(hex, ok);
        ok
    };
    for m in index_doc.manifests() {
        let md = m.digest().to_string();
        // A manifest is small: read once it has hashed to its name.
        let manifest = check(&md, &mut v)
            .then(|| std::fs::read(blobs_dir.join(m.digest().digest())).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<oci_spec::image::ImageManifest>(&b).ok());
        let Some(manifest) = manifest else {
            broken.insert(md);
            continue;
        };
        // Every blob checked (no short cut), so that every damaged one is reported.
        let mut complete = check(manifest.config().digest().as_ref(), &mut v);
        for l in manifest.layers() {
            complete &= check(l.digest().as_ref(), &mut v);
        }
        if !complete {
            broken.insert(md);
        }
    }
    for d in &broken {
        v.bad
            .push(format!("{}: image {d} is incomplete", index.display()));
    }
    (v, broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_707_054), "2026-11-26T15:30:54Z");
    }
}
