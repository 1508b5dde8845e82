//! dnf as the oracle on real distribution metadata (`../shared/realdata`: CentOS Stream 9
//! BaseOS 2022-02 and AppStream 2025-01). Each case is resolved by pbsimage and by dnf itself
//! (python3-dnf, `tests/it/repo/dnf_oracle.py`: an empty installroot, `best=True`,
//! `module_platform_id=platform:el9`), with weak dependencies off and on, on both repositories
//! together and on each alone: the same packages, or both refuse.

use super::*;
use pbsimage::resolve::{ResolveError, Resolver};
use std::collections::BTreeMap;

/// What a job needs, in the table's shorthand: `cmd:NAME` (a command on PATH), `/path` (a
/// file), anything else a capability or a package name as `[needs] extra` has them. A case is
/// one job: every need together.
const CASES: &[&[&str]] = &[
    // Names (dnf install NAME).
    &["bash"],
    &["bash", "libstdc++"],
    &["glibc"],
    &["coreutils"],
    &["coreutils-single"],
    &["perl"],
    &["perl-interpreter"],
    &["perl-DBI"],
    &["perl-Net-SSLeay"],
    &["git"],
    &["mariadb"],
    &["mpich"],
    &["mpich-devel"],
    &["openmpi"],
    &["openmpi-devel"],
    &["valgrind"],
    &["java-17-openjdk-headless"],
    &["java-11-openjdk-headless"],
    &["java-21-openjdk-headless"],
    &["maven"],
    &["python3"],
    &["python3.11"],
    &["python3.12"],
    &["python3-numpy"],
    &["python3-scipy"],
    &["python3-pip"],
    &["gcc"],
    &["gcc-c++"],
    &["gcc-gfortran"],
    &["make"],
    &["cmake"],
    &["fftw-libs-double"],
    &["blas"],
    &["lapack"],
    &["openblas"],
    &["nodejs"],
    &["php"],
    &["redis"],
    &["nginx"],
    &["postgresql-server"],
    &["ruby"],
    &["tcl"],
    &["ksh"],
    &["mksh"],
    &["zsh"],
    &["tcsh"],
    &["curl"],
    &["curl-minimal"],
    &["wget"],
    &["rsync"],
    &["tar"],
    &["zstd"],
    &["unzip"],
    &["which"],
    &["findutils"],
    &["gawk"],
    &["vim-minimal"],
    &["nano"],
    &["environment-modules"],
    &["numactl"],
    &["hwloc"],
    &["rdma-core"],
    &["ucx"],
    &["boost"],
    &["gsl"],
    &["golang"],
    &["openssl"],
    &["compat-openssl11"],
    &["gdb"],
    &["strace"],
    &["time"],
    &["bc"],
    &["procps-ng"],
    &["iproute"],
    &["hostname"],
    &["openssh-clients"],
    &["lua"],
    &["httpd"],
    &["glibc-langpack-en"],
    &["glibc-all-langpacks"],
    // Obsoleted names: dnf installs what obsoletes them.
    &["ht-caladea-fonts"],
    // Conflicting alternatives: the asked-for one, and the command from it.
    &["coreutils-single", "cmd:ls"],
    &["coreutils-single", "cmd:cat", "cmd:sort"],
    &["curl-minimal", "cmd:curl"],
    &["curl-minimal", "libcurl.so.4()(64bit)"],
    // Sonames with symbol versions (64-bit).
    &["libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"],
    &[
        "libstdc++.so.6()(64bit)",
        "libstdc++.so.6(GLIBCXX_3.4.29)(64bit)",
    ],
    &["libstdc++.so.6(CXXABI_1.3.13)(64bit)"],
    &["libm.so.6(GLIBC_2.29)(64bit)"],
    &[
        "libgfortran.so.5()(64bit)",
        "libgfortran.so.5(GFORTRAN_8)(64bit)",
    ],
    &["libgomp.so.1()(64bit)", "libgomp.so.1(GOMP_4.5)(64bit)"],
    &["libgomp.so.1(OMP_4.5)(64bit)"],
    &["libquadmath.so.0()(64bit)"],
    &["libssl.so.3()(64bit)", "libssl.so.3(OPENSSL_3.0.0)(64bit)"],
    &["libcrypto.so.3(OPENSSL_3.0.0)(64bit)"],
    &["libcrypto.so.3(OPENSSL_3.2.0)(64bit)"],
    &["libcrypto.so.1.1()(64bit)"],
    &["libz.so.1()(64bit)", "libz.so.1(ZLIB_1.2.9)(64bit)"],
    &["libcurl.so.4()(64bit)"],
    &["libpython3.9.so.1.0()(64bit)"],
    &["libpython3.11.so.1.0()(64bit)"],
    &["libmpi.so.40()(64bit)"],
    &["libmpich.so.12()(64bit)"],
    &["libfftw3.so.3()(64bit)"],
    &["libopenblas.so.0()(64bit)"],
    &["libblas.so.3()(64bit)"],
    &["liblapack.so.3()(64bit)"],
    &["libhwloc.so.15()(64bit)"],
    &["libnuma.so.1()(64bit)", "libnuma.so.1(libnuma_1.2)(64bit)"],
    &["libibverbs.so.1()(64bit)"],
    &["libucp.so.0()(64bit)"],
    &["libtcl8.6.so()(64bit)"],
    &["libreadline.so.8()(64bit)"],
    &["libtinfo.so.6()(64bit)"],
    &["libpcre2-8.so.0()(64bit)"],
    &[
        "libxml2.so.2()(64bit)",
        "libxml2.so.2(LIBXML2_2.4.30)(64bit)",
    ],
    &["libsqlite3.so.0()(64bit)"],
    &["libbz2.so.1()(64bit)"],
    &["liblzma.so.5()(64bit)", "liblzma.so.5(XZ_5.0)(64bit)"],
    &["libzstd.so.1()(64bit)"],
    &["libuuid.so.1()(64bit)"],
    &["libffi.so.8()(64bit)"],
    &["libgmp.so.10()(64bit)"],
    &["libpng16.so.16()(64bit)"],
    &["libX11.so.6()(64bit)"],
    &["libssh.so.4()(64bit)"],
    &["libgcrypt.so.20()(64bit)"],
    &["libsystemd.so.0()(64bit)"],
    &["libboost_system.so.1.75.0()(64bit)"],
    &["libgsl.so.25()(64bit)"],
    // A C++ job as the ELF reader sees it.
    &[
        "libstdc++.so.6()(64bit)",
        "libstdc++.so.6(GLIBCXX_3.4)(64bit)",
        "libm.so.6()(64bit)",
        "libgcc_s.so.1()(64bit)",
        "libgcc_s.so.1(GCC_3.0)(64bit)",
        "libc.so.6()(64bit)",
        "libc.so.6(GLIBC_2.2.5)(64bit)",
        "rtld(GNU_HASH)",
    ],
    // An OpenMP Fortran job with MPI.
    &[
        "libgfortran.so.5()(64bit)",
        "libgomp.so.1()(64bit)",
        "libmpi.so.40()(64bit)",
        "libmpi_mpifh.so.40()(64bit)",
    ],
    // 32-bit sonames and arch-marked names: i686 packages.
    &["libc.so.6", "libc.so.6(GLIBC_2.34)"],
    &["libstdc++.so.6"],
    &["libm.so.6"],
    &["libz.so.1"],
    &["libgcc_s.so.1", "libgcc_s.so.1(GCC_3.0)"],
    &["zlib(x86-32)"],
    &["glibc(x86-32)"],
    // Versioned and rich requirements, as [needs] extra takes them.
    &["python3 >= 3.9"],
    &["bash = 5.1.8-2.el9"],
    &["python3 < 3"],
    &["(ksh or mksh)"],
    &["(curl-minimal or curl)", "cmd:curl"],
    // Capabilities in namespaces.
    &["perl(DBI)"],
    &["perl(Net::SSLeay)"],
    &["python3dist(numpy)"],
    &["mvn(org.sonatype.plexus:plexus-cipher)"],
    &["pkgconfig(zlib)"],
    &["pkgconfig(openssl)"],
    &["font(caladea)"],
    &["webserver"],
    &["mta"],
    // Files.
    &["/usr/bin/ksh"],
    &["/usr/bin/perl"],
    &["/usr/bin/python3"],
    &["/bin/sh"],
    &["/usr/bin/env"],
    &["/usr/bin/curl"],
    &["/usr/bin/mpirun"],
    &["/usr/lib64/openmpi/bin/mpirun"],
    &["/usr/share/zoneinfo/UTC"],
    &["/usr/lib64/libstdc++.so.6"],
    &["/usr/bin/Rscript"],
    // Commands a script runs.
    &["cmd:ls", "cmd:cat", "cmd:awk", "cmd:sed", "cmd:grep"],
    &["cmd:python3"],
    &["cmd:perl"],
    &["cmd:ksh"],
    &["cmd:csh"],
    &["cmd:zsh"],
    &["cmd:env", "cmd:date", "cmd:sleep", "cmd:hostname"],
    &["cmd:curl"],
    &["cmd:wget"],
    &["cmd:tar", "cmd:gzip", "cmd:bzip2", "cmd:xz"],
    &["cmd:make", "cmd:gcc"],
    &["cmd:g++"],
    &["cmd:gfortran"],
    &["cmd:cmake"],
    &["cmd:numactl"],
    &["cmd:time"],
    &["cmd:bc"],
    &["cmd:ssh"],
    &["cmd:rsync"],
    &["cmd:find", "cmd:xargs"],
    &["cmd:java"],
    &["cmd:mvn"],
    &["cmd:node"],
    &["cmd:ruby"],
    &["cmd:git"],
    &["cmd:vi"],
    &["cmd:strace"],
    &["cmd:gdb"],
    &["cmd:valgrind"],
    &["cmd:lua"],
    &["cmd:tclsh"],
    &["cmd:nproc", "cmd:lscpu"],
    &["cmd:mpirun"],
    &["cmd:Rscript"],
];

