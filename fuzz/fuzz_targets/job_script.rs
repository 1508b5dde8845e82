//! The job-script parser must return Ok or Err for any bytes, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let env = std::collections::BTreeMap::<String, String>::new();
    let _ = pbsimage::job::ScriptParser::new(&env).parse_bytes(std::path::Path::new("job.sh"), data);
});
