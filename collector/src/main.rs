//! `vigil-collector --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_collector::{SERVICE, run};

/// Reads exec, open and connect events from the kernel (eBPF) and publishes
/// them as event batches on NATS JetStream.
#[derive(Parser)]
#[command(name = "vigil-collector", version)]
struct Args {
    /// TOML configuration file; `VIGIL_COLLECTOR__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}
