//! Cache: a content-addressed store on disk, shared safely by concurrent processes.
//!
//! Every write goes to a temporary file in the destination directory and is renamed into
//! place, so a reader never sees a partial entry and a killed writer leaves only a temporary
//! file (swept later). Names from untrusted input become path segments only through
//! [`path_segment`]. Every directory below the root is a [`Bucket`]: the cache owns its
//! layout, and what lives in a bucket is written and read by the one stage that owns it.

mod bucket;
pub use bucket::Bucket;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing a cache file.
    #[error("cache I/O on `{}`", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A name from untrusted input that cannot be a path segment.
    #[error("`{0}` cannot be used as a cache file name")]
    BadName(String),
}

/// The cache root.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// This process's liveness lock (`locks/proc-<pid>.lock`, held shared for the process's
    /// life), taken when it first writes a temporary file: how `sweep` tells the
    /// temporaries of killed processes from those still being written.
    alive: std::sync::Arc<std::sync::OnceLock<Option<FileLock>>>,
}

/// Validates `s` as one path segment: 1–200 of `[A-Za-z0-9._:+-]`, not starting with `.`.
pub fn path_segment(s: &str) -> Result<&str, CacheError> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._:+-".contains(&c));
    if ok {
        Ok(s)
    } else {
        Err(CacheError::BadName(s.to_owned()))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks a sha256 digest (`sha256:<hex>` or bare hex) and returns the hex.
pub fn sha256_hex(digest: &str) -> Result<&str, CacheError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    if hex.len() == 64
        && hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        Ok(hex)
    } else {
        Err(CacheError::BadName(digest.to_owned()))
    }
}

/// An exclusive cross-process lock (flock), released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// What `pbsimage cache verify` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verification {
    /// Entries checked.
    pub checked: usize,
    /// Paths of entries whose content does not match their name or checksum.
    pub bad: Vec<String>,
}

impl Verification {
    /// Adds another check's findings.
    pub fn merge(&mut self, other: Verification) {
        self.checked += other.checked;
        self.bad.extend(other.bad);
    }
}

/// What `pbsimage cache gc` removed.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Collected {
    /// Blobs removed.
    pub blobs: usize,
    /// Bytes freed by them.
    pub bytes: u64,
    /// Buckets of other versions (or unknown to this version) removed whole.
    pub buckets: usize,
    /// Damaged blobs and layer records naming missing blobs, removed.
    pub damaged: usize,
}

