//! ELF analysis against real binaries built here, with rpm's `elfdeps` and pax-utils'
//! `lddtree` as oracles; bad inputs; and a byte-mutation check that nothing panics.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pbsimage::elf::{ElfError, ElfReader};
use pbsimage::needs::{NeedKind, Needs};

use crate::common::*;

const ELFDEPS: &str = "/usr/lib/rpm/elfdeps";

/// A job directory with compiled programs.
struct Built {
    dir: tempfile::TempDir,
}

impl Built {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

fn cc(tool: &str, package: &str, args: &[&str], cwd: &Path) {
    require(tool, package);
    run_ok(Command::new(tool).args(args).current_dir(cwd));
}

const C_HELLO: &str = "#include <stdio.h>\n#include <pwd.h>\nint main(void){ struct passwd *p = getpwuid(0); printf(\"hi %s\\n\", p ? p->pw_name : \"?\"); return 0; }\n";
const C_OMP: &str = "#include <stdio.h>\n#include <omp.h>\nint main(void){ int n = 0;\n#pragma omp parallel reduction(+:n)\n n += 1;\n printf(\"%d\\n\", n > 0); return 0; }\n";
const F_HELLO: &str = "program hello\n  print *, 'hello from fortran'\nend program hello\n";
const LIB_FIB: &str = "#include <math.h>\nunsigned long fib(int n){ return (unsigned long)floor(pow((1+sqrt(5))/2, n)/sqrt(5)+0.5); }\n";
const LIB_TOP: &str = "unsigned long fib(int); unsigned long top(int n){ return fib(n); }\n";
const MAIN_FIB: &str = "#include <stdio.h>\nunsigned long fib(int);\nint main(void){ for (int i = 0; i < 6; i++) printf(\"%lu \", fib(i)); printf(\"\\n\"); return 0; }\n";
const MAIN_TOP: &str = "#include <stdio.h>\nunsigned long top(int);\nint main(void){ printf(\"%lu\\n\", top(10)); return 0; }\n";

/// Builds every test program once per test (builds are fast).
fn build_all() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, src) in [
        ("hello.c", C_HELLO),
        ("omp.c", C_OMP),
        ("hello.f90", F_HELLO),
        ("fib.c", LIB_FIB),
        ("top.c", LIB_TOP),
        ("main_fib.c", MAIN_FIB),
        ("main_top.c", MAIN_TOP),
    ] {
        std::fs::write(d.join(name), src).unwrap();
    }
    std::fs::copy(
        "fixtures/jobs/paper-listing3-fib/fib.cpp",
        d.join("fib.cpp"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("lib")).unwrap();
    std::fs::create_dir_all(d.join("rlib")).unwrap();
    cc("gcc", "gcc", &["-O2", "-o", "c_hello", "hello.c"], d);
    cc("g++", "g++", &["-O2", "-o", "cxx_fib", "fib.cpp"], d);
    cc(
        "gcc",
        "gcc",
        &["-O2", "-fopenmp", "-o", "c_omp", "omp.c"],
        d,
    );
    cc(
        "gfortran",
        "gfortran",
        &["-O2", "-o", "f_hello", "hello.f90"],
        d,
    );
    cc(
        "gcc",
        "gcc-multilib",
        &["-m32", "-O2", "-o", "c_hello32", "hello.c"],
        d,
    );
    cc(
        "gcc",
        "libc6-dev",
        &["-static", "-O2", "-o", "c_static", "hello.c"],
        d,
    );
    cc(
        "gcc",
        "libc6-dev",
        &["-static-pie", "-O2", "-o", "c_static_pie", "hello.c"],
        d,
    );
    std::fs::copy(d.join("c_hello"), d.join("c_stripped")).unwrap();
    run_ok(
        Command::new("strip")
            .args(["--strip-all", "c_stripped"])
            .current_dir(d),
    );
    // $ORIGIN with RUNPATH: the job ships lib/libfib.so.1, which needs libm.
    cc(
        "gcc",
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wl,-soname,libfib.so.1",
            "-o",
            "lib/libfib.so.1",
            "fib.c",
            "-lm",
        ],
        d,
    );
    cc(
        "gcc",
        "gcc",
        &[
            "-O2",
            "-o",
            "origin_runpath",
            "main_fib.c",
            "lib/libfib.so.1",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
        ],
        d,
    );
    // Inherited RPATH: the binary's DT_RPATH also finds what its libraries need.
    cc(
        "gcc",
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wl,-soname,libfib.so.1",
            "-o",
            "rlib/libfib.so.1",
            "fib.c",
            "-lm",
        ],
        d,
    );
    cc(
        "gcc",
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wl,-soname,libtop.so.1",
            "-o",
            "rlib/libtop.so.1",
            "top.c",
            "rlib/libfib.so.1",
        ],
        d,
    );
    cc(
        "gcc",
        "gcc",
        &[
            "-O2",
            "-o",
            "origin_rpath",
            "main_top.c",
            "rlib/libtop.so.1",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/rlib",
            "-Wl,-rpath-link,rlib",
        ],
        d,
    );
    // The same with RUNPATH: not inherited, so libfib is left to the repositories.
    cc(
        "gcc",
        "gcc",
        &[
            "-O2",
            "-o",
            "origin_runpath_deep",
            "main_top.c",
            "rlib/libtop.so.1",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/rlib",
            "-Wl,-rpath-link,rlib",
        ],
        d,
    );
    Built { dir }
}

