//! `vigil-forwarder --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_forwarder::{SERVICE, run};

/// Forwards findings as Falco JSON to Falcosidekick, webhooks and syslog.
#[derive(Parser)]
#[command(name = "vigil-forwarder", version)]
struct Args {
    /// TOML configuration file; `VIGIL_FORWARDER__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}
