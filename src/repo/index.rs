//! The per-repository index, stored so that a warm run touches only what it uses.
//!
//! File layout (little-endian): magic `PBSIDX06`, a CRC32 of everything after the first 16
//! bytes, then length-prefixed sections: the metadata (postcard), the package offsets, the
//! packages (postcard, one blob each), the provides table and primary's file table (see
//! `table`). Opening maps the file and checks the CRC; packages are decoded
//! on first use. Cache files are written once and renamed into place, never modified, which
//! is what makes mapping them sound.

use std::io::Write as _;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::metadata::{Dep, Package, RepomdRecord};
use super::modules::ModuleIndex;
use super::table::{self, HashTable, Table};

const MAGIC: &[u8; 8] = b"PBSIDX06";
const FILES_MAGIC: &[u8; 8] = b"PBSFIL04";

/// Bytes of an index: built in memory or mapped from the cache.
pub enum Backing {
    /// Built in memory.
    Owned(Vec<u8>),
    /// Mapped from a cache file.
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Owned(v) => v,
            Backing::Mapped(m) => m,
        }
    }
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backing({} bytes)", self.len())
    }
}

/// Maps a cache file read-only.
/// What identifies a cache file's contents without reading them: size, modification time
/// (ns) and inode.
fn stamp_of(file: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().ok()?;
    Some(format!(
        "{} {}.{:09} {}",
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino()
    ))
}

fn map(path: &Path) -> Option<Backing> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: cache files are created under a temporary name and renamed into place; no
    // process writes to them afterwards, so the mapped bytes do not change underneath us.
    let m = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    Some(Backing::Mapped(m))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    id: String,
    revision: Option<String>,
    repomd_sha256: String,
    primary: RepomdRecord,
    filelists: Option<RepomdRecord>,
    updateinfo: Option<RepomdRecord>,
    modules: Option<ModuleIndex>,
    /// (package, obsoletes entry) for the few packages that obsolete anything.
    obsoletes: Vec<(u32, Dep)>,
    /// (package, supplements entry) for the few packages that supplement anything.
    supplements: Vec<(u32, Dep)>,
}

/// What `pbsimage` knows of one repository.
#[derive(Debug)]
pub struct RepoIndex {
    /// The repository id.
    pub id: String,
    /// `<revision>` of repomd.xml.
    pub revision: Option<String>,
    /// sha256 of the `repomd.xml` the index was built from (the cache key).
    pub repomd_sha256: String,
    /// The base URL the metadata came from; package hrefs are relative to it.
    pub base_url: String,
    /// primary.xml's record.
    pub primary: RepomdRecord,
    /// filelists.xml's record, if the repository has one.
    pub filelists: Option<RepomdRecord>,
    /// updateinfo.xml's record (advisories), if the repository has one.
    pub updateinfo: Option<RepomdRecord>,
    /// Module streams, if the repository has modules.yaml.
    pub modules: Option<ModuleIndex>,
    obsoletes: Vec<(u32, Dep)>,
    supplements: Vec<(u32, Dep)>,
    data: Backing,
    offsets: Range<usize>,
    blobs: Range<usize>,
    provides: Range<usize>,
    files: Range<usize>,
    pkgids: Range<usize>,
    count: usize,
    cells: Vec<OnceLock<Box<Package>>>,
    /// A package record did not decode.
    damaged: std::sync::atomic::AtomicBool,
    /// Every file of every package (filelists.xml), once loaded.
    pub all_files: Option<FileIndex>,
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads length-prefixed sections after the 16-byte header.
fn sections(b: &[u8], n: usize) -> Option<Vec<Range<usize>>> {
    let mut at = 16;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::try_from(u64_at(b, at)?).ok()?;
        let start = at + 8;
        let end = start.checked_add(len)?;
        if end > b.len() {
            return None;
        }
        out.push(start..end);
        at = end;
    }
    (at == b.len()).then_some(out)
}

