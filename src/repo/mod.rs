//! Repo: yum/dnf repository metadata → an index of packages, capabilities and files.
//!
//! [`RepoLoader::load`] reads `repodata/repomd.xml` from the first mirror that answers,
//! locates `primary` (and lazily `filelists`, and `modules`) by type, checks every href,
//! verifies each file's checksum before use, decompresses by extension confirmed by magic
//! bytes (with a size cap), parses with a streaming XML reader that refuses DOCTYPEs, and
//! caches the built index under the sha256 of `repomd.xml`, so a warm run reads only
//! `repomd.xml` and the cached index.

mod chunked;
pub mod evr;
pub mod index;
pub mod metadata;
mod modules;
mod repofile;
mod table;
pub mod updateinfo;
mod xml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::cache::{Bucket, Cache, CacheError};
use crate::config::Config;
use crate::decompress;
use crate::fetch::{FetchError, SafeUrl, Transport, file_url};

pub use index::{FileIndex, IndexBuilder, IndexHeader, RepoIndex};
use metadata::{Repomd, RepomdRecord};
pub use modules::ModuleIndex;

/// Why a repository cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No mirror of the repository could be read.
    #[error("repo `{repo}`: no mirror answered:\n{}", errors.join("\n"))]
    AllMirrorsFailed {
        /// The repository id.
        repo: String,
        /// Each source tried and how it failed.
        errors: Vec<String>,
        /// What the failures themselves suggest (a slow mirror, say), if anything.
        hint: Option<String>,
    },
    /// The mirrorlist lists no URL.
    #[error("repo `{repo}`: the mirrorlist `{url}` lists no URLs")]
    EmptyMirrorlist {
        /// The repository id.
        repo: String,
        /// The URL (credentials masked).
        url: SafeUrl,
    },
    /// A metadata file is malformed.
    #[error("repo `{repo}`: `{url}`: {message}")]
    Metadata {
        /// The repository id.
        repo: String,
        /// The URL (credentials masked).
        url: SafeUrl,
        /// What is wrong.
        message: String,
    },
    /// repomd.xml lacks a record pbsimage needs.
    #[error("repo `{repo}`: repomd.xml has no `{kind}` record")]
    MissingRecord {
        /// The repository id.
        repo: String,
        /// The record type (`primary`).
        kind: String,
    },
    /// A location points outside the repository and its mirrors.
    #[error("repo `{repo}`: refusing location `{href}`: {reason}")]
    Href {
        /// The repository id.
        repo: String,
        /// The location as the metadata gives it.
        href: String,
        /// Why it is refused.
        reason: String,
    },
    /// A metadata file's checksum is not repomd.xml's.
    #[error("repo `{repo}`: checksum mismatch for `{url}`: expected {expected}, got {actual}")]
    Checksum {
        /// The repository id.
        repo: String,
        /// The URL (credentials masked).
        url: SafeUrl,
        /// The checksum the metadata gives.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },
    /// A transfer failed.
    #[error("repo `{repo}`: {source}")]
    Fetch {
        /// The repository id.
        repo: String,
        /// The underlying error.
        #[source]
        source: FetchError,
    },
    /// `--offline`, and nothing cached.
    #[error("repo `{repo}`: --offline, and no cached metadata")]
    Offline {
        /// The repository id.
        repo: String,
    },
    /// `repomd.xml.asc` does not verify.
    #[error("repo `{repo}`: signature check of repomd.xml failed: {message}")]
    Signature {
        /// The repository id.
        repo: String,
        /// What is wrong.
        message: String,
    },
    /// The repository configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The index could not be encoded.
    #[error("repo `{repo}`: cannot encode the index: {message}")]
    Encode {
        /// The repository id.
        repo: String,
        /// What is wrong.
        message: String,
    },
    /// A parsing task stopped before finishing.||what=Which task (`index`, `file lists`).
    #[error("repo `{repo}`: the {what} task stopped before finishing")]
    Task {
        /// The repository id.
        repo: String,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The cache could not take the index.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl crate::hint::Hint for RepoError {
    fn hint(&self) -> Option<String> {
        match self {
            RepoError::AllMirrorsFailed { hint: Some(h), .. } => Some(h.clone()),
            RepoError::AllMirrorsFailed { .. } => Some(
                "check baseurl/mirrorlist in pipeline.toml and that the mirrors are reachable"
                    .into(),
            ),
            RepoError::Fetch { source, .. } => source.hint(),
            RepoError::Checksum { .. } => Some(
                "the mirror is inconsistent or mid-sync; try again later or another mirror".into(),
            ),
            RepoError::Href { .. } => Some(
                "metadata may only point inside the repository or at a configured mirror".into(),
            ),
            _ => None,
        }
    }
}

/// A repository to read, from `pipeline.toml` or a `.repo` file, with variables expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSource {
    /// Repository id.
    pub id: String,
    /// Base URLs, in order of preference.
    pub baseurls: Vec<String>,
    /// A mirrorlist URL (instead of base URLs).
    pub mirrorlist: Option<String>,
    /// 1 (preferred) to 99.
    pub priority: u32,
    /// Position in the configuration (ties after priority).
    pub order: usize,
    /// Verify repomd.xml's signature.
    pub gpgcheck: bool,
    /// The OpenPGP key for `gpgcheck`.
    pub gpgkey: Option<String>,
    /// Extra CA certificate for this repository.
    pub sslcacert: Option<PathBuf>,
    /// `sslverify = false`: TLS certificates are not checked (warned about).
    pub sslverify: bool,
    /// Enabled module streams (`name:stream`).
    pub modules: Vec<String>,
}

/// Absolute URL for a configured base: a path becomes `file://`.
fn absolute_url(u: &str, base_dir: &Path) -> String {
    if u.contains("://") {
        u.to_owned()
    } else {
        file_url(&base_dir.join(u))
    }
}

/// The enabled repositories of a configuration, in order.
pub fn sources(config: &Config) -> Result<Vec<RepoSource>, RepoError> {
    let s = &config.settings;
    let mut out = Vec::new();
    for r in s.repos.iter().filter(|r| r.enabled) {
        let expand = |u: &String| {
            config
                .expand_vars(u)
                .map(|e| absolute_url(&e, &config.base_dir))
                .map_err(|v| RepoError::Config(format!("repo `{}`: unknown variable `${v}`", r.id)))
        };
        out.push(RepoSource {
            id: r.id.to_string(),
            baseurls: r.baseurl.iter().map(expand).collect::<Result<_, _>>()?,
            mirrorlist: r.mirrorlist.as_ref().map(expand).transpose()?,
            priority: r.priority,
            order: out.len(),
            gpgcheck: r.gpgcheck,
            gpgkey: r.gpgkey.as_ref().map(expand).transpose()?,
            sslcacert: r.sslcacert.as_ref().map(|p| config.base_dir.join(p)),
            sslverify: r.sslverify,
            modules: r.modules.clone(),
        });
    }
    if let Some(dir) = &s.repos_from {
        let dir = config.base_dir.join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| RepoError::Config(format!("repos-from `{}`: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "repo"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| RepoError::Config(format!("cannot read `{}`: {e}", f.display())))?;
            for sec in repofile::parse(&text, &f).map_err(RepoError::Config)? {
                if !sec.enabled {
                    continue;
                }
                let at = |m: String| {
                    RepoError::Config(format!(
                        "{}:{}: repo `{}`: {m}",
                        f.display(),
                        sec.line,
                        sec.id
                    ))
                };
                crate::config::RepoId::try_from(sec.id.clone()).map_err(at)?;
                if out.iter().any(|o: &RepoSource| o.id == sec.id) {
                    return Err(at("the id is already defined".into()));
                }
                let expand = |u: &String| {
                    config
                        .expand_vars(u)
                        .map_err(|v| at(format!("unknown variable `${v}`")))
                };
                if sec.baseurl.is_empty() && sec.mirrorlist.is_none() {
                    return Err(at(if sec.metalink.is_some() {
                        "only a metalink is given; pbsimage reads baseurl or mirrorlist".into()
                    } else {
                        "neither baseurl nor mirrorlist".into()
                    }));
                }
                out.push(RepoSource {
                    id: sec.id.clone(),
                    baseurls: sec.baseurl.iter().map(expand).collect::<Result<_, _>>()?,
                    mirrorlist: sec.mirrorlist.as_ref().map(expand).transpose()?,
                    priority: sec.priority,
                    order: out.len(),
                    gpgcheck: sec.gpgcheck,
                    gpgkey: sec.gpgkey.as_ref().map(expand).transpose()?,
                    sslcacert: sec.sslcacert.as_ref().map(PathBuf::from),
                    sslverify: sec.sslverify,
                    modules: Vec::new(),
                });
            }
        }
    }
    Ok(out)
}

/// A loaded repository: its source, index, and the packages modularity hides.
#[derive(Debug)]
pub struct Repo {
    /// Where it came from.
    pub source: RepoSource,
    /// Its index.
    pub index: RepoIndex,
    /// Packages hidden by modular filtering.
    pub hidden: BTreeSet<u32>,
}

/// Joins a base URL and a relative href.
pub fn join_url(base: &str, href: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), href)
}

