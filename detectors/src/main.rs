//! `vigil-detectors --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_detectors::{SERVICE, run};

/// Evaluates detection rules over event batches and publishes findings.
#[derive(Parser)]
#[command(name = "vigil-detectors", version)]
struct Args {
    /// TOML configuration file; `VIGIL_DETECTORS__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}