/// Writes an index file: the magic, a CRC-32 of everything after the first 16 bytes (in
/// bytes 8..12), then each part as its little-endian u64 length and its bytes. A part is
/// given as the segments it is made of; the CRC is computed first, so `w` is written once,
/// front to back.
fn write_frame(
    w: &mut impl std::io::Write,
    magic: &[u8; 8],
    parts: &[&[&[u8]]],
) -> std::io::Result<()> {
    let len = |p: &[&[u8]]| p.iter().map(|s| s.len()).sum::<usize>() as u64;
    let mut crc = crc32fast::Hasher::new();
    for p in parts {
        crc.update(&len(p).to_le_bytes());
        p.iter().for_each(|s| crc.update(s));
    }
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(magic);
    head[8..12].copy_from_slice(&crc.finalize().to_le_bytes());
    w.write_all(&head)?;
    for p in parts {
        w.write_all(&len(p).to_le_bytes())?;
        for s in *p {
            w.write_all(s)?;
        }
    }
    Ok(())
}

/// As [`checked`], reading the file in pieces instead of mapping it.
fn crc_by_reading(file: &std::fs::File, magic: &[u8; 8]) -> bool {
    use std::io::Read as _;
    let mut r = file;
    let mut head = [0u8; 16];
    if r.read_exact(&mut head).is_err() || &head[..8] != magic {
        return false;
    }
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => crc.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    u32::from_le_bytes([head[8], head[9], head[10], head[11]]) == crc.finalize()
}

fn checked(b: &[u8], magic: &[u8; 8]) -> bool {
    b.len() >= 16
        && &b[..8] == magic
        && u32::from_le_bytes([b[8], b[9], b[10], b[11]]) == crc32fast::hash(&b[16..])
}

/// What an index records besides its packages.
pub struct IndexHeader {
    /// The repository id.
    pub id: String,
    /// `<revision>` of repomd.xml.
    pub revision: Option<String>,
    /// sha256 of repomd.xml.
    pub repomd_sha256: String,
    /// The base URL the metadata came from.
    pub base_url: String,
    /// primary.xml's record.
    pub primary: RepomdRecord,
    /// filelists.xml's record.
    pub filelists: Option<RepomdRecord>,
    /// updateinfo.xml's record.
    pub updateinfo: Option<RepomdRecord>,
    /// Module streams.
    pub modules: Option<ModuleIndex>,
}

/// Builds an index one package at a time, as primary.xml streams past: each package is
/// serialized at once and only its keys are kept, so a 12,000-package repository is never
/// held as parsed structures.
#[derive(Default)]
pub struct IndexBuilder {
    offsets: Vec<u8>,
    /// Blobs of builders appended before `blobs`, kept as they are rather than copied.
    sealed: Vec<Vec<u8>>,
    /// Their length.
    sealed_len: u64,
    blobs: Vec<u8>,
    /// Key bytes of the provides, file and pkgid rows.
    keys: Vec<u8>,
    provides: Vec<KeyRow>,
    files: Vec<KeyRow>,
    pkgids: Vec<KeyRow>,
    obsoletes: Vec<(u32, Dep)>,
    supplements: Vec<(u32, Dep)>,
    count: u32,
}

/// `(key offset in keys, key length, a, b)`.
type KeyRow = (u32, u32, u32, u32);

impl IndexBuilder {
    fn key(&mut self, k: &str, a: u32, b: u32) -> Result<KeyRow, String> {
        let off = u32::try_from(self.keys.len()).map_err(|_| "the index passed 4 GiB of keys")?;
        self.keys.extend_from_slice(k.as_bytes());
        Ok((off, k.len() as u32, a, b))
    }

    /// Adds the next package.
    pub fn add(&mut self, p: &Package) -> Result<(), String> {
        let i = self.count;
        self.offsets
            .extend_from_slice(&(self.blob_len()).to_le_bytes());
        self.blobs =
            postcard::to_extend(p, std::mem::take(&mut self.blobs)).map_err(|e| e.to_string())?;
        for (j, d) in p.provides.iter().enumerate() {
            let row = self.key(&d.name, i, j as u32)?;
            self.provides.push(row);
        }
        for (j, f) in p.files.iter().enumerate() {
            let row = self.key(f, i, j as u32)?;
            self.files.push(row);
        }
        let row = self.key(&p.checksum.hex, i, 0)?;
        self.pkgids.push(row);
        self.obsoletes
            .extend(p.obsoletes.iter().map(|o| (i, o.clone())));
        self.supplements
            .extend(p.supplements.iter().map(|o| (i, o.clone())));
        self.count = i.checked_add(1).ok_or("too many packages")?;
        Ok(())
    }

