//! Resolution against dnf as the oracle, on the fixture repositories.

use super::*;
use crate::common::*;
use pbsimage::elf::Arch;
use pbsimage::hint::Hint;
use pbsimage::ops::Options;
use pbsimage::ops::resolve::{load_repos, resolve};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

#[test]
fn resolution_matches_dnf_on_fixture_cases() {
    let fx = fixture_repos();
    let main = fx.join("main");
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("main", file_url(&main))],
        cache.path(),
        "",
        Options::default(),
    );
    for (caps, arch) in [
        (vec!["app-rich"], Arch::X86_64),
        (vec!["oldtool"], Arch::X86_64),
        (vec!["blas-user"], Arch::X86_64),
        (vec!["plugin-user"], Arch::X86_64),
        (vec!["libfoo.so.1()(64bit)"], Arch::X86_64),
        (
            vec!["libgfortran.so.5()(64bit)", "libgomp.so.1()(64bit)"],
            Arch::X86_64,
        ),
        (vec!["libc.so.6", "libc.so.6(GLIBC_2.34)"], Arch::I686),
        (
            vec![
                "filesystem",
                "setup",
                "glibc",
                "bash",
                "coreutils",
                "libstdc++.so.6()(64bit)",
            ],
            Arch::X86_64,
        ),
    ] {
        let got = ours(&ctx, &needs_of(&caps, arch));
        let want = dnf(&[("main", &main)], &caps);
        assert_eq!(got, want, "needs {caps:?}");
    }
}

#[test]
fn soname_versions_come_from_one_package_and_old_glibc_is_explained() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let ctx = context(
        &[("old", file_url(&fx.join("old")))],
        cache.path(),
        "",
        Options::default(),
    );
    let mut repos = load_repos(&ctx, &[]).unwrap();
    let needs = needs_of(
        &[
            "libc.so.6()(64bit)",
            "libc.so.6(GLIBC_2.17)(64bit)",
            "libc.so.6(GLIBC_2.34)(64bit)",
        ],
        Arch::X86_64,
    );
    let err = resolve(&ctx, &mut repos, &needs).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("test needs GLIBC_2.34 from libc.so.6 but the newest glibc in repos old provides up to GLIBC_2.17 (glibc-2.17-326.el7.x86_64)"),
        "{msg}"
    );
    // Unresolvable: named, with the nearest candidates as a hint.
    let needs = needs_of(&["libfoo.so.3()(64bit)"], Arch::X86_64);
    let ctx = context(
        &[("main", file_url(&fx.join("main")))],
        cache.path(),
        "",
        Options::default(),
    );
    let mut repos = load_repos(&ctx, &[]).unwrap();
    let err = resolve(&ctx, &mut repos, &needs).unwrap_err();
    assert!(
        err.to_string().contains(
            "`libfoo.so.3()(64bit)` is needed by test; no package in repos main provides it"
        ),
        "{err}"
    );
    let hint = err.hint().unwrap();
    assert!(
        hint.contains("libfoo.so.1 in libfoo-1.2") && hint.contains("libfoo.so.2 in libfoo-2.0"),
        "{hint}"
    );
}

#[test]
fn modules_follow_default_and_enabled_streams() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let url = file_url(&fx.join("modular"));
    let node = needs_of(&["nodejs"], Arch::X86_64);
    let defaults = context(
        &[("modular", url.clone())],
        cache.path(),
        "",
        Options::default(),
    );
    assert_eq!(
        ours(&defaults, &node),
        BTreeSet::from(["nodejs-18.19.0-1.module+fx.18.x86_64".to_string()])
    );
    let ctx = context(
        &[],
        cache.path(),
        &format!("[[repo]]\nid = \"modular\"\nbaseurl = \"{url}\"\nmodules = [\"nodejs:20\"]\n"),
        Options::default(),
    );
    assert_eq!(
        ours(&ctx, &node),
        BTreeSet::from(["nodejs-20.10.0-1.module+fx.20.x86_64".to_string()])
    );
    // Warm: what each set of streams hides is remembered apart, and read back the same.
    assert_eq!(
        ours(&ctx, &node),
        BTreeSet::from(["nodejs-20.10.0-1.module+fx.20.x86_64".to_string()])
    );
    assert_eq!(
        ours(&defaults, &node),
        BTreeSet::from(["nodejs-18.19.0-1.module+fx.18.x86_64".to_string()])
    );
    let remembered = std::fs::read_dir(cache.path().join("repo-index-v2/modular"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".hidden-v1-")
        })
        .count();
    assert_eq!(remembered, 2, "one per set of enabled streams");
}

