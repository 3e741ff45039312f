//! `vigil-anomaly-scorer`: learns what each workload normally does and
//! scores how far each window of a container's events strays from it.
//!
//! ```text
//! VIGIL_EVENTS ──(one consumer per partition this instance owns)──▶ decode EventBatch
//!   ──▶ per-container sliding windows ──▶ workload baseline: learn, or score
//!   ──▶ AnomalyScore on vigil.scores.<namespace>, anomaly Finding above the thresholds
//!   ──▶ ack;  latest scores served over gRPC (AnomalyScorer, health, reflection)
//! ```
//!
//! Instances share the 16 event partitions dynamically: each announces
//! itself in the `VIGIL_SCORER_MEMBERS` bucket and owns its rendezvous
//! share of the live members (`membership`, `assignment`, `lanes`), so
//! replicas can be added and removed at any time. Models are kept in the
//! `VIGIL_SCORER_MODELS` object store, so a restarted or second instance
//! scores with what another learnt. See the README for the features and the
//! retraining policy.

pub mod assignment;
mod config;
pub mod evaluate;
pub mod features;
pub mod grpc;
mod lanes;
pub mod membership;
pub mod metrics;
pub mod model;
pub mod scorer;
pub mod store;
pub mod taint;
pub mod window;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use vigil_bus::{
    ConnectError, Delivery, Disposition, PublishError, Publisher, TraceContext, codec, subject,
    topology,
};
use vigil_proto::v1::{EventBatch, Priority};
use vigil_service::{
    Health,
    runner::{self, Connected, Wiring},
};

pub use config::Config;
use grpc::Shared;
use lanes::{Lanes, Source};
use membership::{Membership, MembershipError};
use scorer::{Output, Scorer, Settings, window_id};
use store::{ModelStore, StoreError};
use taint::RuleFindings;
use window::{ClosedWindow, Windows};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "anomaly-scorer";

/// Back-off before a batch whose outputs could not be published is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long open gRPC calls may take to finish on shutdown.
const GRPC_DRAIN: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for gRPC on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Grpc(#[from] grpc::GrpcError),
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

/// Runs until `shutdown` fires, serving gRPC on `config.grpc_listen`.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.grpc_listen,
            source,
        })?;
    run_on(config, listener, health, shutdown).await
}

/// [`run`] with the gRPC listener already bound (tests bind port 0).
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let (owned, _) = watch::channel(Vec::new());
    run_reporting(config, listener, health, shutdown, owned).await
}

/// [`run_on`], publishing the partitions this instance consumes on `owned`
/// whenever they change (tests and tools watch the hand-over with it).
pub async fn run_reporting(
    config: Config,
    listener: TcpListener,
    health: Health,
    shutdown: CancellationToken,
    owned: watch::Sender<Vec<u32>>,
) -> Result<(), Error> {
    metrics::describe();
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[&topology::SCORES, &topology::FINDINGS, &topology::EVENTS],
    };
    runner::serve(wiring, health, shutdown, |connected| {
        score(&config, listener, owned, connected)
    })
    .await
}

async fn score(
    config: &Config,
    listener: TcpListener,
    owned: watch::Sender<Vec<u32>>,
    connected: Connected,
) -> Result<(), Error> {
    let (bus, replicas, shutdown) = (&connected.bus, connected.replicas, &connected.shutdown);
    let store = ModelStore::open(&bus.jetstream, replicas).await?;
    let shared = Arc::new(Shared::default());
    let grpc = tokio::spawn(grpc::serve(
        listener,
        grpc::transport(config)?,
        shared.clone(),
        shutdown.clone(),
    ));
    let rule_findings = Arc::new(RuleFindings::new(Duration::from_secs(
        config.rule_finding_hold_seconds,
    )));
    let taint = {
        let (rule_findings, client, shutdown) =
            (rule_findings.clone(), bus.client.clone(), shutdown.clone());
        tokio::spawn(async move { rule_findings.follow(client, shutdown).await })
    };
    let pipeline = Pipeline {
        scorer: Arc::new(Scorer::new(settings(config), Some(store), rule_findings)),
        window_events: config.window_events,
        window_stride: config.window_stride,
        publisher: connected.publisher(),
        shared,
    };
    let (source, follower) = share(config, &bus.jetstream, shutdown).await?;

    connected.ready();
    tracing::info!(message = "Scoring event windows.");
    Lanes::new(bus.jetstream.clone(), replicas, pipeline)
        .run(source, owned, shutdown.clone())
        .await;
    shutdown.cancel();
    join_task(follower, "Membership").await;
    match taint.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(message = "Could not follow rule findings.", %error),
        Err(error) => tracing::error!(message = "Rule-finding task failed.", %error),
    }
    stop_grpc(grpc).await
}

