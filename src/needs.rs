//! Needs: everything a job needs from the repositories, with where each need came from.
//!
//! [`NeedsAnalyzer::analyze`] reads the `-B` binary's ELF headers (never running it), follows
//! `DT_NEEDED` through RPATH/RUNPATH like the loader, bundles the libraries the job ships
//! itself (they go into the job's layer and are analysed recursively), marks host-provided
//! GPU driver libraries, and adds what the script needs: its interpreter and the external
//! commands it runs. Capabilities follow rpm's `elfdeps` exactly, so they can be looked up in
//! `primary.xml`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::NeedsSettings;
use crate::elf::search::{Bundled, find_in_job};
use crate::elf::{Arch, Capability, ElfError, ElfInfo, ElfReader};
use crate::job::JobSpec;
use crate::job::commands;

/// Sonames the node provides: GPU driver libraries injected by the NVIDIA container runtime.
pub const BUILTIN_HOST_PROVIDED: &[&str] = &[
    "libcuda.so*",
    "libnvidia-*",
    "libnvcuvid.so*",
    "libnvoptix.so*",
    "libGLX_nvidia.so*",
    "libEGL_nvidia.so*",
    "libGLESv2_nvidia.so*",
    "libGLESv1_CM_nvidia.so*",
];

/// Directories searched for a bare command name, best first.
pub const COMMAND_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/// Where environment-modules and Lmod look for modulefiles (EL's MODULEPATH).
pub const MODULE_ROOTS: &[&str] = &[
    "/usr/share/modulefiles",
    "/usr/share/Modules/modulefiles",
    "/etc/modulefiles",
    "/usr/share/lmod/lmod/modulefiles/Core",
];

/// What makes `module` a command in a non-login shell: environment-modules' profile script
/// or init file, or Lmod's profile (`[needs] module-system`); the wrapper points `BASH_ENV`
/// at the first of them the image has.
pub fn modules_init(system: crate::config::ModuleSystem) -> &'static [&'static str] {
    match system {
        crate::config::ModuleSystem::EnvironmentModules => {
            &["/etc/profile.d/modules.sh", "/usr/share/Modules/init/bash"]
        }
        crate::config::ModuleSystem::Lmod => &["/usr/share/lmod/lmod/init/profile"],
    }
}

/// MPI launchers: required when the job has several slots or loads an MPI module.
const MPI_LAUNCHERS: &[&str] = &["mpirun", "mpiexec", "mpiexec.hydra", "orterun"];

/// The files that provide module `name`: a Tcl modulefile (or a directory of versions, for a
/// bare name) or Lmod's `.lua`, under any [`MODULE_ROOTS`].
pub fn modulefile_paths(name: &str) -> Vec<String> {
    MODULE_ROOTS
        .iter()
        .flat_map(|r| [format!("{r}/{name}"), format!("{r}/{name}.lua")])
        .collect()
}

/// The directories module `name` puts first in `PATH`, by EL's convention for its MPI
/// stacks: `mpi/<stack>-<arch>` (`mpi/openmpi-x86_64`) → `/usr/lib64/<stack>/bin`.
pub fn module_bin_dirs(name: &str) -> Vec<String> {
    match name.strip_prefix("mpi/") {
        Some(rest) => {
            let stack = rest.split('/').next().unwrap_or(rest);
            let stack = stack
                .rsplit_once('-')
                .filter(|(_, arch)| {
                    ["x86_64", "aarch64", "ppc64le", "s390x", "i386"].contains(arch)
                })
                .map_or(stack, |(s, _)| s);
            vec![
                format!("/usr/lib64/{stack}/bin"),
                format!("/usr/lib/{stack}/bin"),
            ]
        }
        None => Vec::new(),
    }
}

/// The need of command `cmd` run after a `module load`: `cmd` in the modules' `PATH`
/// directories `bins`, then in the default command directories (a plain command need while
/// no directory is known).
pub fn module_command_kind(bins: &[String], cmd: &str) -> NeedKind {
    if bins.is_empty() {
        return NeedKind::Command(cmd.to_owned());
    }
    let mut paths: Vec<String> = bins.iter().map(|d| format!("{d}/{cmd}")).collect();
    paths.extend(COMMAND_DIRS.iter().map(|d| format!("{d}/{cmd}")));
    NeedKind::File(paths)
}