fn elfdeps(path: &Path, filter_private: bool) -> BTreeSet<String> {
    require(ELFDEPS, "rpm");
    let mut cmd = Command::new(ELFDEPS);
    cmd.arg("--requires");
    if filter_private {
        cmd.arg("--filter-private");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{}", path.display()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ours(path: &Path) -> BTreeSet<String> {
    ElfReader::read(path)
        .unwrap()
        .rpm_requires()
        .into_iter()
        .map(|c| c.to_string())
        .collect()
}

#[test]
fn capabilities_match_elfdeps_on_built_binaries() {
    let b = build_all();
    for name in [
        "c_hello",
        "cxx_fib",
        "c_omp",
        "f_hello",
        "c_hello32",
        "c_static",
        "c_static_pie",
        "c_stripped",
        "origin_runpath",
        "origin_rpath",
        "origin_runpath_deep",
        "lib/libfib.so.1",
        "rlib/libtop.so.1",
    ] {
        let p = b.path(name);
        let want = elfdeps(&p, false);
        assert_eq!(ours(&p), want, "{name}");
        if !name.starts_with("c_static") {
            assert!(!want.is_empty(), "{name}: the oracle printed nothing");
        }
    }
    // 32-bit: no (64bit) marker.
    assert!(ours(&b.path("c_hello32")).contains("libc.so.6"));
    // A file without an execute bit gets no requires, as in rpm.
    let p = b.path("c_hello");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(ours(&p), BTreeSet::new());
    assert_eq!(elfdeps(&p, false), BTreeSet::new());
}

#[test]
fn capabilities_match_elfdeps_on_host_libraries() {
    let dir = tempfile::tempdir().unwrap();
    for lib in [
        "libstdc++.so.6",
        "libgomp.so.1",
        "libgfortran.so.5",
        "libc.so.6",
        "libm.so.6",
    ] {
        let src = Path::new("/usr/lib/x86_64-linux-gnu").join(lib);
        assert!(src.exists(), "{lib} missing on this host");
        let p = dir.path().join(lib);
        std::fs::copy(&src, &p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Debian's rpm 4.18 elfdeps prints GLIBC_PRIVATE version needs even with
        // --filter-private; pbsimage always skips them (only glibc's own libraries use them).
        let want: BTreeSet<String> = elfdeps(&p, true)
            .into_iter()
            .filter(|c| !c.contains("(GLIBC_PRIVATE)"))
            .collect();
        assert!(!want.is_empty(), "{lib}");
        assert_eq!(ours(&p), want, "{lib}");
    }
}

fn analyze(
    job_dir: &Path,
    script: &str,
    binary: &str,
) -> Result<Needs, pbsimage::needs::NeedsError> {
    std::fs::write(
        job_dir.join("job.sh"),
        format!("#!/bin/bash\n#PBS -N t\n#PBS -B {binary}\n{script}\n"),
    )
    .unwrap();
    let env = fixed_env();
    let job = pbsimage::job::ScriptParser::new(&env)
        .parse(&job_dir.join("job.sh"))
        .unwrap();
    let settings = pbsimage::config::NeedsSettings::default();
    pbsimage::needs::NeedsAnalyzer {
        settings: &settings,
        basearch: Some("x86_64"),
        default_shell: "/bin/sh",
    }
    .analyze(&job)
}

fn caps(n: &Needs) -> BTreeSet<String> {
    n.needs
        .iter()
        .filter_map(|n| match &n.kind {
            NeedKind::Capability(c) => Some(c.to_string()),
            _ => None,
        })
        .collect()
}

fn lddtree(path: &Path) -> Vec<(String, String)> {
    require("/usr/bin/lddtree", "pax-utils");
    require("/usr/bin/python3", "python3-pyelftools");
    let o = run_ok(
        Command::new("/usr/bin/python3")
            .args(["/usr/bin/lddtree", "-a"])
            .arg(path),
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().split_once(" => "))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

#[test]
fn origin_libraries_are_bundled_and_analysed() {
    let b = build_all();
    let n = analyze(b.dir.path(), "./origin_runpath", "origin_runpath").unwrap();
    assert_eq!(n.bundled.len(), 1);
    assert_eq!(n.bundled[0].path, Path::new("lib/libfib.so.1"));
    assert_eq!(n.bundled[0].via, "RUNPATH $ORIGIN/lib");
    let c = caps(&n);
    assert!(!c.iter().any(|c| c.starts_with("libfib")), "{c:?}");
    // libfib's own need reaches the repositories, with its provenance.
    let libm = n
        .needs
        .iter()
        .find(|x| x.kind.to_string() == "libm.so.6()(64bit)")
        .unwrap();
    assert_eq!(libm.origins, ["lib/libfib.so.1: DT_NEEDED libm.so.6"]);
    // Oracle: lddtree resolves libfib.so.1 to the same file.
    let tree = lddtree(&b.path("origin_runpath"));
    let (_, p) = tree
        .iter()
        .find(|(n, _)| n == "libfib.so.1")
        .expect("lddtree found libfib");
    assert_eq!(
        Path::new(p).canonicalize().unwrap(),
        b.path("lib/libfib.so.1").canonicalize().unwrap()
    );

    // DT_RPATH is inherited: libtop's libfib is found through the binary's RPATH.
    let n = analyze(b.dir.path(), "./origin_rpath", "origin_rpath").unwrap();
    let paths: Vec<_> = n.bundled.iter().map(|x| x.path.clone()).collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("rlib/libtop.so.1"),
            PathBuf::from("rlib/libfib.so.1")
        ]
    );
    let tree = lddtree(&b.path("origin_rpath"));
    for lib in ["libtop.so.1", "libfib.so.1"] {
        let (_, p) = tree.iter().find(|(n, _)| n == lib).unwrap();
        assert_eq!(
            Path::new(p).canonicalize().unwrap(),
            b.path(&format!("rlib/{lib}")).canonicalize().unwrap()
        );
    }
    // DT_RUNPATH is not: libfib.so.1 becomes a repository need, as the loader would fail
    // to find it in the job.
    let n = analyze(b.dir.path(), "./origin_runpath_deep", "origin_runpath_deep").unwrap();
    assert_eq!(n.bundled.len(), 1);
    assert!(caps(&n).contains("libfib.so.1()(64bit)"));
}

#[test]
fn script_commands_and_interpreter() {
    let b = build_all();
    let n = analyze(
        b.dir.path(),
        "module load gcc\nmpirun -np $PBS_NP ./c_hello | tee out.log\n/usr/bin/time -v ./c_hello",
        "c_hello",
    )
    .unwrap();
    let by_kind = |k: &str| {
        n.needs
            .iter()
            .find(|x| x.kind.to_string() == k)
            .unwrap_or_else(|| panic!("{k} in {:#?}", n.needs))
    };
    assert_eq!(by_kind("command mpirun").origins, ["job.sh line 5: mpirun"]);
    assert!(by_kind("command tee").optional);
    assert!(!by_kind("/bin/bash | /usr/bin/bash").optional);
    by_kind("/usr/bin/time | /bin/time");
    by_kind("/lib64/ld-linux-x86-64.so.2 | /usr/lib64/ld-linux-x86-64.so.2");
    assert!(n.notes.iter().any(|x| x.contains("NSS")), "{:?}", n.notes);
    assert_eq!(n.kube_arch, "amd64");
}

#[test]
fn static_binaries_need_only_the_script() {
    let b = build_all();
    for bin in ["c_static", "c_static_pie"] {
        let n = analyze(b.dir.path(), "./x", bin).unwrap();
        assert!(n.static_binary, "{bin}");
        assert!(caps(&n).is_empty(), "{bin}: {:?}", caps(&n));
    }
}

#[test]
fn thirty_two_bit_binaries_use_i686_packages() {
    let b = build_all();
    let n = analyze(b.dir.path(), "./c_hello32", "c_hello32").unwrap();
    assert_eq!(n.package_arches[0], "i686");
    // i686 programs run on amd64 nodes.
    assert_eq!(n.kube_arch, "amd64");
    assert!(caps(&n).contains("libc.so.6(GLIBC_2.34)"));
}

/// A minimal ELF64 (or ELF32) with a .dynstr and a .dynamic section.
fn craft_elf(machine: u16, dyns: &[(i64, u64)], strtab: &[u8]) -> Vec<u8> {
    craft_elf_with(machine, dyns, strtab, None)
}

/// As [`craft_elf`], plus a `.gnu.version_r` with one file needing `cnt` versions whose
/// `vna_next` is `next` (0 makes a reader that follows it loop on one entry).
fn craft_elf_with(
    machine: u16,
    dyns: &[(i64, u64)],
    strtab: &[u8],
    verneed: Option<(u16, u32)>,
) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    f[18..20].copy_from_slice(&machine.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    let str_off = f.len() as u64;
    f.extend_from_slice(strtab);
    while !f.len().is_multiple_of(8) {
        f.push(0);
    }
    let dyn_off = f.len() as u64;
    for (tag, val) in dyns {
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&val.to_le_bytes());
    }
    let dyn_size = f.len() as u64 - dyn_off;
    let vn_off = f.len() as u64;
    if let Some((cnt, next)) = verneed {
        // Verneed: version, cnt, file (offset 1 in strtab), aux (16), next (0)
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&cnt.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&16u32.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        // Vernaux: hash, flags, other, name (offset 1), next
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&next.to_le_bytes());
    }
    let vn_size = f.len() as u64 - vn_off;
    let sh_off = f.len() as u64;
    f[40..48].copy_from_slice(&sh_off.to_le_bytes());
    let shnum: u16 = if verneed.is_some() { 4 } else { 3 };
    f[60..62].copy_from_slice(&shnum.to_le_bytes()); // e_shnum
    f[62..64].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx: .dynstr doubles as names
    let mut sh = |ty: u32, off: u64, size: u64, link: u32, entsize: u64| {
        let mut s = vec![0u8; 64];
        s[4..8].copy_from_slice(&ty.to_le_bytes());
        s[24..32].copy_from_slice(&off.to_le_bytes());
        s[32..40].copy_from_slice(&size.to_le_bytes());
        s[40..44].copy_from_slice(&link.to_le_bytes());
        s[56..64].copy_from_slice(&entsize.to_le_bytes());
        f.extend_from_slice(&s);
    };
    sh(0, 0, 0, 0, 0);
    sh(3, str_off, strtab.len() as u64, 0, 0); // SHT_STRTAB
    sh(6, dyn_off, dyn_size, 1, 16); // SHT_DYNAMIC -> link 1
    if verneed.is_some() {
        let mut s = vec![0u8; 64];
        s[4..8].copy_from_slice(&0x6fff_fffeu32.to_le_bytes()); // SHT_GNU_VERNEED
        s[24..32].copy_from_slice(&vn_off.to_le_bytes());
        s[32..40].copy_from_slice(&vn_size.to_le_bytes());
        s[40..44].copy_from_slice(&1u32.to_le_bytes());
        s[44..48].copy_from_slice(&1u32.to_le_bytes()); // sh_info: one Verneed
        f.extend_from_slice(&s);
    }
    f
}

