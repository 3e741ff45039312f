//! `vigil-responder`: contains what the detectors find, as the response
//! policy says, and records every action and every refusal.
//!
//! ```text
//! VIGIL_FINDINGS ──(consumer "responder-<node>" or "responder-CLUSTER")──▶ decode Finding
//!   ──▶ handled before? (KV) ──▶ decide (policy, scope) ──▶ contained already? (KV), rate limits
//!   ──▶ act: freeze / kill / cut network on the node; label, NetworkPolicy, annotate, evict via the API
//!   ──▶ ActionRecord per action on vigil.actions.<node>.<outcome> ──▶ state (KV) ──▶ ack
//! ```
//!
//! Record ids are the finding id plus the action, so a finding redelivered
//! after a crash, which finds its actions already done, produces records
//! that JetStream discards. The gRPC service (`[grpc] listen`) quarantines
//! and releases pods by hand through the same code.

mod config;
pub mod decide;
mod execute;
pub mod grpc;
pub mod kube_actions;
pub mod limits;
pub mod metrics;
pub mod netns;
mod node;
pub mod policy;
pub mod record;
pub mod state;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectError, Delivery, Disposition, PublishError, Publisher, TraceContext, codec, consume,
    subject, topology,
};
use vigil_proto::v1::{ActionOutcome, ActionRecord, Finding};
use vigil_service::{
    Health, clock,
    runner::{self, Connected, Wiring},
};

pub use config::{Config, GrpcConfig, KubeConfig, Mode};
pub use execute::Responder;
pub use kube_actions::KUBE_PERMISSIONS;
use policy::{Policy, PolicyError};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "responder";

/// Back-off before a finding whose work could not be completed is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("cannot set up the Kubernetes client: {0}")]
    Kube(String),
    #[error("cannot serve gRPC on {address}: {source}")]
    Grpc {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs until `shutdown` fires: consume findings, decide, act, record, ack;
/// and serve the control API when configured.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let policy = config.policy()?;
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[&topology::ACTIONS],
    };
    runner::serve(wiring, health, shutdown, |connected| {
        respond(&config, policy, connected)
    })
    .await
}

async fn respond(config: &Config, policy: Policy, connected: Connected) -> Result<(), Error> {
    let (bus, replicas) = (&connected.bus, connected.replicas);
    let shutdown = connected.shutdown.clone();
    let spec = if config.mode == Mode::Cluster {
        topology::responder_cluster_consumer()
    } else {
        topology::responder_consumer(&config.node_name)
    };
    let state = state::State::open(&bus.jetstream, &spec.durable_name, replicas).await?;
    let kube = if config.kube.enabled {
        Some(
            kube_actions::Kube::connect(&config.kube, policy.protected_labels.clone())
                .await
                .map_err(Error::Kube)?,
        )
    } else {
        None
    };
    let responder = Arc::new(Responder::new(
        config,
        policy,
        state,
        connected.publisher(),
        kube,
    ));
    let grpc = match config.grpc.listen {
        Some(address) => Some(grpc::serve(address, responder.clone(), shutdown.clone()).await?),
        None => None,
    };
    let consumer = topology::ensure_consumer(&bus.jetstream, &spec, replicas).await?;

    connected.ready();
    tracing::info!(
        message = "Acting on findings.",
        node = %config.node_name, mode = ?config.mode, dry_run = config.dry_run,
        consumer = %spec.durable_name, grpc = ?grpc.as_ref().map(|g| g.address)
    );
    consume::run(consumer, shutdown, 1, move |delivery| {
        let responder = responder.clone();
        async move { responder.handle(delivery).await }
    })
    .await;
    if let Some(grpc) = grpc {
        grpc.stopped().await;
    }
    Ok(())
}

impl Responder {
    /// decode → handled before? → decide → act → publish the records → ack.
    async fn handle(&self, delivery: Delivery) -> Disposition {
        let received_ns = clock::monotonic_ns();
        let finding = match codec::decode::<Finding>(
            &delivery.payload,
            &delivery.subject,
            delivery.stream_sequence,
        )
        .map_err(|e| e.to_string())
        .and_then(|finding| check(&finding, &delivery).map(|()| finding))
        {
            Ok(finding) => finding,
            Err(reason) => {
                metrics::error("malformed_payload", "decode");
                return Disposition::Reject { reason };
            }
        };
        match self.respond(&finding, &delivery.trace, received_ns).await {
            Ok(()) => Disposition::Ack,
            Err(reason) => Disposition::Retry {
                reason,
                delay: RETRY_DELAY,
            },
        }
    }
}

/// A finding the responder could act on wrongly is rejected, never guessed at.
fn check(finding: &Finding, delivery: &Delivery) -> Result<(), String> {
    let at = format!(
        "{} (stream sequence {})",
        delivery.subject, delivery.stream_sequence
    );
    if finding.id.trim().is_empty() {
        return Err(format!("finding on {at} has no id"));
    }
    if finding.priority == 0 || finding.priority > 8 {
        return Err(format!(
            "finding {} on {at} has no valid priority ({})",
            finding.id, finding.priority
        ));
    }
    Ok(())
}

/// Publishes `record`; JetStream confirms it before the finding is acked.
pub(crate) async fn publish(
    publisher: &Publisher,
    record: &ActionRecord,
    trace: &TraceContext,
) -> Result<(), PublishError> {
    let subject = subject::actions(&record.node, record.outcome());
    let ack = publisher
        .publish(subject.clone(), &record.id, trace, codec::encode(record))
        .await?;
    let outcome = subject::outcome_label(record.outcome());
    let kind = record.id.rsplit(':').next().unwrap_or("unknown").to_owned();
    ::metrics::counter!(metrics::ACTIONS, "kind" => kind, "outcome" => outcome).increment(1);
    if record.outcome() == ActionOutcome::Failed {
        tracing::warn!(message = "Action failed.", id = %record.id, %subject, cgroup = %record.cgroup_path, reason = %record.reason);
    } else {
        tracing::info!(
            message = "Recorded action.", id = %record.id, %subject, duplicate = ack.duplicate,
            cgroup = %record.cgroup_path, reason = %record.reason
        );
    }
    Ok(())
}