fn realdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata");
    assert!(
        dir.join("cs9-baseos-2022-02/repodata/repomd.xml").is_file()
            && dir
                .join("cs9-appstream-2025-01/repodata/repomd.xml")
                .is_file(),
        "the real CentOS Stream 9 metadata is missing from {} (see its SOURCES.md)",
        dir.display()
    );
    dir
}

/// The needs of one case.
pub(crate) fn case_needs(specs: &[&str]) -> Needs {
    let mut needs = needs_of(&[], Arch::X86_64);
    for s in specs {
        let kind = if let Some(c) = s.strip_prefix("cmd:") {
            NeedKind::Command(c.to_owned())
        } else if s.starts_with('/') {
            NeedKind::File(vec![s.to_string()])
        } else {
            // As `[needs] extra` has them (versioned, rich, 32-bit, namespaced).
            needs.add_extra(&[s.to_string()], "a.out").unwrap();
            continue;
        };
        needs.needs.push(Need {
            kind,
            origins: vec!["a.out: need".into()],
            optional: false,
        });
    }
    needs
}

/// dnf's spec for a need: commands become "any:" and the paths a command may be at.
fn dnf_spec(s: &str) -> String {
    match s.strip_prefix("cmd:") {
        Some(c) => format!("any:{}", NeedKind::Command(c.to_owned()).paths().join("|")),
        None => s.to_owned(),
    }
}