#[test]
fn crafted_objects() {
    // A valid crafted library is read.
    let e = craft_elf(62, &[(1, 1), (14, 11), (0, 0)], b"\0libc.so.6\0libx.so.1\0");
    let info = ElfReader::parse_bytes(&e, Path::new("x.so"), true).unwrap();
    assert_eq!(info.needed, ["libc.so.6"]);
    assert_eq!(info.soname.as_deref(), Some("libx.so.1"));
    // A huge dynamic section is refused, not walked.
    let many: Vec<(i64, u64)> = std::iter::repeat_n((1i64, 1u64), 5000)
        .chain([(0, 0)])
        .collect();
    let e = craft_elf(62, &many, b"\0libc.so.6\0");
    let err = ElfReader::parse_bytes(&e, Path::new("huge.so"), true).unwrap_err();
    assert!(
        err.to_string().contains("more than 4096 DT_NEEDED"),
        "{err}"
    );
    // A string offset past the table.
    let e = craft_elf(62, &[(1, 9999), (0, 0)], b"\0libc.so.6\0");
    let err = ElfReader::parse_bytes(&e, Path::new("bad.so"), true).unwrap_err();
    assert!(matches!(err, ElfError::Malformed { .. }), "{err}");
    // A section pointing past the end of the file.
    let mut e = craft_elf(62, &[(1, 1), (0, 0)], b"\0libc.so.6\0");
    let n = e.len();
    e[n - 64 + 32..n - 64 + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        ElfReader::parse_bytes(&e, Path::new("big.so"), true),
        Err(ElfError::Malformed { .. })
    ));
    // A version-need entry that points at itself (vna_next = 0) 65535 times: bounded.
    let e = craft_elf_with(62, &[(1, 1), (0, 0)], b"\0libc.so.6\0", Some((u16::MAX, 0)));
    let err = ElfReader::parse_bytes(&e, Path::new("loop.so"), true).unwrap_err();
    assert!(
        err.to_string().contains("more than 16384 needed versions"),
        "{err}"
    );
    let e = craft_elf_with(62, &[(1, 1), (0, 0)], b"\0libc.so.6\0", Some((3, 0)));
    let info = ElfReader::parse_bytes(&e, Path::new("three.so"), true).unwrap();
    assert_eq!(
        info.verneed,
        [("libc.so.6".to_owned(), vec!["libc.so.6".to_owned(); 3])]
    );
    // Unsupported machine.
    let e = craft_elf(0x1234, &[(0, 0)], b"\0");
    assert!(matches!(
        ElfReader::parse_bytes(&e, Path::new("m.so"), true),
        Err(ElfError::UnsupportedMachine {
            machine: 0x1234,
            ..
        })
    ));
}

