//! Cache maintenance: `verify` and `gc` over every bucket, each checked by the stage that
//! owns its format.

use std::collections::BTreeSet;

use super::OpsError;
use crate::cache::{Bucket, Cache, Collected, Verification};

/// Re-hashes every blob and checks every repository index.
pub fn verify(cache: &Cache) -> Result<Verification, OpsError> {
    let mut v = cache.verify_blobs()?;
    v.merge(crate::repo::verify_indexes(cache));
    Ok(v)
}

/// Removes the blobs nothing references — a layer record, or an image of the cache's own OCI
/// layout (job layers have no record; they are hard links there, so removing them here
/// would free nothing anyway) — stale buckets and old temporary files.
pub fn gc(cache: &Cache) -> Result<Collected, OpsError> {
    let mut keep: BTreeSet<String> = cache.digests_named_in(Bucket::Layers);
    let layout_blobs = cache.bucket_path(Bucket::Layout).join("blobs/sha256");
    for e in std::fs::read_dir(layout_blobs)
        .into_iter()
        .flatten()
        .flatten()
    {
        keep.insert(e.file_name().to_string_lossy().into_owned());
    }
    Ok(cache.gc(&keep)?)
}