/// Why a job's needs cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum NeedsError {
    /// The binary or a bundled library cannot be analysed.
    #[error("cannot analyse the job's binary")]
    Elf(#[from] ElfError),
    /// `-B` names a file that does not exist.
    #[error("job `{job}` names binary `{}` with -B, but it does not exist", path.display())]
    MissingBinary {
        /// The job's name.
        job: String,
        /// The binary's path.
        path: PathBuf,
    },
    /// A bundled library is of another architecture than what loads it.
    #[error("`{}` (needed by `{}`) is {found}, but `{}` is {want}", lib.display(), by.display(), by.display())]
    MixedArch {
        /// The bundled library.
        lib: PathBuf,
        /// The object that needs it.
        by: PathBuf,
        /// The library's architecture.
        found: Arch,
        /// The needing object's architecture.
        want: Arch,
    },
    /// `[vars] basearch` is not an architecture pbsimage knows.
    #[error("[vars] basearch `{0}` is not an architecture pbsimage knows")]
    UnknownBasearch(String),
    /// A `[needs] extra` entry is not a capability or path.
    #[error("[needs] extra entry `{0}` is not a capability, a versioned one or a rich dependency")]
    BadExtra(String),
}

impl crate::hint::Hint for NeedsError {
    fn hint(&self) -> Option<String> {
        match self {
            NeedsError::Elf(e) => e.hint(),
            NeedsError::MissingBinary { .. } => {
                Some("-B is relative to the script's directory; build the binary first".into())
            }
            NeedsError::UnknownBasearch(_) => {
                Some("use x86_64, i686, aarch64, ppc64le, ppc64, s390x, riscv64 or armv7hl".into())
            }
            NeedsError::BadExtra(_) => Some(
                "write it as dnf install takes it: `bash`, `libc.so.6`, `zlib(x86-32)`, \
                 `python3 >= 3.9` or `(ksh or mksh)`, or an absolute path"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// What is needed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum NeedKind {
    /// An rpm capability: `libstdc++.so.6()(64bit)`, `rtld(GNU_HASH)`.
    Capability(Capability),
    /// A file; any of the paths will do (`/bin/bash` or `/usr/bin/bash`).
    File(Vec<String>),
    /// A command run by name: a file `*/bin/<name>` in any package.
    Command(String),
}

impl NeedKind {
    /// The file paths that satisfy a file or command need.
    pub fn paths(&self) -> Vec<String> {
        match self {
            NeedKind::Capability(_) => Vec::new(),
            NeedKind::File(p) => p.clone(),
            NeedKind::Command(n) => COMMAND_DIRS.iter().map(|d| format!("{d}/{n}")).collect(),
        }
    }
}

impl std::fmt::Display for NeedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NeedKind::Capability(c) => write!(f, "{c}"),
            NeedKind::File(p) => f.write_str(&p.join(" | ")),
            NeedKind::Command(n) => write!(f, "command {n}"),
        }
    }
}

/// One need and every place it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    /// What is needed.
    #[serde(flatten)]
    pub kind: NeedKind,
    /// Where each reason for it came from (`a.out: DT_NEEDED libm.so.6`).
    pub origins: Vec<String>,
    /// Unresolvable optional needs are warnings, not failures (script commands: the cluster
    /// may mount them).
    pub optional: bool,
}

/// A library shipped with the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundledLib {
    /// Path inside the job directory.
    pub path: PathBuf,
    /// The soname it satisfies.
    pub soname: String,
    /// The object that needs it.
    pub needed_by: String,
    /// How the loader finds it (`RUNPATH $ORIGIN/lib`).
    pub via: String,
}

/// A library the node provides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostProvided {
    /// The soname the node provides.
    pub soname: String,
    /// The object that needs it.
    pub needed_by: String,
}

