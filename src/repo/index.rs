//! The per-repository index: packages plus sorted lookup tables by capability name and by
//! file path. Tables hold indexes into the packages, not copies of the strings.

use serde::{Deserialize, Serialize};

use super::metadata::{Dep, Package, RepomdRecord};
use super::modules::ModuleIndex;

/// What `pbsimage` knows of one repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoIndex {
    pub id: String,
    pub revision: Option<String>,
    /// sha256 of the `repomd.xml` the index was built from (the cache key).
    pub repomd_sha256: String,
    /// The base URL the metadata came from; package hrefs are relative to it.
    pub base_url: String,
    pub primary: RepomdRecord,
    pub filelists: Option<RepomdRecord>,
    pub modules: Option<ModuleIndex>,
    pub packages: Vec<Package>,
    /// (package, provide) sorted by the provide's name.
    provides: Vec<(u32, u32)>,
    /// (package, file) from primary.xml sorted by path.
    files: Vec<(u32, u32)>,
    /// Every file of every package (filelists.xml), when loaded.
    #[serde(skip)]
    pub all_files: Option<FileIndex>,
}

/// Every file path with its owners, from filelists.xml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileIndex {
    /// Sorted, with the owning package index.
    pub entries: Vec<(String, u32)>,
}

impl FileIndex {
    pub fn owners<'a>(&'a self, path: &'a str) -> impl Iterator<Item = u32> + 'a {
        let start = self.entries.partition_point(|(p, _)| p.as_str() < path);
        self.entries[start..]
            .iter()
            .take_while(move |(p, _)| p == path)
            .map(|(_, i)| *i)
    }
}

impl RepoIndex {
    pub fn new(
        id: String,
        revision: Option<String>,
        repomd_sha256: String,
        base_url: String,
        primary: RepomdRecord,
        filelists: Option<RepomdRecord>,
        packages: Vec<Package>,
    ) -> RepoIndex {
        let mut provides = Vec::new();
        let mut files = Vec::new();
        for (i, p) in packages.iter().enumerate() {
            for j in 0..p.provides.len() {
                provides.push((i as u32, j as u32));
            }
            for j in 0..p.files.len() {
                files.push((i as u32, j as u32));
            }
        }
        provides.sort_by(|a, b| {
            packages[a.0 as usize].provides[a.1 as usize]
                .name
                .cmp(&packages[b.0 as usize].provides[b.1 as usize].name)
                .then(a.cmp(b))
        });
        files.sort_by(|a, b| {
            packages[a.0 as usize].files[a.1 as usize]
                .cmp(&packages[b.0 as usize].files[b.1 as usize])
                .then(a.cmp(b))
        });
        RepoIndex {
            id,
            revision,
            repomd_sha256,
            base_url,
            primary,
            filelists,
            modules: None,
            packages,
            provides,
            files,
            all_files: None,
        }
    }

    /// Packages that provide `name`, with the matching provide entry.
    pub fn whatprovides<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (u32, &'a Dep)> + 'a {
        let name_of =
            |&(p, d): &(u32, u32)| self.packages[p as usize].provides[d as usize].name.as_str();
        let start = self.provides.partition_point(|e| name_of(e) < name);
        self.provides[start..]
            .iter()
            .take_while(move |e| name_of(e) == name)
            .map(|&(p, d)| (p, &self.packages[p as usize].provides[d as usize]))
    }

    /// Packages that own `path` according to primary.xml (and filelists.xml once loaded).
    pub fn owners(&self, path: &str) -> Vec<u32> {
        let file_of = |&(p, f): &(u32, u32)| self.packages[p as usize].files[f as usize].as_str();
        let start = self.files.partition_point(|e| file_of(e) < path);
        let mut out: Vec<u32> = self.files[start..]
            .iter()
            .take_while(|e| file_of(e) == path)
            .map(|&(p, _)| p)
            .collect();
        if let Some(all) = &self.all_files {
            for o in all.owners(path) {
                if !out.contains(&o) {
                    out.push(o);
                }
            }
        }
        out
    }

    /// Whether the primary.xml file list would list `path` (createrepo_c's rule), so a miss
    /// there is final without filelists.xml.
    pub fn primary_lists(path: &str) -> bool {
        path.starts_with("/etc/") || path.contains("bin/") || path == "/usr/lib/sendmail"
    }
}
