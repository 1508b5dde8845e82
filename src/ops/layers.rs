//! Layers: the fetched packages into deterministic, content-addressed layers (base, one per
//! package, merged past the budget), each built on its own thread as soon as its packages
//! have arrived, and the job's own layer on top.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::{Context, OpsError};
use crate::image::packages::ImagePackage;
use crate::job::JobSpec;
use crate::layer::LayerOptions;
use crate::layer::accounts::SysUser;
use crate::layer::plan::{self, BuiltLayer, JobFile, JobSource, LocalPackage, PlannedLayer};
use crate::needs::Needs;
use crate::resolve::Resolution;
use crate::rpm::{FileInfo, PackageInfo};

/// Package NEVRA → how many jobs of a catalog need it.
pub type Popularity = std::collections::BTreeMap<String, usize>;

/// The layers of one job's image, bottom to top.
#[derive(Debug, Clone)]
pub struct Layers {
    /// Base, package layers, then the job's own layer.
    pub stack: Vec<BuiltLayer>,
    /// Paths several packages write differently (the later one wins).
    pub conflicts: Vec<String>,
    /// The options every layer was written with (epoch, owners, directory links).
    pub options: LayerOptions,
    /// Every package in the image, from its RPM header.
    pub packages: Vec<ImagePackage>,
    /// Directories named in the packages' `/etc/ld.so.conf.d/*.conf`, in package order.
    pub library_dirs: Vec<String>,
    /// Accounts added to the setup package's `/etc/passwd` and `/etc/group` (owners of
    /// package files and sysusers.d declarations no scriptlet created): `group ssh_keys: gid
    /// 512 (owns files)`.
    pub accounts: Vec<String>,
    /// The uid and gid the job runs as (the image config's `User`), when known at build time.
    pub user: Option<crate::kube::RunAs>,
}

/// The threads that build layers: one per core, its own pool. `rayon::spawn` would use the
/// pool of the calling thread, and a catalog builds jobs on a pool whose threads wait for
/// their layers: the layers would queue behind their own waiters.
fn layer_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("pbsimage-layer-{i}"))
            .build()
            .expect("cannot start the layer threads")
    })
}

/// Downloads the resolved packages into the cache (verified), plans and builds their layers
/// as they arrive, and builds the job's own layer on top. `popularity` (a catalog's) decides
/// which packages keep their own layers when a job has more than the layer budget.
pub fn layers(
    ctx: &Context,
    job: &JobSpec,
    needs: &Needs,
    res: &Resolution,
    popularity: Option<&Popularity>,
    user: Option<&crate::kube::JobUser>,
) -> Result<Layers, OpsError> {
    let items = super::fetch::downloads(res);
    let layout = super::fetch::layout_packages(res);
    let order = super::fetch::order(&items, &layout);
    let mut scheduler = Scheduler::new(ctx, res, layout, popularity);
    let fetched =
        super::fetch::fetch_packages(ctx, &items, order, |i, path| scheduler.arrived(i, path));
    scheduler.all_arrived(fetched)?;
    let (mut stack, arrived) = scheduler.finish()?;
    let packages = arrived.image_packages(res);
    let library_dirs = library_dirs(ctx, &arrived)?;
    let mut job_files = job_files(&ctx.config.settings.image.job_dir, job, needs);
    let mut accounts = accounts(&arrived);
    if let Some(user) = user {
        // The run-as account: the packages' lines (or setup's, or none) plus the user's.
        let setup = arrived.options.setup.as_ref();
        let (passwd, group, mut report) = accounts.take().unwrap_or_else(|| {
            (
                setup.map(|s| s.passwd.clone()).unwrap_or_default(),
                setup.map(|s| s.group.clone()).unwrap_or_default(),
                Vec::new(),
            )
        });
        let (passwd, group, added) = user.add_to(&passwd, &group);
        report.extend(added);
        accounts = Some((passwd, group, report));
    }
    if let Some((passwd, group, _)) = &accounts {
        for (dest, text) in [("/etc/passwd", passwd), ("/etc/group", group)] {
            job_files.push(JobFile {
                dest: dest.into(),
                mode: 0o644,
                source: JobSource::Bytes(text.clone().into_bytes()),
            });
        }
    }
    let dests: Vec<&str> = job_files.iter().map(|f| f.dest.as_str()).collect();
    arrived.check_job_paths(&dests)?;
    job_files.push(JobFile {
        dest: "/var/lib/rpmmanifest/container-manifest-2".into(),
        mode: 0o644,
        source: JobSource::Bytes(
            crate::image::packages::rpm_manifest(&packages, arrived.options.epoch).into_bytes(),
        ),
    });
    stack.push(plan::build_job_layer(
        &ctx.cache,
        &arrived.options,
        &job_files,
    )?);
    let accounts = accounts.map(|a| a.2).unwrap_or_default();
    Ok(Layers {
        user: user.map(|u| u.run_as),
        stack,
        conflicts: arrived.conflicts,
        options: arrived.options,
        packages,
        library_dirs,
        accounts,
    })
}

