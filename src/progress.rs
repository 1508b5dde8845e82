//! Progress reporting. The library reports through [`Reporter`] and never prints; the CLI
//! shows bars on a terminal and nothing on a pipe or in CI.

/// Receives progress of long stages.
pub trait Reporter: Send + Sync {
    /// A stage begins; `total` in its unit (bytes for downloads, layers for layering).
    fn start(&self, _stage: &str, _total: u64, _bytes: bool) {}
    /// `n` more units done.
    fn advance(&self, _n: u64) {}
    /// The stage is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {}
