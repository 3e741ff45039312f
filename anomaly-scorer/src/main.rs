//! `vigil-anomaly-scorer --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_anomaly_scorer::{SERVICE, run};

/// Scores windows of container events against per-workload baselines.
#[derive(Parser)]
#[command(name = "vigil-anomaly-scorer", version)]
struct Args {
    /// TOML configuration file; `VIGIL_ANOMALY_SCORER__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}
