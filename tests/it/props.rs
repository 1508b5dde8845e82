//! Property tests: arbitrary `-N` and `-v` values always give one well-formed document with
//! a DNS-1123 name and the constant command.

use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use pbsimage::config::KubeKind;
use pbsimage::job::spec::is_dns1035_label;
use pbsimage::job::{JobName, ScriptParser};
use pbsimage::kube::{COMMAND, Object};
use proptest::prelude::*;

use crate::common::*;

/// Quotes a word for the directive tokenizer the way a shell user would.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn job_from(script: &str) -> pbsimage::job::JobSpec {
    let env = fixed_env();
    ScriptParser::new(&env)
        .parse_bytes(Path::new("/jobs/p/job.sh"), script.as_bytes())
        .unwrap()
}

fn single_job(job: &pbsimage::job::JobSpec) -> (Job, String) {
    let m = emit(job, &test_config(), KubeKind::Job);
    let yaml = m.to_yaml().unwrap();
    assert_eq!(m.objects.len(), 1);
    let Object::Job(j) = &m.objects[0] else {
        panic!()
    };
    (*j.clone(), yaml)
}

#[test]
fn dollar_forms_reach_the_job_verbatim() {
    let given = "a $(PBS_JOBNAME) $$ $HOME ${X} $";
    let job = job_from(&format!(
        "#PBS -N demo -v {}\ntrue\n",
        shell_quote(&format!("X='{given}'"))
    ));
    let (j, _) = single_job(&job);
    let env = j.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap()
    };
    let v = value("X");
    assert_eq!(kubelet_expand(&v), given, "{v}");
    assert_eq!(kubelet_expand(&value("PBS_JOBNAME")), "demo");
}

fn check_document(job: &Job, yaml: &str) {
    let docs: Vec<Job> = serde_saphyr::from_multiple(yaml).unwrap();
    assert_eq!(docs.len(), 1, "exactly one document:\n{yaml}");
    assert_eq!(&docs[0], job);
    let name = docs[0].metadata.name.clone().unwrap();
    assert!(is_dns1035_label(&name) && name.len() <= 63, "{name}");
    let c = &docs[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(
        c.command.as_deref().unwrap(),
        COMMAND.map(String::from).as_slice()
    );
}

/// Printable, no white space or control characters: what qsub accepts as a name.
fn name_strategy() -> impl Strategy<Value = String> {
    "[^\\s\\p{Cc}]{1,80}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_job_name_gives_a_valid_manifest(name in name_strategy()) {
        let job = job_from(&format!("#PBS -N {}\ntrue\n", shell_quote(&name)));
        prop_assert_eq!(job.name.as_str(), name.as_str());
        let (j, yaml) = single_job(&job);
        check_document(&j, &yaml);
        let ann = j.metadata.annotations.unwrap();
        prop_assert_eq!(&ann["pbsimage.io/pbs-name"], &name);
    }

    #[test]
    fn distinct_names_give_distinct_labels(a in name_strategy(), b in name_strategy()) {
        prop_assume!(a != b);
        let (a, b) = (JobName::new(&a).unwrap(), JobName::new(&b).unwrap());
        prop_assert_ne!(a.dns_label(63), b.dns_label(63));
        prop_assert_ne!(a.dns_label(52), b.dns_label(52));
    }

    #[test]
    fn any_env_value_reaches_the_container(value in "[^\\p{Cc}]{0,60}") {
        prop_assume!(!(value.contains('\'') && value.contains('"')));
        let listed = if value.contains('\'') {
            format!("\"{value}\"")
        } else if value.contains('"') || value.contains(',') {
            format!("'{value}'")
        } else {
            value.clone()
        };
        let job = job_from(&format!("#PBS -N envtest -v {}\ntrue\n", shell_quote(&format!("MYVAR={listed}"))));
        prop_assert_eq!(job.env.len(), 1);
        prop_assert_eq!(&job.env[0].value, &value);
        let (j, yaml) = single_job(&job);
        check_document(&j, &yaml);
        let c = &j.spec.unwrap().template.spec.unwrap().containers[0];
        let got = c.env.as_ref().unwrap().iter().find(|e| e.name == "MYVAR").unwrap();
        // As the container sees it, after the kubelet's `$(…)` expansion.
        prop_assert_eq!(kubelet_expand(got.value.as_deref().unwrap()), value);
    }
}

