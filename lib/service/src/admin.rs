//! `/metrics`, `/healthz` (readiness) and `/livez` on one small HTTP
//! listener per service.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use vigil_bus::async_nats::connection::State as ConnectionState;

use crate::config::AdminConfig;

/// Readiness shared between the service and its health endpoint: ready once
/// the service says its consumers are in place, and only while the NATS
/// connection is up and no consumer of the process is missing on the server
/// (the consume loop is recreating it).
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    client: Arc<OnceLock<vigil_bus::async_nats::Client>>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// From now on readiness also requires this client to be connected.
    pub fn watch_connection(&self, client: vigil_bus::async_nats::Client) {
        // Set once per process: the runner connects once.
        let _ = self.client.set(client);
    }

    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why the service is not ready, or None when it is.
    pub fn not_ready_because(&self) -> Option<String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Some("starting".to_owned());
        }
        if let Some(client) = self.client.get() {
            let state = client.connection_state();
            if state != ConnectionState::Connected {
                return Some(format!("NATS connection {state}"));
            }
        }
        let missing = vigil_bus::consume::missing_consumers();
        if !missing.is_empty() {
            return Some(format!(
                "consumer missing, being recreated: {}",
                missing.join(", ")
            ));
        }
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr} for /metrics and /healthz: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
}

/// The running admin endpoint.
#[derive(Debug)]
pub struct AdminServer {
    pub local_addr: SocketAddr,
    pub health: Health,
}

#[derive(Clone)]
struct AdminState {
    health: Health,
    metrics: PrometheusHandle,
}

impl AdminServer {
    /// Installs the process's Prometheus recorder and serves the endpoints
    /// until `shutdown` fires.
    pub async fn start(
        config: &AdminConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, AdminError> {
        let metrics = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|error| AdminError::Recorder(error.to_string()))?;
        let health = Health::default();
        let state = AdminState {
            health: health.clone(),
            metrics,
        };
        let app = Router::new()
            .route("/metrics", get(render_metrics))
            .route("/healthz", get(health_status))
            .route("/livez", get(live_status))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| AdminError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| AdminError::Bind {
            addr: config.listen,
            source,
        })?;
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(message = "Admin endpoint stopped.", %error);
            }
        });
        tracing::info!(message = "Serving /metrics and /healthz.", addr = %local_addr);
        Ok(Self { local_addr, health })
    }
}

async fn render_metrics(State(state): State<AdminState>) -> String {
    state.metrics.render()
}

async fn health_status(State(state): State<AdminState>) -> (StatusCode, String) {
    match state.health.not_ready_because() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

/// 200 while the process serves: for a liveness probe, which must not
/// restart a service that only waits for NATS or recreates a consumer.
async fn live_status() -> &'static str {
    "ok\n"
}