impl Cache {
    /// A cache rooted at `root` (created lazily, bucket by bucket).
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache {
            root: root.into(),
            alive: std::sync::Arc::default(),
        }
    }

    /// The prefix of this process's temporary files, after registering it as alive.
    fn temp_prefix(&self) -> String {
        self.alive.get_or_init(|| {
            let pid = std::process::id();
            let dir = self.bucket(Bucket::Locks).ok()?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("proc-{pid}.lock")))
                .ok()?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockShared).ok()?;
            Some(FileLock { _file: file })
        });
        format!(".tmp-{}-", std::process::id())
    }

    /// Whether the process that wrote temporaries as `pid` is gone: its liveness lock exists
    /// and nobody holds it. Unknown (no lock file: an older version, or a process that never
    /// registered) is not gone.
    fn owner_gone(&self, pid: u32) -> bool {
        let path = self
            .bucket_path(Bucket::Locks)
            .join(format!("proc-{pid}.lock"));
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return false;
        };
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
    }

    /// The directory of a bucket, created if missing.
    pub fn bucket(&self, bucket: Bucket) -> Result<PathBuf, CacheError> {
        let p = self.root.join(bucket.path());
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        Ok(p)
    }

    /// A directory below a bucket made of validated segments, created if missing.
    pub fn bucket_dir(&self, bucket: Bucket, segments: &[&str]) -> Result<PathBuf, CacheError> {
        let mut p = self.root.join(bucket.path());
        for s in segments {
            p.push(path_segment(s)?);
        }
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        Ok(p)
    }

    /// Where a bucket lives, without creating it.
    pub fn bucket_path(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.path())
    }

    /// `blobs/sha256/`, created if missing.
    pub fn blobs_dir(&self) -> Result<PathBuf, CacheError> {
        self.bucket(Bucket::Blobs)
    }

    /// Where the blob with this sha256 lives (it may not exist).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, CacheError> {
        Ok(self.blobs_dir()?.join(sha256_hex(digest)?))
    }

    /// Takes the named lock, waiting for other processes that hold it.
    pub fn lock(&self, name: &str) -> Result<FileLock, CacheError> {
        let dir = self.bucket(Bucket::Locks)?;
        let path = dir.join(format!("{}.lock", path_segment(name)?));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            CacheError::Io {
                path: path.clone(),
                source: e.into(),
            }
        })?;
        Ok(FileLock { _file: file })
    }

    /// Removes temporary files left by killed processes: those of a process whose liveness
    /// lock nobody holds any more, at once; others (an older version's, or unregistered)
    /// once older than `age`.
    pub fn sweep(&self, age: std::time::Duration) -> usize {
        let mut removed = 0;
        let mut gone: BTreeMap<u32, bool> = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let Ok(m) = e.metadata() else { continue };
                if m.is_dir() {
                    stack.push(p);
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(".tmp-") else {
                    continue;
                };
                let pid = rest
                    .split_once('-')
                    .and_then(|(pid, _)| pid.parse::<u32>().ok());
                let dead =
                    pid.is_some_and(|pid| *gone.entry(pid).or_insert_with(|| self.owner_gone(pid)));
                let old = m
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a > age);
                if (dead || old) && std::fs::remove_file(&p).is_ok() {
                    removed += 1;
                }
            }
        }
        // The liveness locks of processes that are gone.
        for (pid, dead) in gone {
            if dead {
                let _ = std::fs::remove_file(
                    self.bucket_path(Bucket::Locks)
                        .join(format!("proc-{pid}.lock")),
                );
            }
        }
        removed
    }

    /// Re-hashes every blob; a blob whose content does not match its name is reported.
    /// Other buckets are checked by the stages that own their format (`repo`'s indexes).
    pub fn verify_blobs(&self) -> Result<Verification, CacheError> {
        let dir = self.blobs_dir()?;
        let mut v = Verification::default();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        names.sort();
        for p in names {
            let f = std::fs::File::open(&p).map_err(io(&p))?;
            let (hex, _) =
                crate::digest::hash_reader(std::io::BufReader::new(f), crate::digest::Algo::Sha256)
                    .map_err(io(&p))?;
            v.checked += 1;
            if p.file_name().is_none_or(|n| n.to_string_lossy() != hex) {
                v.bad.push(p.display().to_string());
            }
        }
        Ok(v)
    }

    /// Removes the blobs not in `keep` (sha256 hex digests: what the stages that own the
    /// records still reference), buckets no longer known (see [`Bucket::is_stale`]) and old
    /// temporary files.
    pub fn gc(&self, keep: &std::collections::BTreeSet<String>) -> Result<Collected, CacheError> {
        let dir = self.blobs_dir()?;
        let mut out = Collected::default();
        for e in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) && sha256_hex(&name).is_ok() {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(e.path()).is_ok() {
                    out.blobs += 1;
                    out.bytes += size;
                }
            }
        }
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir()
                && Bucket::is_stale(&name)
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                out.buckets += 1;
            }
        }
        self.sweep(std::time::Duration::from_secs(3600));
        Ok(out)
    }

    /// Every sha256 digest named in the files of a bucket (its records).
    pub fn digests_named_in(&self, bucket: Bucket) -> std::collections::BTreeSet<String> {
        let mut keep = std::collections::BTreeSet::new();
        for rec in walk_files(&self.bucket_path(bucket)) {
            let text = std::fs::read_to_string(&rec).unwrap_or_default();
            for tok in text.split(|c: char| !c.is_ascii_alphanumeric() && c != ':') {
                if let Ok(h) = sha256_hex(tok) {
                    keep.insert(h.to_owned());
                }
            }
        }
        keep
    }

    /// The files of a bucket, sorted.
    pub fn files_in(&self, bucket: Bucket) -> Vec<PathBuf> {
        walk_files(&self.bucket_path(bucket))
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `bytes` to `dir/name` atomically (temp file in `dir`, fsync, rename).
    pub fn write_atomic(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, CacheError> {
        let mut tmp = self.temp_in(dir)?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        self.persist(tmp, dir, name)
    }

    /// Renames a complete temporary file of [`Cache::temp_in`] to `name` in `dir`.
    pub fn persist(
        &self,
        tmp: tempfile::NamedTempFile,
        dir: &Path,
        name: &str,
    ) -> Result<PathBuf, CacheError> {
        let dest = dir.join(path_segment(name)?);
        tmp.persist(&dest).map_err(|e| CacheError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// A temporary file in `dir`, to be persisted under its final name after verification.
    pub fn temp_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile, CacheError> {
        tempfile::Builder::new()
            .prefix(&self.temp_prefix())
            .tempfile_in(dir)
            .map_err(io(dir))
    }
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Opens a file for reading without blocking on FIFOs (`O_NONBLOCK`), so that the caller
/// can check its type with `metadata()` before reading. Regular files read as usual.
pub fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

/// Writes a file anywhere atomically: a temporary file beside it, then a rename.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| CacheError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}
