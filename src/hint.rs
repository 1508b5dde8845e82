//! Hints: what the user can do about an error, rendered once at the top as `hint:` lines.

/// An error that can suggest what to do about it. Each stage's error implements it; errors
/// that wrap others delegate to the wrapped one.
pub trait Hint {
    /// What to do, if there is something to say beyond the error itself.
    fn hint(&self) -> Option<String>;
}

/// Hints of an error whose variants carry no advice of their own.
#[macro_export]
#[doc(hidden)]
macro_rules! no_hint {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::hint::Hint for $t {
            fn hint(&self) -> Option<String> {
                None
            }
        })*
    };
}

/// Whether an I/O error is a full disk or an exhausted quota.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 /* ENOSPC */ | 122 /* EDQUOT */))
        || e.kind() == std::io::ErrorKind::StorageFull
}

/// The hint for an error anywhere in whose chain a disk filled up: the message above names
/// the file (the cache's, or an output's), this says what to do. `None` otherwise.
pub fn disk_full(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && is_disk_full(io)
        {
            return Some(
                "the disk holding that file is full: free space there; for the cache, \
                 `pbsimage cache gc` removes what no image uses, or set [cache] dir to a \
                 larger disk"
                    .into(),
            );
        }
        cur = err.source();
    }
    None
}

/// An error and its causes on one line, each cause once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
