//! Versions as rpm compares them: `rpmvercmp`, `[epoch:]version[-release]`, and dependency
//! range overlap (rpm 4.18 `rpmvercmp.c`, `rpmver.c`, `rpmds.c` semantics).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// rpm's version segment comparison. `~` sorts before anything (even the end), `^` after the
/// base version but before any other continuation; digits beat letters; leading zeros are
/// ignored; other characters only separate segments.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca.is_none() || cb.is_none() {
            break;
        }
        let (si, sj) = (i, j);
        let isnum = a[i].is_ascii_digit();
        if isnum {
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
        } else {
            while i < a.len() && a[i].is_ascii_alphabetic() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
        }
        if sj == j {
            // different segment types: numeric is newer than alpha
            return if isnum {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[si..i], &b[sj..j]);
        if isnum {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// `[epoch:]version[-release]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Evr {
    /// Epoch, if any (a missing epoch compares as 0).
    pub epoch: Option<String>,
    /// Version.
    pub version: String,
    /// Release, if any.
    pub release: Option<String>,
}

impl Evr {
    /// An EVR from its parts (an empty epoch or release is none).
    pub fn new(epoch: Option<&str>, version: &str, release: Option<&str>) -> Evr {
        Evr {
            epoch: epoch.filter(|e| !e.is_empty()).map(str::to_owned),
            version: version.to_owned(),
            release: release.filter(|r| !r.is_empty()).map(str::to_owned),
        }
    }

    /// As [`Evr::new`], taking the strings it keeps.
    pub fn from_parts(epoch: Option<String>, version: String, release: Option<String>) -> Evr {
        Evr {
            epoch: epoch.filter(|e| !e.is_empty()),
            version,
            release: release.filter(|r| !r.is_empty()),
        }
    }

    /// Parses `[epoch:]version[-release]` the way rpm splits an EVR string.
    pub fn parse(s: &str) -> Evr {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (Some(e), r),
            _ => (None, s),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v, Some(r)),
            None => (rest, None),
        };
        Evr::new(epoch, version, release)
    }

    /// rpm's `rpmverCmp`: a missing epoch is 0; releases are compared only when both sides
    /// have one.
    pub fn cmp_rpm(&self, other: &Evr) -> Ordering {
        let e1 = self.epoch.as_deref().unwrap_or("0");
        let e2 = other.epoch.as_deref().unwrap_or("0");
        rpmvercmp(e1, e2)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| match (&self.release, &other.release) {
                (Some(a), Some(b)) => rpmvercmp(a, b),
                _ => Ordering::Equal,
            })
    }

    /// Total order for sorting packages (newest last): a missing release sorts first.
    pub fn cmp_total(&self, other: &Evr) -> Ordering {
        self.cmp_rpm(other)
            .then_with(|| match (&self.release, &other.release) {
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                _ => Ordering::Equal,
            })
    }
}

impl fmt::Display for Evr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = self.epoch.as_deref().filter(|e| *e != "0") {
            write!(f, "{e}:")?;
        }
        f.write_str(&self.version)?;
        if let Some(r) = &self.release {
            write!(f, "-{r}")?;
        }
        Ok(())
    }
}

/// A dependency's comparison (`flags` in repo metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl Cmp {
    /// From metadata's `flags` (`LT`, `LE`, `EQ`, `GE`, `GT`).
    pub fn parse(flags: &str) -> Option<Cmp> {
        Some(match flags {
            "LT" => Cmp::Lt,
            "LE" => Cmp::Le,
            "EQ" => Cmp::Eq,
            "GE" => Cmp::Ge,
            "GT" => Cmp::Gt,
            _ => return None,
        })
    }
    fn less(self) -> bool {
        matches!(self, Cmp::Lt | Cmp::Le)
    }
    fn greater(self) -> bool {
        matches!(self, Cmp::Gt | Cmp::Ge)
    }
    fn equal(self) -> bool {
        matches!(self, Cmp::Le | Cmp::Eq | Cmp::Ge)
    }
    /// `<`, `<=`, `=`, `>=` or `>`.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Eq => "=",
            Cmp::Ge => ">=",
            Cmp::Gt => ">",
        }
    }
}

