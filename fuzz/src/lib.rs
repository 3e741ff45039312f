//! The checks behind Vigil's fuzz targets, one module per decoder that
//! takes outside bytes, and the record builder their seeds and property
//! tests share.
//!
//! Each `check` function feeds one input to the real decoder and panics
//! (the fuzzer's crash) when an invariant breaks: the decoder itself
//! panicked, an error does not say what and where, or a value that decodes
//! does not survive its encoder.

pub mod kernel;
pub mod policy;
pub mod proto;
pub mod recording;
pub mod rules;