/// Everything a job needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// The binary's architecture (or the repositories' when the job has no binary).
    pub arch: Arch,
    /// `kubernetes.io/arch`.
    pub kube_arch: &'static str,
    /// Package architectures that may satisfy the needs.
    pub package_arches: Vec<&'static str>,
    /// The `-B` binary is statically linked.
    pub static_binary: bool,
    /// Capabilities, files and commands, with their origins.
    pub needs: Vec<Need>,
    /// Libraries found in the job directory (they go into the job layer).
    pub bundled: Vec<BundledLib>,
    /// Sonames left to the node (`[needs] host-provided`, GPU drivers).
    pub host_provided: Vec<HostProvided>,
    /// Libraries loaded at run time by name, which no header shows.
    pub notes: Vec<String>,
    /// The modules the script loads from the repositories (not `modules-from-host`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleLoad>,
    /// Commands looked for in the modules' `PATH` directories first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub module_commands: Vec<String>,
}

/// A module the script loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleLoad {
    /// Its name (`mpi/openmpi-x86_64`).
    pub name: String,
    /// Its modulefile's candidate paths (the need's).
    pub modulefile: Vec<String>,
    /// Where its commands are looked for: EL's convention until its modulefile is read
    /// (`ops::modules`), then the modulefile's `PATH` directories.
    pub bin_dirs: Vec<String>,
}

impl Needs {
    /// Each module's `PATH` directories are `bins[i]` (in load order) from now on, and the
    /// module commands are looked for there (then in the default command directories).
    /// Returns whether any need changed.
    pub fn set_module_bins(&mut self, bins: Vec<Vec<String>>) -> bool {
        let old: Vec<String> = self
            .modules
            .iter()
            .flat_map(|m| m.bin_dirs.clone())
            .collect();
        let new = bins.concat();
        for (m, b) in self.modules.iter_mut().zip(bins) {
            m.bin_dirs = b;
        }
        if old == new {
            return false;
        }
        let mut changed = false;
        for cmd in &self.module_commands {
            let from = module_command_kind(&old, cmd);
            let to = module_command_kind(&new, cmd);
            for n in self.needs.iter_mut().filter(|n| n.kind == from) {
                n.kind = to.clone();
                changed = true;
            }
        }
        changed
    }

    /// Adds capabilities (or absolute paths) the job needs besides what analysis found: a
    /// catalog's per-job `packages`. `origin` says where they came from.
    pub fn add_extra(&mut self, extra: &[String], origin: &str) -> Result<(), NeedsError> {
        for e in extra {
            let kind = if e.starts_with('/') {
                NeedKind::File(usrmove_alternatives(e))
            } else {
                NeedKind::Capability(extra_capability(e)?)
            };
            match self.needs.iter_mut().find(|n| n.kind == kind) {
                Some(n) => {
                    n.optional = false;
                    if !n.origins.iter().any(|o| o == origin) {
                        n.origins.push(origin.to_owned());
                    }
                }
                None => self.needs.push(Need {
                    kind,
                    origins: vec![origin.to_owned()],
                    optional: false,
                }),
            }
        }
        Ok(())
    }
}

/// Matches `*` and `?` globs.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// What the binary and its bundled libraries contribute besides capabilities.
struct BinaryNeeds {
    arch: Arch,
    static_binary: bool,
    bundled: Vec<BundledLib>,
    host: Vec<HostProvided>,
    notes: BTreeSet<String>,
}

/// The loader's view of the job's binary: every object it would load from the job directory,
/// breadth first, as `ld.so` searches.
struct LoaderWalk<'a> {
    analyzer: &'a NeedsAnalyzer<'a>,
    /// The script's directory: bundled libraries must be inside it.
    root: PathBuf,
    out: BinaryNeeds,
    seen: BTreeSet<PathBuf>,
    objects: Vec<ElfInfo>,
    /// Sonames found in the job directory.
    satisfied: BTreeSet<String>,
    /// Sonames the node provides.
    hosted: BTreeSet<String>,
    /// Objects in load order.
    loaded: Vec<usize>,
}

