//! The RPM reader must return Ok or Err for any file, never panic, and reading a package's
//! entries must end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("p.rpm");
    std::fs::write(&path, data).expect("written");
    if let Ok(mut r) = pbsimage::rpm::RpmReader::open(&path) {
        while let Ok(Some(_)) = r.next_entry() {}
    }
});
