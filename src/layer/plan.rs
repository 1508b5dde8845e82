//! The layer plan: which packages go into which layer, and building the layers (cached by
//! content, in parallel).
//!
//! The `[base]` packages (and what they pull in) form one shared base layer, keyed by the
//! sorted package checksums, so every image built from the same repository snapshot reuses
//! it. Every other package gets its own layer keyed by its RPM checksum (the same RPM gives
//! the same layer in every image) up to `max-layers`; beyond that the remaining packages are
//! merged, in name order, into one layer. The job's own files are the top layer. Within a
//! layer, a path two packages write goes to the later one, and the conflict is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Layer, LayerError, LayerOptions, LayerWriter};
use crate::cache::{Bucket, Cache, CacheError};
use crate::rpm::{FileInfo, RpmReader};

/// Cache bucket of layer records (`<key>.json`).

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A layer could not be written.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The cache could not take it.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A package would write through a symlink that a lower layer of the image made:
    /// extracted layer by layer, the file would land outside the image's root.
    #[error(
        "package `{package}` writes `{path}` through the symlink `{link}` of package `{owner}` (a lower layer)"
    )]
    Escape {
        /// The package that writes through the link.
        package: String,
        /// The path it writes.
        path: String,
        /// The symlink it goes through.
        link: String,
        /// The package whose layer holds the symlink.
        owner: String,
    },
    /// A package cannot be read or layered.
    #[error("package `{package}` from repo `{repo}` ({url})")]
    Package {
        /// `name-evr.arch`.
        package: String,
        /// The repository id.
        repo: String,
        /// Where it was fetched from.
        url: crate::fetch::SafeUrl,
        /// What is wrong with it.
        #[source]
        source: Box<LayerError>,
    },
    /// A job file cannot be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The hint for a package changed in the cache.
const CHANGED: &str = "something changed the cache: `pbsimage cache gc` removes damaged \
                       entries (the package is downloaded again by the next build)";

