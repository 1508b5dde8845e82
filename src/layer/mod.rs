//! Layers: RPM payloads → deterministic, content-addressed tar layers.
//!
//! [`LayerWriter`] transcodes cpio entries straight into tar entries (nothing is extracted
//! to the host) and hashes as it writes: the tar stream gives the `diff_id`, the compressed
//! stream the blob `digest`. Paths are normalised and checked, owners come from the `setup`
//! package's passwd/group, symlinks from the header's `linkto`, hard-link sets are emitted
//! with the data on the first member written, `%ghost` files are skipped, file capabilities
//! become `security.capability` xattrs, every time is the configured epoch, and paths through
//! directory symlinks of the filesystem layout (`/lib64 → usr/lib64`) are written where rpm
//! would put them.

pub mod accounts;
mod caps;
pub mod plan;

use oci_spec::image::{Digest, MediaType};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::config::Compression;
use crate::rpm::{Entry, FileInfo, RpmError, RpmReader};

/// Bumped whenever the bytes a layer gets could change; part of every layer cache key.
pub const FORMAT_VERSION: u32 = 4;

/// Why a layer cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The package cannot be read.
    #[error(transparent)]
    Rpm(#[from] RpmError),
    /// A payload entry that would escape or corrupt the image.||path=The entry's path in the payload.
    #[error("package `{package}`: refusing entry `{path}`: {reason}")]
    Unsafe {
        /// The package (`name-evr.arch`).
        package: String,
        /// The file concerned.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The package is inconsistent (an incomplete hard-link set, say).
    #[error("package `{package}`: {message}")]
    Bad {
        /// The package (`name-evr.arch`).
        package: String,
        /// What is wrong.
        message: String,
    },
    /// Writing the layer failed.
    #[error("cannot write the layer")]
    Io(#[source] io::Error),
}

/// Writes through, hashing with sha256 and counting.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes everything written through to `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// (inner, `sha256:<hex>`, bytes)
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size of the independently compressed gzip members of a layer.
pub const GZIP_CHUNK: usize = 1 << 20;

/// gzip on several cores: the stream is cut every [`GZIP_CHUNK`] bytes and each piece is
/// compressed as its own gzip member (mtime 0) on a worker thread; members are written in
/// order. Concatenated members are one valid gzip stream (RFC 1952; Go's compress/gzip, as in
/// containerd and skopeo, reads them), and fixed cut points keep the bytes the same on every
/// machine and thread count.
pub struct ParallelGzip<W: Write> {
    out: W,
    buf: Vec<u8>,
    level: u32,
    /// Pieces in flight, oldest first.
    pending: std::collections::VecDeque<std::sync::mpsc::Receiver<io::Result<Vec<u8>>>>,
    workers: usize,
}

/// The threads that compress gzip members: one per core, kept for the whole process so
/// their allocator heaps are reused (fresh threads per member spent a third of the time
/// having the kernel clear new pages). Separate from rayon's global pool, where layer
/// builders wait for their members: sharing it could leave every worker waiting.
fn compression_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("pbsimage-gzip-{i}"))
            .build()
            .expect("cannot start the compression threads")
    })
}

fn gzip_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut e = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    e.write_all(data)?;
    e.finish()
}

impl<W: Write> ParallelGzip<W> {
    /// gzip at `level`, members compressed on the compression pool.
    pub fn new(out: W, level: u32) -> Self {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(1);
        ParallelGzip {
            out,
            buf: Vec::with_capacity(GZIP_CHUNK),
            level,
            pending: Default::default(),
            workers,
        }
    }

    fn dispatch(&mut self) -> io::Result<()> {
        // At most four pieces per worker in flight (4 MiB a core): memory stays bounded and
        // the reader, which decompresses the RPM payload, rarely waits.
        while self.pending.len() >= self.workers * 4 {
            self.drain_one()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(GZIP_CHUNK));
        let level = self.level;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        compression_pool().spawn(move || {
            let _ = tx.send(gzip_member(&data, level));
        });
        self.pending.push_back(rx);
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let member = rx
                .recv()
                .map_err(|_| io::Error::other("a compression thread died"))??;
            self.out.write_all(&member)?;
        }
        Ok(())
    }

    /// Writes the last member; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || self.pending.is_empty() {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Compressor<W: Write> {
    Gzip(ParallelGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Compressor<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(w) => w.finish(),
            Compressor::Zstd(w) => w.finish(),
        }
    }
}

