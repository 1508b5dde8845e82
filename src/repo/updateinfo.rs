//! `updateinfo.xml`: a repository's advisories (errata), as `modifyrepo_c --mdtype=updateinfo`
//! adds them and `dnf updateinfo` reads them — id, type, severity, CVE references and the
//! packages each advisory ships.

use std::cmp::Ordering;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::evr::Evr;
use super::xml::{Ev, XmlStream, attr};

/// An advisory's type (`<update type="…">`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvisoryKind {
    /// Fixes a vulnerability.
    Security,
    /// Fixes a bug.
    Bugfix,
    /// Adds a feature.
    Enhancement,
    /// Brings a package new to the repository.
    Newpackage,
    /// A type dnf does not know (kept, and warned about).
    Other(String),
}

impl AdvisoryKind {
    fn parse(s: &str) -> AdvisoryKind {
        match s {
            "security" => AdvisoryKind::Security,
            "bugfix" => AdvisoryKind::Bugfix,
            "enhancement" => AdvisoryKind::Enhancement,
            "newpackage" => AdvisoryKind::Newpackage,
            other => AdvisoryKind::Other(other.to_owned()),
        }
    }

    /// The type as updateinfo.xml writes it.
    pub fn as_str(&self) -> &str {
        match self {
            AdvisoryKind::Security => "security",
            AdvisoryKind::Bugfix => "bugfix",
            AdvisoryKind::Enhancement => "enhancement",
            AdvisoryKind::Newpackage => "newpackage",
            AdvisoryKind::Other(s) => s,
        }
    }
}

/// A package an advisory ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryPackage {
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// The fixed version.
    pub evr: Evr,
}

/// One `<update>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    /// `FEDORA-2026-…`, `RHSA-2026:1234`.
    pub id: String,
    /// Its type.
    pub kind: AdvisoryKind,
    /// `Critical`, `Important`, `Moderate`, `Low`, when given.
    pub severity: Option<String>,
    /// Its title.
    pub title: Option<String>,
    /// The CVE ids it references.
    pub cves: Vec<String>,
    /// The packages it ships.
    pub packages: Vec<AdvisoryPackage>,
}

impl Advisory {
    /// Whether this advisory is part of moving package `name.arch` from `from` to `to`: it
    /// ships a version newer than `from` and no newer than `to` (dnf's test for an
    /// installed package it applies to); for a package not there before (`from` None), it
    /// ships exactly `to`.
    pub fn covers(&self, name: &str, arch: &str, from: Option<&Evr>, to: &Evr) -> bool {
        self.packages.iter().any(|p| {
            p.name == name
                && p.arch == arch
                && match from {
                    Some(from) => {
                        p.evr.cmp_rpm(from) == Ordering::Greater
                            && p.evr.cmp_rpm(to) != Ordering::Greater
                    }
                    None => p.evr.cmp_rpm(to) == Ordering::Equal,
                }
        })
    }
}

/// The advisories of an updateinfo.xml and warnings about what was odd in it (unknown
/// types, advisories without an id). Malformed XML is an error.
pub fn parse(r: impl BufRead) -> Result<(Vec<Advisory>, Vec<String>), String> {
    let mut x = XmlStream::new(r);
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    let mut cur: Option<Advisory> = None;
    let mut text = String::new();
    let mut saw_root = false;
    loop {
        match x.event()? {
            Ev::Start(e) | Ev::Empty(e) if e.local_name().as_ref() == b"updates" => saw_root = true,
            Ev::Start(e) => {
                text.clear();
                if e.local_name().as_ref() == b"update" {
                    let kind = attr(&e, b"type")?.unwrap_or_default();
                    cur = Some(Advisory {
                        id: String::new(),
                        kind: AdvisoryKind::parse(&kind),
                        severity: None,
                        title: None,
                        cves: Vec::new(),
                        packages: Vec::new(),
                    });
                } else if let Some(a) = cur.as_mut() {
                    element(a, &e)?;
                }
            }
            Ev::Empty(e) => {
                if let Some(a) = cur.as_mut() {
                    element(a, &e)?;
                }
            }
            Ev::Text(t) => text.push_str(&t),
            Ev::End(end) => {
                let t = text.trim();
                match (end.local_name().as_ref(), cur.as_mut()) {
                    (b"id", Some(a)) => a.id = t.to_owned(),
                    (b"title", Some(a)) if !t.is_empty() => a.title = Some(t.to_owned()),
                    (b"severity", Some(a)) if !t.is_empty() && t != "None" => {
                        a.severity = Some(t.to_owned())
                    }
                    (b"update", Some(_)) => {
                        let a = cur.take().expect("in an update");
                        if a.id.is_empty() {
                            warnings.push("an advisory without an <id> was skipped".to_owned());
                            continue;
                        }
                        if let AdvisoryKind::Other(k) = &a.kind {
                            warnings.push(format!(
                                "advisory {} has an unknown type `{k}` (not security, bugfix, \
                                 enhancement or newpackage)",
                                a.id
                            ));
                        }
                        out.push(a);
                    }
                    _ => {}
                }
                text.clear();
            }
            Ev::Skip => {}
            Ev::Eof => break,
        }
    }
    if !saw_root {
        return Err("not an updateinfo.xml (no <updates> element)".into());
    }
    if let Some(a) = cur {
        return Err(format!("the file ends inside advisory `{}`", a.id));
    }
    Ok((out, warnings))
}

