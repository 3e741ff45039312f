//! `vigil-gen-certs`: a CA and a certificate per service for Vigil's gRPC
//! mutual TLS, for tests and the demo (`scripts/gen-certs` runs it).
//!
//! ```text
//! vigil-gen-certs --out target/certs            # the default set
//! vigil-gen-certs --out dir console collector   # chosen names
//! ```
//!
//! Writes `ca.pem`, and `<name>.pem` / `<name>-key.pem` with identity
//! `spiffe://vigil/<name>`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vigil_grpc_auth::certs::Authority;

/// Services and tools that speak gRPC: the two servers, the console (the
/// operator) and the read-only CLIs.
const DEFAULT_NAMES: &[&str] = &[
    "responder",
    "anomaly-scorer",
    "console",
    "responder-cli",
    "scorer-cli",
];

#[derive(Parser)]
#[command(name = "vigil-gen-certs", version, about)]
struct Args {
    /// Directory to write into (created).
    #[arg(long, default_value = "target/certs")]
    out: PathBuf,
    /// Names to issue certificates for (default: the services and CLIs).
    names: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let names: Vec<&str> = if args.names.is_empty() {
        DEFAULT_NAMES.to_vec()
    } else {
        args.names.iter().map(String::as_str).collect()
    };
    let authority = Authority::new("Vigil gRPC CA").context("cannot make the CA")?;
    authority
        .write_all(&args.out, &names)
        .with_context(|| format!("cannot write certificates to {}", args.out.display()))?;
    println!(
        "wrote {}/ca.pem and certificates for {}",
        args.out.display(),
        names.join(", ")
    );
    Ok(())
}
