//! Lock files: revisions recorded, drift detected.

use super::*;
use crate::common::*;

#[test]
fn lock_file_records_revisions_and_detects_drift() {
    let fx = fixture_repos();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        repo_config(
            &[("main", file_url(&fx.join("main")))],
            cache.path(),
            "[base]\npackages = [\"bash\"]\n",
        ),
    )
    .unwrap();
    let job = dir.path().join("job.sh");
    std::fs::write(&job, "#!/bin/bash\n#PBS -N locked\npython3 run.py\n").unwrap();
    let lock = dir.path().join("pbsimage.lock");
    let o = pbsimage(&[
        "--config",
        cfg.to_str().unwrap(),
        "resolve",
        "--explain",
        "--lock",
        lock.to_str().unwrap(),
        job.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("python3-3.9.18-1.fx.x86_64"), "{out}");
    assert!(
        out.contains("why: python3-3.9.18-1.fx ← command `python3` ← job.sh line 3"),
        "{out}"
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    let l: pbsimage::resolve::lock::Lock =
        toml::from_str(text.trim_start_matches(|c| c != '\n')).unwrap();
    assert_eq!(l.repos[0].id, "main");
    assert!(
        l.packages
            .iter()
            .any(|p| p.nevra.starts_with("bash-") && p.base)
    );
    assert!(l.drift(&l).is_empty());
    let mut other = l.clone();
    other.repos[0].repomd_sha256 = "f".repeat(64);
    other.packages.pop();
    assert_eq!(l.drift(&other).len(), 2);
}