    /// Appends the packages another builder read (the next part of the same file), as if
    /// they had been added here one by one.
    pub fn append(&mut self, other: IndexBuilder) -> Result<(), String> {
        let (blob_base, key_base, count_base) = (
            self.blob_len(),
            u32::try_from(self.keys.len()).map_err(|_| "the index passed 4 GiB of keys")?,
            self.count,
        );
        u32::try_from(self.keys.len() + other.keys.len())
            .map_err(|_| "the index passed 4 GiB of keys")?;
        self.count = count_base
            .checked_add(other.count)
            .ok_or("too many packages")?;
        for o in other.offsets.chunks_exact(8) {
            let o = u64::from_le_bytes(o.try_into().expect("8 bytes"));
            self.offsets
                .extend_from_slice(&(blob_base + o).to_le_bytes());
        }
        if !self.blobs.is_empty() {
            self.sealed_len += self.blobs.len() as u64;
            self.sealed.push(std::mem::take(&mut self.blobs));
        }
        self.sealed_len += other.sealed_len;
        self.sealed.extend(other.sealed);
        self.sealed_len += other.blobs.len() as u64;
        self.sealed.push(other.blobs);
        self.keys.extend_from_slice(&other.keys);
        let shift = |rows: Vec<KeyRow>| {
            rows.into_iter()
                .map(move |(o, l, a, b)| (o + key_base, l, a + count_base, b))
        };
        self.provides.extend(shift(other.provides));
        self.files.extend(shift(other.files));
        self.pkgids.extend(shift(other.pkgids));
        self.obsoletes.extend(
            other
                .obsoletes
                .into_iter()
                .map(|(i, d)| (i + count_base, d)),
        );
        self.supplements.extend(
            other
                .supplements
                .into_iter()
                .map(|(i, d)| (i + count_base, d)),
        );
        Ok(())
    }

    fn blob_len(&self) -> u64 {
        self.sealed_len + self.blobs.len() as u64
    }

    /// How many packages were added.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// No package was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn table(&self, rows: &[KeyRow]) -> Vec<u8> {
        let key = |o: u32, l: u32| {
            std::str::from_utf8(&self.keys[o as usize..(o + l) as usize]).unwrap_or_default()
        };
        table::build(rows.iter().map(|&(o, l, a, b)| (key(o, l), a, b)).collect())
    }

    /// The finished index, built in memory.
    pub fn finish(self, h: IndexHeader) -> Result<RepoIndex, String> {
        self.finish_with(h, |parts| {
            let size = 16
                + parts
                    .iter()
                    .map(|p| 8 + p.iter().map(|s| s.len()).sum::<usize>())
                    .sum::<usize>();
            let mut out = Vec::with_capacity(size);
            write_frame(&mut out, MAGIC, parts).map_err(|e| e.to_string())?;
            Ok(Backing::Owned(out))
        })
    }

    /// The finished index, written to `out` (a new, empty file) and mapped from it: the
    /// index is never copied into one buffer in memory.
    pub fn finish_into(self, h: IndexHeader, out: &std::fs::File) -> Result<RepoIndex, String> {
        self.finish_with(h, |parts| {
            let io = |e: std::io::Error| format!("writing the index: {e}");
            let mut w = std::io::BufWriter::with_capacity(256 << 10, out);
            write_frame(&mut w, MAGIC, parts).map_err(io)?;
            w.flush().map_err(io)?;
            drop(w);
            // SAFETY: `out` is this process's new temporary file, renamed into the cache
            // only after this; nothing else writes to it.
            let m = unsafe { memmap2::Mmap::map(out) }.map_err(io)?;
            Ok(Backing::Mapped(m))
        })
    }

    /// Finishes the sections and hands them to `store`, which frames them (see
    /// [`write_frame`]) into the index's bytes.
    fn finish_with(
        mut self,
        h: IndexHeader,
        store: impl FnOnce(&[&[&[u8]]]) -> Result<Backing, String>,
    ) -> Result<RepoIndex, String> {
        let meta = Meta {
            id: h.id,
            revision: h.revision,
            repomd_sha256: h.repomd_sha256,
            primary: h.primary,
            filelists: h.filelists,
            updateinfo: h.updateinfo,
            modules: h.modules,
            obsoletes: std::mem::take(&mut self.obsoletes),
            supplements: std::mem::take(&mut self.supplements),
        };
        let meta_bytes = postcard::to_stdvec(&meta).map_err(|e| e.to_string())?;
        self.offsets
            .extend_from_slice(&self.blob_len().to_le_bytes());
        let provides = self.table(&self.provides);
        let files = self.table(&self.files);
        let pkgids = self.table(&self.pkgids);
        let (keys, offsets) = (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.offsets),
        );
        drop(keys);
        let sealed = std::mem::take(&mut self.sealed);
        let blobs = std::mem::take(&mut self.blobs);
        let blob_segments: Vec<&[u8]> = sealed
            .iter()
            .map(Vec::as_slice)
            .chain([blobs.as_slice()])
            .collect();
        let backing = store(&[
            &[&meta_bytes],
            &[&offsets],
            &blob_segments,
            &[&provides],
            &[&files],
            &[&pkgids],
        ])?;
        drop((sealed, blobs));
        // Written by us just now: the structure is checked, the CRC need not be recomputed.
        let mut idx =
            RepoIndex::from_backing(backing, false).ok_or("the new index does not read back")?;
        idx.base_url = h.base_url;
        Ok(idx)
    }
}

