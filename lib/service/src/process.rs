//! What every service binary does around its `run`: load and validate the
//! configuration, start logging, the signal handlers and the admin
//! endpoint, run, and map the outcome to an exit code.

use std::{future::Future, path::Path, process::ExitCode};

use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

use crate::{
    AdminServer, Health,
    config::{AdminConfig, LogConfig, Validate, load},
    shutdown, telemetry,
};

/// Exit code for a configuration that does not load (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// A service configuration: the sections `main` needs before `run`.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default + Validate {
    fn log(&self) -> &LogConfig;
    fn admin(&self) -> &AdminConfig;
}

/// Runs `service`: exit 0 after a clean shutdown, 78 when the configuration
/// is invalid (every problem listed on stderr), 1 when `run` fails (the
/// error and its causes on stderr and in the log).
pub fn main<C, F, Fut, E>(service: &str, config_file: Option<&Path>, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, Health, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let config: C = match load(service, config_file, process_env()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil-{service}: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let endpoint = match config.log().otlp.resolve_endpoint(process_env()) {
        Ok(endpoint) => endpoint,
        Err(problem) => {
            eprintln!("vigil-{service}: invalid configuration for {service}: {problem}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            telemetry::init_logging(config.log());
            return fail(service, &error);
        }
    };
    // The span exporter's gRPC channel lives on this runtime.
    let telemetry = {
        let _entered = runtime.enter();
        telemetry::init(service, config.log(), endpoint.as_deref())
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => return fail(service, &error),
    };
    let code = runtime.block_on(async move {
        let shutdown = match shutdown::on_signal() {
            Ok(token) => token,
            Err(error) => return fail(service, &error),
        };
        let admin = match AdminServer::start(config.admin(), shutdown.clone()).await {
            Ok(admin) => admin,
            Err(error) => return fail(service, &error),
        };
        match run(config, admin.health, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(service, &error),
        }
    });
    // Off the runtime's threads, which keep driving the exporter's channel.
    telemetry.shutdown();
    code
}

fn fail(service: &str, error: &dyn std::error::Error) -> ExitCode {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(message = "Service failed.", service, error = %chain);
    eprintln!("vigil-{service}: {chain}");
    ExitCode::FAILURE
}

/// The process environment, skipping variables that are not UTF-8 (which
/// `std::env::vars` would panic on).
fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}
