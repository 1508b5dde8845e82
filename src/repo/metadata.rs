//! Parsers for `repomd.xml`, `primary.xml` and `filelists.xml` (createrepo_c's formats).

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::evr::{Cmp, Evr};
use crate::digest::Checksum;
use quick_xml::XmlVersion;

use super::xml::{Ev, Events, XmlSlice, XmlStream, attr};

/// One `<data type="...">` record of `repomd.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepomdRecord {
    /// `primary`, `filelists`, `other`, `modules`, …
    pub kind: String,
    /// The file, relative to the repository.
    pub href: String,
    /// `xml:base` of the location, if any.
    pub base: Option<String>,
    /// The compressed file's checksum.
    pub checksum: Checksum,
    /// The compressed file's size.
    pub size: Option<u64>,
    /// The uncompressed size.
    pub open_size: Option<u64>,
}

/// `repomd.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repomd {
    /// `<revision>`.
    pub revision: Option<String>,
    /// The `<data>` records.
    pub records: Vec<RepomdRecord>,
}

impl Repomd {
    /// Parses repomd.xml (strict: no DOCTYPE, no unknown structure where it matters).
    pub fn parse<R: BufRead>(r: R) -> Result<Repomd, String> {
        let mut x = XmlStream::new(r);
        let mut md = Repomd {
            revision: None,
            records: Vec::new(),
        };
        let mut saw_root = false;
        // The <data> being read: type, (href, xml:base), (checksum type, hex), size, open-size.
        type Partial = (
            String,
            Option<(String, Option<String>)>,
            Option<(String, String)>,
            Option<u64>,
            Option<u64>,
        );
        let mut cur: Option<Partial> = None;
        let mut text = String::new();
        let mut in_checksum_type: Option<String> = None;
        loop {
            match x.event()? {
                Ev::Start(e) | Ev::Empty(e) if e.local_name().as_ref() == b"repomd" => {
                    saw_root = true
                }
                Ev::Start(e) => {
                    text.clear();
                    match e.local_name().as_ref() {
                        b"data" => {
                            let kind = attr(&e, b"type")?.ok_or("<data> without type")?;
                            cur = Some((kind, None, None, None, None));
                        }
                        b"checksum" if cur.is_some() => {
                            in_checksum_type =
                                Some(attr(&e, b"type")?.ok_or("<checksum> without type")?);
                        }
                        _ => {}
                    }
                }
                Ev::Empty(e) => {
                    if e.local_name().as_ref() == b"location"
                        && let Some(c) = cur.as_mut()
                    {
                        let href = attr(&e, b"href")?.ok_or("<location> without href")?;
                        c.1 = Some((href, attr(&e, b"xml:base")?));
                    }
                }
                Ev::Text(t) => text.push_str(&t),
                Ev::End(end) => {
                    match end.local_name().as_ref() {
                        b"revision" if cur.is_none() => md.revision = Some(text.trim().to_owned()),
                        b"checksum" => {
                            if let (Some(c), Some(t)) = (cur.as_mut(), in_checksum_type.take()) {
                                c.2 = Some((t, text.trim().to_owned()));
                            }
                        }
                        b"size" => {
                            if let Some(c) = cur.as_mut() {
                                c.3 = text.trim().parse().ok();
                            }
                        }
                        b"open-size" => {
                            if let Some(c) = cur.as_mut() {
                                c.4 = text.trim().parse().ok();
                            }
                        }
                        b"data" => {
                            if let Some((kind, loc, sum, size, open_size)) = cur.take() {
                                let (href, base) = loc.ok_or_else(|| {
                                    format!("<data type=\"{kind}\"> has no location")
                                })?;
                                let (algo, hex) = sum.ok_or_else(|| {
                                    format!("<data type=\"{kind}\"> has no checksum")
                                })?;
                                let checksum = Checksum::new(&algo, &hex)
                                    .map_err(|e| format!("<data type=\"{kind}\">: {e}"))?;
                                md.records.push(RepomdRecord {
                                    kind,
                                    href,
                                    base,
                                    checksum,
                                    size,
                                    open_size,
                                });
                            }
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
            return Err("not a repomd.xml (no <repomd> element)".into());
        }
        Ok(md)
    }

    /// The record of a type (`primary`, `filelists`, `modules`).
    pub fn record(&self, kind: &str) -> Option<&RepomdRecord> {
        self.records.iter().find(|r| r.kind == kind)
    }
}

/// A dependency entry (`<rpm:entry name flags epoch ver rel pre/>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dep {
    /// The capability's name.
    pub name: String,
    /// The comparison of a versioned dependency.
    pub cmp: Option<Cmp>,
    /// The version compared with.
    pub evr: Option<Evr>,
    /// `pre="1"`: needed before the package's scriptlets run. (No `skip_serializing_if`:
    /// the index cache uses postcard, which is not self-describing.)
    pub pre: bool,
}

impl Dep {
    /// The version range, when the dependency is versioned.
    pub fn range(&self) -> Option<(Cmp, &Evr)> {
        Some((self.cmp?, self.evr.as_ref()?))
    }
    /// A rich (boolean) dependency: `(a or b)`.
    pub fn is_rich(&self) -> bool {
        self.name.starts_with('(')
    }

    /// A requirement as `dnf install` and a spec file write it: `name`, `name OP evr` (OP one
    /// of `< <= = == >= >`), or a rich dependency in parentheses (balanced). `None` otherwise.
    pub fn parse_spec(s: &str) -> Option<Dep> {
        let s = s.trim();
        if s.is_empty() || s.chars().any(char::is_control) {
            return None;
        }
        if s.starts_with('(') {
            let mut depth = 0i32;
            for (i, c) in s.char_indices() {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                if depth == 0 && i + 1 != s.len() {
                    return None;
                }
            }
            return (depth == 0).then(|| Dep {
                name: s.to_owned(),
                cmp: None,
                evr: None,
                pre: false,
            });
        }
        let words: Vec<&str> = s.split_whitespace().collect();
        let (name, cmp, evr) = match words[..] {
            [name] => (name, None, None),
            [name, op, evr] => {
                let cmp = match op {
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    "=" | "==" => Cmp::Eq,
                    ">=" => Cmp::Ge,
                    ">" => Cmp::Gt,
                    _ => return None,
                };
                (name, Some(cmp), Some(Evr::parse(evr)))
            }
            _ => return None,
        };
        Some(Dep {
            name: name.to_owned(),
            cmp,
            evr,
            pre: false,
        })
    }
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some((c, e)) = self.range() {
            write!(f, " {} {e}", c.symbol())?;
        }
        Ok(())
    }
}

/// A package as `primary.xml` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Epoch, version, release.
    pub evr: Evr,
    /// The package checksum (`pkgid`).
    pub checksum: Checksum,
    /// The package file, relative to the repository (or `base`).
    pub href: String,
    /// `xml:base` of the location, if any.
    pub base: Option<String>,
    /// Package file size.
    pub size: u64,
    /// Installed size.
    pub installed_size: u64,
    /// License.
    pub license: Option<String>,
    /// Source RPM.
    pub sourcerpm: Option<String>,
    /// Provides.
    pub provides: Vec<Dep>,
    /// Requires.
    pub requires: Vec<Dep>,
    /// Obsoletes.
    pub obsoletes: Vec<Dep>,
    /// Conflicts.
    pub conflicts: Vec<Dep>,
    /// Recommends (weak dependencies).
    pub recommends: Vec<Dep>,
    /// Suggests: weaker still; never installed for it, but it steers the choice between
    /// providers (libsolv's policy, as dnf).
    pub suggests: Vec<Dep>,
    /// Supplements (reverse Recommends).
    pub supplements: Vec<Dep>,
    /// Enhances (reverse Suggests).
    pub enhances: Vec<Dep>,
    /// The files primary.xml lists (`*/bin/*`, `/etc/*`, ...).
    pub files: Vec<String>,
}

impl Package {
    /// A package with no name, version or dependencies: what the parser fills in, and the
    /// stand-in for a record a damaged index could not decode.
    pub(crate) fn empty() -> Package {
        Package {
            name: String::new(),
            arch: String::new(),
            evr: Evr::new(None, "", None),
            checksum: Checksum::new("sha256", &"0".repeat(64)).expect("valid"),
            href: String::new(),
            base: None,
            size: 0,
            installed_size: 0,
            license: None,
            sourcerpm: None,
            provides: Vec::new(),
            requires: Vec::new(),
            obsoletes: Vec::new(),
            conflicts: Vec::new(),
            recommends: Vec::new(),
            suggests: Vec::new(),
            supplements: Vec::new(),
            enhances: Vec::new(),
            files: Vec::new(),
        }
    }

