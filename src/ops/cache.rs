//! Cache maintenance: `verify` and `gc` over every bucket, each checked by the stage that
//! owns its format.

use std::collections::BTreeSet;

use super::OpsError;
use crate::cache::{Bucket, Cache, Collected, Verification};

/// Re-hashes every blob, checks every repository index and layer record, and the cache's
/// own OCI layout (index, manifests, configs, layers).
pub fn verify(cache: &Cache) -> Result<Verification, OpsError> {
    let mut v = cache.verify_blobs()?;
    v.merge(crate::repo::verify_indexes(cache));
    v.merge(crate::layer::plan::verify_records(cache));
    v.merge(crate::image::oci::verify_layout(
        &cache.bucket_path(Bucket::Layout),
    ));
    Ok(v)
}

/// Removes damaged blobs (content that does not hash to the name), layer records whose blob
/// is gone, then the blobs nothing references — a layer record, or an image of the cache's
/// own OCI layout (job layers have no record; they are hard links there, so removing them here
/// would free nothing anyway) — stale buckets and old temporary files.
pub fn gc(cache: &Cache) -> Result<Collected, OpsError> {
    // Damaged blobs, then the records that named them (or any missing blob), go first:
    // nothing may keep them.
    let mut removed = 0;
    for bad in cache.verify_blobs()?.bad {
        removed += usize::from(std::fs::remove_file(bad).is_ok());
    }
    for bad in crate::layer::plan::verify_records(cache).bad {
        removed += usize::from(std::fs::remove_file(bad).is_ok());
    }
    removed += crate::image::oci::prune_layout(&cache.bucket_path(Bucket::Layout))?;
    let mut keep: BTreeSet<String> = cache.digests_named_in(Bucket::Layers);
    let layout_blobs = cache.bucket_path(Bucket::Layout).join("blobs/sha256");
    for e in std::fs::read_dir(layout_blobs)
        .into_iter()
        .flatten()
        .flatten()
    {
        keep.insert(e.file_name().to_string_lossy().into_owned());
    }
    let mut collected = cache.gc(&keep)?;
    collected.damaged = removed;
    Ok(collected)
}