/// The packages as they landed: files, headers, and the options their layers used.
struct Arrived {
    locals: Vec<LocalPackage>,
    planned: Vec<PlannedLayer>,
    files: Vec<Vec<FileInfo>>,
    infos: Vec<Option<PackageInfo>>,
    sysusers: Vec<Vec<SysUser>>,
    options: LayerOptions,
    conflicts: Vec<String>,
}

impl Arrived {
    /// Every layer's paths, the job layer's included, against the symlinks of the layers
    /// below.
    fn check_job_paths(&self, dests: &[&str]) -> Result<(), OpsError> {
        Ok(plan::check_layer_links(
            &self.locals,
            &self.files,
            &self.planned,
            &self.options.dir_links,
            dests,
        )?)
    }

    /// Every package in the image, with its header's data, RPM digest and repository.
    fn image_packages(&self, res: &Resolution) -> Vec<ImagePackage> {
        self.infos
            .iter()
            .zip(&self.locals)
            .zip(&res.packages)
            .filter_map(|((info, l), p)| {
                Some(ImagePackage {
                    info: info.clone()?,
                    sha256: l.sha256.clone(),
                    repo: p.repo.clone(),
                })
            })
            .collect()
    }
}

/// Starts each planned layer once all its packages are in. The layout packages fix the
/// options (owners, directory links) every layer is written with, so nothing starts before
/// they are all in.
struct Scheduler<'c> {
    ctx: &'c Context,
    planned: Vec<PlannedLayer>,
    layout: Vec<usize>,
    locals: Vec<LocalPackage>,
    files: Vec<Option<Vec<FileInfo>>>,
    infos: Vec<Option<PackageInfo>>,
    /// What each package's sysusers.d files declare (read once, on arrival).
    sysusers: Vec<Vec<SysUser>>,
    options: Option<LayerOptions>,
    started: Vec<bool>,
    tx: mpsc::Sender<(usize, Result<BuiltLayer, plan::PlanError>)>,
    rx: mpsc::Receiver<(usize, Result<BuiltLayer, plan::PlanError>)>,
}