/// This instance's share of the partitions: the explicit list when
/// configured, else membership in the scorer bucket (followed by a task
/// that deletes this member's key on shutdown).
async fn share(
    config: &Config,
    js: &vigil_bus::async_nats::jetstream::Context,
    shutdown: &CancellationToken,
) -> Result<(Source, Option<tokio::task::JoinHandle<()>>), Error> {
    if !config.partitions.is_empty() {
        let partitions: BTreeSet<u32> = config.partitions.iter().copied().collect();
        tracing::info!(
            message = "Consuming a fixed set of partitions.",
            ?partitions
        );
        return Ok((Source::Static(partitions), None));
    }
    let membership = Membership::join(js, config.nats.stream_replicas, &config.node_name).await?;
    let me = membership.id().to_owned();
    // Start from the members already there, so that a newcomer does not
    // grab every partition for a moment before it sees the others.
    let (members, receiver) = watch::channel(membership.members().await?);
    tracing::info!(message = "Joined the scorer members.", member = %me, members = receiver.borrow().len());
    let follower = tokio::spawn(membership.follow(members, shutdown.clone()));
    Ok((
        Source::Members {
            me,
            members: receiver,
        },
        Some(follower),
    ))
}

async fn join_task(task: Option<tokio::task::JoinHandle<()>>, what: &str) {
    if let Some(task) = task
        && let Err(error) = task.await
    {
        tracing::error!(message = "Task failed.", task = what, %error);
    }
}

/// Waits for the gRPC server to drain; open `StreamScores` calls or idle
/// client connections would hold a graceful shutdown open forever, so after
/// [`GRPC_DRAIN`] it is aborted.
async fn stop_grpc(
    mut grpc: tokio::task::JoinHandle<Result<(), grpc::GrpcError>>,
) -> Result<(), Error> {
    match tokio::time::timeout(GRPC_DRAIN, &mut grpc).await {
        Ok(Ok(result)) => result?,
        Ok(Err(error)) => tracing::error!(message = "gRPC task failed.", %error),
        Err(_) => {
            tracing::info!(message = "gRPC clients still connected; closing.");
            grpc.abort();
        }
    }
    Ok(())
}

fn settings(config: &Config) -> Settings {
    Settings {
        learning_windows: config.learning_windows as usize,
        retrain_every: config.retrain_every as usize,
        finding_min_score: config.finding_min_score,
        explain_top: config.explain_top as usize,
    }
}

/// What every partition's consume loop shares: the models, the publisher
/// and the gRPC view. Nothing here is locked across a batch: the scorer
/// locks its workload map only for in-memory steps.
#[derive(Clone)]
pub(crate) struct Pipeline {
    scorer: Arc<Scorer>,
    window_events: u32,
    window_stride: u32,
    publisher: Publisher,
    shared: Arc<Shared>,
}

impl Pipeline {
    /// The handler of one partition's lane, with the lane's own container
    /// windows: a container's events all travel on its partition, so no
    /// other lane touches them, and they go with the lane when the
    /// partition is handed to another instance.
    pub(crate) fn lane(&self) -> LaneHandler {
        LaneHandler {
            pipeline: self.clone(),
            windows: Arc::new(std::sync::Mutex::new(Windows::new(
                self.window_events,
                self.window_stride,
            ))),
        }
    }
}