impl LoaderWalk<'_> {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }

    /// Visits object `idx` (loaded through `chain`): its interpreter, run-time notes, and
    /// the libraries it needs; returns the bundled ones to visit next.
    fn visit(
        &mut self,
        idx: usize,
        chain: &[usize],
        c: &mut Collector,
    ) -> Result<Vec<(usize, Vec<usize>)>, NeedsError> {
        self.loaded.push(idx);
        let name = self.rel(&self.objects[idx].path);
        if let Some(i) = &self.objects[idx].interp {
            c.add(
                NeedKind::File(usrmove_alternatives(i)),
                format!("{name}: interpreter"),
                false,
            );
        }
        for h in &self.objects[idx].dlopen_hints {
            self.out.notes.insert(match h.as_str() {
                "nss" => format!("{name} looks up users, groups or hosts: glibc loads NSS modules (libnss_*.so.2) for that at run time; add them to [needs] extra if /etc/nsswitch.conf names more than files"),
                _ => format!("{name} converts character sets: glibc loads gconv modules at run time; add the glibc-gconv-extra package to [needs] extra if it needs more than UTF-8"),
            });
        }
        let mut next = Vec::new();
        for n in self.objects[idx].needed.clone() {
            if n.starts_with("libmpi") || n.starts_with("libpmi") || n.starts_with("libfabric") {
                self.out.notes.insert(format!("{name} uses MPI ({n}): MPI libraries load transport and PMI plugins with dlopen; add the MPI package's plugin packages to [needs] extra"));
            }
            if self.analyzer.is_host_provided(&n) {
                self.hosted.insert(n.clone());
                self.out.host.push(HostProvided {
                    soname: n,
                    needed_by: name.clone(),
                });
                continue;
            }
            if let Some(lib) = self.bundle(&n, idx, chain, &name)? {
                let mut next_chain = vec![idx];
                next_chain.extend(chain);
                next.push((lib, next_chain));
            }
        }
        Ok(next)
    }

    /// Looks for `soname` in the job directory as the loader would; a library found for the
    /// first time is read and recorded. Returns its index when it is new.
    fn bundle(
        &mut self,
        soname: &str,
        idx: usize,
        chain: &[usize],
        name: &str,
    ) -> Result<Option<usize>, NeedsError> {
        let chain_objs: Vec<&ElfInfo> = chain.iter().map(|&i| &self.objects[i]).collect();
        let Some(Bundled { path, via }) =
            find_in_job(soname, &self.objects[idx], &chain_objs, &self.root)
        else {
            return Ok(None);
        };
        self.satisfied.insert(soname.to_owned());
        if !self.seen.insert(path.clone()) {
            return Ok(None);
        }
        let lib = ElfReader::read(&path)?;
        let by = &self.objects[idx];
        if lib.arch != by.arch || lib.class64 != by.class64 {
            return Err(NeedsError::MixedArch {
                lib: path,
                by: by.path.clone(),
                found: lib.arch,
                want: by.arch,
            });
        }
        self.out.bundled.push(BundledLib {
            path: PathBuf::from(self.rel(&path)),
            soname: soname.to_owned(),
            needed_by: name.to_owned(),
            via,
        });
        self.objects.push(lib);
        Ok(Some(self.objects.len() - 1))
    }

    /// Capabilities of every loaded object, less what the job or the node provides.
    fn capabilities(&self, c: &mut Collector) {
        for &idx in &self.loaded {
            let o = &self.objects[idx];
            if o.is_static() {
                // static and static-pie: no loader, so not even rtld(GNU_HASH)
                continue;
            }
            let name = self.rel(&o.path);
            let marker = o.marker();
            for cap in o.requires_when_loaded() {
                let s = cap.as_str();
                let soname = s.split('(').next().unwrap_or(s);
                if self.satisfied.contains(soname) || self.hosted.contains(soname) {
                    continue;
                }
                let origin = if s == "rtld(GNU_HASH)" {
                    format!("{name}: GNU hash table only")
                } else if let Some(ver) = s
                    .strip_prefix(soname)
                    .and_then(|r| r.strip_prefix('('))
                    .and_then(|r| r.strip_suffix(marker))
                    .and_then(|r| r.strip_suffix(')'))
                    .filter(|v| !v.is_empty())
                {
                    format!("{name}: {ver} from {soname}")
                } else {
                    format!("{name}: DT_NEEDED {soname}")
                };
                c.add(NeedKind::Capability(cap), origin, false);
            }
        }
    }
}