fn needs_cli(dir: &Path, binary_bytes: Option<&[u8]>, mode: u32) -> std::process::Output {
    std::fs::write(dir.join("job.sh"), "#!/bin/bash\n#PBS -B a.out\n./a.out\n").unwrap();
    if let Some(b) = binary_bytes {
        std::fs::write(dir.join("a.out"), b).unwrap();
        std::fs::set_permissions(dir.join("a.out"), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    pbsimage(&["needs", dir.join("job.sh").to_str().unwrap()])
}

#[test]
fn bad_binaries_are_clear_errors() {
    let b = build_all();
    let real = std::fs::read(b.path("c_hello")).unwrap();
    let aarch64 = craft_elf(183, &[(1, 1), (0, 0)], b"\0libc.so.6\0");
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("missing", None, "does not exist"),
        ("empty", Some(vec![]), "the file is empty"),
        (
            "script",
            Some(b"#!/bin/sh\necho hi\n".to_vec()),
            "it is a script",
        ),
        (
            "truncated-header",
            Some(real[..40].to_vec()),
            "the file ends inside the ELF header",
        ),
        (
            "truncated-body",
            Some(real[..2000].to_vec()),
            "malformed ELF",
        ),
        (
            "other-arch",
            Some(aarch64),
            "built for aarch64, but the configured repositories are x86_64",
        ),
    ];
    for (name, bytes, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let o = needs_cli(dir.path(), bytes.as_deref(), 0o755);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        assert!(e.contains(want), "{name}: {e}");
        assert!(e.contains("a.out"), "{name} names the file: {e}");
        assert!(!e.contains("panicked"), "{name}: {e}");
    }
}

#[test]
fn mutated_binaries_never_panic() {
    let b = build_all();
    let real = std::fs::read(b.path("c_hello")).unwrap();
    // A deterministic xorshift stream of mutations: flips, truncations, header smashes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..400 {
        let mut m = real.clone();
        match next() % 3 {
            0 => {
                for _ in 0..(1 + next() % 16) {
                    let i = (next() as usize) % m.len();
                    m[i] = next() as u8;
                }
            }
            1 => m.truncate((next() as usize) % m.len()),
            _ => {
                // smash within the headers, where offsets and counts live
                let i = (next() as usize) % 64.min(m.len());
                m[i] = next() as u8;
                let j = 64 + (next() as usize) % 512;
                if j < m.len() {
                    m[j] = next() as u8;
                }
            }
        }
        let _ = ElfReader::parse_bytes(&m, Path::new("m"), true);
    }
}

