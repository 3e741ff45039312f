//! `vigil-detectors --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use vigil_detectors::{Config, SERVICE, run};
use vigil_service::{AdminServer, shutdown, telemetry};

/// Evaluates detection rules over event batches and publishes findings.
#[derive(Parser)]
#[command(name = "vigil-detectors", version)]
struct Args {
    /// TOML configuration file; `VIGIL_DETECTORS__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Exit code 0 after a clean shutdown, 1 with the error chain on stderr
/// (a configuration error lists every bad key).
fn main() -> ExitCode {
    match serve(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-detectors: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve(args: Args) -> anyhow::Result<()> {
    let config: Config = vigil_service::config::load(SERVICE, args.config.as_deref(), env())?;
    telemetry::init_logging(&config.log);
    let shutdown = shutdown::on_signal().context("cannot install signal handlers")?;
    let admin = AdminServer::start(&config.admin, shutdown.clone()).await?;
    run(config, admin.health, shutdown).await?;
    Ok(())
}

/// The process environment, skipping variables that are not UTF-8 (which
/// `std::env::vars` would panic on).
fn env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}
