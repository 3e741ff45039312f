//! Compiles proto/vigil/v1/*.proto with protox (pure Rust, no protoc needed).

use std::error::Error;

const PROTOS: &[&str] = &[
    "vigil/v1/event.proto",
    "vigil/v1/batch.proto",
    "vigil/v1/finding.proto",
    "vigil/v1/action.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