/// The fixture repository's real metadata files, decompressed: (repomd, primary, filelists).
fn real_metadata() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static M: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        use std::io::Read as _;
        let dir = crate::common::fixture_repos().join("main/repodata");
        let read_gz = |suffix: &str| {
            let p = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(suffix))
                .unwrap();
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
                .read_to_end(&mut out)
                .unwrap();
            out
        };
        (
            std::fs::read(dir.join("repomd.xml")).unwrap(),
            read_gz("primary.xml.gz"),
            read_gz("filelists.xml.gz"),
        )
    })
}

/// `base` with `edits` applied: (position, byte) overwrites, then a cut at `cut`.
fn mutate(base: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(pos, byte) in edits {
        let i = pos % b.len().max(1);
        if let Some(x) = b.get_mut(i) {
            *x = byte;
        }
    }
    b.truncate(cut % (b.len() + 1));
    b
}

proptest! {
    // A bounded corpus run in CI (cargo-fuzz targets for the same readers are in fuzz/).
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_metadata_never_panics(
        edits in proptest::collection::vec((any::<usize>(), prop_oneof![
            Just(b'<'), Just(b'>'), Just(b'&'), Just(b'"'), Just(0u8), Just(b'/'), any::<u8>()
        ]), 0..8),
        cut in any::<usize>(),
    ) {
        use pbsimage::repo::metadata;
        let (repomd, primary, filelists) = real_metadata();
        let _ = metadata::Repomd::parse(&mutate(repomd, &edits, cut)[..]);
        let mut n = 0usize;
        let _ = metadata::parse_primary(&mutate(primary, &edits, cut)[..], |_| {
            n += 1;
            Ok(())
        });
        prop_assert!(n < 100_000);
        let _ = metadata::parse_filelists(&mutate(filelists, &edits, cut)[..], |_, _| {});
    }
}

/// A small real package of the fixture repository (rpmbuild's), whole.
fn real_rpm() -> &'static Vec<u8> {
    static R: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let p =
            crate::common::find_prefixed(&crate::common::fixture_repos().join("main"), "fx-data-");
        std::fs::read(p).unwrap()
    })
}

proptest! {
    // The RPM reader's bounded corpus run (the cargo-fuzz target is fuzz/rpm_header.rs): byte
    // edits weighted to the lead, signature and header (the first 4 KiB), and cuts.
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_rpms_never_panic(
        edits in proptest::collection::vec((0usize..4096, any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.rpm");
        std::fs::write(&path, mutate(real_rpm(), &edits, cut)).unwrap();
        if let Ok(mut r) = pbsimage::rpm::RpmReader::open(&path) {
            let mut n = 0;
            while let Ok(Some(_)) = r.next_entry() {
                n += 1;
                prop_assert!(n < 100_000, "entries do not end");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// sysusers.d text from a package, and requirement specs from a configuration, are
    /// untrusted: any text gives an answer, never a panic; a parsed spec keeps its name.
    #[test]
    fn sysusers_and_requirement_specs_never_panic(text in "(\\PC|[\"\\t \\n:-])*", spec in "(\\PC|[()<>= ])*") {
        for d in pbsimage::layer::accounts::parse(&text) {
            prop_assert!(matches!(d.kind, 'u' | 'g' | 'm'));
            prop_assert!(!d.name.is_empty());
        }
        if let Some(d) = pbsimage::repo::metadata::Dep::parse_spec(&spec) {
            prop_assert!(!d.name.is_empty());
            prop_assert!(spec.contains(d.name.as_str()));
        }
        let taken: std::collections::BTreeSet<u32> = (200..=999).filter(|i| i % 3 != 0).collect();
        let id = pbsimage::layer::accounts::fallback_id(&text, &taken);
        prop_assert!((200..=999).contains(&id) && !taken.contains(&id));
    }
}