/// How layers are written.
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    /// The time of what pbsimage makes itself (the job's files, directories it adds).
    pub epoch: u64,
    /// Package files keep the time their RPM header records (timestamp-based `.pyc` files
    /// stay valid against their `.py`); with `SOURCE_DATE_EPOCH` set, times newer than it are
    /// clamped to it, as rpmbuild's `clamp_mtime_to_source_date_epoch` does.
    pub clamp_mtime: Option<u64>,
    /// gzip or zstd.
    pub compression: Compression,
    /// Owner names → ids (the setup package's, then what the base packages' sysusers.d
    /// numbers); `root` is always 0; other names get [`accounts::fallback_id`].
    pub users: BTreeMap<String, u32>,
    /// Group names → ids, as `users`.
    pub groups: BTreeMap<String, u32>,
    /// The setup package's `/etc/passwd` and `/etc/group`, which `users` and `groups` were
    /// read from (the image's account files extend them).
    pub setup: Option<accounts::Accounts>,
    /// Directory symlinks of the layout, relative: `lib64` → `usr/lib64`.
    pub dir_links: BTreeMap<String, String>,
}

impl LayerOptions {
    /// The media type of layers written with these options.
    pub fn media_type(&self) -> MediaType {
        match self.compression {
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// A digest of everything besides package content that shapes a layer's bytes.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!(
            "v{FORMAT_VERSION}|{}|{:?}|{:?}|",
            self.epoch, self.clamp_mtime, self.compression
        ));
        for (k, v) in &self.users {
            h.update(format!("u:{k}={v}|"));
        }
        for (k, v) in &self.groups {
            h.update(format!("g:{k}={v}|"));
        }
        for (k, v) in &self.dir_links {
            h.update(format!("l:{k}={v}|"));
        }
        hex::encode(h.finalize())
    }
}

/// A written layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// `sha256:` of the compressed blob.
    pub digest: Digest,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of the compressed blob.
    pub size: u64,
    /// `…tar+gzip` or `…tar+zstd`.
    pub media_type: MediaType,
    /// NEVRAs of the packages in it.
    pub packages: Vec<String>,
    /// Annotations for the layer's descriptor in the manifest (none today; room for formats
    /// that need them, such as zstd:chunked's table of contents).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Checks and normalises a payload name: relative (`./usr/bin/x` or `usr/bin/x`), no `..`,
/// `.` or empty components, no NUL, no `.wh.` basename. Returns it without the `./`.
pub fn normalize(name: &str) -> Result<String, String> {
    if name.starts_with('/') {
        return Err("the path is absolute".into());
    }
    let s = name.strip_prefix("./").unwrap_or(name);
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    if s.contains('\0') {
        return Err("the path contains NUL".into());
    }
    if s.starts_with('/') {
        return Err("the path is absolute".into());
    }
    let parts: Vec<&str> = s.trim_end_matches('/').split('/').collect();
    for p in &parts {
        match *p {
            "" => return Err("the path has an empty component".into()),
            "." => return Err("the path has a `.` component".into()),
            ".." => return Err("the path has a `..` component".into()),
            _ => {}
        }
    }
    if parts.last().is_some_and(|b| b.starts_with(".wh.")) {
        return Err("`.wh.` names are whiteouts in OCI layers".into());
    }
    Ok(parts.join("/"))
}