impl crate::hint::Hint for PlanError {
    fn hint(&self) -> Option<String> {
        use crate::rpm::RpmError;
        let changed = |e: &LayerError| matches!(e, LayerError::Rpm(RpmError::Changed { .. }));
        match self {
            PlanError::Layer(e) if changed(e) => Some(CHANGED.into()),
            PlanError::Package { source, .. } if changed(source) => Some(CHANGED.into()),
            PlanError::Package { .. } => Some(
                "the repository serves a package pbsimage cannot use; check it with `rpm -K` \
                 and `rpm -qlvp`, or leave it out"
                    .into(),
            ),
            PlanError::Escape { .. } => Some(
                "the two packages cannot share an image as layers; report it to their \
                 packagers, or leave one out"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// A package ready to be layered.
#[derive(Debug, Clone)]
pub struct LocalPackage {
    /// `name-evr.arch`.
    pub nevra: String,
    /// The package name.
    pub name: String,
    /// The RPM file (in the cache).
    pub path: PathBuf,
    /// sha256 of the RPM file.
    pub sha256: String,
    /// Part of the shared base layer.
    pub base: bool,
    /// The repository it came from.
    pub repo: String,
    /// The URL it was fetched from (its repository's first base URL and its href).
    pub url: String,
}

impl LocalPackage {
    /// `err` about this package, with the package, its repository and URL on top.
    pub fn error(&self, err: impl Into<LayerError>) -> PlanError {
        PlanError::Package {
            package: self.nevra.clone(),
            repo: self.repo.clone(),
            url: crate::fetch::SafeUrl(self.url.clone()),
            source: Box::new(err.into()),
        }
    }
}

/// One planned layer: indexes into the package list, in write order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    /// `base`, a NEVRA, or `N merged packages`.
    pub label: String,
    /// Indexes of its packages, in write order.
    pub packages: Vec<usize>,
}

/// Splits packages into layers: base, then one per package, merging past the budget.
pub fn plan(packages: &[LocalPackage], max_layers: u32) -> Vec<PlannedLayer> {
    plan_ranked(packages, max_layers, &|_| 0)
}

/// As [`plan`], where `rank` says how widely a package is shared (a catalog: how many of
/// its jobs need it). Past the layer budget, the most widely shared packages keep their own
/// layers (blobs other images reuse) and the rest are merged; own layers stay in name order.
/// Within the budget the rank changes nothing.
pub fn plan_ranked(
    packages: &[LocalPackage],
    max_layers: u32,
    rank: &dyn Fn(&LocalPackage) -> usize,
) -> Vec<PlannedLayer> {
    let mut base: Vec<usize> = (0..packages.len()).filter(|&i| packages[i].base).collect();
    let mut rest: Vec<usize> = (0..packages.len()).filter(|&i| !packages[i].base).collect();
    let by_name = |a: &usize, b: &usize| {
        packages[*a]
            .name
            .cmp(&packages[*b].name)
            .then(packages[*a].nevra.cmp(&packages[*b].nevra))
    };
    base.sort_by(by_name);
    rest.sort_by(by_name);
    let mut out = Vec::new();
    if !base.is_empty() {
        out.push(PlannedLayer {
            label: "base".into(),
            packages: base,
        });
    }
    // One layer stays for the job's own files.
    let budget = (max_layers as usize).saturating_sub(out.len() + 1).max(1);
    let own_layer = |i: usize| PlannedLayer {
        label: packages[i].nevra.clone(),
        packages: vec![i],
    };
    if rest.len() > budget {
        // Widest shared first (ties by name); the last budget slot holds the merged rest.
        let mut ranked = rest.clone();
        ranked.sort_by(|a, b| {
            rank(&packages[*b])
                .cmp(&rank(&packages[*a]))
                .then(by_name(a, b))
        });
        let mut merged = ranked.split_off(budget - 1);
        ranked.sort_by(by_name);
        merged.sort_by(by_name);
        out.extend(ranked.into_iter().map(own_layer));
        out.push(PlannedLayer {
            label: format!("{} merged packages", merged.len()),
            packages: merged,
        });
    } else {
        out.extend(rest.into_iter().map(own_layer));
    }
    out
}

/// Layer options for a package set. The filesystem layout (directory links) and owner names
/// come from the base packages (from all packages when there is no base), so they are known as
/// soon as the base is downloaded and every other package can be layered as it arrives.
/// `sysusers`: what the base packages' sysusers.d files declare (their numeric ids are used).
pub fn options_for(
    packages: &[&LocalPackage],
    files: &[&[FileInfo]],
    sysusers: &[super::accounts::SysUser],
    epoch: u64,
    clamp_mtime: Option<u64>,
    compression: crate::config::Compression,
) -> Result<LayerOptions, PlanError> {
    let setup = match packages.iter().find(|p| p.name == "setup") {
        Some(p) => {
            let mut r = RpmReader::open(&p.path).map_err(LayerError::from)?;
            Some(super::accounts::Accounts::from_setup(&mut r).map_err(LayerError::from)?)
        }
        None => None,
    };
    let (mut users, mut groups) = setup.as_ref().map(|a| a.ids()).unwrap_or_else(|| {
        (
            BTreeMap::from([("root".to_string(), 0)]),
            BTreeMap::from([("root".to_string(), 0)]),
        )
    });
    super::accounts::declare(&mut users, &mut groups, sysusers);
    let all: Vec<&FileInfo> = files.iter().flat_map(|f| f.iter()).collect();
    Ok(LayerOptions {
        epoch,
        clamp_mtime,
        compression,
        users,
        groups,
        setup,
        dir_links: super::dir_links(&all),
    })
}

/// The cache key of a layer: options fingerprint + the RPMs, in order.
fn key(opts: &LayerOptions, packages: &[&LocalPackage]) -> String {
    let mut h = Sha256::new();
    h.update(opts.fingerprint());
    for p in packages {
        h.update(b"|");
        h.update(&p.sha256);
    }
    hex::encode(h.finalize())
}

/// A built layer and whether the cache had it.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    /// `base`, a NEVRA, `N merged packages` or `job`.
    pub label: String,
    /// Its identity: digests, size, media type, packages.
    pub layer: Layer,
    /// The blob in the cache.
    pub path: PathBuf,
    /// Whether the cache already had it.
    pub cached: bool,
}

/// Paths that several packages write with different content (type, mode or size): the
/// later package in the plan wins.
pub fn conflicts(
    packages: &[LocalPackage],
    files: &[Vec<FileInfo>],
    planned: &[PlannedLayer],
) -> Vec<String> {
    let mut owners: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for l in planned {
        for &i in &l.packages {
            for f in &files[i] {
                if f.mode & 0o170000 != 0o040000 && !f.ghost {
                    owners.entry(f.path.as_str()).or_default().push(i);
                }
            }
        }
    }
    let mut out = Vec::new();
    for (path, who) in &owners {
        if who.len() > 1 {
            let differ = who.windows(2).any(|w| {
                let a = files[w[0]].iter().find(|f| f.path == *path);
                let b = files[w[1]].iter().find(|f| f.path == *path);
                a.map(|f| (&f.linkto, f.mode, f.size)) != b.map(|f| (&f.linkto, f.mode, f.size))
            });
            if differ {
                out.push(format!(
                    "{path} is in {}; {} wins",
                    who.iter()
                        .map(|&i| packages[i].nevra.as_str())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    packages[*who.last().expect("non-empty")].nevra
                ));
            }
        }
    }
    out
}

/// Builds (or finds in the cache) one layer of `packages`, written in order; `files` are
/// their header file lists.
/// `sysusers`: what the layer's packages declare in sysusers.d (numbers their accounts).
pub fn build_layer(
    cache: &Cache,
    label: &str,
    packages: &[&LocalPackage],
    files: &[&[FileInfo]],
    sysusers: &[super::accounts::SysUser],
    opts: &LayerOptions,
) -> Result<BuiltLayer, PlanError> {
    let records = cache.bucket(Bucket::Layers)?;
    let k = key(opts, packages);
    let rec = records.join(format!("{k}.json"));
    let cached = || -> Result<Option<BuiltLayer>, PlanError> {
        let Some(record) = std::fs::read(&rec)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            return Ok(None);
        };
        let Ok(layer) = serde_json::from_value::<Layer>(record.clone()) else {
            return Ok(None);
        };
        let path = cache.blob_path(layer.digest.as_ref())?;
        if !blob_intact(&path, &layer, &record, &rec, cache)? {
            return Ok(None);
        }
        Ok(Some(BuiltLayer {
            label: label.to_owned(),
            layer,
            path,
            cached: true,
        }))
    };
    if let Some(b) = cached()? {
        return Ok(b);
    }
    // One builder per layer, across threads and processes (jobs of a catalog, concurrent
    // builds): the others wait and then find it cached.
    let _lock = cache.lock(&format!("layer-{k}"))?;
    if let Some(b) = cached()? {
        return Ok(b);
    }
    // A path a later package of this layer writes is left to it.
    let mut later: BTreeSet<String> = BTreeSet::new();
    let mut skips: Vec<BTreeSet<String>> = vec![BTreeSet::new(); packages.len()];
    for pos in (0..packages.len()).rev() {
        let mine: BTreeSet<String> = files[pos]
            .iter()
            .map(|f| f.path.trim_start_matches('/').to_owned())
            .collect();
        skips[pos] = mine.intersection(&later).cloned().collect();
        later.extend(mine);
    }
    let tmp = cache.temp_in(&cache.blobs_dir()?)?;
    let mut w = LayerWriter::new(tmp, opts.clone())?;
    // The accounts this layer's own packages declare in sysusers.d number their files.
    w.declare(sysusers);
    for (pos, p) in packages.iter().enumerate() {
        // Hashed while read: the package is still the one the repository described. When
        // reading fails, a package changed in the cache is the cause to report.
        let added = RpmReader::open(&p.path)
            .map_err(LayerError::from)
            .and_then(|mut r| {
                w.add_package(&mut r, &skips[pos])?;
                r.verify_sha256(&p.sha256).map_err(LayerError::from)
            });
        if let Err(e) = added {
            return Err(p.error(changed_or(e, p)));
        }
    }
    let (layer, path) = store(cache, w)?;
    let mut record = serde_json::to_value(&layer).expect("serializable");
    record["sources"] = serde_json::json!(
        packages
            .iter()
            .map(|p| format!("sha256:{}", p.sha256))
            .collect::<Vec<_>>()
    );
    record["stamp"] = serde_json::json!(stamp(&path));
    cache.write_atomic(
        &records,
        &format!("{k}.json"),
        record.to_string().as_bytes(),
    )?;
    Ok(BuiltLayer {
        label: label.to_owned(),
        layer,
        path,
        cached: false,
    })
}

/// The first proper prefix of `path` that is a symlink of a lower layer, and its package.
fn first_link(
    path: &str,
    links: &std::collections::HashMap<String, usize>,
) -> Option<(String, usize)> {
    path.match_indices('/').find_map(|(i, _)| {
        let prefix = &path[..i];
        links.get(prefix).map(|&owner| (prefix.to_owned(), owner))
    })
}

/// Checks every path of every layer against the symlinks of the layers below it (within a
/// layer the writer checks): one layer's `opt/x -> /etc` and a higher layer's `opt/x/passwd`
/// are refused, naming both packages. `job_paths` (absolute) are the job layer's, on top.
/// Paths are taken through the layout's directory links, as the writer writes them.
pub fn check_layer_links(
    packages: &[LocalPackage],
    files: &[Vec<FileInfo>],
    planned: &[PlannedLayer],
    dir_links: &BTreeMap<String, String>,
    job_paths: &[&str],
) -> Result<(), PlanError> {
    // Symlink path → the package whose layer made it, over the layers below the current one.
    let mut links: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for layer in planned {
        let mut mine = Vec::new();
        for &i in &layer.packages {
            for f in files[i].iter().filter(|f| !f.ghost) {
                let path = super::through_dir_links(f.path.trim_start_matches('/'), dir_links);
                if let Some((link, owner)) = first_link(&path, &links) {
                    return Err(PlanError::Escape {
                        package: packages[i].nevra.clone(),
                        link,
                        owner: packages[owner].nevra.clone(),
                        path,
                    });
                }
                if f.mode & 0o170000 == 0o120000 {
                    mine.push((path, i));
                }
            }
        }
        links.extend(mine);
    }
    for p in job_paths {
        let path = super::through_dir_links(p.trim_start_matches('/'), dir_links);
        if let Some((link, owner)) = first_link(&path, &links) {
            return Err(PlanError::Escape {
                package: "the job layer".into(),
                link,
                owner: packages[owner].nevra.clone(),
                path,
            });
        }
    }
    Ok(())
}

/// `e`, unless the package file no longer hashes to its name: then that is the error.
fn changed_or(e: LayerError, p: &LocalPackage) -> LayerError {
    if matches!(e, LayerError::Rpm(crate::rpm::RpmError::Changed { .. })) {
        return e;
    }
    match file_sha256(&p.path) {
        Ok(actual) if actual != p.sha256 => LayerError::Rpm(crate::rpm::RpmError::Changed {
            path: p.path.clone(),
            package: p.nevra.clone(),
            expected: p.sha256.clone(),
            actual,
        }),
        _ => e,
    }
}

/// A blob's size and modification time (ns): what a layer record remembers of the blob it
/// stored, so that a cache hit can trust the blob without reading it.
fn stamp(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    let ns = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((m.len(), u64::try_from(ns).ok()?))
}

/// Whether a cached layer's blob is still the one its record describes. Unchanged size and
/// modification time are trusted (the warm path reads nothing); otherwise the blob is
/// re-hashed: a good one gets its stamp renewed, a damaged one is removed (and the layer
/// built again).
fn blob_intact(
    path: &Path,
    layer: &Layer,
    record: &serde_json::Value,
    rec: &Path,
    cache: &Cache,
) -> Result<bool, PlanError> {
    let Some(now) = stamp(path) else {
        return Ok(false);
    };
    let recorded: Option<(u64, u64)> = serde_json::from_value(record["stamp"].clone()).ok();
    if recorded == Some(now) && now.0 == layer.size {
        return Ok(true);
    }
    let good = now.0 == layer.size && file_sha256(path)? == layer.digest.digest();
    if !good {
        tracing::warn!(
            "cached layer {} is damaged; building it again",
            layer.digest
        );
        let _ = std::fs::remove_file(path);
        return Ok(false);
    }
    let mut renewed = record.clone();
    renewed["stamp"] = serde_json::json!(now);
    if let (Some(dir), Some(name)) = (rec.parent(), rec.file_name()) {
        cache.write_atomic(dir, &name.to_string_lossy(), renewed.to_string().as_bytes())?;
    }
    Ok(true)
}

/// Ends a layer written to a cache temp file and moves it to its digest's name.
fn store(
    cache: &Cache,
    w: LayerWriter<tempfile::NamedTempFile>,
) -> Result<(Layer, PathBuf), PlanError> {
    let (tmp, layer) = w.finish()?;
    let path = cache.blob_path(layer.digest.as_ref())?;
    tmp.persist(&path).map_err(|e| CacheError::Io {
        path: path.clone(),
        source: e.error,
    })?;
    Ok((layer, path))
}

/// A file of the job's own layer.
pub struct JobFile {
    /// Absolute path in the image.
    pub dest: String,
    /// File mode.
    pub mode: u32,
    /// Where its bytes come from.
    pub source: JobSource,
}

/// The bytes of a job file.
pub enum JobSource {
    /// A file on the host (the script, the binary, a bundled library).
    Path(PathBuf),
    /// Bytes made by pbsimage (the wrapper, the rpm manifest).
    Bytes(Vec<u8>),
}

/// Builds the job's layer (script, binary, bundled libraries, the wrapper).
pub fn build_job_layer(
    cache: &Cache,
    opts: &LayerOptions,
    files: &[JobFile],
) -> Result<BuiltLayer, PlanError> {
    let blobs = cache.blobs_dir()?;
    let tmp = cache.temp_in(&blobs)?;
    let mut w = LayerWriter::new(tmp, opts.clone())?;
    let mut sorted: Vec<&JobFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.dest.cmp(&b.dest));
    for f in sorted {
        let data = match &f.source {
            JobSource::Bytes(b) => b.clone(),
            JobSource::Path(p) => std::fs::read(p).map_err(|source| PlanError::Io {
                path: p.clone(),
                source,
            })?,
        };
        w.add_file(f.dest.trim_start_matches('/'), f.mode, &data)?;
    }
    let (layer, path) = store(cache, w)?;
    Ok(BuiltLayer {
        label: "job".into(),
        layer,
        path,
        cached: false,
    })
}

