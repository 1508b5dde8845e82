//! Cache: a content-addressed store on disk, shared safely by concurrent processes.
//!
//! Every write goes to a temporary file in the destination directory and is renamed into
//! place, so a reader never sees a partial entry and a killed writer leaves only a temporary
//! file (swept later). Names from untrusted input become path segments only through
//! [`path_segment`].

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache I/O on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` cannot be used as a cache file name")]
    BadName(String),
}

/// The cache root.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
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

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory below the root made of validated segments, created if missing.
    pub fn dir(&self, segments: &[&str]) -> Result<PathBuf, CacheError> {
        let mut p = self.root.clone();
        for s in segments {
            p.push(path_segment(s)?);
        }
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        Ok(p)
    }

    /// Writes `bytes` to `dir/name` atomically (temp file in `dir`, fsync, rename).
    pub fn write_atomic(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, CacheError> {
        let dest = dir.join(path_segment(name)?);
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(io(dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;

        tmp.persist(&dest).map_err(|e| CacheError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// A temporary file in `dir`, to be persisted under its final name after verification.
    pub fn temp_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile, CacheError> {
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(io(dir))
    }
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
