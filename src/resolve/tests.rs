//! The resolver's provider choice and closure, table-driven over small in-memory repositories.
//! (The same rules against dnf itself, on rpmbuild-made repositories, are in
//! `tests/it/repo/dnf.rs`.)

use std::collections::BTreeSet;

use super::{ResolveError, Resolver, dep, soname_family};
use crate::digest::Checksum;
use crate::elf::{Arch, Capability};
use crate::needs::{Need, NeedKind, Needs};
use crate::repo::evr::{Cmp, Evr};
use crate::repo::index::RepoIndex;
use crate::repo::metadata::{Dep, Package, RepomdRecord};
use crate::repo::{Repo, RepoSource};

/// `name-version.arch` with these provides (besides its own name), requires, obsoletes and
/// source RPM.
struct P {
    nva: &'static str,
    provides: &'static [&'static str],
    requires: &'static [&'static str],
    obsoletes: &'static [&'static str],
    srpm: &'static str,
}

const fn p(nva: &'static str) -> P {
    P {
        nva,
        provides: &[],
        requires: &[],
        obsoletes: &[],
        srpm: "",
    }
}

fn package(spec: &P, n: usize) -> Package {
    let (name_version, arch) = spec.nva.rsplit_once('.').expect("name-version.arch");
    let (name, version) = name_version.rsplit_once('-').expect("name-version");
    let evr = Evr::new(None, version, Some("1"));
    let mut provides = vec![Dep {
        name: name.to_owned(),
        cmp: Some(Cmp::Eq),
        evr: Some(evr.clone()),
        pre: false,
    }];
    provides.extend(spec.provides.iter().map(|d| dep(d)));
    Package {
        name: name.to_owned(),
        arch: arch.to_owned(),
        evr,
        checksum: Checksum::new("sha256", &format!("{n:064x}")).expect("valid"),
        href: format!("{}.rpm", spec.nva),
        base: None,
        size: 1000,
        installed_size: 2000,
        license: None,
        sourcerpm: (!spec.srpm.is_empty()).then(|| spec.srpm.to_owned()),
        provides,
        requires: spec.requires.iter().map(|d| dep(d)).collect(),
        obsoletes: spec.obsoletes.iter().map(|d| dep(d)).collect(),
        ..Package::empty()
    }
}

/// A repository `id` of `priority` (`order` its place in the configuration).
fn repo(id: &str, priority: u32, order: usize, packages: &[P]) -> Repo {
    let packages: Vec<Package> = packages
        .iter()
        .enumerate()
        .map(|(i, s)| package(s, order * 1000 + i))
        .collect();
    let record = RepomdRecord {
        kind: "primary".into(),
        href: "repodata/primary.xml.gz".into(),
        base: None,
        checksum: Checksum::new("sha256", &"0".repeat(64)).expect("valid"),
        size: None,
        open_size: None,
    };
    let index = RepoIndex::build(
        id.into(),
        None,
        "0".repeat(64),
        format!("file:///{id}"),
        record,
        None,
        None,
        &packages,
    )
    .expect("an index of valid packages");
    Repo {
        source: RepoSource {
            id: id.into(),
            baseurls: vec![format!("file:///{id}")],
            mirrorlist: None,
            priority,
            order,
            gpgcheck: false,
            gpgkey: None,
            sslcacert: None,
            sslverify: true,
            modules: Vec::new(),
        },
        index,
        hidden: BTreeSet::new(),
    }
}

fn needs(caps: &[&str]) -> Needs {
    Needs {
        arch: Arch::X86_64,
        kube_arch: "amd64",
        package_arches: vec!["x86_64", "noarch"],
        static_binary: false,
        needs: caps
            .iter()
            .map(|c| Need {
                kind: NeedKind::Capability(Capability::new(c).expect("a capability")),
                origins: vec!["a.out".into()],
                optional: false,
            })
            .collect(),
        bundled: Vec::new(),
        host_provided: Vec::new(),
        notes: Vec::new(),
        modules: Vec::new(),
        module_commands: Vec::new(),
    }
}

const ARCHES: [&str; 3] = ["x86_64", "i686", "noarch"];

/// The NEVRAs chosen for `caps` (and `base`), sorted.
fn chosen(repos: &[Repo], caps: &[&str], base: &[&str]) -> Result<Vec<String>, ResolveError> {
    let base: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    let res = Resolver::new(repos, &ARCHES, false).resolve(&needs(caps), &base)?;
    let mut out: Vec<String> = res.packages.iter().map(|c| c.nevra.clone()).collect();
    out.sort();
    Ok(out)
}

/// (case, repositories, needs, the packages dnf installs)
type Case = (
    &'static str,
    Vec<Repo>,
    &'static [&'static str],
    &'static [&'static str],
);