/// One partition's handler (its consume loop settles a batch before it
/// pulls the next, so its windows lock is never contended).
#[derive(Clone)]
pub(crate) struct LaneHandler {
    pipeline: Pipeline,
    windows: Arc<std::sync::Mutex<Windows>>,
}

impl LaneHandler {
    /// decode → window → learn or score → publish → ack, in a span that is
    /// a child of the batch's trace.
    pub(crate) async fn handle(self, delivery: Delivery) -> Disposition {
        let span = tracing::info_span!("score", messaging.source = %delivery.subject);
        let trace = vigil_bus::trace::continue_trace(&span, &delivery.trace);
        self.score(delivery, trace).instrument(span).await
    }

    /// What the scores and findings of a batch are published with: `trace`.
    async fn score(self, delivery: Delivery, trace: TraceContext) -> Disposition {
        let batch = match vigil_proto::batch::decode(&delivery.payload) {
            Ok(decoded) => {
                for missing in &decoded.skipped {
                    metrics::error("missing_context", "decode");
                    tracing::warn!(message = "Event skipped.", subject = %delivery.subject, stream_sequence = delivery.stream_sequence, %missing);
                }
                decoded.batch
            }
            Err(error) => {
                metrics::error(error.reason(), "decode");
                return Disposition::Reject {
                    reason: error.to_string(),
                };
            }
        };
        let closed = self.window(&batch, &delivery);
        let mut outputs = Vec::with_capacity(closed.len());
        for window in closed {
            match self.pipeline.scorer.process(window).await {
                Ok(output) => outputs.push(output),
                Err(error) => {
                    metrics::error("score_failed", "score");
                    tracing::warn!(message = "Window not scored.", %error);
                }
            }
        }
        match publish(&self.pipeline.publisher, &outputs, &trace).await {
            Ok(()) => {
                for output in &outputs {
                    self.pipeline.shared.record(&output.score);
                }
                Disposition::Ack
            }
            Err(error) => {
                metrics::error("publish_failed", "publish");
                Disposition::Retry {
                    reason: error.to_string(),
                    delay: RETRY_DELAY,
                }
            }
        }
    }

    /// Places a batch's events in their containers' windows; returns the
    /// windows they closed.
    fn window(&self, batch: &EventBatch, delivery: &Delivery) -> Vec<ClosedWindow> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut closed = Vec::new();
        for (index, event) in batch.events.iter().enumerate() {
            match windows.push(index, event) {
                Ok(window) => closed.extend(window),
                Err(error) => {
                    metrics::error("missing_field", "window");
                    tracing::warn!(
                        message = "Event skipped.",
                        subject = %delivery.subject,
                        stream_sequence = delivery.stream_sequence,
                        %error
                    );
                }
            }
        }
        ::metrics::counter!(metrics::EVENTS).increment(batch.events.len() as u64);
        closed
    }
}

/// Publishes every score and finding, then waits for all acknowledgements.
async fn publish(
    publisher: &Publisher,
    outputs: &[Output],
    trace: &TraceContext,
) -> Result<(), PublishError> {
    let mut pending = Vec::new();
    for output in outputs {
        let score = &output.score;
        let id = window_id(
            "score",
            &score.container_id,
            score.window_end_ns,
            score.window_events,
        );
        let subject = subject::scores(&score.namespace);
        let ack = publisher
            .send(subject.clone(), &id, trace, codec::encode(score))
            .await?;
        pending.push((subject, id, ack, false));
        if let Some(finding) = &output.finding {
            let subject = subject::findings(Priority::Warning, &finding.namespace);
            let ack = publisher
                .send(subject.clone(), &finding.id, trace, codec::encode(finding))
                .await?;
            pending.push((subject, finding.id.clone(), ack, true));
        }
    }
    for (subject, message_id, ack, is_finding) in pending {
        let ack = Publisher::confirm(ack, subject.clone(), &message_id).await?;
        if is_finding && !ack.duplicate {
            ::metrics::counter!(metrics::FINDINGS).increment(1);
            tracing::info!(message = "Published anomaly finding.", id = %message_id, %subject);
        }
    }
    Ok(())
}
