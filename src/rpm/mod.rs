//! RPM reading: the header through the `rpm` crate, the payload streamed entry by entry.
//!
//! [`RpmReader::open`] parses the lead, signature and header (`rpm::PackageMetadata`), then
//! wraps the rest of the file in the payload's decompressor (gzip, xz, zstd, bzip2; legacy
//! lzma is refused) and a cap at the size the header declares. [`RpmReader::next_entry`]
//! yields cpio entries (`070701` newc, and rpm's `07070X` stripped form for large files) whose
//! data is read straight from the stream: a payload is never held in memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::decompress::Capped;

/// Limits checked before anything is allocated from header values.
pub mod limits {
    /// Files in one package.
    pub const MAX_FILES: usize = 1_000_000;
    /// Length of a cpio entry name.
    pub const MAX_NAME: usize = 4096;
    /// Size of one file in a payload (rpm's own limit for newc is 4 GiB).
    pub const MAX_FILE: u64 = 64 << 30;
    /// Index entries in one header (real packages have a few hundred).
    pub const MAX_TAGS: u32 = 65_536;
    /// Data store of one header (a large package's file lists take a few MiB).
    pub const MAX_STORE: u32 = 256 << 20;
}

/// Checks the lead and both headers' structure before the rpm crate reads them: counts and
/// sizes within limits, and every index entry's data inside the store (the crate slices
/// without checking, and panics on a hostile offset).
fn check_headers(mut r: impl Read) -> Result<(), String> {
    let mut lead = [0u8; 96];
    r.read_exact(&mut lead)
        .map_err(|_| "the file is shorter than an RPM lead".to_string())?;
    if lead[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err("no RPM lead magic".into());
    }
    for (which, pad) in [("signature", true), ("main", false)] {
        let mut intro = [0u8; 16];
        r.read_exact(&mut intro)
            .map_err(|_| format!("the file ends before the {which} header"))?;
        if intro[..3] != [0x8e, 0xad, 0xe8] {
            return Err(format!("no {which} header magic"));
        }
        let be = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes"));
        let (count, store) = (be(&intro[8..12]), be(&intro[12..16]));
        if count > limits::MAX_TAGS || store > limits::MAX_STORE {
            return Err(format!(
                "the {which} header claims {count} tags and {store} bytes of data"
            ));
        }
        let mut index = vec![0u8; count as usize * 16];
        r.read_exact(&mut index)
            .map_err(|_| format!("the file ends inside the {which} header index"))?;
        let mut data = vec![0u8; store as usize];
        r.read_exact(&mut data)
            .map_err(|_| format!("the file ends inside the {which} header data"))?;
        for e in index.chunks_exact(16) {
            let (tag, ty, off, n) = (
                be(&e[0..4]),
                be(&e[4..8]),
                be(&e[8..12]) as usize,
                be(&e[12..16]) as usize,
            );
            let bad = || format!("{which} header tag {tag} (type {ty}) points outside its data");
            if off > data.len() {
                return Err(bad());
            }
            let fixed = match ty {
                0 => Some(0),
                1 | 2 | 7 => Some(1),
                3 => Some(2),
                4 => Some(4),
                5 => Some(8),
                6 | 8 | 9 => None,
                _ => return Err(format!("{which} header tag {tag} has unknown type {ty}")),
            };
            match fixed {
                Some(size) => {
                    let end = n
                        .checked_mul(size)
                        .and_then(|l| l.checked_add(off))
                        .ok_or_else(bad)?;
                    if end > data.len() {
                        return Err(bad());
                    }
                }
                None => {
                    // `n` NUL-terminated strings must fit.
                    let strings = if ty == 6 { 1 } else { n };
                    let nuls = data[off..]
                        .iter()
                        .filter(|&&b| b == 0)
                        .take(strings)
                        .count();
                    if nuls < strings {
                        return Err(bad());
                    }
                }
            }
        }
        if pad {
            let skip = (8 - (u64::from(store) % 8)) % 8;
            io::copy(&mut (&mut r).take(skip), &mut io::sink()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Why a package cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The file cannot be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The header is malformed or over the limits.
    #[error("`{}` is not a readable RPM: {message}", path.display())]
    Header {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The payload is compressed with legacy lzma, which pbsimage refuses.
    #[error("`{}` uses the legacy lzma payload compression, which pbsimage does not read", path.display())]
    Lzma {
        /// The file concerned.
        path: PathBuf,
    },
    /// The package file no longer hashes to the checksum it was stored under.
    #[error("`{package}` changed in the cache since it was downloaded (`{}`): expected sha256 {expected}, got {actual}", path.display())]
    Changed {
        /// The file concerned.
        path: PathBuf,
        /// The package (`name-evr.arch`).
        package: String,
        /// The repository's sha256.
        expected: String,
        /// The file's sha256 now.
        actual: String,
    },
    /// The payload is malformed or disagrees with the header.
    #[error("package `{package}` (`{}`): bad payload: {message}", path.display())]
    Payload {
        /// The file concerned.
        path: PathBuf,
        /// The package (`name-evr.arch`).
        package: String,
        /// What is wrong.
        message: String,
    },
}

/// One file of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As stored (`./usr/bin/x`); normalise before use.
    pub name: String,
    /// cpio mode (type and permissions).
    pub mode: u32,
    /// cpio inode (hard-link sets share it).
    pub ino: u32,
    /// Names of the inode in the payload.
    pub nlink: u32,
    /// Bytes of data that follow.
    pub size: u64,
    /// Device major number.
    pub rdev_major: u32,
    /// Device minor number.
    pub rdev_minor: u32,
    /// Index in the header's file list (stripped payloads name files this way).
    pub file_index: Option<usize>,
}

/// Per-file header data, by path as the header lists it (`/usr/bin/x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Absolute path.
    pub path: String,
    /// Mode (type and permissions).
    pub mode: u32,
    /// Owner name.
    pub user: String,
    /// Group name.
    pub group: String,
    /// Size in bytes.
    pub size: u64,
    /// Symlink target.
    pub linkto: Option<String>,
    /// File capabilities, in `cap_from_text` form.
    pub caps: Option<String>,
    /// `%ghost`: listed, not in the payload.
    pub ghost: bool,
    /// Device number.
    pub rdev: u16,
    /// Modification time the header records (seconds since the epoch).
    pub mtime: u64,
}

/// What an RPM header says of its package (for the image's rpm manifest and SBOM).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageInfo {
    /// Name.
    pub name: String,
    /// Epoch, if any.
    pub epoch: Option<u32>,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture.
    pub arch: String,
    /// License.
    pub license: String,
    /// Source RPM.
    pub sourcerpm: String,
    /// Vendor.
    pub vendor: String,
    /// Build time (seconds since the epoch).
    pub buildtime: u64,
    /// Installed size in bytes.
    pub size: u64,
}

/// A package being read.
pub struct RpmReader {
    /// The RPM file.
    pub path: PathBuf,
    /// Package name.
    pub name: String,
    /// `[epoch:]version-release`.
    pub evr: String,
    /// Architecture.
    pub arch: String,
    /// The header's file list.
    pub files: Vec<FileInfo>,
    /// What the header says of the package.
    pub info: PackageInfo,
    payload: Box<dyn BufRead + Send>,
    /// sha256 of the file's bytes as they are read (header and payload).
    hash: std::sync::Arc<std::sync::Mutex<sha2::Sha256>>,
    /// Bytes of data left in the current entry, and its padding.
    pending: u64,
    pad: u64,
    done: bool,
}

fn hex_field(b: &[u8], i: usize) -> Result<u32, String> {
    let s = std::str::from_utf8(&b[i * 8..i * 8 + 8]).map_err(|_| "cpio header is not ASCII")?;
    u32::from_str_radix(s, 16).map_err(|_| format!("cpio header field `{s}` is not hex"))
}

/// A file whose bytes are hashed as they are read.
struct HashedFile {
    file: File,
    hash: std::sync::Arc<std::sync::Mutex<sha2::Sha256>>,
}

impl Read for HashedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.read(buf)?;
        self.hash.lock().expect("not poisoned").update(&buf[..n]);
        Ok(n)
    }
}