/// Do the ranges `(a_cmp a)` and `(b_cmp b)` overlap? A side without a version (`None`)
/// overlaps everything (rpm's `rpmdsCompare`).
pub fn ranges_overlap(a: Option<(Cmp, &Evr)>, b: Option<(Cmp, &Evr)>) -> bool {
    let (Some((ac, ae)), Some((bc, be))) = (a, b) else {
        return true;
    };
    match ae.cmp_rpm(be) {
        Ordering::Less => ac.greater() || bc.less(),
        Ordering::Greater => ac.less() || bc.greater(),
        Ordering::Equal => {
            (ac.equal() && bc.equal()) || (ac.less() && bc.less()) || (ac.greater() && bc.greater())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn rpm_testsuite_vectors() {
        // From rpm's tests/rpmvercmp.at.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0", "1.0", Greater),
            ("2.0.1", "2.0.1", Equal),
            ("2.0", "2.0.1", Less),
            ("2.0.1", "2.0", Greater),
            ("2.0.1a", "2.0.1a", Equal),
            ("2.0.1a", "2.0.1", Greater),
            ("2.0.1", "2.0.1a", Less),
            ("5.5p1", "5.5p1", Equal),
            ("5.5p1", "5.5p2", Less),
            ("5.5p2", "5.5p1", Greater),
            ("5.5p10", "5.5p10", Equal),
            ("5.5p1", "5.5p10", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("10.1xyz", "10xyz", Greater),
            ("xyz10", "xyz10", Equal),
            ("xyz10", "xyz10.1", Less),
            ("xyz10.1", "xyz10", Greater),
            ("xyz.4", "xyz.4", Equal),
            ("xyz.4", "8", Less),
            ("8", "xyz.4", Greater),
            ("xyz.4", "2", Less),
            ("2", "xyz.4", Greater),
            ("5.5p2", "5.6p1", Less),
            ("5.6p1", "5.5p2", Greater),
            ("5.6p1", "6.5p1", Less),
            ("6.5p1", "5.6p1", Greater),
            ("6.0.rc1", "6.0", Greater),
            ("6.0", "6.0.rc1", Less),
            ("10b2", "10a1", Greater),
            ("10a2", "10b2", Less),
            ("1.0aa", "1.0aa", Equal),
            ("1.0a", "1.0aa", Less),
            ("1.0aa", "1.0a", Greater),
            ("10.0001", "10.0001", Equal),
            ("10.0001", "10.1", Equal),
            ("10.1", "10.0001", Equal),
            ("10.0001", "10.0039", Less),
            ("10.0039", "10.0001", Greater),
            ("4.999.9", "5.0", Less),
            ("5.0", "4.999.9", Greater),
            ("20101121", "20101121", Equal),
            ("20101121", "20101122", Less),
            ("2_0", "2_0", Equal),
            ("2.0", "2_0", Equal),
            ("2_0", "2.0", Equal),
            ("a", "a", Equal),
            ("a+", "a+", Equal),
            ("a+", "a_", Equal),
            ("a_", "a+", Equal),
            ("+a", "+a", Equal),
            ("+a", "_a", Equal),
            ("_a", "+a", Equal),
            ("+_", "+_", Equal),
            ("_+", "+_", Equal),
            ("_+", "_+", Equal),
            ("+", "_", Equal),
            ("_", "+", Equal),
            ("1.0~rc1", "1.0~rc1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0~rc1", Greater),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc2", "1.0~rc1", Greater),
            ("1.0~rc1~git123", "1.0~rc1~git123", Equal),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0~rc1", "1.0~rc1~git123", Greater),
            ("1.0^", "1.0^", Equal),
            ("1.0^", "1.0", Greater),
            ("1.0", "1.0^", Less),
            ("1.0^git1", "1.0^git1", Equal),
            ("1.0^git1", "1.0", Greater),
            ("1.0", "1.0^git1", Less),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git2", "1.0^git1", Greater),
            ("1.0^git1", "1.01", Less),
            ("1.01", "1.0^git1", Greater),
            ("1.0^20160101", "1.0^20160101", Equal),
            ("1.0^20160101", "1.0.1", Less),
            ("1.0.1", "1.0^20160101", Greater),
            ("1.0^20160101^git1", "1.0^20160101^git1", Equal),
            ("1.0^20160102", "1.0^20160101^git1", Greater),
            ("1.0^20160101^git1", "1.0^20160102", Less),
            ("1.0~rc1^git1", "1.0~rc1^git1", Equal),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("1.0~rc1", "1.0~rc1^git1", Less),
            ("1.0^git1~pre", "1.0^git1~pre", Equal),
            ("1.0^git1", "1.0^git1~pre", Greater),
            ("1.0^git1~pre", "1.0^git1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(rpmvercmp(a, b), want, "rpmvercmp({a:?}, {b:?})");
        }
    }

    #[test]
    fn evr_parsing_and_order() {
        let e = Evr::parse("1:2.3-4.el9");
        assert_eq!(
            (e.epoch.as_deref(), e.version.as_str(), e.release.as_deref()),
            (Some("1"), "2.3", Some("4.el9"))
        );
        assert_eq!(Evr::parse("2.3").to_string(), "2.3");
        assert_eq!(Evr::parse("1:2.3-4.el9").to_string(), "1:2.3-4.el9");
        // missing epoch is 0
        assert_eq!(Evr::parse("1:1.0").cmp_rpm(&Evr::parse("2.0")), Greater);
        assert_eq!(Evr::parse("0:1.0").cmp_rpm(&Evr::parse("1.0")), Equal);
        // a side without release matches any release
        assert_eq!(Evr::parse("1.0").cmp_rpm(&Evr::parse("1.0-5")), Equal);
        assert_eq!(Evr::parse("1.0-4").cmp_rpm(&Evr::parse("1.0-5")), Less);
    }

    #[test]
    fn overlap() {
        let v = |s: &str| Evr::parse(s);
        let (a, b) = (v("1.2"), v("1.0"));
        assert!(ranges_overlap(Some((Cmp::Eq, &a)), Some((Cmp::Ge, &b))));
        assert!(!ranges_overlap(Some((Cmp::Eq, &b)), Some((Cmp::Gt, &b))));
        assert!(ranges_overlap(Some((Cmp::Le, &b)), Some((Cmp::Ge, &b))));
        assert!(!ranges_overlap(Some((Cmp::Lt, &b)), Some((Cmp::Ge, &b))));
        assert!(ranges_overlap(None, Some((Cmp::Lt, &b))));
        let r = v("2.17-326.el7");
        assert!(ranges_overlap(
            Some((Cmp::Eq, &r)),
            Some((Cmp::Ge, &v("2.17")))
        ));
        assert!(!ranges_overlap(
            Some((Cmp::Eq, &r)),
            Some((Cmp::Lt, &v("2.17")))
        ));
    }
}
