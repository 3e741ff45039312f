#![no_main]
//! Falco rules files through the loader and compiler.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        vigil_fuzz::rules::check_file(text);
    }
});