impl<'c> Scheduler<'c> {
    fn new(
        ctx: &'c Context,
        res: &Resolution,
        layout: Vec<usize>,
        popularity: Option<&Popularity>,
    ) -> Scheduler<'c> {
        let locals: Vec<LocalPackage> = res
            .packages
            .iter()
            .map(|p| LocalPackage {
                nevra: p.nevra.clone(),
                name: p.name.clone(),
                path: PathBuf::new(),
                sha256: String::new(),
                base: p.base,
                repo: p.repo.clone(),
                url: crate::repo::join_url(&p.base_url, &p.href),
            })
            .collect();
        let max = ctx.config.settings.image.max_layers;
        let planned = match popularity {
            Some(pop) => {
                plan::plan_ranked(&locals, max, &|p| pop.get(&p.nevra).copied().unwrap_or(0))
            }
            None => plan::plan(&locals, max),
        };
        let n = locals.len();
        let (tx, rx) = mpsc::channel();
        Scheduler {
            ctx,
            started: vec![false; planned.len()],
            planned,
            layout,
            locals,
            files: vec![None; n],
            infos: vec![None; n],
            sysusers: vec![Vec::new(); n],
            options: None,
            tx,
            rx,
        }
    }

    /// Package `i` is in the cache at `path`: read its header (a few milliseconds), and
    /// start the layers it completes.
    fn arrived(&mut self, i: usize, path: PathBuf) -> Result<(), OpsError> {
        self.locals[i].sha256 = path
            .file_name()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.locals[i].path = path;
        let reader = crate::rpm::RpmReader::open(&self.locals[i].path)
            .map_err(|e| self.locals[i].error(e))?;
        if crate::layer::accounts::has_sysusers(&reader.files) {
            self.sysusers[i] = sysusers(self.ctx, &self.locals[i])?;
        }
        self.files[i] = Some(reader.files);
        self.infos[i] = Some(reader.info);
        if self.options.is_none() && self.layout.iter().all(|&j| self.files[j].is_some()) {
            let lp: Vec<&LocalPackage> = self.layout.iter().map(|&j| &self.locals[j]).collect();
            let lf: Vec<&[FileInfo]> = self
                .layout
                .iter()
                .map(|&j| self.files[j].as_deref().unwrap_or_default())
                .collect();
            let decls: Vec<SysUser> = self
                .layout
                .iter()
                .flat_map(|&j| self.sysusers[j].iter().cloned())
                .collect();
            self.options = Some(plan::options_for(
                &lp,
                &lf,
                &decls,
                self.ctx.epoch(),
                self.ctx.clamp_mtime(),
                self.ctx.config.settings.image.compression,
            )?);
        }
        self.start_ready();
        Ok(())
    }

    /// Spawns every planned layer whose packages are all in and that has not started.
    fn start_ready(&mut self) {
        let Some(opts) = &self.options else { return };
        for (li, l) in self.planned.iter().enumerate() {
            if self.started[li] || !l.packages.iter().all(|&j| self.files[j].is_some()) {
                continue;
            }
            self.started[li] = true;
            let pkgs: Vec<LocalPackage> =
                l.packages.iter().map(|&j| self.locals[j].clone()).collect();
            let fs: Vec<Vec<FileInfo>> = l
                .packages
                .iter()
                .map(|&j| self.files[j].clone().unwrap_or_default())
                .collect();
            let decls: Vec<SysUser> = l
                .packages
                .iter()
                .flat_map(|&j| self.sysusers[j].iter().cloned())
                .collect();
            let (cache, o, label, tx) = (
                self.ctx.cache.clone(),
                opts.clone(),
                l.label.clone(),
                self.tx.clone(),
            );
            layer_pool().spawn(move || {
                let pr: Vec<&LocalPackage> = pkgs.iter().collect();
                let fr: Vec<&[FileInfo]> = fs.iter().map(Vec::as_slice).collect();
                let built = plan::build_layer(&cache, &label, &pr, &fr, &decls, &o);
                let _ = tx.send((li, built));
            });
        }
    }

    /// The download stage is over (its bars end); a failed fetch is the error.
    fn all_arrived(&mut self, fetched: Result<(), OpsError>) -> Result<(), OpsError> {
        fetched?;
        if self.options.is_none() {
            // No packages at all: the options of an empty layout.
            self.options = Some(plan::options_for(
                &[],
                &[],
                &[],
                self.ctx.epoch(),
                self.ctx.clamp_mtime(),
                self.ctx.config.settings.image.compression,
            )?);
        }
        self.start_ready();
        Ok(())
    }

    /// Waits for every layer; returns them in plan order with what arrived.
    fn finish(self) -> Result<(Vec<BuiltLayer>, Arrived), OpsError> {
        let Scheduler {
            ctx,
            planned,
            locals,
            files,
            infos,
            sysusers,
            options,
            tx,
            rx,
            ..
        } = self;
        drop(tx);
        ctx.reporter.start("layers", planned.len() as u64, false);
        let mut built: Vec<Option<BuiltLayer>> = vec![None; planned.len()];
        let mut first_err = None;
        for (li, r) in rx {
            ctx.reporter.advance(1);
            match r {
                Ok(b) => built[li] = Some(b),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        ctx.reporter.finish();
        if let Some(e) = first_err {
            return Err(e.into());
        }
        let files: Vec<Vec<FileInfo>> = files.into_iter().map(Option::unwrap_or_default).collect();
        let options = options.expect("set once every package arrived");
        let conflicts = plan::conflicts(&locals, &files, &planned);
        let arrived = Arrived {
            planned,
            locals,
            files,
            infos,
            sysusers,
            options,
            conflicts,
        };
        Ok((built.into_iter().flatten().collect(), arrived))
    }
}

/// The `/etc/ld.so.conf.d` directories of the packages that ship such files, in package
/// order.
fn library_dirs(ctx: &Context, arrived: &Arrived) -> Result<Vec<String>, OpsError> {
    let mut dirs = Vec::new();
    for (l, f) in arrived.locals.iter().zip(&arrived.files) {
        if crate::image::packages::has_ld_conf(f) {
            dirs.extend(ld_conf_dirs(ctx, l)?);
        }
    }
    Ok(dirs)
}

/// The image's `/etc/passwd` and `/etc/group` when packages need accounts the setup package
/// lacks (see [`crate::layer::accounts`]), with a line per account added.
fn accounts(arrived: &Arrived) -> Option<(String, String, Vec<String>)> {
    let o = &arrived.options;
    // Without a setup package there are no account files to extend.
    let setup = o.setup.as_ref()?;
    let decls: Vec<SysUser> = arrived.sysusers.iter().flatten().cloned().collect();
    let owners: std::collections::BTreeSet<(String, String)> = arrived
        .files
        .iter()
        .flatten()
        .filter(|fi| !fi.ghost && (fi.user != "root" || fi.group != "root"))
        .map(|fi| (fi.user.clone(), fi.group.clone()))
        .collect();
    setup.extend(&o.users, &o.groups, &owners, &decls)
}

/// The sysusers.d declarations of a package, remembered per RPM digest in
/// [`Bucket::SysUsers`](crate::cache::Bucket::SysUsers).
fn sysusers(
    ctx: &Context,
    p: &LocalPackage,
) -> Result<Vec<crate::layer::accounts::SysUser>, OpsError> {
    per_rpm(ctx, crate::cache::Bucket::SysUsers, p, |path| {
        crate::layer::accounts::sysusers_of(path)
    })
}

/// The `/etc/ld.so.conf.d` directories of a package, remembered per RPM digest in
/// [`Bucket::LdConf`](crate::cache::Bucket::LdConf).
fn ld_conf_dirs(ctx: &Context, p: &LocalPackage) -> Result<Vec<String>, OpsError> {
    per_rpm(ctx, crate::cache::Bucket::LdConf, p, |path| {
        crate::image::packages::ld_conf_dirs(path)
    })
}

/// What `read` takes from a package's payload (decompressing it), remembered in `bucket` as
/// `<rpm-sha256>.json`.
fn per_rpm<T: serde::Serialize + serde::de::DeserializeOwned>(
    ctx: &Context,
    bucket: crate::cache::Bucket,
    p: &LocalPackage,
    read: impl FnOnce(&Path) -> Result<T, crate::rpm::RpmError>,
) -> Result<T, OpsError> {
    ctx.memo(bucket, &p.sha256, || {
        read(&p.path).map_err(|e| crate::layer::LayerError::from(e).into())
    })
}

/// The job's own files: the wrapper, the script, the binary and its bundled libraries, under
/// `job_dir` in the image.
pub fn job_files(job_dir: &str, job: &JobSpec, needs: &Needs) -> Vec<JobFile> {
    let dir = job_dir.trim_end_matches('/');
    let script_dir = job.script.parent().unwrap_or(Path::new("")).to_owned();
    let name = job
        .script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job.sh".into());
    let mut files = vec![
        JobFile {
            dest: crate::kube::WRAPPER_PATH.into(),
            mode: 0o755,
            source: JobSource::Bytes(crate::kube::WRAPPER_SCRIPT.as_bytes().to_vec()),
        },
        JobFile {
            dest: crate::kube::RSH_PATH.into(),
            mode: 0o755,
            source: JobSource::Bytes(crate::kube::RSH_SCRIPT.as_bytes().to_vec()),
        },
        JobFile {
            dest: format!("{dir}/{name}"),
            mode: 0o755,
            source: JobSource::Path(job.script.clone()),
        },
    ];
    if let Some(bin) = &job.binary {
        let rel = bin.strip_prefix(&script_dir).unwrap_or(bin);
        files.push(JobFile {
            dest: format!("{dir}/{}", rel.display()),
            mode: 0o755,
            source: JobSource::Path(bin.clone()),
        });
    }
    for b in &needs.bundled {
        files.push(JobFile {
            dest: format!("{dir}/{}", b.path.display()),
            mode: 0o755,
            source: JobSource::Path(script_dir.join(&b.path)),
        });
    }
    files
}