/// Checks a `location href` (and `xml:base`): relative, no `..`, no absolute path, no other
/// host unless the base is one of the repository's own mirrors.
pub fn check_href(
    repo: &str,
    href: &str,
    base: Option<&str>,
    mirrors: &[String],
) -> Result<(), RepoError> {
    let bad = |reason: &str| RepoError::Href {
        repo: repo.to_owned(),
        href: href.to_owned(),
        reason: reason.to_owned(),
    };
    if href.is_empty() {
        return Err(bad("it is empty"));
    }
    // Servers decode percent escapes before they map a path: check what they will see.
    let decoded = crate::fetch::percent_decode(href);
    for h in [href, decoded.as_str()] {
        if h.contains("://") {
            return Err(bad("it names another host"));
        }
        if h.starts_with('/') {
            return Err(bad("it is an absolute path"));
        }
        if h.split('/').any(|c| c == ".." || c == ".") {
            return Err(bad("it contains `..` or `.`"));
        }
        if h.contains('\\') || h.chars().any(char::is_control) {
            return Err(bad("it contains a backslash or a control character"));
        }
        if h.contains(['?', '#']) {
            return Err(bad("it contains a query or fragment"));
        }
    }
    if let Some(b) = base {
        let b = b.trim_end_matches('/');
        if !mirrors.iter().any(|m| m.trim_end_matches('/') == b) {
            return Err(bad(&format!("xml:base `{b}` is not a configured mirror")));
        }
    }
    Ok(())
}