/// Commands the script runs (optional: a command may be a site's or the job's own).
/// The job's slots (MPI ranks) as its resources give them.
fn slots(job: &JobSpec) -> u32 {
    let r = &job.resources;
    r.select
        .as_ref()
        .map(|s| s.slots())
        .or(r.nodes.as_ref().map(|n| n.slots()))
        .or(r.mppwidth)
        .or(r.procs)
        .or(r.ncpus)
        .or(r.size)
        .unwrap_or(1)
}

/// A `[needs] extra` entry that is not a path: a capability (`libc.so.6`, `zlib(x86-32)`,
/// `perl(DBI)`), a versioned one (`python3 >= 3.9`) or a rich dependency (`(ksh or mksh)`),
/// as `dnf install` takes them.
fn extra_capability(e: &str) -> Result<Capability, NeedsError> {
    crate::repo::metadata::Dep::parse_spec(e)
        .and_then(|_| Capability::requirement(e))
        .ok_or_else(|| NeedsError::BadExtra(e.to_owned()))
}

/// The same path under `/usr` and without it (the EL "UsrMove" symlinks `/bin`, `/sbin`,
/// `/lib`, `/lib64` → `usr/...`): a file need is satisfied by either.
pub fn usrmove_alternatives(path: &str) -> Vec<String> {
    let mut out = vec![path.to_owned()];
    for d in ["/bin/", "/sbin/", "/lib/", "/lib64/"] {
        if path.starts_with(d) {
            out.push(format!("/usr{path}"));
        } else if let Some(rest) = path.strip_prefix("/usr").filter(|r| r.starts_with(d)) {
            out.push(rest.to_owned());
        }
    }
    out
}

/// Builds [`Needs`] for jobs.
pub struct NeedsAnalyzer<'a> {
    /// `[needs]`.
    pub settings: &'a NeedsSettings,
    /// `[vars] basearch`, if set: the repositories' architecture.
    pub basearch: Option<&'a str>,
    /// Shell for scripts with neither `-S` nor a shebang (`[kube] default-shell`).
    pub default_shell: &'a str,
}

#[derive(Default)]
struct Collector {
    needs: BTreeMap<NeedKind, (Vec<String>, bool)>,
    modules: Vec<ModuleLoad>,
    module_commands: Vec<String>,
}

impl Collector {
    fn add(&mut self, kind: NeedKind, origin: String, optional: bool) {
        let e = self.needs.entry(kind).or_insert_with(|| (Vec::new(), true));
        if !e.0.contains(&origin) {
            e.0.push(origin);
        }
        e.1 &= optional;
    }
}