/// Copies a fixture job to a temporary directory and compiles its program there.
fn built_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new("fixtures/jobs").join(name);
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let d = dir.path();
    if d.join("fib.cpp").exists() {
        cc("g++", "g++", &["-O2", "-o", "a.out", "fib.cpp"], d);
    }
    if d.join("omp.c").exists() {
        cc("gcc", "gcc", &["-O2", "-fopenmp", "-o", "omp", "omp.c"], d);
    }
    dir
}

#[test]
fn needs_cli_on_fixture_jobs_matches_elfdeps() {
    for (job, bin) in [("paper-listing3-fib", "a.out"), ("openmp", "omp")] {
        let dir = built_fixture(job);
        let script = dir.path().join("job.sh");
        let o = pbsimage(&["needs", "--json", script.to_str().unwrap()]);
        assert!(o.status.success(), "{job}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let got: BTreeSet<String> = v["needs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "capability")
            .map(|n| n["value"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got, elfdeps(&dir.path().join(bin), false), "{job}");

        // The table names each need's origin.
        let o = pbsimage(&["needs", script.to_str().unwrap()]);
        let out = stdout(&o);
        assert!(
            out.starts_with("arch: x86_64 (kubernetes.io/arch=amd64)\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!("<- {bin}: DT_NEEDED libc.so.6")),
            "{out}"
        );
        assert!(
            out.contains(&format!("<- {bin}: GLIBC_2.34 from libc.so.6")),
            "{out}"
        );
        assert!(out.contains("<- job.sh: shebang"), "{out}");
    }
}
