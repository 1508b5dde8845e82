//! The per-repository index, stored so that a warm run touches only what it uses.
//!
//! File layout (little-endian): magic `PBSIDX03`, a CRC32 of everything after the first 16
//! bytes, then length-prefixed sections: the metadata (postcard), the package offsets, the
//! packages (postcard, one blob each), the provides table and primary's file table (see
//! `table`). Opening maps the file and checks the CRC; packages are decoded
//! on first use. Cache files are written once and renamed into place, never modified, which
//! is what makes mapping them sound.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::metadata::{Dep, Package, RepomdRecord};
use super::modules::ModuleIndex;
use super::table::{self, HashTable, Table};

const MAGIC: &[u8; 8] = b"PBSIDX04";
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
    modules: Option<ModuleIndex>,
    /// (package, obsoletes entry) for the few packages that obsolete anything.
    obsoletes: Vec<(u32, Dep)>,
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
    /// Module streams, if the repository has modules.yaml.
    pub modules: Option<ModuleIndex>,
    obsoletes: Vec<(u32, Dep)>,
    data: Backing,
    offsets: Range<usize>,
    blobs: Range<usize>,
    provides: Range<usize>,
    files: Range<usize>,
    pkgids: Range<usize>,
    count: usize,
    cells: Vec<OnceLock<Box<Package>>>,
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

fn frame(magic: &[u8; 8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 8).sum::<usize>());
    out.extend_from_slice(magic);
    out.extend_from_slice(&[0u8; 8]);
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    let crc = crc32fast::hash(&out[16..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

fn checked(b: &[u8], magic: &[u8; 8]) -> bool {
    b.len() >= 16
        && &b[..8] == magic
        && u32::from_le_bytes([b[8], b[9], b[10], b[11]]) == crc32fast::hash(&b[16..])
}

impl RepoIndex {
    /// Builds an index from parsed packages.
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
        let obsoletes = packages
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.obsoletes.iter().map(move |o| (i as u32, o.clone())))
            .collect();
        let meta = Meta {
            id,
            revision,
            repomd_sha256,
            primary,
            filelists,
            modules,
            obsoletes,
        };
        let meta_bytes = postcard::to_stdvec(&meta).map_err(|e| e.to_string())?;
        let mut offsets = Vec::with_capacity((packages.len() + 1) * 8);
        let mut blobs = Vec::new();
        for p in packages {
            offsets.extend_from_slice(&(blobs.len() as u64).to_le_bytes());
            blobs.extend_from_slice(&postcard::to_stdvec(p).map_err(|e| e.to_string())?);
        }
        offsets.extend_from_slice(&(blobs.len() as u64).to_le_bytes());
        let provides = table::build(
            packages
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    p.provides
                        .iter()
                        .enumerate()
                        .map(move |(j, d)| (d.name.as_str(), i as u32, j as u32))
                })
                .collect(),
        );
        let files = table::build(
            packages
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    p.files
                        .iter()
                        .enumerate()
                        .map(move |(j, f)| (f.as_str(), i as u32, j as u32))
                })
                .collect(),
        );
        let pkgids = table::build(
            packages
                .iter()
                .enumerate()
                .map(|(i, p)| (p.checksum.hex.as_str(), i as u32, 0))
                .collect(),
        );
        let bytes = frame(
            MAGIC,
            &[&meta_bytes, &offsets, &blobs, &provides, &files, &pkgids],
        );
        let mut idx = RepoIndex::from_backing(Backing::Owned(bytes))
            .ok_or("the new index does not read back")?;
        idx.base_url = base_url;
        Ok(idx)
    }

    /// Opens a cached index; `None` if missing, damaged or of another format.
    pub fn open(path: &Path) -> Option<RepoIndex> {
        RepoIndex::from_backing(map(path)?)
    }

    fn from_backing(data: Backing) -> Option<RepoIndex> {
        if !checked(&data, MAGIC) {
            return None;
        }
        let s = sections(&data, 6)?;
        let meta: Meta = postcard::from_bytes(&data[s[0].clone()]).ok()?;
        let count = (s[1].len() / 8).checked_sub(1)?;
        if s[1].len() % 8 != 0 {
            return None;
        }
        Table::new(&data[s[3].clone()])?;
        Table::new(&data[s[4].clone()])?;
        Table::new(&data[s[5].clone()])?;
        let mut cells = Vec::with_capacity(count);
        cells.resize_with(count, OnceLock::new);
        Some(RepoIndex {
            id: meta.id,
            revision: meta.revision,
            repomd_sha256: meta.repomd_sha256,
            base_url: String::new(),
            primary: meta.primary,
            filelists: meta.filelists,
            modules: meta.modules,
            obsoletes: meta.obsoletes,
            offsets: s[1].clone(),
            blobs: s[2].clone(),
            provides: s[3].clone(),
            files: s[4].clone(),
            pkgids: s[5].clone(),
            count,
            cells,
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

    /// Package `i`, decoded on first use.
    pub fn package(&self, i: u32) -> &Package {
        self.cells[i as usize].get_or_init(|| {
            let off = &self.data[self.offsets.clone()];
            let at = |k: usize| u64_at(off, k * 8).unwrap_or(0) as usize;
            let (s, e) = (at(i as usize), at(i as usize + 1));
            let blob = &self.data[self.blobs.clone()];
            // The CRC covered these bytes and our own encoder wrote them.
            Box::new(postcard::from_bytes(&blob[s..e]).expect("index verified by its CRC"))
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
            .map(move |(p, d)| (p, &self.package(p).provides[d as usize]))
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
        FileIndex::from_table(&table::build_hashed(blob, &rows))
    }

    /// Frames a table from `table::build_hashed`.
    pub fn from_table(t: &[u8]) -> FileIndex {
        FileIndex {
            data: Backing::Owned(frame(FILES_MAGIC, &[t])),
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
