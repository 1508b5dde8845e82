//! Which repository of a registry holds which blob, remembered across pushes so that a later
//! push can mount a blob instead of uploading it again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cache::{Bucket, Cache, CacheError};

/// Blob digest (`sha256:<hex>`) → the repository of the registry that has it.
pub type BlobLocations = BTreeMap<String, String>;

/// The push records of one registry host, kept in the cache's [`Bucket::Pushes`].
pub struct KnownBlobs {
    cache: Cache,
    dir: PathBuf,
    name: String,
}

impl KnownBlobs {
    /// The records of `host` in `cache`.
    pub fn open(cache: &Cache, host: &str) -> Result<KnownBlobs, CacheError> {
        let dir = cache.bucket(Bucket::Pushes)?;
        let name = format!("{}.json", crate::cache::path_segment(host)?);
        Ok(KnownBlobs {
            cache: cache.clone(),
            dir,
            name,
        })
    }

    /// What earlier pushes recorded (nothing if the record is missing or unreadable: it is
    /// only a hint for mounts, and the registry is asked before anything is skipped).
    pub fn load(&self) -> BlobLocations {
        std::fs::read(self.dir.join(&self.name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records that `repository` now holds `blobs` (earlier locations are kept), under a
    /// lock so that concurrent pushes to the same host merge their records.
    pub fn record<'d>(
        &self,
        pushed: impl IntoIterator<Item = (&'d str, &'d str)>,
    ) -> Result<(), CacheError> {
        let _lock = self
            .cache
            .lock(&format!("pushes-{}", self.name.trim_end_matches(".json")))?;
        let mut known = self.load();
        for (digest, repository) in pushed {
            known
                .entry(digest.to_owned())
                .or_insert_with(|| repository.to_owned());
        }
        self.cache
            .write_atomic(
                &self.dir,
                &self.name,
                &serde_json::to_vec(&known).expect("a map of strings serializes"),
            )
            .map(|_| ())
    }
}
