//! `vigil-console`: the gateway between Vigil's streams and the people on call.
//!
//! ```text
//! VIGIL_FINDINGS ─┐ ordered consumers, from the first message (replay, then live)
//! VIGIL_ACTIONS  ─┼──▶ decode ──▶ store (findings → incidents, containment, scores)
//! VIGIL_SCORES   ─┘                  └──▶ broadcast ──▶ GET /api/stream (SSE) ──▶ browsers
//! KV VIGIL_INCIDENTS ◀── workflow steps (CAS) ──▶ watch ──▶ every console, live
//! browsers ──POST /api/incidents/{id}/{step}──▶ KV or responder gRPC ──▶ audit on vigil.audit.<step>
//! ```
//!
//! The console only reads the streams (no durable consumer, nothing to ack);
//! what it writes is incident state, with compare-and-set, and audit records.

mod api;
mod app;
pub mod auth;
mod config;
#[cfg(test)]
mod contract;
mod export;
mod feed;
mod metrics;
mod proposal;
mod sessions;
mod store;
mod throttle;
mod views;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    sync::{broadcast, oneshot},
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;
use vigil_bus::{ConnectError, topology};
use vigil_proto::v1::responder_client::ResponderClient;
use vigil_service::{
    Health,
    runner::{self, Connected, Wiring},
};

pub use config::{Config, HttpConfig, LoginConfig, ResponderConfig, UserConfig};

use app::App;
use store::Store;

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "console";

/// Messages a slow browser may fall behind before it is told to re-fetch.
const LIVE_BUFFER: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("cannot open the key-value bucket {bucket}: {reason}")]
    Bucket {
        bucket: &'static str,
        reason: String,
    },
    #[error("responder.grpc_url {url:?}: {reason}")]
    Responder { url: String, reason: String },
    #[error("cannot listen on {addr} for browsers: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started console.
pub struct Console {
    /// Where browsers reach it.
    pub addr: SocketAddr,
    running: JoinHandle<Result<(), Error>>,
}

impl Console {
    /// Waits until it has stopped (after shutdown).
    pub async fn stopped(self) {
        match self.running.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(message = "Console failed.", %error),
            Err(error) => tracing::error!(message = "Console task failed.", %error),
        }
    }
}

/// Runs until `shutdown` fires.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    serve(config, health, shutdown, None).await
}

/// [`run`] in a task; returns once it listens for browsers.
pub async fn start(
    config: Config,
    health: Health,
    shutdown: CancellationToken,
) -> Result<Console, Error> {
    let url = config.nats.url.clone();
    let (listening, addr) = oneshot::channel();
    let running = tokio::spawn(serve(config, health, shutdown, Some(listening)));
    match addr.await {
        Ok(addr) => Ok(Console { addr, running }),
        // It stopped before listening: failed, or shut down first.
        Err(_) => match running.await {
            Ok(Err(error)) => Err(error),
            _ => Err(ConnectError::Cancelled { url }.into()),
        },
    }
}

async fn serve(
    config: Config,
    health: Health,
    shutdown: CancellationToken,
    listening: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), Error> {
    metrics::describe();
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[
            &topology::FINDINGS,
            &topology::ACTIONS,
            &topology::SCORES,
            &topology::AUDIT,
        ],
    };
    runner::serve(wiring, health, shutdown, |connected| {
        serve_browsers(&config, connected, listening)
    })
    .await
}

/// Follows the streams and serves browsers until shutdown.
async fn serve_browsers(
    config: &Config,
    connected: Connected,
    listening: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), Error> {
    let (bus, replicas, shutdown) = (&connected.bus, connected.replicas, &connected.shutdown);
    let kv = topology::ensure_bucket(&bus.jetstream, &topology::INCIDENTS_BUCKET, replicas).await?;
    let app = Arc::new(App {
        store: std::sync::RwLock::new(Store::new(config.max_findings, config.max_incidents)),
        live: broadcast::channel(LIVE_BUFFER).0,
        auth: auth::Auth::new(config.users.clone()),
        sessions: sessions::Sessions::open(
            &bus.jetstream,
            Duration::from_secs(config.http.session_ttl_s),
            replicas,
        )
        .await?,
        throttle: throttle::LoginThrottle::new(&config.http.login),
        js: bus.jetstream.clone(),
        kv,
        publisher: connected.publisher(),
        responder: responder_client(&config.responder)?,
        secure_cookies: config.http.secure_cookies,
        user_names: config.users.iter().map(|u| u.name.clone()).collect(),
        shutdown: shutdown.clone(),
    });

    let mut tasks = JoinSet::new();
    follow(
        &mut tasks,
        &app,
        &topology::FINDINGS,
        shutdown,
        feed::on_finding,
    );
    follow(
        &mut tasks,
        &app,
        &topology::ACTIONS,
        shutdown,
        feed::on_action,
    );
    follow(
        &mut tasks,
        &app,
        &topology::SCORES,
        shutdown,
        feed::on_score,
    );
    tasks.spawn(feed::watch_incidents(app.clone(), shutdown.clone()));
    tasks.spawn(feed::count_event_batches(app.clone(), shutdown.clone()));

    if !config.http.web_dir.join("index.html").is_file() {
        tracing::warn!(message = "No built front end; the API works, pages do not (run npm run build in console/web).", web_dir = %config.http.web_dir.display());
    }
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.http.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: config.http.listen,
        source,
    })?;
    let router = api::router(app, &config.http.web_dir);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        // The peer's address is what logins are rate-limited by.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(message = "Console HTTP server stopped.", %error);
        }
    });
    connected.ready();
    tracing::info!(message = "Console ready.", url = %format!("http://{addr}/"), users = config.users.len());
    if let Some(listening) = listening {
        // Nobody waiting for the address is not a reason to stop.
        let _ = listening.send(addr);
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn follow(
    tasks: &mut JoinSet<()>,
    app: &Arc<App>,
    spec: &'static topology::StreamSpec,
    shutdown: &CancellationToken,
    handle: fn(&App, &[u8], &str, u64),
) {
    let app = app.clone();
    let js = app.js.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        feed::follow(js, spec, shutdown, |payload, subject, sequence| {
            handle(&app, payload, subject, sequence)
        })
        .await;
    });
}

fn responder_client(
    config: &ResponderConfig,
) -> Result<ResponderClient<tonic::transport::Channel>, Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(config.grpc_url.clone())
        .map_err(|error| Error::Responder {
            url: config.grpc_url.clone(),
            reason: error.to_string(),
        })?
        .timeout(config.timeout())
        .connect_timeout(config.timeout());
    // Mutual TLS: the responder knows the console by its certificate.
    let endpoint = match &config.tls {
        Some(tls) => tls
            .client(config.tls_server_name.as_deref())
            .map_err(|error| error.to_string())
            .and_then(|tls| endpoint.tls_config(tls).map_err(|error| error.to_string()))
            .map_err(|reason| Error::Responder {
                url: config.grpc_url.clone(),
                reason,
            })?,
        None => endpoint,
    };
    // Lazy: the console serves reads while the responder is away.
    Ok(ResponderClient::new(endpoint.connect_lazy()))
}
