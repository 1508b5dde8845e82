//! ELF → what a binary needs, read from its headers; nothing is ever executed.
//!
//! [`ElfReader::read`] extracts the class, machine, `PT_INTERP`, `DT_NEEDED`, `DT_RPATH`,
//! `DT_RUNPATH`, `DT_SONAME`, `DT_FLAGS_1`, the `DT_VERNEED` versions per soname, and whether
//! the object has GNU and SysV hash tables. [`ElfInfo::rpm_requires`] turns that into exactly
//! the capabilities rpm's `elfdeps --requires` generates, so they can be looked up in repo
//! metadata. The reader works on [`object`]'s bounds-checked, zero-copy parser through a read
//! cache: a large binary is not read whole, and a malformed one is an error, never a panic.

pub mod arch;
pub(crate) mod search;

use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader, SectionTable, Sym};
use object::read::{ReadCache, ReadRef};
use object::{Endianness, FileKind};
use serde::Serialize;

pub use arch::Arch;

/// Upper bounds that no real object reaches; beyond them the file is rejected.
pub mod limits {
    /// `DT_NEEDED` entries in one object.
    pub const MAX_NEEDED: usize = 4096;
    /// Versions needed from all sonames together.
    pub const MAX_VERSIONS: usize = 16_384;
    /// Dynamic section entries.
    pub const MAX_DYNAMIC: usize = 65_536;
    /// Length of one string (soname, path list).
    pub const MAX_STRING: usize = 4096;
    /// Dynamic symbols inspected for dlopen hints.
    pub const MAX_SYMBOLS: usize = 1_000_000;
}

/// Why an ELF file cannot be analysed.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file cannot be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not ELF.
    #[error("`{}` is not an ELF file: {what}", path.display())]
    NotElf {
        /// The file concerned.
        path: PathBuf,
        /// What the file looks like instead.
        what: String,
    },
    /// The ELF structures are damaged or over the limits.
    #[error("`{}` is a malformed ELF file: {detail}", path.display())]
    Malformed {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Neither an executable nor a shared object.
    #[error("`{}` is not a program or shared library (ELF type {kind})", path.display())]
    NotLoadable {
        /// The file concerned.
        path: PathBuf,
        /// The ELF `e_type` found.
        kind: u16,
    },
    /// An architecture pbsimage does not know.
    #[error("`{}` is built for an unsupported machine (ELF e_machine {machine})", path.display())]
    UnsupportedMachine {
        /// The file concerned.
        path: PathBuf,
        /// The ELF `e_machine`.
        machine: u16,
    },
    /// The binary is of another architecture than the repositories serve.
    #[error("`{}` is built for {elf_arch}, but the configured repositories are {repo_arch}", path.display())]
    WrongArch {
        /// The file concerned.
        path: PathBuf,
        /// The binary's architecture.
        elf_arch: String,
        /// The repositories' architecture.
        repo_arch: String,
    },
}

impl crate::hint::Hint for ElfError {
    fn hint(&self) -> Option<String> {
        match self {
            ElfError::NotElf { .. } => Some(
                "#PBS -B names the job's compiled program; scripts need no -B".into(),
            ),
            ElfError::Malformed { .. } => Some("is the file complete? re-copy or rebuild it".into()),
            ElfError::WrongArch { .. } => Some(
                "set [vars] basearch in pipeline.toml to the binary's architecture, or rebuild the binary".into(),
            ),
            _ => None,
        }
    }
}

/// The object's file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    /// `ET_EXEC`: a position-dependent executable.
    Executable,
    /// `ET_DYN` with `DF_1_PIE` or an interpreter: a position-independent executable.
    PieExecutable,
    /// `ET_DYN` without: a shared library.
    SharedLibrary,
}

/// What the headers of one ELF object say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    /// The file.
    pub path: PathBuf,
    /// Its architecture.
    pub arch: Arch,
    /// 64-bit (ELFCLASS64).
    pub class64: bool,
    /// `e_machine` is Alpha (rpm gives it no `(64bit)` marker).
    #[serde(skip)]
    pub alpha: bool,
    /// Executable, PIE executable or shared library.
    pub kind: ObjectKind,
    /// The file has an execute bit (rpm generates requires only then).
    pub exec_mode: bool,
    /// The loader (`PT_INTERP`), if any.
    pub interp: Option<String>,
    /// `DT_NEEDED` sonames, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_FLAGS_1`.
    pub flags_1: u64,
    /// `DT_VERNEED`: (soname, versions) in file order.
    pub verneed: Vec<(String, Vec<String>)>,
    /// Has a GNU hash table (`DT_GNU_HASH`).
    pub gnu_hash: bool,
    /// Has a SysV hash table (`DT_HASH`).
    pub sysv_hash: bool,
    /// The object has a dynamic section at all.
    pub dynamic: bool,
    /// Undefined dynamic symbols that reveal run-time `dlopen`s (NSS, gconv).
    pub dlopen_hints: Vec<String>,
}