    /// `name-[epoch:]version-release.arch`.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

#[derive(Clone, Copy)]
enum DepList {
    Provides,
    Requires,
    Obsoletes,
    Conflicts,
    Recommends,
    Suggests,
    Supplements,
    Enhances,
    Ignored,
}

fn ctx(name: &str, e: String) -> String {
    if name.is_empty() {
        e
    } else {
        format!("package `{name}`: {e}")
    }
}

/// One `<rpm:entry/>`, reading its attributes in a single pass.
fn entry(e: &quick_xml::events::BytesStart<'_>) -> Result<Dep, String> {
    let (mut name, mut flags, mut epoch, mut ver, mut rel, mut pre) =
        (None, None, None, None, None, false);
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let v = || {
            a.normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| format!("bad attribute value: {e}"))
        };
        match a.key.as_ref() {
            b"name" => name = Some(v()?.into_owned()),
            b"flags" => flags = Some(v()?),
            b"epoch" => epoch = Some(v()?.into_owned()),
            b"ver" => ver = Some(v()?.into_owned()),
            b"rel" => rel = Some(v()?.into_owned()),
            b"pre" => pre = matches!(a.value.as_ref(), b"1" | b"true"),
            _ => {}
        }
    }
    let name = name.ok_or("<rpm:entry> without name")?;
    let cmp = match flags {
        Some(f) => Some(
            Cmp::parse(&f).ok_or_else(|| format!("unknown dependency flags `{f}` on `{name}`"))?,
        ),
        None => None,
    };
    let evr = ver.map(|v| Evr::from_parts(epoch, v, rel));
    Ok(Dep {
        name,
        cmp,
        evr,
        pre,
    })
}

