#![no_main]
//! Response policy files through the responder's policy loader.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        vigil_fuzz::policy::check(text);
    }
});
