#![no_main]
//! Kernel ring-buffer records through the collector's decoder.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    vigil_fuzz::kernel::check(bytes);
});
