//! What an image holds, for scanners and loaders: the rpm manifest scanners read in images
//! without an rpmdb (`/var/lib/rpmmanifest/container-manifest-2`), an SPDX 2.3 SBOM from the
//! RPM headers, and the library directories of `/etc/ld.so.conf.d` (no scriptlet runs
//! `ldconfig`, so they become `LD_LIBRARY_PATH`).

use std::path::Path;

use serde_json::json;

use crate::rpm::{PackageInfo, RpmError};

/// One package of an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImagePackage {
    /// Name, EVR, arch, license and more from the RPM header.
    pub info: PackageInfo,
    /// sha256 of the RPM file.
    pub sha256: String,
    /// The repository it came from.
    pub repo: String,
}

impl ImagePackage {
    /// `version-release`
    pub fn vr(&self) -> String {
        format!("{}-{}", self.info.version, self.info.release)
    }

    /// `[epoch:]version-release`
    pub fn evr(&self) -> String {
        match self.info.epoch {
            Some(e) => format!("{e}:{}", self.vr()),
            None => self.vr(),
        }
    }

    /// A package URL (purl spec, type `rpm`).
    pub fn purl(&self) -> String {
        let i = &self.info;
        let mut q = vec![format!("arch={}", pct(&i.arch))];
        if let Some(e) = i.epoch {
            q.push(format!("epoch={e}"));
        }
        if !i.sourcerpm.is_empty() {
            q.push(format!("upstream={}", pct(&i.sourcerpm)));
        }
        q.push(format!("repository_id={}", pct(&self.repo)));
        format!(
            "pkg:rpm/{}@{}?{}",
            pct(&i.name),
            pct(&self.vr()),
            q.join("&")
        )
    }
}

/// Percent-encodes what a purl component may not hold.
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The rpm manifest file, as `rpm -qa --qf` writes it for distroless images:
/// `NAME \t VERSION-RELEASE \t INSTALLTIME \t BUILDTIME \t VENDOR \t EPOCH \t SIZE \t ARCH \t
/// EPOCHNUM \t SOURCERPM`, one line per package, sorted by name. The install time is the
/// build's fixed epoch, so the file is reproducible.
pub fn rpm_manifest(packages: &[ImagePackage], install_time: u64) -> String {
    let mut sorted: Vec<&ImagePackage> = packages.iter().collect();
    sorted.sort_by(|a, b| (&a.info.name, &a.info.arch).cmp(&(&b.info.name, &b.info.arch)));
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let mut out = String::new();
    for p in sorted {
        let i = &p.info;
        out.push_str(&format!(
            "{}\t{}\t{install_time}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            clean(&i.name),
            clean(&p.vr()),
            i.buildtime,
            if i.vendor.is_empty() {
                "(none)".into()
            } else {
                clean(&i.vendor)
            },
            i.epoch.map_or("(none)".into(), |e| e.to_string()),
            i.size,
            clean(&i.arch),
            i.epoch.unwrap_or(0),
            if i.sourcerpm.is_empty() {
                "(none)".into()
            } else {
                clean(&i.sourcerpm)
            },
        ));
    }
    out
}

/// The image an SBOM describes.
pub struct SbomSubject<'a> {
    /// The job's name.
    pub name: &'a str,
    /// `host/repository` or `repository`
    pub repository: &'a str,
    /// The image manifest's digest.
    pub manifest_digest: &'a str,
    /// Seconds since the epoch (the build's fixed time).
    pub created: u64,
}

/// SPDX license identifiers common in RPM `License:` tags that are already valid SPDX.
const SPDX_IDS: &[&str] = &[
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "Apache-2.0",
    "ISC",
    "Zlib",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MPL-2.0",
    "CC0-1.0",
    "Unlicense",
    "PSF-2.0",
    "Python-2.0",
    "OpenSSL",
    "curl",
    "BSL-1.0",
];

/// An SPDX license expression for an RPM license: a known identifier as is, anything else
/// as a `LicenseRef-` whose text is the original (returned second).
fn license(rpm: &str) -> (String, Option<(String, String)>) {
    let t = rpm.trim();
    if t.is_empty() {
        return ("NOASSERTION".into(), None);
    }
    if SPDX_IDS.contains(&t) {
        return (t.to_owned(), None);
    }
    let id: String = t
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = format!("LicenseRef-rpm-{id}");
    (id.clone(), Some((id, t.to_owned())))
}

