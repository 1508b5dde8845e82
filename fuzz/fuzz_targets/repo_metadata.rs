//! The repository metadata readers (repomd.xml, primary.xml, filelists.xml) must return Ok or
//! Err for any bytes, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use pbsimage::repo::metadata;
    let _ = metadata::Repomd::parse(data);
    let _ = metadata::parse_primary(data, |_| Ok(()));
    let _ = metadata::parse_filelists(data, |_, _| {});
});