/// The most bytes a metadata download may bring: repomd.xml's `<size>` for the record, else
/// the configured cap.
fn download_cap(rec: &RepomdRecord, max: u64) -> u64 {
    rec.size.map_or(max, |s| s.min(max))
}

/// The most bytes a metadata file may decompress to: repomd.xml's `<open-size>` with an
/// eighth and a mebibyte of headroom, else the configured cap.
fn open_cap(rec: &RepomdRecord, max: u64) -> u64 {
    rec.open_size.map_or(max, |o| {
        o.saturating_add(o / 8).saturating_add(1 << 20).min(max)
    })
}

/// What building a repository's index needs, moved to a blocking thread.
struct IndexInput {
    repo: String,
    revision: Option<String>,
    sha: String,
    mirror: String,
    mirrors: Vec<String>,
    primary: RepomdRecord,
    primary_url: String,
    filelists: Option<RepomdRecord>,
    /// updateinfo.xml's record (read only when a catalog update asks for advisories).
    updateinfo: Option<RepomdRecord>,
    body: std::fs::File,
    /// modules.yaml: its record, URL and file.
    modules: Option<(RepomdRecord, String, std::fs::File)>,
    /// The decompressed size primary.xml may have.
    cap: u64,
    /// The configured cap on any metadata file.
    max: u64,
    /// The cache's temporary file the index is written to.
    out: tempfile::NamedTempFile,
}

/// Smaller metadata files are parsed on one thread: starting threads would cost more.
const PARALLEL_FROM: u64 = 4 << 20;

/// Parser threads for one large metadata file.
fn parse_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Parses primary.xml into an index builder, checking every package's location: on every
/// core when the file is large (see [`chunked`]), sequentially when it is small or when the
/// parallel parse fails (which then gives the answer or the error it always gave).
/// `Err(Ok(_))` is a location leaving the repository, `Err(Err(_))` bad metadata.
fn parse_primary_into_builder(
    i: &IndexInput,
) -> Result<(IndexBuilder, u64), Result<RepoError, String>> {
    use std::io::Seek as _;
    let workers = parse_workers();
    let large = i.primary.open_size.is_none_or(|o| o >= PARALLEL_FROM);
    let bad_href = std::sync::Mutex::new(None);
    // Parses a whole file or one chunk into a builder, every location checked.
    let add = |builder: &mut IndexBuilder, p: metadata::Package| {
        if let Err(e) = check_href(&i.repo, &p.href, p.base.as_deref(), &i.mirrors) {
            if let Ok(mut bad) = bad_href.lock() {
                bad.get_or_insert(e);
            }
            return Err("a package location leaves the repository".to_owned());
        }
        builder.add(&p)
    };
    let part = |bytes: &[u8]| {
        let mut builder = IndexBuilder::default();
        metadata::parse_primary_slice(bytes, |p| add(&mut builder, p))?;
        Ok(builder)
    };
    let whole = |r: &mut dyn std::io::BufRead| {
        let mut builder = IndexBuilder::default();
        metadata::parse_primary(r, |p| add(&mut builder, p))?;
        Ok(builder)
    };
    let parse = |parallel: bool| -> Result<(IndexBuilder, u64), Result<RepoError, String>> {
        (&i.body).rewind().map_err(|e| Err(e.to_string()))?;
        let mut reader = decompress::open(&i.body, &i.primary.href, i.cap).map_err(Err)?;
        let built = if parallel {
            let mut whole = IndexBuilder::default();
            chunked::parse_parallel(reader, "metadata", workers, part, |p| whole.append(p))
                .map(|()| whole)
                .map_err(|chunked::Fallback(m)| m)
        } else {
            whole(&mut reader)
        };
        if let Some(e) = bad_href.lock().ok().and_then(|mut b| b.take()) {
            return Err(Ok(e));
        }
        let builder = built.map_err(Err)?;
        let count = u64::from(builder.len());
        Ok((builder, count))
    };
    if large && workers > 1 {
        match parse(true) {
            Ok(done) => return Ok(done),
            Err(Ok(bad_href)) => return Err(Ok(bad_href)),
            Err(Err(m)) => {
                tracing::debug!(repo = %i.repo, "parallel parse gave up ({m}); parsing sequentially")
            }
        }
    }
    parse(false)
}

