//! `vigil-responder --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_responder::{SERVICE, run};

/// Contains the pods that findings name (cgroup freeze) and records every action.
#[derive(Parser)]
#[command(name = "vigil-responder", version)]
struct Args {
    /// TOML configuration file; `VIGIL_RESPONDER__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}
