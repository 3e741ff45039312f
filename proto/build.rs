//! Compiles proto/vigil/v1/*.proto with protox (pure Rust, no protoc needed),
//! generating messages and the gRPC stubs, and keeps the descriptor set for
//! gRPC server reflection.

use std::error::Error;
use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "vigil/v1/event.proto",
    "vigil/v1/batch.proto",
    "vigil/v1/finding.proto",
    "vigil/v1/action.proto",
    "vigil/v1/responder.proto",
    "vigil/v1/anomaly.proto",
    "vigil/v1/console.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("vigil_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;
    Ok(())
}