/// Parses primary.xml (every href checked) and modules.yaml, and builds the index into the
/// temporary file, returned to be persisted under its name.
fn build_index(i: IndexInput) -> Result<(RepoIndex, tempfile::NamedTempFile), RepoError> {
    let t = std::time::Instant::now();
    let meta = |url: &str, message: String| RepoError::Metadata {
        repo: i.repo.clone(),
        url: SafeUrl(url.to_owned()),
        message,
    };
    let (builder, count) = parse_primary_into_builder(&i).map_err(|e| match e {
        Ok(bad_href) => bad_href,
        Err(m) => meta(&i.primary_url, m),
    })?;
    let modules = match &i.modules {
        Some((rec, murl, mbody)) => {
            let mut text = String::new();
            let mut r = decompress::open(mbody, &rec.href, open_cap(rec, i.max))
                .map_err(|m| meta(murl, m))?;
            std::io::Read::read_to_string(&mut r, &mut text)
                .map_err(|e| meta(murl, e.to_string()))?;
            Some(ModuleIndex::parse(&text).map_err(|m| meta(murl, m))?)
        }
        None => None,
    };
    tracing::debug!(repo = %i.repo, "primary parsed in {:?} ({count} packages)", t.elapsed());
    let idx = builder
        .finish_into(
            IndexHeader {
                id: i.repo.clone(),
                revision: i.revision,
                repomd_sha256: i.sha,
                base_url: i.mirror,
                primary: i.primary,
                filelists: i.filelists,
                updateinfo: i.updateinfo,
                modules,
            },
            i.out.as_file(),
        )
        .map_err(|message| RepoError::Encode {
            repo: i.repo,
            message,
        })?;
    Ok((idx, i.out))
}

/// Loads repositories.
pub struct RepoLoader<'a> {
    /// The HTTP client.
    pub transport: &'a Transport,
    /// The cache indexes go into.
    pub cache: &'a Cache,
    /// Cap on a downloaded and on a decompressed metadata file.
    pub max_metadata_bytes: u64,
    /// Use only cached indexes.
    pub offline: bool,
}

const REPOMD_LIMIT: u64 = 16 << 20;