#[test]
fn provider_choice_follows_dnf() {
    let cases: Vec<Case> = vec![
        (
            "the newest version of a name",
            vec![repo(
                "r",
                99,
                0,
                &[
                    P {
                        provides: &["libfoo.so.1()(64bit)"],
                        ..p("foo-1.0.x86_64")
                    },
                    P {
                        provides: &["libfoo.so.1()(64bit)"],
                        ..p("foo-2.0.x86_64")
                    },
                ],
            )],
            &["libfoo.so.1()(64bit)"],
            &["foo-2.0-1.x86_64"],
        ),
        (
            "a better repository priority beats a newer version",
            vec![
                repo(
                    "old",
                    10,
                    0,
                    &[P {
                        provides: &["cap"],
                        ..p("foo-1.0.x86_64")
                    }],
                ),
                repo(
                    "new",
                    99,
                    1,
                    &[P {
                        provides: &["cap"],
                        ..p("foo-2.0.x86_64")
                    }],
                ),
            ],
            &["cap"],
            &["foo-1.0-1.x86_64"],
        ),
        (
            "the exact architecture before i686",
            vec![repo("r", 99, 0, &[p("foo-1.0.i686"), p("foo-1.0.x86_64")])],
            &["foo"],
            &["foo-1.0-1.x86_64"],
        ),
        (
            "different names: ties broken by name in byte order",
            vec![repo(
                "r",
                99,
                0,
                &[
                    P {
                        provides: &["cap"],
                        ..p("zlib-impl-1.0.x86_64")
                    },
                    P {
                        provides: &["cap"],
                        ..p("blas-ref-1.0.x86_64")
                    },
                ],
            )],
            &["cap"],
            &["blas-ref-1.0-1.x86_64"],
        ),
        (
            // dnf (libsolv) has no preference for the requirer's source package: the names
            // decide (tests/it/repo/dnf.rs, each_policy_rule_matches_dnf_on_rpmbuild_fixtures).
            "a requirement ignores its requirer's source package",
            vec![repo(
                "r",
                99,
                0,
                &[
                    P {
                        requires: &["libcap"],
                        srpm: "app-1.0-1.src.rpm",
                        ..p("app-1.0.x86_64")
                    },
                    P {
                        provides: &["libcap"],
                        srpm: "app-1.0-1.src.rpm",
                        ..p("z-app-libs-1.0.x86_64")
                    },
                    P {
                        provides: &["libcap"],
                        srpm: "other-1.0-1.src.rpm",
                        ..p("a-other-1.0.x86_64")
                    },
                ],
            )],
            &["app"],
            &["a-other-1.0-1.x86_64", "app-1.0-1.x86_64"],
        ),
    ];
    check(cases);
}

#[test]
fn obsoletes_and_the_closure_follow_dnf() {
    let cases: Vec<Case> = vec![
        (
            "an obsoleted provider is passed over",
            vec![repo(
                "r",
                99,
                0,
                &[
                    P {
                        provides: &["cap"],
                        ..p("a-old-1.0.x86_64")
                    },
                    P {
                        provides: &["cap"],
                        obsoletes: &["a-old"],
                        ..p("b-new-1.0.x86_64")
                    },
                ],
            )],
            &["cap"],
            &["b-new-1.0-1.x86_64"],
        ),
        (
            "requirements are closed over",
            vec![repo(
                "r",
                99,
                0,
                &[
                    P {
                        requires: &["libx.so.1()(64bit)"],
                        ..p("app-1.0.x86_64")
                    },
                    P {
                        provides: &["libx.so.1()(64bit)"],
                        requires: &["liby"],
                        ..p("libx-1.0.x86_64")
                    },
                    p("liby-1.0.noarch"),
                ],
            )],
            &["app"],
            &["app-1.0-1.x86_64", "libx-1.0-1.x86_64", "liby-1.0-1.noarch"],
        ),
    ];
    check(cases);
}

/// Each case's packages equal what dnf installs.
fn check(cases: Vec<Case>) {
    for (case, repos, caps, want) in cases {
        let got = chosen(&repos, caps, &[]).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn why_chains_and_base_marks() {
    let repos = [repo(
        "r",
        99,
        0,
        &[
            P {
                requires: &["libx"],
                ..p("app-1.0.x86_64")
            },
            P {
                requires: &["liby"],
                ..p("libx-1.0.x86_64")
            },
            p("liby-1.0.noarch"),
            p("bash-5.0.x86_64"),
        ],
    )];
    let base = vec!["bash".to_string()];
    let res = Resolver::new(&repos, &ARCHES, false)
        .resolve(&needs(&["app"]), &base)
        .expect("resolves");
    let get = |n: &str| res.packages.iter().find(|c| c.name == n).expect(n);
    assert!(get("bash").base, "base packages are marked");
    assert!(!get("app").base);
    let why = &get("liby").why;
    assert!(
        why.contains("libx-1.0-1") && why.contains("app-1.0-1"),
        "{why}"
    );
    assert!(get("bash").why.contains("[base]"), "{}", get("bash").why);
}

#[test]
fn unsatisfied_needs_name_the_capability() {
    let repos = [repo("r", 99, 0, &[p("foo-1.0.x86_64")])];
    let err = chosen(&repos, &["libmissing.so.3()(64bit)"], &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ResolveError::Unsatisfied { .. }), "{msg}");
    assert!(msg.contains("libmissing.so.3()(64bit)"), "{msg}");
}

#[test]
fn only_shared_object_names_are_soname_families() {
    assert_eq!(
        soname_family("libc.so.6(GLIBC_2.34)(64bit)"),
        Some(("libc.so.6", "GLIBC_2.34", "(64bit)"))
    );
    assert_eq!(
        soname_family("libc.so.6()(64bit)"),
        Some(("libc.so.6", "", "(64bit)"))
    );
    assert_eq!(soname_family("libc.so.6"), Some(("libc.so.6", "", "")));
    assert_eq!(
        soname_family("ld-linux.so.2(GLIBC_2.3)"),
        Some(("ld-linux.so.2", "GLIBC_2.3", ""))
    );
    assert_eq!(
        soname_family("libtcl8.6.so()(64bit)"),
        Some(("libtcl8.6.so", "", "(64bit)"))
    );
    for not in [
        "mvn(org.sonatype.plexus:plexus-cipher)",
        "perl(Net::SSLeay)",
        "python3.9dist(requests.sorted)",
        "libfoo.sort",
        "config(libsomething.so.1)",
    ] {
        assert_eq!(soname_family(not), None, "{not}");
    }
}
