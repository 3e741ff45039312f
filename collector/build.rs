//! Compiles the BPF programs (C, CO-RE) with clang and generates their
//! libbpf-rs skeleton. The object is kept in OUT_DIR so the ABI tests can read
//! its BTF.

use std::{env, error::Error, path::PathBuf};

use libbpf_cargo::SkeletonBuilder;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?);
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?);
    let bpf = manifest.join("bpf");
    let include = bpf.join("include");
    SkeletonBuilder::new()
        .source(bpf.join("vigil.bpf.c"))
        .obj(out.join("vigil.bpf.o"))
        .clang_args([
            "-I".as_ref(),
            include.as_os_str(),
            "-Wall".as_ref(),
            "-Werror".as_ref(),
        ])
        .build_and_generate(out.join("vigil.skel.rs"))?;
    println!("cargo:rerun-if-changed={}", bpf.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("vigil_event.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        include.join("vigil_kernel.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        bpf.join("vigil.bpf.c").display()
    );
    Ok(())
}