impl NeedsAnalyzer<'_> {
    /// What the job needs: its interpreter, the commands its script runs, its binary's and bundled libraries' capabilities, and `[needs] extra`.
    pub fn analyze(&self, job: &JobSpec) -> Result<Needs, NeedsError> {
        let repo_arch = match self.basearch {
            Some(b) => {
                Some(Arch::parse_basearch(b).ok_or_else(|| NeedsError::UnknownBasearch(b.into()))?)
            }
            None => None,
        };
        let script_name = job
            .script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job.sh".into());
        let mut c = Collector::default();
        self.interpreter_needs(job, &script_name, &mut c);
        self.command_needs(job, &script_name, &mut c);
        let binary = match &job.binary {
            Some(bin) => Some(self.binary_needs(job, bin, repo_arch, &mut c)?),
            None => None,
        };
        self.extra_needs(&mut c)?;
        let arch = binary
            .as_ref()
            .map(|b| b.arch)
            .or(repo_arch)
            .unwrap_or(Arch::X86_64);
        let needs = c
            .needs
            .into_iter()
            .map(|(kind, (origins, optional))| Need {
                kind,
                origins,
                optional,
            })
            .collect();
        let (static_binary, bundled, host_provided, notes) = match binary {
            Some(b) => (b.static_binary, b.bundled, b.host, b.notes),
            None => (false, Vec::new(), Vec::new(), BTreeSet::new()),
        };
        let (modules, module_commands) = (c.modules, c.module_commands);
        Ok(Needs {
            modules,
            module_commands,
            arch,
            kube_arch: arch.kube_name(),
            package_arches: arch.package_arches().to_vec(),
            static_binary,
            needs,
            bundled,
            host_provided,
            notes: notes.into_iter().collect(),
        })
    }

    /// The interpreter that runs the script (the same choice the manifest makes), and the
    /// wrapper's `/bin/sh`, `cp` and `mkdir`.
    fn interpreter_needs(&self, job: &JobSpec, script_name: &str, c: &mut Collector) {
        let (interp_line, interp_origin) = match (&job.shell, &job.shebang) {
            (Some(s), _) => (s.clone(), format!("{script_name}: -S")),
            (None, Some(s)) => (s.clone(), format!("{script_name}: shebang")),
            (None, None) => (
                self.default_shell.to_owned(),
                "[kube] default-shell".to_owned(),
            ),
        };
        let mut words = interp_line.split_whitespace();
        if let Some(prog) = words.next() {
            c.add(
                NeedKind::File(usrmove_alternatives(prog)),
                interp_origin.clone(),
                false,
            );
            if prog.ends_with("/env")
                && let Some(cmd) = words.find(|w| !w.starts_with('-') && !w.contains('='))
            {
                c.add(NeedKind::Command(cmd.to_owned()), interp_origin, false);
            }
        }
        c.add(
            NeedKind::File(usrmove_alternatives("/bin/sh")),
            "pbsimage job wrapper".into(),
            false,
        );
        // The wrapper copies the job's files into its working directory (an emptyDir) and,
        // with an output volume, what the job made back out.
        for cmd in ["cp", "mkdir"] {
            c.add(
                NeedKind::Command(cmd.into()),
                "pbsimage job wrapper".into(),
                false,
            );
        }
    }

    /// The binary (`-B`), the libraries it ships in the job directory, and their
    /// capabilities less what the job or the node provides.
    fn binary_needs(
        &self,
        job: &JobSpec,
        bin: &Path,
        repo_arch: Option<Arch>,
        c: &mut Collector,
    ) -> Result<BinaryNeeds, NeedsError> {
        if !bin.exists() {
            return Err(NeedsError::MissingBinary {
                job: job.name.to_string(),
                path: bin.to_owned(),
            });
        }
        let script_dir = job.script.parent().unwrap_or(Path::new(""));
        let root = script_dir
            .canonicalize()
            .unwrap_or_else(|_| script_dir.to_owned());
        let first = ElfReader::read(&bin.canonicalize().unwrap_or_else(|_| bin.to_owned()))?;
        if let Some(repo) = repo_arch
            && !first.arch.served_by(repo.rpm_name())
        {
            return Err(ElfError::WrongArch {
                path: bin.to_owned(),
                elf_arch: first.arch.to_string(),
                repo_arch: repo.to_string(),
            }
            .into());
        }
        let mut walk = LoaderWalk {
            analyzer: self,
            root,
            out: BinaryNeeds {
                arch: first.arch,
                static_binary: first.is_static(),
                bundled: Vec::new(),
                host: Vec::new(),
                notes: BTreeSet::new(),
            },
            seen: BTreeSet::from([first.path.clone()]),
            objects: vec![first],
            satisfied: BTreeSet::new(),
            hosted: BTreeSet::new(),
            loaded: Vec::new(),
        };
        // (object index, loader chain indexes nearest first)
        let mut queue = VecDeque::from([(0usize, Vec::<usize>::new())]);
        while let Some((idx, chain)) = queue.pop_front() {
            queue.extend(walk.visit(idx, &chain, c)?);
        }
        walk.capabilities(c);
        Ok(walk.out)
    }

    /// The modules the script loads (their modulefiles and the `module` command, required),
    /// and the commands it runs (optional, as clusters mount programs too; an MPI launcher is
    /// required when the job has several slots or loads an MPI module). After a module load,
    /// commands are looked for in its `PATH` directories first: EL's convention for MPI
    /// modules here, the modulefile's own once `ops::modules` has read it.
    fn command_needs(&self, job: &JobSpec, script_name: &str, c: &mut Collector) {
        let body = job.body_line.map(|l| l as usize - 1).unwrap_or(0);
        let lines = match std::fs::read(&job.script) {
            Ok(bytes) => crate::job::lexer::normalise_lines(&String::from_utf8_lossy(&bytes)),
            Err(_) => Vec::new(),
        };
        let mut module_bins: Vec<String> = Vec::new();
        let mut mpi_module = false;
        let modules = commands::module_loads(&lines, body);
        for m in &modules {
            let origin = format!("{script_name} line {}: module load {}", m.line, m.name);
            if self
                .settings
                .modules_from_host
                .iter()
                .any(|p| glob_match(p, &m.name))
            {
                continue;
            }
            c.add(NeedKind::File(modulefile_paths(&m.name)), origin, false);
            module_bins.extend(module_bin_dirs(&m.name));
            c.modules.push(ModuleLoad {
                name: m.name.clone(),
                modulefile: modulefile_paths(&m.name),
                bin_dirs: module_bin_dirs(&m.name),
            });
            mpi_module |= m.name.starts_with("mpi/")
                || m.name.split('/').next().is_some_and(|n| n.contains("mpi"));
        }
        if let Some(first) = modules.first() {
            c.add(
                NeedKind::File(
                    modules_init(self.settings.module_system)
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                ),
                format!("{script_name} line {}: module", first.line),
                false,
            );
        }
        let several_slots = slots(job) > 1;
        for cmd in commands::scan(&lines, body) {
            let origin = format!("{script_name} line {}: {}", cmd.line, cmd.name);
            let required =
                MPI_LAUNCHERS.contains(&cmd.name.as_str()) && (several_slots || mpi_module);
            let kind = if cmd.name.starts_with('/') {
                NeedKind::File(usrmove_alternatives(&cmd.name))
            } else if !c.modules.is_empty() {
                if !c.module_commands.contains(&cmd.name) {
                    c.module_commands.push(cmd.name.clone());
                }
                module_command_kind(&module_bins, &cmd.name)
            } else {
                NeedKind::Command(cmd.name)
            };
            c.add(kind, origin, !required);
        }
    }

    /// `[needs] extra`: paths and capabilities named in the configuration.
    fn extra_needs(&self, c: &mut Collector) -> Result<(), NeedsError> {
        for extra in &self.settings.extra {
            let kind = if extra.starts_with('/') {
                NeedKind::File(usrmove_alternatives(extra))
            } else {
                NeedKind::Capability(extra_capability(extra)?)
            };
            c.add(kind, "[needs] extra".into(), false);
        }
        Ok(())
    }

    fn is_host_provided(&self, soname: &str) -> bool {
        BUILTIN_HOST_PROVIDED
            .iter()
            .copied()
            .chain(self.settings.host_provided.iter().map(String::as_str))
            .any(|p| glob_match(p, soname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("libcuda.so*", "libcuda.so.1"));
        assert!(glob_match("libnvidia-*", "libnvidia-ml.so.1"));
        assert!(glob_match("lib?.so", "libm.so"));
        assert!(!glob_match("libcuda.so*", "libcudart.so.12"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn usrmove() {
        assert_eq!(
            usrmove_alternatives("/bin/bash"),
            ["/bin/bash", "/usr/bin/bash"]
        );
        assert_eq!(
            usrmove_alternatives("/usr/lib64/ld-linux-x86-64.so.2"),
            [
                "/usr/lib64/ld-linux-x86-64.so.2",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert_eq!(usrmove_alternatives("/opt/x"), ["/opt/x"]);
    }

    #[test]
    fn extra_takes_what_dnf_install_takes() {
        use crate::hint::Hint;
        for ok in [
            "bash",
            "libc.so.6",
            "zlib(x86-32)",
            "mvn(org.sonatype.plexus:plexus-cipher)",
            "python3 >= 3.9",
            "bash = 5.1.8-2.el9",
            "(ksh or mksh)",
            "(python3-numpy if python3)",
        ] {
            assert!(extra_capability(ok).is_ok(), "{ok}");
        }
        for bad in [
            "python3 >=",
            "python3 ~ 3",
            "(ksh or mksh",
            "a b",
            "x\ty",
            "",
        ] {
            let e = extra_capability(bad).unwrap_err();
            assert!(e.to_string().contains("is not a capability"), "{bad}: {e}");
            assert!(e.hint().unwrap().contains("python3 >= 3.9"), "{bad}");
        }
    }
}