pub(crate) type Outcome = Result<BTreeSet<String>, String>;

/// dnf's answer for every case, from one python3-dnf process.
pub(crate) fn dnf_answers(repos: &[(&str, String)], weak: bool, cases: &[&[&str]]) -> Vec<Outcome> {
    dnf_answers_with(repos, weak, cases, &[])
}

/// As [`dnf_answers`], with module streams enabled (`dnf module enable`).
fn dnf_answers_with(
    repos: &[(&str, String)],
    weak: bool,
    cases: &[&[&str]],
    modules: &[&str],
) -> Vec<Outcome> {
    require_with(
        "/usr/bin/python3",
        "apt-get install -y dnf (python3-dnf, with Debian's python3)",
    );
    let root = tempfile::tempdir().unwrap();
    let req = serde_json::json!({
        "root": root.path(),
        "repos": repos,
        "weak": weak,
        "modules": modules,
        "cases": cases.iter().map(|c| c.iter().map(|s| dnf_spec(s)).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/repo/dnf_oracle.py");
    let out = output_with_stdin(
        Command::new("/usr/bin/python3").arg(script),
        req.to_string().as_bytes(),
    );
    assert!(
        out.status.success(),
        "the dnf oracle failed (python3-dnf: apt-get install -y dnf):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Outcome> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            match v.get("ok") {
                Some(ok) => Ok(ok
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect()),
                None => Err(v["err"].as_str().unwrap_or_default().to_owned()),
            }
        })
        .collect();
    assert_eq!(lines.len(), cases.len(), "one answer per case");
    lines
}

/// pbsimage's answer for every case: one resolver (one libsolv pool) for all of them.
pub(crate) fn our_answers(repos: &[(&str, String)], weak: bool, cases: &[&[&str]]) -> Vec<Outcome> {
    our_answers_with(repos, weak, cases, "")
}

/// As [`our_answers`], with `extra` configuration after the last `[[repo]]` (its keys).
fn our_answers_with(
    repos: &[(&str, String)],
    weak: bool,
    cases: &[&[&str]],
    extra: &str,
) -> Vec<Outcome> {
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(repos, cache.path(), extra, Options::default());
    // File lists too (dnf loads them): a need for a path primary.xml cannot list.
    let with_files = case_needs(&["/usr/share/zoneinfo/UTC"]);
    let repos = load_repos(&ctx, &[&with_files]).unwrap();
    let arches = pbsimage::ops::resolve::arches(&ctx, &with_files);
    let resolver = Resolver::new(&repos, &arches, weak);
    cases
        .iter()
        .map(|c| match resolver.resolve(&case_needs(c), &[]) {
            Ok(r) => Ok(r.packages.into_iter().map(|p| p.nevra).collect()),
            Err(e @ ResolveError::NeedsFilelists) => panic!("{c:?}: {e}"),
            Err(e) => Err(format!("{e}")),
        })
        .collect()
}

/// Compares the two answers; returns the disagreements.
pub(crate) fn disagreements(
    label: &str,
    cases: &[&[&str]],
    ours: &[Outcome],
    dnf: &[Outcome],
) -> Vec<String> {
    let mut out = Vec::new();
    for ((case, a), b) in cases.iter().zip(ours).zip(dnf) {
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => {}
            (Err(_), Err(_)) => {}
            (Ok(a), Ok(b)) => out.push(format!(
                "{label} {case:?}: only pbsimage {:?}, only dnf {:?}",
                a.difference(b).collect::<Vec<_>>(),
                b.difference(a).collect::<Vec<_>>()
            )),
            (Ok(_), Err(e)) => out.push(format!(
                "{label} {case:?}: dnf refused, pbsimage did not: {e}"
            )),
            (Err(e), Ok(_)) => out.push(format!(
                "{label} {case:?}: pbsimage refused, dnf did not: {e}"
            )),
        }
    }
    out
}

