#![no_main]
//! Event batches from the bus through the detectors' default rule pack.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    vigil_fuzz::rules::check_batch(bytes);
});
