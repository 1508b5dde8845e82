//! The ELF reader must return Ok or Err for any bytes, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = pbsimage::elf::ElfReader::parse_bytes(data, std::path::Path::new("fuzz"), true) {
        let _ = info.rpm_requires();
    }
});