/// A `<reference/>` or `<package>` inside an advisory.
fn element(a: &mut Advisory, e: &quick_xml::events::BytesStart<'_>) -> Result<(), String> {
    match e.local_name().as_ref() {
        b"reference" => {
            if attr(e, b"type")?.as_deref() == Some("cve")
                && let Some(id) = attr(e, b"id")?
                && !a.cves.contains(&id)
            {
                a.cves.push(id);
            }
        }
        b"package" => {
            let (Some(name), Some(version), Some(arch)) =
                (attr(e, b"name")?, attr(e, b"version")?, attr(e, b"arch")?)
            else {
                return Err(format!(
                    "advisory {}: a <package> without name, version or arch",
                    a.id
                ));
            };
            let evr = Evr::new(
                attr(e, b"epoch")?.as_deref().filter(|e| *e != "0"),
                &version,
                attr(e, b"release")?.as_deref(),
            );
            a.packages.push(AdvisoryPackage { name, arch, evr });
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="sec@example.org" status="final" type="security" version="2">
    <id>FXSA-2026:0001</id>
    <title>Important: fx-ssl security update</title>
    <severity>Important</severity>
    <description>A flaw &amp; its fix.</description>
    <references>
      <reference href="https://example.org/CVE-2026-0001" id="CVE-2026-0001" type="cve" title="CVE-2026-0001"/>
      <reference href="https://example.org/1" id="1" type="bugzilla"/>
    </references>
    <pkglist><collection short="fx"><name>fx</name>
      <package name="fx-ssl" epoch="0" version="1.0" release="2.fx" arch="x86_64" src="fx-ssl-1.0-2.fx.src.rpm">
        <filename>fx-ssl-1.0-2.fx.x86_64.rpm</filename>
      </package>
    </collection></pkglist>
  </update>
  <update type="hotfix"><id>FXHA-1</id><pkglist/></update>
</updates>"#;

    #[test]
    fn advisories_with_their_packages_and_cves() {
        let (a, warnings) = parse(DOC.as_bytes()).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].id, "FXSA-2026:0001");
        assert_eq!(a[0].kind, AdvisoryKind::Security);
        assert_eq!(a[0].severity.as_deref(), Some("Important"));
        assert_eq!(a[0].cves, ["CVE-2026-0001"]);
        assert_eq!(a[0].packages[0].evr, Evr::parse("1.0-2.fx"));
        assert_eq!(a[1].kind, AdvisoryKind::Other("hotfix".into()));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("FXHA-1") && warnings[0].contains("hotfix"));
        let (from, to) = (Evr::parse("1.0-1.fx"), Evr::parse("1.0-3.fx"));
        assert!(a[0].covers("fx-ssl", "x86_64", Some(&from), &to));
        assert!(!a[0].covers("fx-ssl", "x86_64", Some(&Evr::parse("1.0-2.fx")), &to));
        assert!(!a[0].covers("fx-ssl", "i686", Some(&from), &to));
        assert!(a[0].covers("fx-ssl", "x86_64", None, &Evr::parse("1.0-2.fx")));
    }

    #[test]
    fn broken_xml_is_an_error() {
        let cut = DOC.find("</update>").unwrap();
        assert!(parse(&DOC.as_bytes()[..cut]).is_err());
        assert!(parse("<updates><update type=\"x\"><id>a</update></updates>".as_bytes()).is_err());
        assert!(parse("<nothing/>".as_bytes()).is_err());
    }
}