/// An SPDX 2.3 JSON document: the image as a package that contains every RPM (name, EVR,
/// arch, license, source RPM, sha256, purl). Deterministic for the same image.
pub fn spdx(subject: &SbomSubject<'_>, packages: &[ImagePackage]) -> serde_json::Value {
    let mut sorted: Vec<&ImagePackage> = packages.iter().collect();
    sorted.sort_by(|a, b| (&a.info.name, &a.info.arch).cmp(&(&b.info.name, &b.info.arch)));
    let hex = subject
        .manifest_digest
        .trim_start_matches("sha256:")
        .to_owned();
    let image_id = "SPDXRef-Image".to_owned();
    let mut spdx_packages = vec![json!({
        "SPDXID": image_id,
        "name": subject.repository,
        "versionInfo": subject.manifest_digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!(
                "pkg:oci/{}@sha256%3A{hex}",
                pct(subject.repository.rsplit('/').next().unwrap_or(subject.repository))
            ),
        }],
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let mut extracted: std::collections::BTreeMap<String, String> = Default::default();
    for (n, p) in sorted.iter().enumerate() {
        let id = format!("SPDXRef-Package-rpm-{n}");
        let (declared, extra) = license(&p.info.license);
        if let Some((k, v)) = extra {
            extracted.insert(k, v);
        }
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.info.name,
            "versionInfo": p.evr(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "checksums": [{"algorithm": "SHA256", "checksumValue": p.sha256}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(),
            }],
            "comment": format!("arch {} from repository {}", p.info.arch, p.repo),
        });
        if !p.info.sourcerpm.is_empty() {
            pkg["sourceInfo"] = json!(format!("built from source RPM {}", p.info.sourcerpm));
        }
        if !p.info.vendor.is_empty() {
            pkg["supplier"] = json!(format!("Organization: {}", p.info.vendor));
        }
        spdx_packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("pbsimage-{}", subject.name),
        "documentNamespace": format!("https://pbsimage.invalid/spdx/{}/{hex}", pct(subject.name)),
        "creationInfo": {
            "created": super::oci::rfc3339(subject.created),
            "creators": [concat!("Tool: pbsimage-", env!("CARGO_PKG_VERSION"))],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, text)| {
                json!({
                    "licenseId": id,
                    "extractedText": text,
                    "name": text,
                })
            })
            .collect();
    }
    doc
}

/// The `.conf` files of `/etc/ld.so.conf.d` among a package's files.
pub fn has_ld_conf(files: &[crate::rpm::FileInfo]) -> bool {
    files.iter().any(|f| is_ld_conf(&f.path) && !f.ghost)
}

fn is_ld_conf(path: &str) -> bool {
    path.strip_prefix("/etc/ld.so.conf.d/")
        .is_some_and(|n| n.ends_with(".conf") && !n.contains('/'))
}

/// The directories that `/etc/ld.so.conf.d/*.conf` in the RPM at `path` names (comments and
/// `include` lines dropped), read from its payload.
pub fn ld_conf_dirs(path: &Path) -> Result<Vec<String>, RpmError> {
    let mut dirs = Vec::new();
    for text in crate::rpm::read_texts(path, is_ld_conf, 64 << 10)? {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with("include") || line.starts_with("hwcap") {
                continue;
            }
            for d in line
                .split([' ', '\t', ':', ','])
                .filter(|d| d.starts_with('/'))
            {
                dirs.push(d.trim_end_matches('/').to_owned());
            }
        }
    }
    Ok(dirs)
}

/// `LD_LIBRARY_PATH` for the given directories: those outside the loader's defaults, in
/// order, once each.
pub fn library_path(dirs: &[String]) -> Option<String> {
    const DEFAULTS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64"];
    let mut out: Vec<&str> = Vec::new();
    for d in dirs {
        if !DEFAULTS.contains(&d.as_str()) && !out.contains(&d.as_str()) && !d.contains(':') {
            out.push(d);
        }
    }
    (!out.is_empty()).then(|| out.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, license: &str, epoch: Option<u32>) -> ImagePackage {
        ImagePackage {
            info: PackageInfo {
                name: name.into(),
                epoch,
                version: "1.0".into(),
                release: "1.el9".into(),
                arch: "x86_64".into(),
                license: license.into(),
                sourcerpm: format!("{name}-1.0-1.el9.src.rpm"),
                vendor: String::new(),
                buildtime: 1700000000,
                size: 1234,
            },
            sha256: "ab".repeat(32),
            repo: "baseos".into(),
        }
    }

    #[test]
    fn rpm_manifest_lines_are_the_distroless_format() {
        let m = rpm_manifest(
            &[pkg("zlib", "Zlib", None), pkg("bash", "GPLv3+", Some(2))],
            5,
        );
        assert_eq!(
            m,
            "bash\t1.0-1.el9\t5\t1700000000\t(none)\t2\t1234\tx86_64\t2\tbash-1.0-1.el9.src.rpm\n\
             zlib\t1.0-1.el9\t5\t1700000000\t(none)\t(none)\t1234\tx86_64\t0\tzlib-1.0-1.el9.src.rpm\n"
        );
    }

    #[test]
    fn spdx_licenses_and_purls() {
        let doc = spdx(
            &SbomSubject {
                name: "fib",
                repository: "pbs/fib",
                manifest_digest: "sha256:00",
                created: 0,
            },
            &[pkg("bash", "GPLv3+", Some(2)), pkg("zlib", "Zlib", None)],
        );
        assert_eq!(
            doc["packages"][1]["licenseDeclared"],
            "LicenseRef-rpm-GPLv3-"
        );
        assert_eq!(doc["packages"][2]["licenseDeclared"], "Zlib");
        assert_eq!(
            doc["packages"][1]["externalRefs"][0]["referenceLocator"],
            "pkg:rpm/bash@1.0-1.el9?arch=x86_64&epoch=2&upstream=bash-1.0-1.el9.src.rpm&repository_id=baseos"
        );
        assert_eq!(
            doc["hasExtractedLicensingInfos"][0]["extractedText"],
            "GPLv3+"
        );
        assert_eq!(doc["creationInfo"]["created"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn library_path_skips_defaults_and_repeats() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(library_path(&d(&["/usr/lib64", "/lib"])), None);
        assert_eq!(
            library_path(&d(&["/opt/a/lib", "/usr/lib64", "/opt/a/lib", "/opt/b"])).as_deref(),
            Some("/opt/a/lib:/opt/b")
        );
    }
}