/// Symbols whose use loads modules at run time.
const NSS_SYMBOLS: &[&str] = &[
    "getpwnam",
    "getpwuid",
    "getpwnam_r",
    "getpwuid_r",
    "getgrnam",
    "getgrgid",
    "getgrnam_r",
    "getgrgid_r",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_r",
    "gethostbyname2",
    "gethostbyaddr",
    "getservbyname",
    "getpwent",
    "getgrent",
    "getgrouplist",
    "initgroups",
];
const GCONV_SYMBOLS: &[&str] = &["iconv_open", "iconv"];

impl ElfInfo {
    /// Statically linked: no interpreter and no `DT_NEEDED` (static-pie has a dynamic section
    /// but needs nothing).
    pub fn is_static(&self) -> bool {
        self.interp.is_none() && self.needed.is_empty()
    }

    /// rpm's marker for this object's capabilities.
    pub fn marker(&self) -> &'static str {
        if self.class64 && !self.alpha {
            "(64bit)"
        } else {
            ""
        }
    }

    /// The capabilities `elfdeps --requires --filter-private` prints for this file: nothing
    /// unless the file is executable (`exec_mode`); one per `DT_NEEDED`; one per needed
    /// version except `GLIBC_PRIVATE`; `rtld(GNU_HASH)` for a GNU hash table without SysV one.
    pub fn rpm_requires(&self) -> Vec<Capability> {
        if !self.exec_mode {
            return Vec::new();
        }
        self.requires_when_loaded()
    }

    /// The capabilities of this object when it is loaded, whatever its file mode.
    pub fn requires_when_loaded(&self) -> Vec<Capability> {
        let marker = self.marker();
        let dep = |soname: &str, ver: Option<&str>| {
            if ver.is_some() || !marker.is_empty() {
                Capability(format!("{soname}({}){marker}", ver.unwrap_or("")))
            } else {
                Capability(soname.to_owned())
            }
        };
        let mut out = Vec::new();
        for (soname, versions) in &self.verneed {
            for v in versions {
                if v != "GLIBC_PRIVATE" {
                    out.push(dep(soname, Some(v)));
                }
            }
        }
        for n in &self.needed {
            out.push(dep(n, None));
        }
        if self.gnu_hash && !self.sysv_hash {
            out.push(Capability("rtld(GNU_HASH)".into()));
        }
        out
    }

    /// The versions this object needs from `soname`.
    pub fn versions_from(&self, soname: &str) -> &[String] {
        self.verneed
            .iter()
            .find(|(s, _)| s == soname)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }
}

/// An rpm capability, e.g. `libc.so.6(GLIBC_2.34)(64bit)`, `rtld(GNU_HASH)`, `/bin/sh`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Capability(String);

impl Capability {
    /// A capability is non-empty text without white space or control characters.
    pub fn new(s: &str) -> Option<Capability> {
        (!s.is_empty()
            && s.len() <= limits::MAX_STRING
            && !s.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| Capability(s.to_owned()))
    }
    /// A requirement that may have spaces: `python3 >= 3.9`, `(ksh or mksh)` (the caller
    /// checks its form); no control characters, no other white space than spaces.
    pub fn requirement(s: &str) -> Option<Capability> {
        (!s.trim().is_empty()
            && s.len() <= limits::MAX_STRING
            && !s
                .chars()
                .any(|c| (c.is_whitespace() && c != ' ') || c.is_control()))
        .then(|| Capability(s.trim().to_owned()))
    }
    /// The capability as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads ELF objects.
pub struct ElfReader;

impl ElfReader {
    /// Reads the headers of the file at `path`.
    pub fn read(path: &Path) -> Result<ElfInfo, ElfError> {
        let io = |source| ElfError::Read {
            path: path.to_owned(),
            source,
        };
        // Opened without blocking (opening a FIFO would wait for a writer) and checked by
        // type on the open file (reading a device never ends).
        let file = crate::cache::open_nonblocking(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "it is a directory"
            } else {
                "it is not a regular file (a FIFO, socket or device)"
            };
            return Err(ElfError::NotElf {
                path: path.to_owned(),
                what: what.into(),
            });
        }
        use std::os::unix::fs::PermissionsExt;
        let exec_mode = meta.permissions().mode() & 0o111 != 0;
        let cache = ReadCache::new(file);
        let info = parse(&cache, path, exec_mode);
        drop(cache);
        info
    }

    /// Parses an in-memory object (for tests and fuzzing).
    pub fn parse_bytes(data: &[u8], path: &Path, exec_mode: bool) -> Result<ElfInfo, ElfError> {
        parse(data, path, exec_mode)
    }
}