/// Resolves the leading directories of `path` through the layout's directory symlinks.
pub fn through_dir_links(path: &str, links: &BTreeMap<String, String>) -> String {
    let mut p = path.to_owned();
    for _ in 0..16 {
        let mut changed = false;
        let comps: Vec<&str> = p.split('/').collect();
        for i in 1..comps.len() {
            let prefix = comps[..i].join("/");
            if let Some(target) = links.get(&prefix) {
                p = format!("{target}/{}", comps[i..].join("/"));
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    p
}

/// The header is the truth (rpm installs what it says): a payload entry whose type, mode,
/// size or device disagrees with the header's file list is refused.
fn agrees_with_header(e: &Entry, info: &FileInfo) -> Result<(), String> {
    let kind = |m: u32| m & 0o170000;
    if kind(e.mode) != kind(info.mode) {
        return Err(format!(
            "the payload makes it type {:o}, the header says {:o}",
            kind(e.mode) >> 12,
            kind(info.mode) >> 12
        ));
    }
    if e.mode & 0o7777 != info.mode & 0o7777 {
        return Err(format!(
            "the payload gives mode {:04o}, the header says {:04o}",
            e.mode & 0o7777,
            info.mode & 0o7777
        ));
    }
    // Hard-link members other than the data member carry no data in the payload.
    if kind(e.mode) == 0o100000 && e.size != 0 && e.size != info.size {
        return Err(format!(
            "the payload has {} bytes, the header says {}",
            e.size, info.size
        ));
    }
    if matches!(kind(e.mode), 0o020000 | 0o060000) {
        let dev = (e.rdev_major << 8) | (e.rdev_minor & 0xff);
        if dev != u32::from(info.rdev) {
            return Err(format!(
                "the payload makes it device {}:{}, the header says {}:{}",
                e.rdev_major,
                e.rdev_minor,
                info.rdev >> 8,
                info.rdev & 0xff
            ));
        }
    }
    Ok(())
}

/// A payload entry that passed [`LayerWriter::check_entry`].
struct Checked {
    /// Its name in the payload (normalised).
    rel: String,
    /// Its path in the image, through the layout's directory links.
    path: String,
    /// What the header says of it.
    info: FileInfo,
}

/// One package being added: its header's files, its pending hard-link sets.
struct PackageEntries {
    /// `name-evr.arch`, for messages.
    pkg: String,
    /// Header file info by payload path (without the leading `/`).
    infos: HashMap<String, FileInfo>,
    /// Hard-link sets awaiting their data member: ino → (names, members seen, nlink).
    links: BTreeMap<u32, (Vec<String>, u32, u32)>,
    /// Payload names seen so far.
    seen: BTreeSet<String>,
}

impl PackageEntries {
    fn unsafe_(&self, path: &str, reason: String) -> LayerError {
        LayerError::Unsafe {
            package: self.pkg.clone(),
            path: path.to_owned(),
            reason,
        }
    }
}

/// Writes one layer.
pub struct LayerWriter<W: Write> {
    tar: tar::Builder<HashingWriter<Compressor<HashingWriter<W>>>>,
    opts: LayerOptions,
    written: BTreeSet<String>,
    /// Symlinks this layer created (a later entry may not go through them).
    symlinks: BTreeSet<String>,
    packages: Vec<String>,
    /// Users and groups this layer's packages declare in sysusers.d (numeric ids).
    declared: (IdMap, IdMap),
}

fn io_err(e: io::Error) -> LayerError {
    LayerError::Io(e)
}

impl<W: Write> LayerWriter<W> {
    /// A writer of one layer into `out` with `opts`.
    pub fn new(out: W, opts: LayerOptions) -> Result<LayerWriter<W>, LayerError> {
        let outer = HashingWriter::new(out);
        let comp = match opts.compression {
            Compression::Gzip => Compressor::Gzip(ParallelGzip::new(outer, 6)),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(outer, 3).map_err(io_err)?;
                e.include_checksum(false).map_err(io_err)?;
                Compressor::Zstd(e)
            }
        };
        let mut tar = tar::Builder::new(HashingWriter::new(comp));
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        Ok(LayerWriter {
            tar,
            opts,
            written: BTreeSet::new(),
            symlinks: BTreeSet::new(),
            packages: Vec::new(),
            declared: (IdMap::new(), IdMap::new()),
        })
    }

    fn header(&self, mode: u32, user: &str, group: &str) -> Result<tar::Header, LayerError> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode & 0o7777);
        h.set_mtime(self.opts.epoch);
        // Owners no scriptlet created get the ids the image's account files will list
        // (accounts.rs): sysusers.d's, else a deterministic one.
        let uid = if user == "root" {
            0
        } else {
            accounts::id_of(&self.declared.0, &self.opts.users, user)
        };
        let gid = if group == "root" {
            0
        } else {
            accounts::id_of(&self.declared.1, &self.opts.groups, group)
        };
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_username(user).map_err(io_err)?;
        h.set_groupname(group).map_err(io_err)?;
        Ok(h)
    }

    /// Accounts the layer's packages declare in sysusers.d: their numeric ids number the
    /// files they own (see [`accounts`]).
    pub fn declare(&mut self, decls: &[accounts::SysUser]) {
        accounts::declare(&mut self.declared.0, &mut self.declared.1, decls);
    }

    /// A package file's time: its header's, clamped (see [`LayerOptions::clamp_mtime`]).
    fn package_mtime(&self, info: &FileInfo) -> u64 {
        self.opts
            .clamp_mtime
            .map_or(info.mtime, |c| info.mtime.min(c))
    }

    /// Adds one package's payload, skipping `skip` (paths a later package of this layer
    /// writes).
    pub fn add_package(
        &mut self,
        rpm: &mut RpmReader,
        skip: &BTreeSet<String>,
    ) -> Result<(), LayerError> {
        let mut pc = PackageEntries {
            pkg: format!("{}-{}.{}", rpm.name, rpm.evr, rpm.arch),
            infos: rpm
                .files
                .iter()
                .map(|f| (f.path.trim_start_matches('/').to_owned(), f.clone()))
                .collect(),
            links: BTreeMap::new(),
            seen: BTreeSet::new(),
        };
        while let Some(e) = rpm.next_entry()? {
            let Some(checked) = self.check_entry(&mut pc, &e.name, skip)? else {
                continue;
            };
            self.write_entry(&mut pc, rpm, &e, &checked)?;
        }
        if let Some((ino, (names, seen, nlink))) = pc.links.into_iter().next() {
            return Err(LayerError::Bad {
                package: pc.pkg,
                message: format!(
                    "hard-link set of inode {ino} ({}) has {seen} of {nlink} members and no data",
                    names.join(", ")
                ),
            });
        }
        self.packages.push(pc.pkg);
        Ok(())
    }

    /// Checks a payload entry's name: safe, once in the payload, not through a symlink of
    /// this layer, not written twice, listed in the header. Returns (name, path in the image
    /// through the layout's directory links, header info), or `None` for ghosts and paths a
    /// later package writes.
    fn check_entry(
        &self,
        pc: &mut PackageEntries,
        name: &str,
        skip: &BTreeSet<String>,
    ) -> Result<Option<Checked>, LayerError> {
        let rel = normalize(name).map_err(|r| pc.unsafe_(name, r))?;
        if !pc.seen.insert(rel.clone()) {
            return Err(pc.unsafe_(&rel, "the payload has it twice".into()));
        }
        let path = through_dir_links(&rel, &self.opts.dir_links);
        // No entry may be written through a symlink another entry of this layer made.
        let comps: Vec<&str> = path.split('/').collect();
        for i in 1..comps.len() {
            let prefix = comps[..i].join("/");
            if self.symlinks.contains(&prefix) {
                return Err(pc.unsafe_(
                    &rel,
                    format!("it would be written through the symlink `{prefix}`"),
                ));
            }
        }
        if self.written.contains(&path) {
            return Err(pc.unsafe_(&rel, "another entry of this layer already wrote it".into()));
        }
        let Some(info) = pc.infos.get(&rel) else {
            return Err(pc.unsafe_(
                &rel,
                "the payload has a file the header does not list".into(),
            ));
        };
        if info.ghost || skip.contains(&rel) {
            return Ok(None);
        }
        Ok(Some(Checked {
            info: info.clone(),
            rel,
            path,
        }))
    }

    /// Writes one checked entry as its tar entry, by file type.
    fn write_entry(
        &mut self,
        pc: &mut PackageEntries,
        rpm: &mut RpmReader,
        e: &Entry,
        c: &Checked,
    ) -> Result<(), LayerError> {
        let (rel, path, info) = (c.rel.as_str(), c.path.as_str(), &c.info);
        agrees_with_header(e, info).map_err(|m| pc.unsafe_(rel, m))?;
        let mut h = self.header(info.mode, &info.user, &info.group)?;
        h.set_mtime(self.package_mtime(info));
        let special = |h: &mut tar::Header, t: tar::EntryType| {
            h.set_entry_type(t);
            h.set_size(0);
        };
        match e.mode & 0o170000 {
            0o040000 => {
                special(&mut h, tar::EntryType::Directory);
                self.tar
                    .append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(io_err)?;
            }
            0o120000 => {
                let mut target = String::new();
                rpm.data()
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(|e| pc.unsafe_(rel, format!("bad symlink data: {e}")))?;
                let target = info.linkto.clone().unwrap_or(target);
                if target.is_empty() || target.contains('\0') {
                    return Err(pc.unsafe_(rel, "the symlink has no target".into()));
                }
                special(&mut h, tar::EntryType::Symlink);
                self.tar
                    .append_link(&mut h, path, &target)
                    .map_err(io_err)?;
                self.symlinks.insert(path.to_owned());
            }
            0o100000 => {
                if !self.write_regular(pc, rpm, e, c, h)? {
                    // A hard link waiting for its set's data member.
                    self.written.insert(path.to_owned());
                    return Ok(());
                }
            }
            t @ (0o020000 | 0o060000) => {
                let kind = if t == 0o020000 {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                special(&mut h, kind);
                h.set_device_major(e.rdev_major).map_err(io_err)?;
                h.set_device_minor(e.rdev_minor).map_err(io_err)?;
                self.tar
                    .append_data(&mut h, path, io::empty())
                    .map_err(io_err)?;
            }
            0o010000 => {
                special(&mut h, tar::EntryType::Fifo);
                self.tar
                    .append_data(&mut h, path, io::empty())
                    .map_err(io_err)?;
            }
            other => return Err(pc.unsafe_(rel, format!("unsupported file type {other:o}"))),
        }
        self.written.insert(path.to_owned());
        Ok(())
    }

    /// A regular file: its capabilities as an xattr, its data, and the hard links of its set
    /// once the data member comes. Returns false for a link member whose data is still to
    /// come.
    fn write_regular(
        &mut self,
        pc: &mut PackageEntries,
        rpm: &mut RpmReader,
        e: &Entry,
        c: &Checked,
        mut h: tar::Header,
    ) -> Result<bool, LayerError> {
        let (rel, path, info) = (c.rel.as_str(), c.path.as_str(), &c.info);
        if let Some(c) = &info.caps {
            let v =
                caps::xattr(c).map_err(|m| pc.unsafe_(rel, format!("bad capabilities: {m}")))?;
            self.tar
                .append_pax_extensions([("SCHILY.xattr.security.capability", v.as_slice())])
                .map_err(io_err)?;
        }
        let mut others = Vec::new();
        if e.nlink > 1 {
            if e.nlink as usize > rpm.files.len() {
                return Err(pc.unsafe_(
                    rel,
                    format!("hard-link count {} exceeds the package's files", e.nlink),
                ));
            }
            let set = pc
                .links
                .entry(e.ino)
                .or_insert_with(|| (Vec::new(), 0, e.nlink));
            set.1 += 1;
            if e.size == 0 && set.1 < set.2 {
                set.0.push(path.to_owned());
                return Ok(false);
            }
            // The data member: written first, then links for the others.
            others = pc.links.remove(&e.ino).unwrap_or_default().0;
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(e.size);
        self.tar
            .append_data(&mut h, path, rpm.data())
            .map_err(|err| pc.unsafe_(rel, err.to_string()))?;
        for o in others {
            let oi = pc.infos.get(&o).unwrap_or(info);
            let mut lh = self.header(e.mode, &oi.user, &oi.group)?;
            lh.set_mtime(self.package_mtime(oi));
            lh.set_entry_type(tar::EntryType::Link);
            lh.set_size(0);
            self.tar.append_link(&mut lh, &o, path).map_err(io_err)?;
        }
        Ok(true)
    }

    /// Adds a file that is not from a package (the job's own files).
    pub fn add_file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), LayerError> {
        let rel = normalize(path).map_err(|reason| LayerError::Unsafe {
            package: "job".into(),
            path: path.into(),
            reason,
        })?;
        // parent directories first
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            let dir = through_dir_links(&dir, &self.opts.dir_links);
            if self.written.insert(dir.clone()) {
                let mut h = self.header(0o755, "root", "root")?;
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                self.tar
                    .append_data(&mut h, format!("{dir}/"), io::empty())
                    .map_err(io_err)?;
            }
        }
        let path = through_dir_links(&rel, &self.opts.dir_links);
        let mut h = self.header(mode, "root", "root")?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        self.tar.append_data(&mut h, &path, data).map_err(io_err)?;
        self.written.insert(path);
        Ok(())
    }

    /// Ends the archive; returns the output and the layer's identity.
    pub fn finish(self) -> Result<(W, Layer), LayerError> {
        let media_type = self.opts.media_type();
        let packages = self.packages;
        let inner = self.tar.into_inner().map_err(io_err)?;
        let (comp, diff_id, _) = inner.finish();
        let outer = comp.finish().map_err(io_err)?;
        let (out, digest, size) = outer.finish();
        Ok((
            out,
            Layer {
                digest: sha256_digest(&digest),
                diff_id: sha256_digest(&diff_id),
                size,
                media_type,
                packages,
                annotations: BTreeMap::new(),
            },
        ))
    }
}

