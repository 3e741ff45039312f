#![no_main]
//! Recording files through the collector's reader.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    vigil_fuzz::recording::check(bytes);
});