/// The header's file list (at most `limits::MAX_FILES`).
fn file_infos(meta: &rpm::PackageMetadata) -> Result<Vec<FileInfo>, String> {
    let files = meta.get_file_entries().map_err(|e| e.to_string())?;
    if files.len() > limits::MAX_FILES {
        return Err(format!(
            "{} files (limit {})",
            files.len(),
            limits::MAX_FILES
        ));
    }
    Ok(files
        .iter()
        .map(|f| FileInfo {
            path: f.path().to_string_lossy().into_owned(),
            mode: u32::from(u16::from(f.mode())),
            user: f.user().to_owned(),
            group: f.group().to_owned(),
            size: f.size() as u64,
            linkto: f.linkto().filter(|l| !l.is_empty()).map(str::to_owned),
            caps: f.caps().filter(|c| !c.is_empty()).map(str::to_owned),
            ghost: f.flags().contains(rpm::FileFlags::GHOST),
            rdev: f.rdev(),
            mtime: u64::from(f.modified_at().0),
        })
        .collect())
}

/// Name, EVR, arch and the descriptive tags an SBOM and the rpm manifest need.
fn package_info(meta: &rpm::PackageMetadata) -> Result<PackageInfo, String> {
    let h = &meta.header;
    let text = |t: rpm::IndexTag| h.get_entry_data_as_string(t).unwrap_or("").to_owned();
    Ok(PackageInfo {
        name: meta.get_name().map_err(|e| e.to_string())?.to_owned(),
        epoch: meta.get_epoch().ok().filter(|e| *e != 0),
        version: meta.get_version().map_err(|e| e.to_string())?.to_owned(),
        release: meta.get_release().map_err(|e| e.to_string())?.to_owned(),
        arch: meta.get_arch().unwrap_or("noarch").to_owned(),
        license: text(rpm::IndexTag::RPMTAG_LICENSE),
        sourcerpm: text(rpm::IndexTag::RPMTAG_SOURCERPM),
        vendor: text(rpm::IndexTag::RPMTAG_VENDOR),
        buildtime: h
            .get_entry_data_as_u32(rpm::IndexTag::RPMTAG_BUILDTIME)
            .map(u64::from)
            .unwrap_or(0),
        size: h
            .get_entry_data_as_u64(rpm::IndexTag::RPMTAG_LONGSIZE)
            .ok()
            .or_else(|| {
                h.get_entry_data_as_u32(rpm::IndexTag::RPMTAG_SIZE)
                    .ok()
                    .map(u64::from)
            })
            .unwrap_or(0),
    })
}