impl RepoLoader<'_> {
    async fn mirrors(&self, src: &RepoSource) -> Result<Vec<String>, RepoError> {
        if !src.sslverify {
            tracing::warn!(
                "repo `{}`: sslverify = false: TLS certificates are not checked",
                src.id
            );
        }
        if !src.baseurls.is_empty() {
            return Ok(src.baseurls.clone());
        }
        let url = src.mirrorlist.as_deref().unwrap_or_default();
        let bytes = self
            .transport
            .get_bytes_with(url, REPOMD_LIMIT, src.sslverify)
            .await
            .map_err(|source| RepoError::Fetch {
                repo: src.id.clone(),
                source,
            })?;
        let list: Vec<String> = String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && l.contains("://"))
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(RepoError::EmptyMirrorlist {
                repo: src.id.clone(),
                url: SafeUrl(url.into()),
            });
        }
        Ok(list)
    }

    fn bucket(&self, src: &RepoSource) -> Result<PathBuf, RepoError> {
        Ok(self.cache.bucket_dir(Bucket::RepoIndex, &[&src.id])?)
    }

    /// The newest cached index of a repository, for `--offline`.
    fn cached_any(&self, src: &RepoSource) -> Result<Option<RepoIndex>, RepoError> {
        let dir = self.bucket(src)?;
        let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "idx")
                && let Ok(m) = e.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(t, _)| m > *t)
            {
                newest = Some((m, p));
            }
        }
        Ok(newest.and_then(|(_, p)| RepoIndex::open(&p)))
    }

    /// The packages modular filtering hides, remembered beside the index per set of enabled
    /// streams (`<sha>.hidden-<digest of the streams>`): working it out decodes every
    /// package a module names, a few thousand on a real AppStream.
    fn hidden(
        &self,
        src: &RepoSource,
        index: &RepoIndex,
        modules: &ModuleIndex,
    ) -> Result<BTreeSet<u32>, RepoError> {
        let dir = self.bucket(src)?;
        let streams = hex::encode(sha2::Sha256::digest(src.modules.join("\n").as_bytes()));
        // v1: the rule of ModuleIndex::hidden; a change of it is a new name.
        let name = format!("{}.hidden-v1-{}", index.repomd_sha256, &streams[..16]);
        if let Ok(b) = std::fs::read(dir.join(&name))
            && let Ok(set) = serde_json::from_slice::<BTreeSet<u32>>(&b)
            && set.iter().all(|&i| (i as usize) < index.len())
        {
            return Ok(set);
        }
        let set = modules.hidden(|n| index.named(n), &src.modules);
        if !index.is_damaged() {
            let bytes = serde_json::to_vec(&set).expect("a set of numbers serializes");
            self.cache.write_atomic(&dir, &name, &bytes)?;
        }
        Ok(set)
    }

    /// Removes a repository's cached index (found damaged while in use), so that the next
    /// load builds it again.
    pub fn forget(&self, repo: &Repo) -> Result<(), RepoError> {
        let dir = self.bucket(&repo.source)?;
        let sha = &repo.index.repomd_sha256;
        let hidden = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{sha}.hidden-")));
        let names: Vec<String> = [format!("{sha}.idx"), format!("{sha}.idx.stamp")]
            .into_iter()
            .chain(hidden)
            .collect();
        for name in names {
            match std::fs::remove_file(dir.join(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RepoError::from(crate::cache::CacheError::Io {
                        path: dir.join(name),
                        source: e,
                    }));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The advisories of a loaded repository's `updateinfo.xml` (`None`: it has none), with
    /// warnings about what was odd in them. Read from the mirror the index came from,
    /// verified against the checksum its `repomd.xml` gave, like every metadata file.
    pub async fn updateinfo(&self, repo: &Repo) -> Result<Option<Advisories>, RepoError> {
        // The record is the one of the repomd.xml the index was built from (and whose
        // signature was checked then): the advisories match the packages resolved.
        let Some(rec) = &repo.index.updateinfo else {
            return Ok(None);
        };
        let src = &repo.source;
        let mirror = repo.index.base_url.clone();
        let mirrors = self.mirrors(src).await?;
        let meta = |url: &str, message: String| RepoError::Metadata {
            repo: src.id.clone(),
            url: SafeUrl(url.to_owned()),
            message,
        };
        let url = record_url(&mirror, rec);
        let body = self.fetch_verified(src, &mirror, &mirrors, rec).await?;
        let (cap, href) = (open_cap(rec, self.max_metadata_bytes), rec.href.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            let reader = decompress::open(&body, &href, cap)?;
            updateinfo::parse(reader)
        })
        .await
        .map_err(|source| RepoError::Task {
            repo: src.id.clone(),
            what: "advisories",
            source,
        })?
        .map_err(|m| meta(&url, m))?;
        let (advisories, warnings) = parsed;
        Ok(Some(Advisories {
            repo: src.id.clone(),
            advisories,
            warnings: warnings
                .into_iter()
                .map(|w| format!("repo `{}`: {w}", src.id))
                .collect(),
        }))
    }

    /// Loads one repository (from the cache when `repomd.xml` is unchanged). With
    /// `with_filelists`, filelists.xml is read too, concurrently with primary.xml.
    pub async fn load(&self, src: &RepoSource, with_filelists: bool) -> Result<Repo, RepoError> {
        let (index, files) = if self.offline {
            let idx = self.cached_any(src)?.ok_or_else(|| RepoError::Offline {
                repo: src.id.clone(),
            })?;
            (idx, None)
        } else {
            self.load_index(src, with_filelists).await?
        };
        let hidden = match &index.modules {
            Some(m) => self.hidden(src, &index, m)?,
            None => Default::default(),
        };
        let mut repo = Repo {
            source: src.clone(),
            index,
            hidden,
        };
        repo.index.all_files = files;
        if with_filelists && repo.index.all_files.is_none() {
            self.load_filelists(&mut repo).await?;
        }
        Ok(repo)
    }

    async fn load_index(
        &self,
        src: &RepoSource,
        with_filelists: bool,
    ) -> Result<(RepoIndex, Option<FileIndex>), RepoError> {
        let mirrors = self.mirrors(src).await?;
        let (mut errors, mut hint) = (Vec::new(), None);
        for mirror in &mirrors {
            match self.load_from(src, mirror, &mirrors, with_filelists).await {
                Ok(i) => return Ok(i),
                // Fetch failures fall through to the next mirror; bad content is final.
                Err(RepoError::Fetch { source, .. }) => {
                    use crate::hint::Hint as _;
                    hint = hint.or_else(|| source.hint());
                    errors.push(format!("  {mirror}: {source}"))
                }
                Err(e) => return Err(e),
            }
        }
        Err(RepoError::AllMirrorsFailed {
            repo: src.id.clone(),
            errors,
            hint,
        })
    }

    async fn load_from(
        &self,
        src: &RepoSource,
        mirror: &str,
        mirrors: &[String],
        with_filelists: bool,
    ) -> Result<(RepoIndex, Option<FileIndex>), RepoError> {
        let repo = src.id.clone();
        let repomd_url = join_url(mirror, "repodata/repomd.xml");
        let repomd_bytes = self
            .transport
            .get_bytes_with(&repomd_url, REPOMD_LIMIT, src.sslverify)
            .await
            .map_err(|source| RepoError::Fetch {
                repo: repo.clone(),
                source,
            })?;
        let sha = hex::encode(sha2::Sha256::digest(&repomd_bytes));
        let dir = self.bucket(src)?;
        // Off the async runtime: the first open after a build reads the whole index for its
        // CRC, and the repositories load concurrently.
        let path = dir.join(format!("{sha}.idx"));
        let cached = tokio::task::spawn_blocking(move || RepoIndex::open_trusted(&path))
            .await
            .ok()
            .flatten();
        if let Some(mut idx) = cached {
            idx.base_url = mirror.to_owned();
            tracing::debug!(repo = %src.id, "index cache hit {sha}");
            return Ok((idx, None));
        }
        if src.gpgcheck {
            self.verify_signature(src, mirror, &repomd_bytes).await?;
        }
        let md_err = |url: &str| {
            let (repo, url) = (repo.clone(), SafeUrl(url.to_owned()));
            move |message: String| RepoError::Metadata {
                repo: repo.clone(),
                url: url.clone(),
                message,
            }
        };
        let md = Repomd::parse(&repomd_bytes[..]).map_err(md_err(&repomd_url))?;
        let primary = md
            .record("primary")
            .ok_or_else(|| RepoError::MissingRecord {
                repo: repo.clone(),
                kind: "primary".into(),
            })?
            .clone();
        let filelists = md.record("filelists").cloned();

        // primary.xml (and modules) on one blocking thread; filelists.xml on another.
        let primary_job = self.primary_index(src, mirror, mirrors, &md, &primary, &sha);
        let filelists_job = async {
            match (&filelists, with_filelists) {
                (Some(rec), true) => self
                    .fetch_parse_filelists(src, mirror, mirrors, rec)
                    .await
                    .map(Some),
                _ => Ok(None),
            }
        };
        let (idx, files) = tokio::join!(primary_job, filelists_job);
        let (idx, tmp) = idx?;
        let files = files?;
        self.cache.persist(tmp, &dir, &format!("{sha}.idx"))?;
        let files = match files {
            Some(raw) => Some(self.finish_filelists(&dir, &idx, raw).await?),
            None => None,
        };
        Ok((idx, files))
    }

    /// Fetches primary.xml (and modules.yaml) verified, then parses them and builds the index
    /// on a blocking thread.
    async fn primary_index(
        &self,
        src: &RepoSource,
        mirror: &str,
        mirrors: &[String],
        md: &Repomd,
        primary: &RepomdRecord,
        sha: &str,
    ) -> Result<(RepoIndex, tempfile::NamedTempFile), RepoError> {
        let t = std::time::Instant::now();
        let body = self.fetch_verified(src, mirror, mirrors, primary).await?;
        let modules = match md.record("modules") {
            Some(rec) => Some((
                rec.clone(),
                record_url(mirror, rec),
                self.fetch_verified(src, mirror, mirrors, rec).await?,
            )),
            None => None,
        };
        tracing::debug!(repo = %src.id, "primary fetched and verified in {:?}", t.elapsed());
        let input = IndexInput {
            repo: src.id.clone(),
            revision: md.revision.clone(),
            sha: sha.to_owned(),
            mirror: mirror.to_owned(),
            mirrors: mirrors.to_vec(),
            primary: primary.clone(),
            primary_url: record_url(mirror, primary),
            filelists: md.record("filelists").cloned(),
            updateinfo: md.record("updateinfo").cloned(),
            body,
            modules,
            cap: open_cap(primary, self.max_metadata_bytes),
            max: self.max_metadata_bytes,
            out: self.cache.temp_in(&self.bucket(src)?)?,
        };
        tokio::task::spawn_blocking(move || build_index(input))
            .await
            .map_err(|source| RepoError::Task {
                repo: src.id.clone(),
                what: "index",
                source,
            })?
    }

    /// Downloads and parses filelists.xml (on a blocking thread) into raw rows.
    async fn fetch_parse_filelists(
        &self,
        src: &RepoSource,
        mirror: &str,
        mirrors: &[String],
        rec: &RepomdRecord,
    ) -> Result<RawFiles, RepoError> {
        let t = std::time::Instant::now();
        let body = self.fetch_verified(src, mirror, mirrors, rec).await?;
        let (cap, href, url, repo, rec_open_size) = (
            open_cap(rec, self.max_metadata_bytes),
            rec.href.clone(),
            record_url(mirror, rec),
            src.id.clone(),
            rec.open_size,
        );
        let raw = tokio::task::spawn_blocking(move || -> Result<RawFiles, RepoError> {
            let meta = |message: String| RepoError::Metadata {
                repo: repo.clone(),
                url: SafeUrl(url.clone()),
                message,
            };
            let large = rec_open_size.is_none_or(|o| o >= PARALLEL_FROM);
            let workers = parse_workers();
            let parse = |parallel: bool| -> Result<FileRows, String> {
                use std::io::Seek as _;
                (&body).rewind().map_err(|e| e.to_string())?;
                let mut reader = decompress::open(&body, &href, cap)?;
                if !parallel {
                    return FileRows::parse(&mut reader);
                }
                let mut whole = FileRows::default();
                chunked::parse_parallel(
                    reader,
                    "filelists",
                    workers,
                    FileRows::parse_slice,
                    |part| {
                        whole.append(part);
                        Ok(())
                    },
                )
                .map_err(|chunked::Fallback(m)| m)?;
                Ok(whole)
            };
            let rows = match large && workers > 1 {
                true => parse(true).or_else(|m| {
                    tracing::debug!("parallel parse gave up ({m}); parsing sequentially");
                    parse(false)
                }),
                false => parse(false),
            }
            .map_err(meta)?;
            let files = rows.rows.len();
            Ok(RawFiles {
                unsealed: FileIndex::unsealed(&rows.blob, rows.rows),
                pkgids: rows.pkgids,
                files,
            })
        })
        .await
        .map_err(|source| RepoError::Task {
            repo: src.id.clone(),
            what: "file lists",
            source,
        })??;
        tracing::debug!(repo = %src.id, "filelists fetched, parsed and tabled in {:?} ({} files)", t.elapsed(), raw.files);
        Ok(raw)
    }

    /// Maps raw filelists rows to package indexes, builds the file index and caches it.
    async fn finish_filelists(
        &self,
        dir: &Path,
        idx: &RepoIndex,
        raw: RawFiles,
    ) -> Result<FileIndex, RepoError> {
        let t = std::time::Instant::now();
        let ordinal: Vec<Option<u32>> = raw.pkgids.iter().map(|id| idx.by_pkgid(id)).collect();
        let mut fi = FileIndex::seal(raw.unsealed, Some(&ordinal));
        let path =
            self.cache
                .write_atomic(dir, &format!("{}.files", idx.repomd_sha256), fi.bytes())?;
        fi.remap(&path);
        tracing::debug!(repo = %idx.id, "file index built and written in {:?}", t.elapsed());
        Ok(fi)
    }

    /// Downloads a metadata file (to disk, never into memory: see
    /// [`Transport::get_file`]) and checks its checksum before anything uses it.
    async fn fetch_verified(
        &self,
        src: &RepoSource,
        mirror: &str,
        mirrors: &[String],
        rec: &RepomdRecord,
    ) -> Result<std::fs::File, RepoError> {
        check_href(&src.id, &rec.href, rec.base.as_deref(), mirrors)?;
        let url = record_url(mirror, rec);
        let spool = self.bucket(src)?;
        let mut body = self
            .transport
            .get_file(
                &url,
                download_cap(rec, self.max_metadata_bytes),
                src.sslverify,
                &spool,
            )
            .await
            .map_err(|source| match source {
                FetchError::Spool { path, source } => {
                    RepoError::Cache(CacheError::Io { path, source })
                }
                source => RepoError::Fetch {
                    repo: src.id.clone(),
                    source,
                },
            })?;
        let algo = rec.checksum.algo;
        let (actual, body) = tokio::task::spawn_blocking(move || {
            use std::io::Seek as _;
            let h = crate::digest::hash_reader(&mut body, algo)?;
            body.rewind()?;
            Ok::<_, std::io::Error>((h.0, body))
        })
        .await
        .map_err(|source| RepoError::Task {
            repo: src.id.clone(),
            what: "metadata checksum",
            source,
        })?
        .map_err(|source| RepoError::Fetch {
            repo: src.id.clone(),
            source: FetchError::File {
                url: SafeUrl(url.clone()),
                source,
            },
        })?;
        if actual != rec.checksum.hex {
            return Err(RepoError::Checksum {
                repo: src.id.clone(),
                url: SafeUrl(url),
                expected: rec.checksum.to_string(),
                actual: format!("{}:{actual}", rec.checksum.algo.name()),
            });
        }
        Ok(body)
    }

    /// Loads filelists.xml into `repo` (from the cache when possible).
    pub async fn load_filelists(&self, repo: &mut Repo) -> Result<(), RepoError> {
        if repo.index.all_files.is_some() {
            return Ok(());
        }
        let Some(rec) = repo.index.filelists.clone() else {
            repo.index.all_files = Some(FileIndex::empty());
            return Ok(());
        };
        let dir = self.bucket(&repo.source)?;
        if let Some(fi) = FileIndex::open(&dir.join(format!("{}.files", repo.index.repomd_sha256)))
        {
            repo.index.all_files = Some(fi);
            return Ok(());
        }
        if self.offline {
            return Err(RepoError::Offline {
                repo: repo.source.id.clone(),
            });
        }
        let mirror = repo.index.base_url.clone();
        let mirrors = if repo.source.baseurls.is_empty() {
            vec![mirror.clone()]
        } else {
            repo.source.baseurls.clone()
        };
        let raw = self
            .fetch_parse_filelists(&repo.source, &mirror, &mirrors, &rec)
            .await?;
        let fi = self.finish_filelists(&dir, &repo.index, raw).await?;
        repo.index.all_files = Some(fi);
        Ok(())
    }

    async fn verify_signature(
        &self,
        src: &RepoSource,
        mirror: &str,
        repomd: &[u8],
    ) -> Result<(), RepoError> {
        let sig_err = |message: String| RepoError::Signature {
            repo: src.id.clone(),
            message,
        };
        let key_url = src
            .gpgkey
            .as_deref()
            .ok_or_else(|| sig_err("gpgcheck is on but no gpgkey is set".into()))?;
        let key = self
            .transport
            .get_bytes_with(key_url, REPOMD_LIMIT, src.sslverify)
            .await
            .map_err(|e| sig_err(format!("cannot read the key: {e}")))?;
        let sig = self
            .transport
            .get_bytes_with(
                &join_url(mirror, "repodata/repomd.xml.asc"),
                REPOMD_LIMIT,
                src.sslverify,
            )
            .await
            .map_err(|e| sig_err(format!("cannot read repomd.xml.asc: {e}")))?;
        signature::verify(&key, &sig, repomd).map_err(sig_err)
    }
}

pub mod signature;

/// filelists.xml as parsed: a hash-ordered path table whose values are package ordinals
/// indexing `pkgids`, remapped to index positions once primary.xml is read. Building the
/// table does not need primary.xml, so it runs beside it.
/// A repository's advisories.
#[derive(Debug, Clone)]
pub struct Advisories {
    /// The repository id.
    pub repo: String,
    /// Its advisories, in file order.
    pub advisories: Vec<updateinfo::Advisory>,
    /// What was odd in them.
    pub warnings: Vec<String>,
}

/// filelists.xml's files as rows: (offset in `blob`, length, index in `pkgids`).
#[derive(Default)]
struct FileRows {
    blob: Vec<u8>,
    rows: Vec<(u32, u32, u32)>,
    pkgids: Vec<String>,
}

impl FileRows {
    /// Parses a whole filelists.xml.
    fn parse(r: &mut dyn std::io::BufRead) -> Result<FileRows, String> {
        let mut f = FileRows::default();
        metadata::parse_filelists(r, |pkgid, file| f.push(pkgid, file))?;
        Ok(f)
    }

    /// Parses one chunk of a filelists.xml.
    fn parse_slice(bytes: &[u8]) -> Result<FileRows, String> {
        let mut f = FileRows::default();
        metadata::parse_filelists_slice(bytes, |pkgid, file| f.push(pkgid, file))?;
        Ok(f)
    }

    fn push(&mut self, pkgid: &str, file: &str) {
        if self.pkgids.last().map(String::as_str) != Some(pkgid) {
            self.pkgids.push(pkgid.to_owned());
        }
        self.rows.push((
            self.blob.len() as u32,
            file.len() as u32,
            (self.pkgids.len() - 1) as u32,
        ));
        self.blob.extend_from_slice(file.as_bytes());
    }

    /// Appends the rows of the next part of the same file, as one parse would have made them.
    fn append(&mut self, next: FileRows) {
        let (blob_base, mut pkgids) = (self.blob.len() as u32, next.pkgids.into_iter());
        // A package continuing across the cut (the same pkgid again) keeps its one entry.
        let mut map = Vec::new();
        if let (Some(last), Some(first)) = (self.pkgids.last(), pkgids.as_slice().first())
            && last == first
        {
            map.push((self.pkgids.len() - 1) as u32);
            pkgids.next();
        }
        for id in pkgids {
            map.push(self.pkgids.len() as u32);
            self.pkgids.push(id);
        }
        self.rows.extend(
            next.rows
                .into_iter()
                .map(|(o, l, p)| (o + blob_base, l, map[p as usize])),
        );
        self.blob.extend_from_slice(&next.blob);
    }
}

struct RawFiles {
    unsealed: Vec<u8>,
    pkgids: Vec<String>,
    files: usize,
}

fn record_url(mirror: &str, rec: &RepomdRecord) -> String {
    join_url(rec.base.as_deref().unwrap_or(mirror), &rec.href)
}

/// Checks the CRC of every cached repository index (`pbsimage cache verify`).
pub fn verify_indexes(cache: &Cache) -> crate::cache::Verification {
    let mut v = crate::cache::Verification::default();
    for idx in cache.files_in(Bucket::RepoIndex) {
        if idx.extension().is_some_and(|x| x == "idx") {
            v.checked += 1;
            if RepoIndex::open(&idx).is_none() {
                v.bad.push(idx.display().to_string());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// filelists.xml parsed in chunks on several threads gives the rows one parse gives,
    /// including a package whose entries continue across a cut.
    #[test]
    fn file_rows_in_parallel_equal_one_parse() {
        let mut d = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"N\">\n",
        );
        for i in 0..6000 {
            // Every tenth package id repeats the previous one: one package, two entries.
            let id = if i % 10 == 1 { i - 1 } else { i };
            d.push_str(&format!(
                "<package pkgid=\"{id:064x}\" name=\"p{i}\" arch=\"x86_64\"><version epoch=\"0\" ver=\"1\" rel=\"1\"/>"
            ));
            for f in 0..40 {
                d.push_str(&format!(
                    "<file>/usr/share/p{i}/file-{f}-{}</file>",
                    "x".repeat(20)
                ));
            }
            d.push_str("</package>\n");
        }
        d.push_str("</filelists>\n");
        let one = FileRows::parse(&mut d.as_bytes()).unwrap();
        for workers in [1, 2, 3] {
            let mut whole = FileRows::default();
            chunked::parse_parallel(
                d.as_bytes(),
                "filelists",
                workers,
                FileRows::parse_slice,
                |p| {
                    whole.append(p);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(whole.blob, one.blob);
            assert_eq!(whole.rows, one.rows);
            assert_eq!(whole.pkgids, one.pkgids);
        }
    }
}