/// sha256 of a file.
pub fn file_sha256(path: &Path) -> Result<String, PlanError> {
    let f = std::fs::File::open(path).map_err(|source| PlanError::Io {
        path: path.to_owned(),
        source,
    })?;
    crate::digest::hash_reader(std::io::BufReader::new(f), crate::digest::Algo::Sha256)
        .map(|(h, _)| h)
        .map_err(|source| PlanError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Checks every layer record: it parses, and the blob it names is in the cache. A record
/// whose blob is gone is reported (`pbsimage cache verify`) and removed by `cache gc`.
pub fn verify_records(cache: &Cache) -> crate::cache::Verification {
    let mut v = crate::cache::Verification::default();
    for rec in cache.files_in(Bucket::Layers) {
        if rec
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        v.checked += 1;
        let layer = std::fs::read(&rec)
            .ok()
            .and_then(|b| serde_json::from_slice::<Layer>(&b).ok());
        let ok = layer.is_some_and(|l| {
            cache
                .blob_path(l.digest.as_ref())
                .is_ok_and(|p| p.is_file())
        });
        if !ok {
            v.bad.push(rec.display().to_string());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, base: bool) -> LocalPackage {
        LocalPackage {
            nevra: format!("{name}-1-1.x86_64"),
            name: name.into(),
            path: PathBuf::new(),
            sha256: String::new(),
            base,
            repo: "r".into(),
            url: format!("file:///r/{name}.rpm"),
        }
    }

    fn file(path: &str, mode: u32) -> FileInfo {
        FileInfo {
            path: path.into(),
            mode,
            user: "root".into(),
            group: "root".into(),
            size: 0,
            linkto: (mode & 0o170000 == 0o120000).then(|| "/etc".to_owned()),
            caps: None,
            ghost: false,
            rdev: 0,
            mtime: 0,
        }
    }

    #[test]
    fn paths_through_a_lower_layers_symlink_are_refused() {
        let p = vec![pkg("a-link", false), pkg("b-file", false)];
        let files = vec![
            vec![file("/opt/evil", 0o40755), file("/opt/evil/etc", 0o120777)],
            vec![file("/opt/evil/etc/passwd", 0o100644)],
        ];
        let planned = plan(&p, 64);
        let links = BTreeMap::from([("lib64".to_string(), "usr/lib64".to_string())]);
        let err = check_layer_links(&p, &files, &planned, &links, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("b-file") && msg.contains("opt/evil/etc/passwd") && msg.contains("a-link"),
            "{msg}"
        );
        // The job layer is checked too.
        let only_link = vec![files[0].clone(), Vec::new()];
        let err = check_layer_links(&p, &only_link, &planned, &links, &["/opt/evil/etc/job.sh"])
            .unwrap_err();
        assert!(err.to_string().contains("the job layer"), "{err}");
        // The layout's own directory links are paths rewritten, not escapes; ghosts write
        // nothing.
        let fine = vec![
            vec![file("/lib64", 0o120777)],
            vec![file("/lib64/libc.so.6", 0o100755)],
        ];
        check_layer_links(&p, &fine, &planned, &links, &["/pbs/job/job.sh"]).unwrap();
        let mut ghost = files.clone();
        ghost[0][1].ghost = true;
        check_layer_links(&p, &ghost, &planned, &links, &[]).unwrap();
    }

    #[test]
    fn budget_merges_the_tail() {
        let p: Vec<LocalPackage> = ["glibc", "bash", "b", "a", "d", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| pkg(n, i < 2))
            .collect();
        let l = plan(&p, 64);
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].label, "base");
        assert_eq!(l[0].packages, [1, 0]); // bash, glibc
        assert_eq!(l[1].label, "a-1-1.x86_64");
        let l = plan(&p, 4); // base + 2 + job
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].label, "a-1-1.x86_64");
        assert_eq!(l[2].label, "3 merged packages");
    }

    #[test]
    fn past_the_budget_the_widely_shared_keep_their_layers() {
        let p: Vec<LocalPackage> = ["glibc", "a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, n)| pkg(n, i < 1))
            .collect();
        let rank = |q: &LocalPackage| match q.name.as_str() {
            "d" => 9,
            "b" => 5,
            _ => 1,
        };
        // base + 3 + job: two own layers (in name order), the rest merged.
        let l = plan_ranked(&p, 5, &rank);
        let labels: Vec<&str> = l.iter().map(|x| x.label.as_str()).collect();
        assert_eq!(
            labels,
            ["base", "b-1-1.x86_64", "d-1-1.x86_64", "2 merged packages"]
        );
        assert_eq!(l[3].packages, [1, 3]); // a, c
        // Within the budget, ranks change nothing.
        assert_eq!(
            plan_ranked(&p, 64, &rank)
                .iter()
                .map(|x| x.packages.clone())
                .collect::<Vec<_>>(),
            plan(&p, 64)
                .iter()
                .map(|x| x.packages.clone())
                .collect::<Vec<_>>()
        );
    }
}