impl RepoIndex {
    /// Builds an index from parsed packages (tests and small repositories; loading streams
    /// through [`IndexBuilder`] instead).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        id: String,
        revision: Option<String>,
        repomd_sha256: String,
        base_url: String,
        primary: RepomdRecord,
        filelists: Option<RepomdRecord>,
        modules: Option<ModuleIndex>,
        packages: &[Package],
    ) -> Result<RepoIndex, String> {
        let mut b = IndexBuilder::default();
        for p in packages {
            b.add(p)?;
        }
        b.finish(IndexHeader {
            id,
            revision,
            repomd_sha256,
            base_url,
            primary,
            filelists,
            updateinfo: None,
            modules,
        })
    }

    /// The index's cache file replaces the bytes built in memory: after writing, only the
    /// pages a resolution touches stay resident.
    pub fn remap(&mut self, path: &Path) {
        if let Some(data) = map(path)
            && data.len() == self.data.len()
        {
            self.data = data;
        }
    }

    /// Opens a cached index, its CRC checked; `None` if missing, damaged or of another
    /// format.
    pub fn open(path: &Path) -> Option<RepoIndex> {
        RepoIndex::from_backing(map(path)?, true)
    }

    /// Opens a cached index as a warm run does: when the file is the one whose CRC a
    /// previous open checked (same size, modification time and inode, recorded beside it in
    /// `<name>.stamp`), the CRC is not computed again (it reads all 30 MB of a large
    /// repository's index); otherwise it is, and the stamp renewed. The layer cache trusts
    /// its blobs the same way. A package record found damaged anyway is not decoded but
    /// flagged ([`RepoIndex::is_damaged`]), for the caller to discard the answer and rebuild.
    pub fn open_trusted(path: &Path) -> Option<RepoIndex> {
        let file = std::fs::File::open(path).ok()?;
        let stamp = stamp_of(&file)?;
        let stamp_path = path.with_extension("idx.stamp");
        let trusted = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp);
        // The first open checks the CRC by reading the file (the page cache, not this
        // process's memory, holds what it reads), then the tables' structure.
        if !trusted && !crc_by_reading(&file, MAGIC) {
            return None;
        }
        // SAFETY: as in `map`: cache files are renamed into place and never written again.
        let data = Backing::Mapped(unsafe { memmap2::Mmap::map(&file) }.ok()?);
        let idx = RepoIndex::from_backing_with(data, false, !trusted)?;
        if !trusted {
            // A stamp that cannot be written costs the next run a CRC, nothing else.
            let _ = crate::cache::write_file_atomic(&stamp_path, stamp.as_bytes());
            // The check read every page; the resolution needs few of them again.
            if let Backing::Mapped(m) = &idx.data {
                // SAFETY: a read-only shared file mapping: dropped pages are read again from
                // the file (unchanged, see above) when next touched.
                let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            }
        }
        Some(idx)
    }

    /// Whether a package record could not be decoded (the file was damaged after its CRC
    /// was checked): every answer from this index is to be thrown away.
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn from_backing(data: Backing, verify_crc: bool) -> Option<RepoIndex> {
        RepoIndex::from_backing_with(data, verify_crc, verify_crc)
    }

    /// As [`RepoIndex::from_backing`], checking the CRC and the tables' structure apart.
    fn from_backing_with(data: Backing, verify_crc: bool, full_tables: bool) -> Option<RepoIndex> {
        let crc_ok = if verify_crc {
            checked(&data, MAGIC)
        } else {
            data.len() >= 16 && &data[..8] == MAGIC
        };
        if !crc_ok {
            return None;
        }
        let s = sections(&data, 6)?;
        let meta: Meta = postcard::from_bytes(&data[s[0].clone()]).ok()?;
        let count = (s[1].len() / 8).checked_sub(1)?;
        if s[1].len() % 8 != 0 {
            return None;
        }
        let check = if full_tables {
            Table::new
        } else {
            Table::shallow
        };
        check(&data[s[3].clone()])?;
        check(&data[s[4].clone()])?;
        check(&data[s[5].clone()])?;
        let mut cells = Vec::with_capacity(count);
        cells.resize_with(count, OnceLock::new);
        Some(RepoIndex {
            id: meta.id,
            revision: meta.revision,
            repomd_sha256: meta.repomd_sha256,
            base_url: String::new(),
            primary: meta.primary,
            filelists: meta.filelists,
            updateinfo: meta.updateinfo,
            modules: meta.modules,
            obsoletes: meta.obsoletes,
            supplements: meta.supplements,
            offsets: s[1].clone(),
            blobs: s[2].clone(),
            provides: s[3].clone(),
            files: s[4].clone(),
            pkgids: s[5].clone(),
            count,
            cells,
            damaged: Default::default(),
            data,
            all_files: None,
        })
    }

    /// The serialized index (to write to the cache).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Packages in the index.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the index has no package.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Package `i`, decoded on first use. A record that does not decode (a file damaged
    /// after its CRC was checked) gives an empty package and flags the index damaged.
    pub fn package(&self, i: u32) -> &Package {
        let Some(cell) = self.cells.get(i as usize) else {
            // Only a damaged table names a package past the end.
            self.damaged
                .store(true, std::sync::atomic::Ordering::Relaxed);
            static NONE: OnceLock<Package> = OnceLock::new();
            return NONE.get_or_init(Package::empty);
        };
        cell.get_or_init(|| {
            let off = &self.data[self.offsets.clone()];
            let at = |k: usize| u64_at(off, k * 8).unwrap_or(0) as usize;
            let (s, e) = (at(i as usize), at(i as usize + 1));
            let blob = &self.data[self.blobs.clone()];
            match blob.get(s..e).map(postcard::from_bytes) {
                Some(Ok(p)) => Box::new(p),
                _ => {
                    self.damaged
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!("the cached index of {} is damaged", self.id);
                    Box::new(Package::empty())
                }
            }
        })
    }

    /// Every package (decodes all of them).
    pub fn packages(&self) -> impl Iterator<Item = (u32, &Package)> {
        (0..self.count as u32).map(|i| (i, self.package(i)))
    }

    fn provides_table(&self) -> Table<'_> {
        Table::trusted(&self.data[self.provides.clone()])
    }

    /// Packages that provide `name`, with the matching provide entry.
    pub fn whatprovides<'a>(&'a self, name: &str) -> impl Iterator<Item = (u32, &'a Dep)> + 'a {
        self.provides_table()
            .get(name)
            .filter(|(p, _)| (*p as usize) < self.count)
            .filter_map(move |(p, d)| Some((p, self.package(p).provides.get(d as usize)?)))
    }

    /// The packages named `name` (found through their self-provides, as rpm writes them).
    pub fn named(&self, name: &str) -> Vec<(u32, &Package)> {
        let mut out: Vec<(u32, &Package)> = Vec::new();
        for (i, _) in self.whatprovides(name) {
            let p = self.package(i);
            if p.name == name && !out.iter().any(|(j, _)| *j == i) {
                out.push((i, p));
            }
        }
        out
    }

    /// Provide names starting with `prefix`, with their package (for "nearest" hints).
    pub fn provides_with_prefix<'a>(
        &'a self,
        prefix: &str,
    ) -> impl Iterator<Item = (&'a [u8], u32)> + 'a {
        let t = self.provides_table();
        let p = prefix.as_bytes().to_vec();
        (t.lower_bound(&p)..t.len())
            .take_while(move |&i| t.key(i).starts_with(&p))
            .map(move |i| (t.key(i), t.row(i).0))
    }

    /// The package whose checksum (pkgid) is `hex`.
    pub fn by_pkgid(&self, hex: &str) -> Option<u32> {
        Table::trusted(&self.data[self.pkgids.clone()])
            .get(hex)
            .next()
            .map(|(i, _)| i)
    }

    /// Supplements entries: (package, what it supplements).
    pub fn supplements(&self) -> &[(u32, Dep)] {
        &self.supplements
    }

    /// Obsoletes entries: (package, what it obsoletes).
    pub fn obsoletes(&self) -> &[(u32, Dep)] {
        &self.obsoletes
    }

    /// Packages that own `path` according to primary.xml (and filelists.xml once loaded).
    pub fn owners(&self, path: &str) -> Vec<u32> {
        let t = Table::trusted(&self.data[self.files.clone()]);
        let mut out: Vec<u32> = t.get(path).map(|(p, _)| p).collect();
        if let Some(all) = &self.all_files {
            for o in all.owners(path) {
                if !out.contains(&o) {
                    out.push(o);
                }
            }
        }
        out
    }

    /// Whether primary.xml's file list would list `path` (createrepo_c's rule), so a miss
    /// there is final without filelists.xml.
    pub fn primary_lists(path: &str) -> bool {
        path.starts_with("/etc/") || path.contains("bin/") || path == "/usr/lib/sendmail"
    }
}

