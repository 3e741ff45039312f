//! `/metrics` and `/healthz` on one small HTTP listener per service.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::config::AdminConfig;

/// Readiness shared between the service and its health endpoint: ready once
/// connected to NATS with its consumers in place.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
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

async fn health_status(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}
