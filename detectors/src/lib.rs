//! `vigil-detectors`: evaluates the Falco-language rules (the default pack
//! in `detectors/rules/` plus configured files) over the collectors' event
//! batches and publishes a finding for every match.
//!
//! ```text
//! VIGIL_EVENTS ──(consumer "detectors", shared by all instances)──▶ decode EventBatch
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

use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectError, ConnectOptions, Disposition, Publisher, TraceContext,
    async_nats::jetstream::{AckKind, Message, consumer::PullConsumer},
    codec,
    connect::connect,
    topology,
};
use vigil_proto::v1::EventBatch;
use vigil_service::{Health, clock};

pub use config::{Config, RulesConfig};
use engine::Engine;

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "detectors";

/// Back-off before a batch whose findings could not be published is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rules do not load: {0}")]
    Rules(#[from] vigil_rules::LoadError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
}

/// Runs until `shutdown` fires: consume batches, evaluate, publish, ack.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let rules = engine::load(&config.rules)?;
    for warning in &rules.warnings {
        tracing::warn!(message = "Rules loaded with a warning.", %warning);
    }
    ::metrics::gauge!(metrics::RULES_LOADED).set(rules.rules().len() as f64);
    let engine = Arc::new(Engine::new(rules));
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
    let watcher = tokio::spawn(reload::watch(
        config.rules.clone(),
        engine.clone(),
        shutdown.clone(),
    ));

    health.set_ready(true);
    tracing::info!(
        message = "Evaluating event batches.",
        rules = engine.snapshot().rules().len(),
        syscalls = ?engine.snapshot().syscalls()
    );
    consume(
        consumer,
        &shutdown,
        &engine,
        &publisher,
        config.rules.max_in_flight,
    )
    .await;
    health.set_ready(false);
    watcher.abort();

    // Acks already sent must reach the server; if they cannot, the batches
    // are redelivered and their findings de-duplicated, so this is not fatal.
    if let Err(error) = bus.client.flush().await {
        tracing::warn!(message = "Could not flush the NATS client on shutdown.", %error);
    }
    tracing::info!(message = "Stopped.");
    Ok(())
}

/// The consume loop, pipelined: each batch is decoded, evaluated, published
/// and settled in its own task, up to `max_in_flight` at once. On shutdown the batches
/// already evaluated are finished and settled; the rest stay unacknowledged
/// and JetStream redelivers them to another instance.
async fn consume(
    consumer: PullConsumer,
    shutdown: &CancellationToken,
    engine: &Arc<Engine>,
    publisher: &Publisher,
    max_in_flight: usize,
) {
    let mut in_flight = JoinSet::new();
    'subscribe: while !shutdown.is_cancelled() {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(message = "Cannot pull from consumer; retrying.", %error);
                sleep_unless_cancelled(shutdown, RESUBSCRIBE_DELAY).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break 'subscribe,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(message = "Consumer stream reported an error.", %error);
                    continue;
                }
                None => break,
            };
            // Evaluation runs in the task too, so batches spread over the
            // runtime's worker threads; each batch is settled on its own.
            let engine = engine.clone();
            let publisher = publisher.clone();
            in_flight.spawn(async move {
                let work = evaluate(&engine, &message);
                settle(message, work, &publisher).await;
            });
            ::metrics::gauge!(metrics::IN_FLIGHT).set(in_flight.len() as f64);
            while in_flight.len() >= max_in_flight {
                in_flight.join_next().await;
            }
            while in_flight.try_join_next().is_some() {}
        }
        sleep_unless_cancelled(shutdown, RESUBSCRIBE_DELAY).await;
    }
    while in_flight.join_next().await.is_some() {}
    ::metrics::gauge!(metrics::IN_FLIGHT).set(0.0);
}

/// What a message turned into: findings to publish, or a rejection.
enum Work {
    Publish {
        raised: Vec<finding::Raised>,
        trace: TraceContext,
    },
    Reject(String),
}

fn evaluate(engine: &Engine, message: &Message) -> Work {
    let (sequence, _) = message
        .info()
        .map_or((0, 1), |info| (info.stream_sequence, info.delivered));
    let batch =
        match codec::decode::<EventBatch>(&message.payload, message.subject.as_str(), sequence) {
            Ok(batch) => batch,
            Err(error) => {
                metrics::error("malformed_payload", "decode");
                return Work::Reject(error.to_string());
            }
        };
    ::metrics::counter!(metrics::BATCHES).increment(1);
    ::metrics::counter!(metrics::EVENTS).increment(batch.events.len() as u64);
    let trace =
        TraceContext::from_headers(message.headers.as_ref()).unwrap_or_else(TraceContext::new_root);
    let raised = finding::evaluate(&engine.snapshot(), &batch, clock::wall_ns());
    Work::Publish { raised, trace }
}

/// publish → ack, or retry / reject.
async fn settle(message: Message, work: Work, publisher: &Publisher) {
    let disposition = match work {
        Work::Reject(reason) => Disposition::Reject { reason },
        Work::Publish { raised, trace } => {
            match publish::publish_findings(publisher, &raised, &trace).await {
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
    };
    let subject = message.subject.to_string();
    let (label, kind) = match disposition {
        Disposition::Ack => ("acked", AckKind::Ack),
        Disposition::Retry { reason, delay } => {
            tracing::warn!(message = "Will retry batch.", %subject, %reason);
            ("retried", AckKind::Nak(Some(delay)))
        }
        Disposition::Reject { reason } => {
            tracing::warn!(message = "Rejected batch.", %subject, %reason);
            ("rejected", AckKind::Term)
        }
    };
    ::metrics::counter!("vigil_bus_messages_total", "consumer" => "detectors", "disposition" => label)
        .increment(1);
    if let Err(error) = message.ack_with(kind).await {
        // The server will redeliver; findings are de-duplicated by id.
        tracing::warn!(message = "Could not settle batch.", %subject, %error);
    }
}

async fn sleep_unless_cancelled(shutdown: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}