/// Every file path with its owning package, from filelists.xml.
#[derive(Debug)]
pub struct FileIndex {
    data: Backing,
}

impl FileIndex {
    /// Builds the index from paths kept in one `blob`; rows are `(offset, len, package)`.
    pub fn build(blob: &[u8], rows: Vec<(u32, u32, u32)>) -> FileIndex {
        FileIndex::seal(FileIndex::unsealed(blob, rows), None)
    }

    /// The framed table of `rows` (see [`FileIndex::build`]), its values still to be mapped
    /// and its checksum still to be written by [`FileIndex::seal`]. Built in place: the
    /// rows are dropped once hashed, and the table is not copied into its frame.
    pub(crate) fn unsealed(blob: &[u8], rows: Vec<(u32, u32, u32)>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(FILES_MAGIC);
        out.extend_from_slice(&[0u8; 16]);
        table::build_hashed_into(&mut out, blob, rows);
        let len = (out.len() - 24) as u64;
        out[16..24].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Maps the values of an unsealed index through `map` (see [`table::remap_hashed`]) and
    /// writes its checksum.
    pub(crate) fn seal(mut bytes: Vec<u8>, map: Option<&[Option<u32>]>) -> FileIndex {
        if let Some(map) = map {
            table::remap_hashed(&mut bytes[24..], map);
        }
        let crc = crc32fast::hash(&bytes[16..]);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        FileIndex {
            data: Backing::Owned(bytes),
        }
    }

    /// As [`RepoIndex::remap`]: the written cache file replaces the bytes in memory.
    pub fn remap(&mut self, path: &Path) {
        if let Some(data) = map(path)
            && data.len() == self.data.len()
        {
            self.data = data;
        }
    }

    /// An index of no files.
    pub fn empty() -> FileIndex {
        FileIndex::build(&[], Vec::new())
    }

    /// Opens a cached file index; `None` if missing or damaged.
    pub fn open(path: &Path) -> Option<FileIndex> {
        let data = map(path)?;
        (checked(&data, FILES_MAGIC)
            && sections(&data, 1).is_some_and(|s| HashTable::new(&data[s[0].clone()]).is_some()))
        .then_some(FileIndex { data })
    }

    /// The index's bytes, for the cache.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Packages (indexes) that own `path`.
    pub fn owners(&self, path: &str) -> Vec<u32> {
        let s = sections(&self.data, 1).expect("checked on open");
        HashTable::trusted(&self.data[s[0].clone()]).get(path)
    }
}