/// `sha256:<hex>` as hashed here: always a valid digest.
fn sha256_digest(s: &str) -> Digest {
    s.parse()
        .expect("a sha256 hex digest is a valid OCI digest")
}

/// Owner or group names → ids.
pub type IdMap = BTreeMap<String, u32>;

/// Owners from a setup package's `/etc/passwd` and `/etc/group`.
pub fn owners_from_setup(rpm: &mut RpmReader) -> Result<(IdMap, IdMap), LayerError> {
    Ok(accounts::Accounts::from_setup(rpm)?.ids())
}

/// Directory symlinks among the packages' files: a symlink whose target (resolved against
/// its own directory) is a directory some package lists. `lib64` → `usr/lib64`.
pub fn dir_links(files: &[&FileInfo]) -> BTreeMap<String, String> {
    let dirs: BTreeSet<String> = files
        .iter()
        .filter(|f| f.mode & 0o170000 == 0o040000)
        .map(|f| f.path.trim_start_matches('/').to_owned())
        .collect();
    let mut out = BTreeMap::new();
    for f in files.iter().filter(|f| f.mode & 0o170000 == 0o120000) {
        let Some(target) = &f.linkto else { continue };
        let link = f.path.trim_start_matches('/');
        let parent = link.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let joined = if target.starts_with('/') {
            target.trim_start_matches('/').to_owned()
        } else if parent.is_empty() {
            target.clone()
        } else {
            format!("{parent}/{target}")
        };
        let resolved = crate::elf::search::normalize(std::path::Path::new(&joined))
            .to_string_lossy()
            .into_owned();
        if dirs.contains(&resolved) {
            out.insert(link.to_owned(), resolved);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_paths() {
        assert_eq!(normalize("./usr/bin/x").unwrap(), "usr/bin/x");
        assert_eq!(normalize("etc/passwd").unwrap(), "etc/passwd");
        for bad in [
            "./../etc/x",
            "./usr/../../x",
            "./usr//x",
            "./usr/./x",
            "./a/.wh.b",
            "",
            "./",
            "//etc",
            "/etc/passwd",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dir_link_resolution() {
        let links = BTreeMap::from([
            ("lib64".to_string(), "usr/lib64".to_string()),
            ("bin".into(), "usr/bin".into()),
        ]);
        assert_eq!(
            through_dir_links("lib64/libc.so.6", &links),
            "usr/lib64/libc.so.6"
        );
        assert_eq!(through_dir_links("lib64", &links), "lib64");
        assert_eq!(through_dir_links("usr/lib64/x", &links), "usr/lib64/x");
    }
}
