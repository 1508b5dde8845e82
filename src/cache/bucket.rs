//! The cache's buckets: the only place their names and versions are written.
//!
//! A bucket's name carries the version of its format (`layers-v1`); a change of format is a
//! new version, and `cache gc` removes the buckets of other versions.

/// A top-level directory of the cache, with the format version of what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Content-addressed blobs: RPM files, layers, image configs and manifests.
    ///
    /// ```text
    /// blobs/sha256/<hex>          the bytes whose sha256 is <hex>
    /// ```
    Blobs,
    /// Repository indexes, one directory per repository id, keyed by repomd.xml's digest.
    ///
    /// ```text
    /// repo-index-v2/<repo-id>/<repomd-sha256>.idx      memory-mapped index (CRC-checked)
    /// repo-index-v2/<repo-id>/<repomd-sha256>.idx.stamp  size, mtime, inode its CRC was checked at
    /// repo-index-v2/<repo-id>/<repomd-sha256>.files    file lists, when a job needed them
    /// repo-index-v2/<repo-id>/<repomd-sha256>.hidden-v1-<streams>  packages modules hide
    /// ```
    RepoIndex,
    /// Layer records: which packages, options and format gave which blob.
    ///
    /// ```text
    /// layers-v1/<key>.json        {digest, diff_id, size, media_type, packages, sources}
    /// ```
    Layers,
    /// Where each blob was pushed, per registry, for cross-repository mounts.
    ///
    /// ```text
    /// pushes-v1/<registry-host>.json     {"sha256:<hex>": "<repository>", ...}
    /// ```
    Pushes,
    /// The `/etc/ld.so.conf.d` directories of a package, per RPM digest.
    ///
    /// ```text
    /// ldconf-v1/<rpm-sha256>.json        ["/opt/x/lib", ...]
    /// ```
    LdConf,
    /// The sysusers.d declarations of a package, per RPM digest.
    ///
    /// ```text
    /// sysusers-v1/<rpm-sha256>.json      [{"kind": "u", "name": "tss", "id": 59, ...}, ...]
    /// ```
    SysUsers,
    /// The `PATH` directories of a package's modulefiles, per RPM checksum (what
    /// `module load` puts first on `PATH`; see `ops::modules`).
    ///
    /// ```text
    /// modulefiles-v1/<algo>-<hex>.json   {"/usr/share/modulefiles/mpi/openmpi-x86_64": ["/usr/lib64/openmpi/bin"], ...}
    /// ```
    ModulePaths,
    /// The default OCI image layout of `pbsimage build` (blobs hard-linked from `blobs/`).
    ///
    /// ```text
    /// oci/oci-layout, oci/index.json, oci/blobs/sha256/<hex>
    /// ```
    Layout,
    /// Cross-process locks (`flock`), one file per name.
    ///
    /// ```text
    /// locks/<name>.lock           pkg-<hex>, layer-<key>, layout-<hash>, pushes-<host>
    /// ```
    Locks,
}

impl Bucket {
    /// Every bucket this version knows.
    pub const ALL: [Bucket; 9] = [
        Bucket::Blobs,
        Bucket::RepoIndex,
        Bucket::Layers,
        Bucket::Pushes,
        Bucket::LdConf,
        Bucket::SysUsers,
        Bucket::ModulePaths,
        Bucket::Layout,
        Bucket::Locks,
    ];

    /// The bucket's directory name below the cache root (`blobs/sha256` for blobs).
    pub fn path(self) -> &'static str {
        match self {
            Bucket::Blobs => "blobs/sha256",
            Bucket::RepoIndex => "repo-index-v2",
            Bucket::Layers => "layers-v1",
            Bucket::Pushes => "pushes-v1",
            Bucket::LdConf => "ldconf-v1",
            Bucket::SysUsers => "sysusers-v1",
            Bucket::ModulePaths => "modulefiles-v1",
            Bucket::Layout => "oci",
            Bucket::Locks => "locks",
        }
    }

    /// The top-level directory the bucket lives in (`blobs` for blobs).
    pub fn top(self) -> &'static str {
        self.path().split('/').next().unwrap_or_default()
    }

    /// Whether a top-level directory named `name` is a versioned bucket this version does
    /// not use (`layers-v0`, `repo-index-v2` written by another version): `cache gc`
    /// removes those. Anything not shaped like a bucket is left alone.
    pub fn is_stale(name: &str) -> bool {
        let versioned = name.rsplit_once("-v").is_some_and(|(stem, v)| {
            !stem.is_empty()
                && stem.bytes().all(|c| c.is_ascii_lowercase() || c == b'-')
                && !v.is_empty()
                && v.bytes().all(|c| c.is_ascii_digit())
        });
        versioned && !Bucket::ALL.iter().any(|b| b.top() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_buckets() {
        assert!(Bucket::is_stale("layers-v0"));
        assert!(Bucket::is_stale("repo-index-v1"));
        assert!(Bucket::is_stale("repo-index-v3"));
        assert!(!Bucket::is_stale("repo-index-v2"));
        assert!(!Bucket::is_stale("layers-v1"));
        assert!(!Bucket::is_stale("blobs"));
        assert!(!Bucket::is_stale("oci"));
        assert!(!Bucket::is_stale("my-notes"));
        assert!(!Bucket::is_stale("-v1"));
    }

    #[test]
    fn tops_are_distinct() {
        let mut tops: Vec<&str> = Bucket::ALL.iter().map(|b| b.top()).collect();
        tops.sort();
        tops.dedup();
        assert_eq!(tops.len(), Bucket::ALL.len());
    }
}