#[test]
fn priorities_pick_the_preferred_repository() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    // Same packages in two repos: the lower priority number wins, then config order.
    let extra = format!(
        "[[repo]]\nid = \"second\"\nbaseurl = \"{}\"\npriority = 5\n[[repo]]\nid = \"first\"\nbaseurl = \"{}\"\npriority = 50\n",
        file_url(&fx.join("main-xz")),
        file_url(&fx.join("main"))
    );
    let ctx = context(&[], cache.path(), &extra, Options::default());
    let mut repos = load_repos(&ctx, &[]).unwrap();
    let res = resolve(&ctx, &mut repos, &needs_of(&["bash"], Arch::X86_64)).unwrap();
    assert!(
        res.packages.iter().all(|p| p.repo == "second"),
        "{:?}",
        res.packages
    );
}

/// The committed pipeline.toml, unchanged, resolves the paper's C++ job once
/// `scripts/fixture-repos fixtures/repo` has run (what `scripts/demo` does).
#[test]
fn committed_config_resolves_the_paper_job() {
    let fx = fixture_repos();
    let d = tempfile::tempdir().unwrap();
    std::fs::copy("pipeline.toml", d.path().join("pipeline.toml")).unwrap();
    std::fs::create_dir_all(d.path().join("fixtures/repo")).unwrap();
    std::os::unix::fs::symlink(fx.join("main"), d.path().join("fixtures/repo/main")).unwrap();
    let job = d.path().join("job");
    std::fs::create_dir(&job).unwrap();
    for f in ["job.sh", "fib.cpp"] {
        std::fs::copy(
            Path::new("fixtures/jobs/paper-listing3-fib").join(f),
            job.join(f),
        )
        .unwrap();
    }
    require("g++", "g++");
    run_ok(
        Command::new("g++")
            .args(["-O2", "-o", "a.out", "fib.cpp"])
            .current_dir(&job),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_pbsimage"))
        .args(["resolve", "--json", "job/job.sh"])
        .current_dir(d.path())
        .env_remove("PBSIMAGE_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: BTreeSet<&str> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "bash",
            "coreutils",
            "filesystem",
            "glibc",
            "libacl",
            "libattr",
            "libgcc",
            "libselinux",
            "libstdc++",
            "ncurses-libs",
            "pcre2",
            "setup"
        ])
    );
    assert!(
        d.path().join("cache/repo-index-v2/fixture").is_dir(),
        "cache/ beside pipeline.toml"
    );
}

/// One rpmbuild-made package per rule of dnf's policy (scripts/fixture-repos: OUT/policy and
/// OUT/policy-b), resolved by pbsimage and by python3-dnf in the same run, weak deps off and
/// on, both repository orders.
#[test]
fn each_policy_rule_matches_dnf_on_rpmbuild_fixtures() {
    use super::realdata::{disagreements, dnf_answers, our_answers};
    let fx = fixture_repos();
    let cases: &[&[&str]] = &[
        &["sg-app"],
        &["bt-app"],
        &["ob-old"],
        &["cf-single", "cmd:cf-tool"],
        &["cmd:cf-tool"],
        &["wk-app"],
        &["sp-base"],
        &["sr-app"],
        &["/usr/bin/pk-sh"],
    ];
    let a = ("policy", file_url(&fx.join("policy")));
    let b = ("policy-b", file_url(&fx.join("policy-b")));
    for repos in [vec![a.clone(), b.clone()], vec![b, a]] {
        for weak in [false, true] {
            let dnf = dnf_answers(&repos, weak, cases);
            let ours = our_answers(&repos, weak, cases);
            let bad = disagreements(&format!("weak={weak}"), cases, &ours, &dnf);
            assert!(bad.is_empty(), "{}", bad.join("\n"));
            // The fixtures do force each rule: dnf's own answers.
            let has =
                |case: usize, nevra: &str| dnf[case].as_ref().is_ok_and(|s| s.contains(nevra));
            assert!(
                has(0, "sg-lang-minimal-1.0-1.fx.noarch"),
                "Suggests: {:?}",
                dnf[0]
            );
            assert!(
                has(1, "bt-lib-1.0-1.fx.noarch"),
                "an older version: {:?}",
                dnf[1]
            );
            assert!(has(2, "ob-new-1.0-1.fx.noarch"), "obsoletes: {:?}", dnf[2]);
            assert!(has(3, "cf-single-1.0-1.fx.noarch") && !has(3, "cf-full-1.0-1.fx.noarch"));
            assert_eq!(has(5, "wk-good-1.0-1.fx.noarch"), weak, "{:?}", dnf[5]);
            assert!(!has(5, "wk-broken-1.0-1.fx.noarch"), "{:?}", dnf[5]);
            assert_eq!(has(6, "sp-addon-1.0-1.fx.noarch"), weak, "{:?}", dnf[6]);
            assert!(has(8, "pk-ksh-1.0-1.fx.noarch"), "{:?}", dnf[8]);
        }
    }
}