/// An empty element inside `<package>`: version, size, location, or a dependency entry of
/// the list being read.
fn package_element(
    p: &mut Package,
    e: &quick_xml::events::BytesStart<'_>,
    list: DepList,
) -> Result<(), String> {
    match e.local_name().as_ref() {
        b"version" => {
            let Some(ver) = attr(e, b"ver")? else {
                return Err(ctx(&p.name, "<version> without ver".into()));
            };
            p.evr = Evr::new(
                attr(e, b"epoch")?.as_deref(),
                &ver,
                attr(e, b"rel")?.as_deref(),
            );
        }
        b"size" => {
            p.size = attr(e, b"package")?
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            p.installed_size = attr(e, b"installed")?
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
        b"location" => {
            let Some(href) = attr(e, b"href")? else {
                return Err(ctx(&p.name, "<location> without href".into()));
            };
            p.href = href;
            p.base = attr(e, b"xml:base")?;
        }
        b"entry" => {
            let dep = entry(e).map_err(|m| ctx(&p.name, m))?;
            match list {
                DepList::Provides => p.provides.push(dep),
                DepList::Requires => p.requires.push(dep),
                DepList::Obsoletes => p.obsoletes.push(dep),
                DepList::Conflicts => p.conflicts.push(dep),
                DepList::Recommends => p.recommends.push(dep),
                DepList::Suggests => p.suggests.push(dep),
                DepList::Supplements => p.supplements.push(dep),
                DepList::Enhances => p.enhances.push(dep),
                DepList::Ignored => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// The text of an element inside `<package>` that ended: name, arch, license, source RPM,
/// a file.
fn package_text(p: &mut Package, element: &[u8], text: &str) {
    match element {
        b"name" => p.name = text.to_owned(),
        b"arch" => p.arch = text.to_owned(),
        b"license" => p.license = Some(text.to_owned()),
        b"sourcerpm" => p.sourcerpm = (!text.is_empty()).then(|| text.to_owned()),
        b"file" => p.files.push(text.to_owned()),
        _ => {}
    }
}

/// Streams `primary.xml`, calling `f` for each package.
pub fn parse_primary<R: BufRead>(
    r: R,
    f: impl FnMut(Package) -> Result<(), String>,
) -> Result<u64, String> {
    primary_events(&mut XmlStream::new(r), f)
}

/// As [`parse_primary`], over bytes in memory (nothing copied).
pub(crate) fn parse_primary_slice(
    bytes: &[u8],
    f: impl FnMut(Package) -> Result<(), String>,
) -> Result<u64, String> {
    primary_events(&mut XmlSlice::new(bytes), f)
}

fn primary_events(
    x: &mut impl Events,
    mut f: impl FnMut(Package) -> Result<(), String>,
) -> Result<u64, String> {
    let mut pkg: Option<Package> = None;
    let mut text = String::new();
    let mut list = DepList::Ignored;
    let mut checksum_type: Option<String> = None;
    let mut count = 0u64;
    let mut saw_root = false;
    // Only these elements' text is kept: descriptions and summaries are passed over.
    let mut want_text = false;
    loop {
        x.set_keep_text(want_text);
        match x.next_event()? {
            Ev::Start(e) => {
                text.clear();
                let local = e.local_name();
                want_text = matches!(
                    local.as_ref(),
                    b"name" | b"arch" | b"license" | b"sourcerpm" | b"file" | b"checksum"
                );
                match local.as_ref() {
                    b"metadata" => saw_root = true,
                    b"package" => {
                        pkg = Some(Package::empty());
                        checksum_type = None;
                    }
                    b"checksum" => checksum_type = attr(&e, b"type")?,
                    b"provides" => list = DepList::Provides,
                    b"requires" => list = DepList::Requires,
                    b"obsoletes" => list = DepList::Obsoletes,
                    b"conflicts" => list = DepList::Conflicts,
                    b"recommends" => list = DepList::Recommends,
                    b"suggests" => list = DepList::Suggests,
                    b"supplements" => list = DepList::Supplements,
                    b"enhances" => list = DepList::Enhances,
                    _ => {}
                }
            }
            Ev::Empty(e) => {
                if let Some(p) = pkg.as_mut() {
                    package_element(p, &e, list)?;
                }
            }
            Ev::Text(t) => text.push_str(&t),
            Ev::End(end) => {
                want_text = false;
                if let Some(p) = pkg.as_mut() {
                    match end.local_name().as_ref() {
                        b"checksum" => {
                            let t = checksum_type.take().unwrap_or_default();
                            p.checksum = Checksum::new(&t, &text).map_err(|e| ctx(&p.name, e))?;
                        }
                        b"provides" | b"requires" | b"obsoletes" | b"conflicts" | b"recommends"
                        | b"suggests" | b"supplements" | b"enhances" => list = DepList::Ignored,
                        b"package" => {
                            let p = pkg.take().expect("in package");
                            if p.name.is_empty()
                                || p.arch.is_empty()
                                || p.href.is_empty()
                                || p.evr.version.is_empty()
                            {
                                return Err(format!(
                                    "package entry {} is missing its name, arch, version or location",
                                    count + 1
                                ));
                            }
                            count += 1;
                            f(p)?;
                        }
                        field => package_text(p, field, text.trim()),
                    }
                }
                text.clear();
            }
            Ev::Skip => {}
            Ev::Eof => break,
        }
    }
    if !saw_root {
        return Err("not a primary.xml (no <metadata> element)".into());
    }
    Ok(count)
}

/// Streams `filelists.xml`, calling `f(pkgid, file)` for each file.
pub fn parse_filelists<R: BufRead>(r: R, f: impl FnMut(&str, &str)) -> Result<(), String> {
    filelists_events(&mut XmlStream::new(r), f)
}

/// As [`parse_filelists`], over bytes in memory (nothing copied).
pub(crate) fn parse_filelists_slice(bytes: &[u8], f: impl FnMut(&str, &str)) -> Result<(), String> {
    filelists_events(&mut XmlSlice::new(bytes), f)
}

fn filelists_events(x: &mut impl Events, mut f: impl FnMut(&str, &str)) -> Result<(), String> {
    let mut pkgid = String::new();
    let mut text = String::new();
    let mut in_file = false;
    let mut saw_root = false;
    loop {
        x.set_keep_text(in_file);
        match x.next_event()? {
            Ev::Start(e) => match e.local_name().as_ref() {
                b"filelists" => saw_root = true,
                b"package" => pkgid = attr(&e, b"pkgid")?.unwrap_or_default(),
                b"file" => {
                    in_file = true;
                    text.clear();
                }
                _ => {}
            },
            Ev::Text(t) if in_file => text.push_str(&t),
            Ev::End(end) => {
                if end.local_name().as_ref() == b"file" {
                    f(&pkgid, text.trim());
                    in_file = false;
                }
            }
            Ev::Empty(_) | Ev::Text(_) | Ev::Skip => {}
            Ev::Eof => break,
        }
    }
    if !saw_root {
        return Err("not a filelists.xml (no <filelists> element)".into());
    }
    Ok(())
}
