//! Library search as the glibc loader does it, limited to what the job ships.
//!
//! For a `DT_NEEDED` name without a slash the loader tries, in order: the `DT_RPATH` of the
//! object that needs it and of every object up its chain to the executable (only while the
//! needing object has no `DT_RUNPATH`; an object with `DT_RUNPATH` has its `DT_RPATH`
//! ignored), then the needing object's own `DT_RUNPATH`, then the system directories.
//! `$ORIGIN`, `$LIB` and `$PLATFORM` (also in `${...}` form) are expanded. pbsimage only
//! follows directories inside the job directory: a library found there is bundled with the
//! job; anything else is left to the repositories.

use std::path::{Component, Path, PathBuf};

use super::{Arch, ElfInfo};

/// Expands one rpath entry for an object living in `origin_dir`. `None` for entries the
/// loader ignores (empty, unknown `$TOKEN`).
pub(crate) fn expand(entry: &str, origin_dir: &Path, arch: Arch) -> Option<PathBuf> {
    if entry.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut rest = entry;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{') {
            let end = b.find('}')?;
            (&b[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match name {
            "ORIGIN" => out.push_str(origin_dir.to_str()?),
            "LIB" => out.push_str(arch.lib_dir()),
            "PLATFORM" => out.push_str(arch.platform()),
            _ => return None,
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Some(PathBuf::from(out))
}

/// Lexically normalises `p` (no filesystem access): removes `.` and resolves `..`.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Where a needed library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bundled {
    /// The file, inside the job directory.
    pub(crate) path: PathBuf,
    /// How it was found, e.g. `RUNPATH $ORIGIN/lib`.
    pub(crate) via: String,
}

/// Finds `needed` for `obj`, whose loaders (nearest first, executable last) are `chain`,
/// inside `job_dir` (canonical). Returns `None` when the loader would look elsewhere.
pub(crate) fn find_in_job(
    needed: &str,
    obj: &ElfInfo,
    chain: &[&ElfInfo],
    job_dir: &Path,
) -> Option<Bundled> {
    let inside = |candidate: &Path| -> Option<PathBuf> {
        let real = candidate.canonicalize().ok()?;
        (real.starts_with(job_dir) && real.is_file()).then_some(real)
    };
    if needed.contains('/') {
        // A path: the loader opens it relative to the working directory (the job directory).
        let candidate = normalize(&job_dir.join(needed));
        return inside(&candidate).map(|path| Bundled {
            path,
            via: "path in DT_NEEDED".into(),
        });
    }
    let mut dirs: Vec<(PathBuf, String)> = Vec::new();
    if obj.runpath.is_empty() {
        for l in std::iter::once(obj).chain(chain.iter().copied()) {
            if !l.runpath.is_empty() {
                continue;
            }
            let origin = l.path.parent().unwrap_or(Path::new("/"));
            for e in &l.rpath {
                if let Some(d) = expand(e, origin, l.arch) {
                    dirs.push((d, format!("RPATH {e}")));
                }
            }
        }
    }
    let origin = obj.path.parent().unwrap_or(Path::new("/"));
    for e in &obj.runpath {
        if let Some(d) = expand(e, origin, obj.arch) {
            dirs.push((d, format!("RUNPATH {e}")));
        }
    }
    dirs.into_iter().find_map(|(dir, via)| {
        inside(&normalize(&dir.join(needed))).map(|path| Bundled { path, via })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let o = Path::new("/job/bin");
        assert_eq!(
            expand("$ORIGIN/../lib", o, Arch::X86_64).unwrap(),
            Path::new("/job/bin/../lib")
        );
        assert_eq!(
            expand("${ORIGIN}/$LIB", o, Arch::X86_64).unwrap(),
            Path::new("/job/bin/lib64")
        );
        assert_eq!(
            expand("/opt/$PLATFORM/${LIB}", o, Arch::I686).unwrap(),
            Path::new("/opt/i686/lib")
        );
        assert_eq!(expand("$FOO/lib", o, Arch::X86_64), None);
        assert_eq!(expand("", o, Arch::X86_64), None);
        assert_eq!(
            normalize(Path::new("/job/bin/../lib/./x")),
            Path::new("/job/lib/x")
        );
    }
}