fn repos_of(ids: &[&str]) -> Vec<(&'static str, String)> {
    let dir = realdata();
    let all: BTreeMap<&str, (&'static str, &str)> = BTreeMap::from([
        ("baseos", ("baseos", "cs9-baseos-2022-02")),
        ("appstream", ("appstream", "cs9-appstream-2025-01")),
    ]);
    ids.iter()
        .map(|i| {
            let (id, sub) = all[i];
            (id, file_url(&dir.join(sub)))
        })
        .collect()
}

fn agree(ids: &[&str], weak: bool) -> (usize, usize) {
    let repos = repos_of(ids);
    let ours = our_answers(&repos, weak, CASES);
    let dnf = dnf_answers(&repos, weak, CASES);
    let bad = disagreements(&format!("{ids:?} weak={weak}"), CASES, &ours, &dnf);
    assert!(
        bad.is_empty(),
        "{} of {} cases disagree with dnf:\n{}",
        bad.len(),
        CASES.len(),
        bad.join("\n")
    );
    let solved = dnf.iter().filter(|d| d.is_ok()).count();
    (solved, CASES.len() - solved)
}

#[test]
fn the_table_has_every_kind_of_need() {
    let needs: usize = CASES.iter().map(|c| c.len()).sum();
    assert!(needs >= 150, "{needs} needs");
}

