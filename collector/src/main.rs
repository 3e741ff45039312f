//! `vigil-collector --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use vigil_collector::{Config, SERVICE, run};
use vigil_service::{AdminServer, shutdown, telemetry};

/// Exit code for a configuration that does not load (sysexits EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

/// Reads exec, open and connect events from the kernel (eBPF) and publishes
/// them as event batches on NATS JetStream.
#[derive(Parser)]
#[command(name = "vigil-collector", version)]
struct Args {
    /// TOML configuration file; `VIGIL_COLLECTOR__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config: Config = match vigil_service::config::load(SERVICE, args.config.as_deref(), env()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil-collector: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init_logging(&config.log);
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(
                message = "The collector failed.",
                error = format!("{error:#}")
            );
            eprintln!("vigil-collector: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
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
