//! `vigil-detectors`: evaluates the Falco-language rules (the default pack
//! in `detectors/rules/` plus configured files) over the collectors' event
//! batches and publishes a finding for every match.
//!
//! ```text
//! VIGIL_EVENTS ──(consumer "detectors", shared by all instances)──▶ decode the batch
//!   ──▶ RuleSet (rules bucketed by evt.type) ──▶ Finding per (event, rule)
//!   ──▶ vigil.findings.<priority>.<namespace> (+ header Vigil-Falco-Json) ──▶ ack
//! ```
//!
//! Finding ids are derived from the batch and the event's position in it,
//! so a redelivered batch republishes the same ids and JetStream stores
//! each finding once. Batches are pipelined and evaluated in parallel on
//! the runtime's worker threads: while one batch's findings await
//! JetStream's confirmation the next ones are evaluated; each batch is
//! acknowledged only after its own findings are stored.

mod config;
pub mod engine;
pub mod finding;
pub mod metrics;
mod publish;
pub mod reload;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use vigil_bus::{ConnectError, Delivery, Disposition, Publisher, consume, topology};
use vigil_proto::batch;
use vigil_service::{
    Health, clock,
    runner::{self, Connected, Wiring},
};

pub use config::{Config, RulesConfig};
use engine::Engine;

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "detectors";

/// Back-off before a batch whose findings could not be published is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rules do not load:\n{0}")]
    Rules(#[from] vigil_rules::LoadErrors),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
}

/// Runs until `shutdown` fires: consume batches, evaluate, publish, ack.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let rules = engine::load(&config.rules)?;
    reload::announce(&rules);
    let engine = Arc::new(Engine::new(rules));
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[&topology::FINDINGS],
    };
    runner::serve(wiring, health, shutdown, |connected| {
        evaluate_batches(&config, engine, connected)
    })
    .await
}

async fn evaluate_batches(
    config: &Config,
    engine: Arc<Engine>,
    connected: Connected,
) -> Result<(), Error> {
    let consumer = topology::ensure_consumer(
        &connected.bus.jetstream,
        &topology::detectors_consumer(),
        connected.replicas,
    )
    .await?;
    let publisher = connected.publisher();
    let watcher = tokio::spawn(reload::watch(
        config.rules.clone(),
        engine.clone(),
        connected.shutdown.clone(),
    ));

    connected.ready();
    tracing::info!(
        message = "Evaluating event batches.",
        rules = engine.snapshot().rules().len(),
        syscalls = ?engine.snapshot().syscalls()
    );
    let max_in_flight = config.rules.max_in_flight;
    consume::run(
        consumer,
        connected.shutdown,
        max_in_flight,
        move |delivery| handle(engine.clone(), publisher.clone(), delivery),
    )
    .await;
    watcher.abort();
    Ok(())
}

/// decode → evaluate → publish the findings → ack, one batch. Evaluation
/// runs in the consume loop's task for the batch, so batches spread over
/// the runtime's worker threads while earlier ones await confirmation.
async fn handle(engine: Arc<Engine>, publisher: Publisher, delivery: Delivery) -> Disposition {
    let gauge = ::metrics::gauge!(metrics::IN_FLIGHT);
    gauge.increment(1.0);
    // A child of the batch's trace; the findings carry this span's context.
    let span = tracing::info_span!("detect", messaging.source = %delivery.subject);
    let trace = vigil_bus::trace::continue_trace(&span, &delivery.trace);
    let disposition = match span.in_scope(|| evaluate(&engine, &delivery)) {
        Err(reason) => Disposition::Reject { reason },
        Ok(raised) => match publish::publish_findings(&publisher, &raised, &trace)
            .instrument(span)
            .await
        {
            Ok(()) => Disposition::Ack,
            Err(error) => {
                metrics::error("publish_failed", "publish");
                Disposition::Retry {
                    reason: error.to_string(),
                    delay: RETRY_DELAY,
                }
            }
        },
    };
    gauge.decrement(1.0);
    disposition
}

/// The findings a batch raises, or why it cannot be read.
fn evaluate(engine: &Engine, delivery: &Delivery) -> Result<Vec<finding::Raised>, String> {
    // Refused batches are logged with subject and sequence by the consume
    // loop; the reason names the format version when that is the cause.
    let decoded = batch::decode(&delivery.payload).map_err(|error| {
        metrics::error(error.reason(), "decode");
        error.to_string()
    })?;
    for missing in &decoded.skipped {
        metrics::error("missing_context", "decode");
        tracing::warn!(
            message = "Event skipped.",
            subject = %delivery.subject,
            stream_sequence = delivery.stream_sequence,
            %missing
        );
    }
    let batch = decoded.batch;
    ::metrics::counter!(metrics::BATCHES).increment(1);
    ::metrics::counter!(metrics::EVENTS).increment(batch.events.len() as u64);
    Ok(finding::evaluate(
        &engine.snapshot(),
        &batch,
        clock::wall_ns(),
    ))
}