#[test]
fn both_repositories_resolve_as_dnf_does() {
    let (ok, refused) = agree(&["baseos", "appstream"], false);
    eprintln!("baseos+appstream: {ok} solved, {refused} refused by both");
    assert!(ok > 120, "most of the table is installable: {ok}");
}

#[test]
fn both_repositories_with_weak_deps_resolve_as_dnf_does() {
    agree(&["baseos", "appstream"], true);
}

#[test]
fn baseos_alone_resolves_as_dnf_does() {
    agree(&["baseos"], false);
}

#[test]
fn appstream_alone_resolves_as_dnf_does() {
    agree(&["appstream"], false);
}

#[test]
fn repository_order_does_not_choose() {
    agree(&["appstream", "baseos"], false);
}

/// What cannot be installed is explained: the newest perl-Net-SSLeay needs an OpenSSL the
/// 2022 BaseOS lacks. The hint does not tell to rebuild a binary the job does not own.
#[test]
fn a_repository_package_that_cannot_be_met_is_explained_without_a_rebuild_hint() {
    let repos = repos_of(&["baseos", "appstream"]);
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(&repos, cache.path(), "", Options::default());
    let needs = case_needs(&["perl-Net-SSLeay"]);
    let mut loaded = load_repos(&ctx, &[&needs]).unwrap();
    let err = resolve(&ctx, &mut loaded, &needs).unwrap_err();
    let msg = format!("{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(
        msg.contains("perl-Net-SSLeay") && msg.contains("OPENSSL_3.2.0"),
        "{msg}"
    );
    assert!(!hint.contains("rebuild the binary"), "{hint}");
    assert!(hint.contains("repositories of different ages"), "{hint}");
    // The job's own binary needing it would be told to rebuild.
    let needs = case_needs(&["libcrypto.so.3(OPENSSL_3.2.0)(64bit)"]);
    let err = resolve(&ctx, &mut loaded, &needs).unwrap_err();
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains("rebuild the binary"),
        "{err}"
    );
}

/// Module streams enabled in the configuration (`modules = [...]` of AppStream) and with
/// `dnf module enable`: the streams' packages replace the non-modular ones, as dnf has it.
#[test]
fn enabled_module_streams_resolve_as_dnf_does() {
    let cases: &[&[&str]] = &[
        &["nodejs"],
        &["npm"],
        &["cmd:node"],
        &["php"],
        &["php-cli"],
        &["nginx"],
        &["cmd:nginx"],
        &["redis"],
        &["bash", "libstdc++"],
    ];
    let streams = ["nodejs:20", "php:8.2", "nginx:1.24"];
    let repos = repos_of(&["baseos", "appstream"]);
    let extra = format!(
        "modules = [{}]\n",
        streams
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ours = our_answers_with(&repos, false, cases, &extra);
    let dnf = dnf_answers_with(&repos, false, cases, &streams);
    let bad = disagreements("modules", cases, &ours, &dnf);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The streams are what was installed.
    assert!(
        dnf[0]
            .as_ref()
            .is_ok_and(|s| s.iter().any(|p| p.starts_with("nodejs-1:20."))),
        "{:?}",
        dnf[0]
    );
}
