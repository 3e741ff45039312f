//! `vigil-detectors`: evaluates detection rules over the collectors' event
//! batches and publishes a finding for every match.
//!
//! ```text
//! VIGIL_EVENTS ──(consumer "detectors")──▶ decode EventBatch ──▶ Engine
//!        ──▶ Finding per (event, rule) ──▶ vigil.findings.<priority>.<namespace> ──▶ ack
//! ```
//!
//! Finding ids are derived from the batch and the event's position in it,
//! so a redelivered batch republishes the same ids and JetStream stores
//! each finding once.

mod config;
pub mod engine;
pub mod fields;
pub mod finding;
pub mod metrics;
pub mod output;
mod publish;
pub mod rules;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectError, ConnectOptions, Delivery, Disposition, Publisher, codec, connect::connect,
    consume, topology,
};
use vigil_proto::v1::EventBatch;
use vigil_service::{Health, clock};

pub use config::{Config, PriorityError};
use engine::Engine;

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "detectors";

/// Back-off before a batch whose findings could not be published is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] PriorityError),
    #[error("built-in rule does not load: {0}")]
    Rule(#[from] output::TemplateError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
}

/// Runs until `shutdown` fires: consume batches, evaluate, publish, ack.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let engine = Engine::new(rules::builtin(&config.rule_settings()?)?);
    let options = ConnectOptions {
        url: config.nats.url.clone(),
        client_name: format!("vigil-detectors@{}", config.node_name),
    };
    let bus = match connect(&options, &shutdown).await {
        Ok(bus) => bus,
        Err(ConnectError::Cancelled { .. }) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let replicas = config.nats.stream_replicas;
    topology::ensure_stream(&bus.jetstream, &topology::FINDINGS, replicas).await?;
    let consumer =
        topology::ensure_consumer(&bus.jetstream, &topology::detectors_consumer(), replicas)
            .await?;
    let publisher = Publisher::new(bus.jetstream.clone());

    health.set_ready(true);
    tracing::info!(
        message = "Evaluating event batches.",
        rules = engine.rules().count()
    );
    consume::run(consumer, shutdown, |delivery| {
        handle(&engine, &publisher, delivery)
    })
    .await;
    health.set_ready(false);

    // Acks already sent must reach the server; if they cannot, the batches
    // are redelivered and their findings de-duplicated, so this is not fatal.
    if let Err(error) = bus.client.flush().await {
        tracing::warn!(message = "Could not flush the NATS client on shutdown.", %error);
    }
    tracing::info!(message = "Stopped.");
    Ok(())
}

/// decode → evaluate → publish → ack.
async fn handle(engine: &Engine, publisher: &Publisher, delivery: Delivery) -> Disposition {
    let batch = match codec::decode::<EventBatch>(
        &delivery.payload,
        &delivery.subject,
        delivery.stream_sequence,
    ) {
        Ok(batch) => batch,
        Err(error) => {
            metrics::error("malformed_payload", "decode");
            return Disposition::Reject {
                reason: error.to_string(),
            };
        }
    };
    ::metrics::counter!(metrics::BATCHES).increment(1);
    ::metrics::counter!(metrics::EVENTS).increment(batch.events.len() as u64);

    let findings = finding::evaluate(engine, &batch, clock::wall_ns());

    match publish::publish_findings(publisher, &findings, &delivery.trace).await {
        Ok(()) => Disposition::Ack,
        Err(error) => {
            metrics::error("publish_failed", "publish");
            Disposition::Retry {
                reason: error.to_string(),
                delay: RETRY_DELAY,
            }
        }
    }
}
