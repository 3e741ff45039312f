#![no_main]
//! Every protobuf payload a service consumes; the first byte picks the type.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    vigil_fuzz::proto::check(bytes);
});
