//! Image references: `[registry/]repository[:tag][@algorithm:hex]`, per the distribution
//! reference grammar.

use std::fmt;

/// A validated image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]`, if the reference names one.
    pub registry: Option<String>,
    /// The repository path, with the registry host when there is one.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub digest: Option<String>,
}

/// An image reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct InvalidImageRef {
    /// The text given.
    pub input: String,
    /// Why it is not a reference.
    pub reason: String,
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) || p.len() > 5)
    {
        return false;
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Checks `algorithm:hex` for the algorithms OCI registries accept.
pub fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64 && is_lower_hex(hex),
        Some(("sha512", hex)) => hex.len() == 128 && is_lower_hex(hex),
        _ => false,
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

impl ImageRef {
    /// Parses `[host[:port]/]path[:tag][@sha256:<hex>]`.
    pub fn parse(input: &str) -> Result<ImageRef, InvalidImageRef> {
        let err = |reason: &str| InvalidImageRef {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                if !is_digest(d) {
                    return Err(err(
                        "the digest must be sha256:<64 hex digits> or sha512:<128 hex digits>",
                    ));
                }
                (r, Some(d.to_owned()))
            }
            None => (input, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, after))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !is_domain(first) {
                    return Err(err("the registry is not a valid host[:port]"));
                }
                (Some(first.to_owned()), after)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) => {
                if !is_tag(t) {
                    return Err(err(
                        "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
                    ));
                }
                (r, Some(t.to_owned()))
            }
            None => (path, None),
        };
        if repository.is_empty() || !repository.split('/').all(is_path_component) {
            return Err(err(
                "the repository must be lowercase path components of [a-z0-9] joined by . _ __ or -",
            ));
        }
        if repository.len() > 255 {
            return Err(err("the repository name is longer than 255 characters"));
        }
        Ok(ImageRef {
            registry,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// True when the reference names content by digest.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }
}

impl std::str::FromStr for ImageRef {
    type Err = InvalidImageRef;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl crate::hint::Hint for InvalidImageRef {
    fn hint(&self) -> Option<String> {
        Some("references look like registry.example.org/pbs/fib@sha256:<64 hex digits>".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost:5000/pbs/fib:v1@{d}")).unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.repository, "pbs/fib");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_pinned());
        assert_eq!(r.to_string(), format!("localhost:5000/pbs/fib:v1@{d}"));
        let r = ImageRef::parse("example/x").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(ImageRef::parse("busybox").unwrap().repository, "busybox");
        assert_eq!(
            ImageRef::parse("registry.example.org/a__b/c-d")
                .unwrap()
                .repository,
            "a__b/c-d"
        );
    }

    #[test]
    fn rejects_bad_ones() {
        for bad in [
            "",
            "UPPER/case",
            "x@sha256:abc",
            "x@md5:0123",
            "a//b",
            "a:",
            "-a",
            "host:99999999/x",
            "x:.tag",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