fn describe_non_elf<'a, R: ReadRef<'a>>(data: R) -> String {
    let head = data.read_bytes_at(0, 4).unwrap_or(&[]);
    let len = data.len().unwrap_or(0);
    if len == 0 {
        "the file is empty".into()
    } else if head.starts_with(b"#!") {
        "it is a script (starts with #!)".into()
    } else if head.starts_with(b"\x7fELF") {
        "its ELF header is truncated".into()
    } else if head.iter().all(|b| b.is_ascii()) {
        "it is a text file".into()
    } else {
        "unknown file format".into()
    }
}

fn parse<'a, R: ReadRef<'a>>(data: R, path: &Path, exec_mode: bool) -> Result<ElfInfo, ElfError> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf32) => {
            parse_class::<elf::FileHeader32<Endianness>, R>(data, path, exec_mode)
        }
        Ok(FileKind::Elf64) => {
            parse_class::<elf::FileHeader64<Endianness>, R>(data, path, exec_mode)
        }
        Ok(_) => Err(ElfError::NotElf {
            path: path.to_owned(),
            what: "it is an object file of another format".into(),
        }),
        Err(_) => Err(ElfError::NotElf {
            path: path.to_owned(),
            what: describe_non_elf(data),
        }),
    }
}

fn text(bytes: &[u8], what: &str, path: &Path) -> Result<String, ElfError> {
    if bytes.len() > limits::MAX_STRING {
        return Err(ElfError::Malformed {
            path: path.to_owned(),
            detail: format!("{what} is longer than {} bytes", limits::MAX_STRING),
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| ElfError::Malformed {
        path: path.to_owned(),
        detail: format!("{what} is not valid UTF-8"),
    })
}

fn parse_class<'a, Elf, R>(data: R, path: &Path, exec_mode: bool) -> Result<ElfInfo, ElfError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'a>,
{
    let bad = |e: object::read::Error| ElfError::Malformed {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let header = Elf::parse(data).map_err(|e| {
        if data.len().unwrap_or(0) < 64 {
            ElfError::Malformed {
                path: path.to_owned(),
                detail: "the file ends inside the ELF header".into(),
            }
        } else {
            bad(e)
        }
    })?;
    let endian = header.endian().map_err(bad)?;
    let class64 = header.is_class_64();
    let machine = header.e_machine(endian);
    let arch = Arch::from_elf(machine.0, class64, header.is_little_endian()).ok_or(
        ElfError::UnsupportedMachine {
            path: path.to_owned(),
            machine: machine.0,
        },
    )?;
    let e_type = header.e_type(endian);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(ElfError::NotLoadable {
            path: path.to_owned(),
            kind: e_type.0,
        });
    }

    let interp = interpreter(header, endian, data, path)?;
    let sections = header.sections(endian, data).map_err(bad)?;
    let mut info = ElfInfo {
        path: path.to_owned(),
        arch,
        class64,
        alpha: machine == elf::EM_ALPHA || machine.0 == 0x9026,
        kind: ObjectKind::SharedLibrary,
        exec_mode,
        interp,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        soname: None,
        flags_1: 0,
        verneed: Vec::new(),
        gnu_hash: false,
        sysv_hash: false,
        dynamic: false,
        dlopen_hints: Vec::new(),
    };
    read_dynamic(&sections, endian, data, &mut info)?;
    info.verneed = read_verneed(&sections, endian, data, path)?;
    info.dlopen_hints = dlopen_hints(&sections, endian, data);
    info.kind = if e_type == elf::ET_EXEC {
        ObjectKind::Executable
    } else if info.flags_1 & elf::DF_1_PIE.0 != 0 || info.interp.is_some() {
        ObjectKind::PieExecutable
    } else {
        ObjectKind::SharedLibrary
    };
    Ok(info)
}

/// A `map_err` for `object`'s errors about the file at `path`.
fn malformed(path: &Path) -> impl Fn(object::read::Error) -> ElfError + '_ {
    move |e| ElfError::Malformed {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// The loader named by `PT_INTERP`, if any.
fn interpreter<'a, Elf, R>(
    header: &Elf,
    endian: Endianness,
    data: R,
    path: &Path,
) -> Result<Option<String>, ElfError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'a>,
{
    let mut interp = None;
    for ph in header
        .program_headers(endian, data)
        .map_err(malformed(path))?
    {
        if ph.p_type(endian) == elf::PT_INTERP {
            let bytes = ph.data(endian, data).map_err(|_| ElfError::Malformed {
                path: path.to_owned(),
                detail: "PT_INTERP lies outside the file".into(),
            })?;
            let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
            interp = Some(text(bytes, "the interpreter path", path)?);
        }
    }
    Ok(interp)
}

/// Dynamic sections, in section order, as elfdeps reads them: needed libraries, soname,
/// search paths, flags and hash tables.
fn read_dynamic<'a, Elf, R>(
    sections: &SectionTable<'a, Elf, R>,
    endian: Endianness,
    data: R,
    info: &mut ElfInfo,
) -> Result<(), ElfError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'a>,
{
    let path = info.path.clone();
    let bad = malformed(&path);
    let too_many = |detail: String| ElfError::Malformed {
        path: path.clone(),
        detail,
    };
    for section in sections.iter() {
        let Some((dyns, link)) = section.dynamic(endian, data).map_err(&bad)? else {
            continue;
        };
        info.dynamic = true;
        if dyns.len() > limits::MAX_DYNAMIC {
            return Err(too_many(format!(
                "the dynamic section has {} entries",
                dyns.len()
            )));
        }
        let strings = sections.strings(endian, data, link).map_err(&bad)?;
        let string = |v: u64, what: &str| -> Result<String, ElfError> {
            let off = u32::try_from(v)
                .map_err(|_| too_many(format!("{what} string offset {v} is out of range")))?;
            let bytes = strings.get(off).map_err(|_| {
                too_many(format!(
                    "{what} string offset {v} is outside the string table"
                ))
            })?;
            text(bytes, what, &path)
        };
        for d in dyns {
            let val: u64 = d.d_val(endian).into();
            match d.d_tag(endian) {
                elf::DT_NULL => break,
                elf::DT_NEEDED => {
                    if info.needed.len() >= limits::MAX_NEEDED {
                        return Err(too_many(format!(
                            "more than {} DT_NEEDED entries",
                            limits::MAX_NEEDED
                        )));
                    }
                    info.needed.push(string(val, "DT_NEEDED")?);
                }
                elf::DT_SONAME => info.soname = Some(string(val, "DT_SONAME")?),
                elf::DT_RPATH => info
                    .rpath
                    .extend(string(val, "DT_RPATH")?.split(':').map(str::to_owned)),
                elf::DT_RUNPATH => info
                    .runpath
                    .extend(string(val, "DT_RUNPATH")?.split(':').map(str::to_owned)),
                elf::DT_FLAGS_1 => info.flags_1 = val,
                elf::DT_HASH => info.sysv_hash = true,
                elf::DT_GNU_HASH => info.gnu_hash = true,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Version needs: (file, [version names]) per `SHT_GNU_verneed` entry.
fn read_verneed<'a, Elf, R>(
    sections: &SectionTable<'a, Elf, R>,
    endian: Endianness,
    data: R,
    path: &Path,
) -> Result<Vec<(String, Vec<String>)>, ElfError>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'a>,
{
    let bad = malformed(path);
    let mut out = Vec::new();
    let mut versions = 0usize;
    for section in sections.iter() {
        let Some((mut iter, link)) = section.gnu_verneed(endian, data).map_err(&bad)? else {
            continue;
        };
        let strings = sections.strings(endian, data, link).map_err(&bad)?;
        for _ in 0..section.sh_info(endian) {
            let Some((need, mut aux_iter)) = iter.next().map_err(&bad)? else {
                break;
            };
            let file = text(
                need.file(endian, strings).map_err(&bad)?,
                "a verneed file",
                path,
            )?;
            let mut names = Vec::new();
            for _ in 0..need.vn_cnt.get(endian) {
                let Some(aux) = aux_iter.next().map_err(&bad)? else {
                    break;
                };
                versions += 1;
                if versions > limits::MAX_VERSIONS {
                    return Err(ElfError::Malformed {
                        path: path.to_owned(),
                        detail: format!("more than {} needed versions", limits::MAX_VERSIONS),
                    });
                }
                names.push(text(
                    aux.name(endian, strings).map_err(&bad)?,
                    "a version name",
                    path,
                )?);
            }
            out.push((file, names));
        }
    }
    Ok(out)
}

/// Undefined dynamic symbols that imply run-time module loading (`nss`, `gconv`).
fn dlopen_hints<'a, Elf, R>(
    sections: &SectionTable<'a, Elf, R>,
    endian: Endianness,
    data: R,
) -> Vec<String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'a>,
{
    let Ok(symbols) = sections.symbols(endian, data, elf::SHT_DYNSYM) else {
        return Vec::new();
    };
    let mut hints = std::collections::BTreeSet::new();
    for sym in symbols.iter().take(limits::MAX_SYMBOLS) {
        if sym.st_shndx(endian) != elf::SHN_UNDEF {
            continue;
        }
        let Ok(name) = sym.name(endian, symbols.strings()) else {
            continue;
        };
        let name = String::from_utf8_lossy(name);
        if NSS_SYMBOLS.contains(&name.as_ref()) {
            hints.insert("nss".to_owned());
        } else if GCONV_SYMBOLS.contains(&name.as_ref()) {
            hints.insert("gconv".to_owned());
        }
    }
    hints.into_iter().collect()
}