/// The payload's uncompressed size, as the header or signature declares it: the
/// decompressed stream may not exceed it.
fn declared_payload_size(meta: &rpm::PackageMetadata) -> Option<u64> {
    let h = &meta.header;
    h.get_entry_data_as_u64(rpm::IndexTag::RPMTAG_LONGARCHIVESIZE)
        .ok()
        .or_else(|| {
            h.get_entry_data_as_u32(rpm::IndexTag::RPMTAG_ARCHIVESIZE)
                .ok()
                .map(u64::from)
        })
        .or_else(|| {
            meta.signature
                .get_entry_data_as_u64(rpm::IndexSignatureTag::RPMSIGTAG_LONGARCHIVESIZE)
                .ok()
        })
        .or_else(|| {
            meta.signature
                .get_entry_data_as_u32(rpm::IndexSignatureTag::RPMSIGTAG_PAYLOADSIZE)
                .ok()
                .map(u64::from)
        })
}

impl RpmReader {
    /// Reads the header of the RPM at `path` (validated first: the rpm crate trusts its
    /// counts) and opens its payload as a decompressed, size-capped stream.
    pub fn open(path: &Path) -> Result<RpmReader, RpmError> {
        let io_err = |source| RpmError::Io {
            path: path.to_owned(),
            source,
        };
        let header = |message: String| RpmError::Header {
            path: path.to_owned(),
            message,
        };
        // The rpm crate trusts the counts in a header (it overflows on hostile ones).
        check_headers(BufReader::new(File::open(path).map_err(io_err)?)).map_err(header)?;
        let file = File::open(path).map_err(io_err)?;
        let hash = std::sync::Arc::new(std::sync::Mutex::new(sha2::Sha256::default()));
        let hashed = HashedFile {
            file,
            hash: hash.clone(),
        };
        let mut r = BufReader::with_capacity(256 * 1024, hashed);
        let meta = rpm::PackageMetadata::parse(&mut r).map_err(|e| header(e.to_string()))?;
        let files = file_infos(&meta).map_err(header)?;
        let info = package_info(&meta).map_err(header)?;
        let evr = match info.epoch {
            Some(e) => format!("{e}:{}-{}", info.version, info.release),
            None => format!("{}-{}", info.version, info.release),
        };
        // Without a declared payload size, bound by a generous ratio of the file size.
        let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let cap = declared_payload_size(&meta)
            .map(|d| d + 512)
            .unwrap_or(file_len.saturating_mul(64).max(1 << 30));
        let mut compressor = meta
            .header
            .get_entry_data_as_string(rpm::IndexTag::RPMTAG_PAYLOADCOMPRESSOR)
            .unwrap_or("gzip")
            .to_owned();
        // An uncompressed payload (rpmbuild's `w.ufdio`, rpm's own hlinktest) may still say
        // gzip, or nothing: rpm reads it, as zlib passes data that is not gzip through. So do
        // we when the payload starts as a cpio archive does.
        if compressor == "gzip" {
            use std::io::BufRead as _;
            let head = r.fill_buf().map_err(io_err)?;
            if head.starts_with(b"07070") {
                compressor = "identity".into();
            }
        }
        let payload: Box<dyn Read + Send> = match compressor.as_str() {
            "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            "xz" => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
            "zstd" => Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(io_err)?),
            "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
            "lzma" => {
                return Err(RpmError::Lzma {
                    path: path.to_owned(),
                });
            }
            "identity" | "none" => Box::new(r),
            other => {
                return Err(RpmError::Payload {
                    path: path.to_owned(),
                    package: info.name,
                    message: format!("unknown payload compressor `{other}`"),
                });
            }
        };
        let capped = Capped::new(payload, cap);
        Ok(RpmReader {
            path: path.to_owned(),
            name: info.name.clone(),
            evr,
            arch: info.arch.clone(),
            files,
            info,
            payload: Box::new(BufReader::with_capacity(256 * 1024, capped)),
            hash,
            pending: 0,
            pad: 0,
            done: false,
        })
    }

    /// After the last entry: reads what is left of the file and checks that the whole file
    /// hashes to `sha256` (the repository's checksum, which names it in the cache). A package
    /// changed in the cache since it was downloaded is an error, not a layer.
    pub fn verify_sha256(&mut self, sha256: &str) -> Result<(), RpmError> {
        std::io::copy(&mut self.payload, &mut std::io::sink())
            .map_err(|e| self.bad(format!("cannot read the rest of the payload: {e}")))?;
        let got = {
            use sha2::Digest as _;
            let h = self.hash.lock().expect("not poisoned");
            hex::encode(h.clone().finalize())
        };
        if got == sha256 {
            Ok(())
        } else {
            Err(RpmError::Changed {
                path: self.path.clone(),
                package: format!("{}-{}.{}", self.name, self.evr, self.arch),
                expected: sha256.to_owned(),
                actual: got,
            })
        }
    }

    fn bad(&self, message: impl Into<String>) -> RpmError {
        RpmError::Payload {
            path: self.path.clone(),
            package: format!("{}-{}.{}", self.name, self.evr, self.arch),
            message: message.into(),
        }
    }

    fn io(&self, e: io::Error) -> RpmError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.bad("the payload ends early (truncated file?)")
        } else {
            self.bad(e.to_string())
        }
    }

    /// Skips what is left of the current entry.
    fn skip_rest(&mut self) -> Result<(), RpmError> {
        let n = self.pending + self.pad;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.payload).take(n), &mut io::sink())
                .map_err(|e| self.io(e))?;
            if copied != n {
                return Err(self.bad("the payload ends inside an entry (truncated file?)"));
            }
        }
        self.pending = 0;
        self.pad = 0;
        Ok(())
    }

    /// The next entry, or `None` after the trailer. Unread data of the previous entry is
    /// skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, RpmError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut magic = [0u8; 6];
        self.payload
            .read_exact(&mut magic)
            .map_err(|e| self.io(e))?;
        match &magic {
            b"070701" | b"070702" => {
                let mut h = [0u8; 104];
                self.payload.read_exact(&mut h).map_err(|e| self.io(e))?;
                let f = |i| hex_field(&h, i).map_err(|m| self.bad(m));
                let (ino, mode, nlink, size) = (f(0)?, f(1)?, f(4)?, u64::from(f(6)?));
                let (rmaj, rmin, namesize) = (f(9)?, f(10)?, f(11)? as usize);
                if namesize == 0 || namesize > limits::MAX_NAME {
                    return Err(self.bad(format!("cpio name length {namesize} is out of range")));
                }
                let mut name = vec![0u8; namesize];
                self.payload.read_exact(&mut name).map_err(|e| self.io(e))?;
                if name.pop() != Some(0) || name.contains(&0) {
                    return Err(self.bad("cpio name is not NUL-terminated or contains NUL"));
                }
                let name =
                    String::from_utf8(name).map_err(|_| self.bad("cpio name is not UTF-8"))?;
                // header (110) + name is padded to 4
                let used = (110 + namesize) as u64;
                let pad = (4 - used % 4) % 4;
                let mut skip = [0u8; 3];
                self.payload
                    .read_exact(&mut skip[..pad as usize])
                    .map_err(|e| self.io(e))?;
                if name == "TRAILER!!!" {
                    self.done = true;
                    return Ok(None);
                }
                if size > limits::MAX_FILE {
                    return Err(self.bad(format!("entry `{name}` claims {size} bytes")));
                }
                self.pending = size;
                self.pad = (4 - size % 4) % 4;
                Ok(Some(Entry {
                    name,
                    mode,
                    ino,
                    nlink,
                    size,
                    rdev_major: rmaj,
                    rdev_minor: rmin,
                    file_index: None,
                }))
            }
            b"07070X" => {
                // rpm's stripped header: the file index; everything else is in the header.
                let mut h = [0u8; 8];
                self.payload.read_exact(&mut h).map_err(|e| self.io(e))?;
                let idx = hex_field(&h, 0).map_err(|m| self.bad(m))? as usize;
                let info = self.files.get(idx).ok_or_else(|| {
                    self.bad(format!(
                        "stripped entry for file {idx}, beyond the header's list"
                    ))
                })?;
                let is_reg = info.mode & 0o170000 == 0o100000;
                let size = if is_reg { info.size } else { 0 };
                let name = format!(".{}", info.path);
                let mode = info.mode;
                self.pending = size;
                self.pad = (4 - size % 4) % 4;
                Ok(Some(Entry {
                    name,
                    mode,
                    ino: idx as u32,
                    nlink: 1,
                    size,
                    rdev_major: u32::from(info.rdev >> 8),
                    rdev_minor: u32::from(info.rdev & 0xff),
                    file_index: Some(idx),
                }))
            }
            other => Err(self.bad(format!(
                "unknown cpio magic {:?}",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    /// A reader over the current entry's data.
    pub fn data(&mut self) -> EntryData<'_> {
        EntryData { r: self }
    }
}

/// The data of the current entry; reading stops at its end.
pub struct EntryData<'a> {
    r: &'a mut RpmReader,
}

impl Read for EntryData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.r.pending == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.r.pending as usize);
        let n = self.r.payload.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "payload ends inside a file",
            ));
        }
        self.r.pending -= n as u64;
        Ok(n)
    }
}

/// The text of the regular files of the RPM at `path` whose header path `wanted` accepts (at
/// most `limit` bytes each), read from its payload in payload order.
pub fn read_texts(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
    limit: u64,
) -> Result<Vec<String>, RpmError> {
    Ok(read_named_texts(path, wanted, limit)?
        .into_iter()
        .map(|(_, t)| t)
        .collect())
}

/// [`read_texts`] with each file's path: (path, text).
pub fn read_named_texts(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
    limit: u64,
) -> Result<Vec<(String, String)>, RpmError> {
    let mut r = RpmReader::open(path)?;
    let files = r.files.clone();
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let name = match e.file_index {
            Some(i) => files.get(i).map(|f| f.path.clone()).unwrap_or_default(),
            None => format!(
                "/{}",
                e.name.trim_start_matches("./").trim_start_matches('/')
            ),
        };
        if !wanted(&name) || e.mode & 0o170000 != 0o100000 {
            continue;
        }
        let mut text = String::new();
        r.data()
            .take(limit)
            .read_to_string(&mut text)
            .map_err(|err| RpmError::Io {
                path: path.to_owned(),
                source: err,
            })?;
        out.push((name, text));
    }
    Ok(out)
}
