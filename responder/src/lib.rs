//! `vigil-responder`: the node agent that contains what the detectors find.
//!
//! ```text
//! VIGIL_FINDINGS ──(consumer "responder-<node>")──▶ decode Finding ──▶ decide
//!        ──▶ freeze the pod container's cgroup (or refuse, or dry-run)
//!        ──▶ ActionRecord on vigil.actions.<node>.<outcome> ──▶ ack
//! ```
//!
//! Every decision except "not for us" leaves an audit record. Its id is the
//! finding id plus the action, so a redelivered finding, which finds the
//! cgroup already frozen, produces a record that JetStream discards.

mod config;
pub mod decide;
mod freeze;
pub mod metrics;
pub mod record;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectError, ConnectOptions, Delivery, Disposition, PublishError, Publisher, TraceContext,
    codec, connect::connect, consume, subject, topology,
};
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::{ActionOutcome, ActionRecord, Finding};
use vigil_service::{Health, clock};

pub use config::{Config, PriorityError};
use decide::{Decision, Policy, decide};
use record::{Acted, Context};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "responder";

/// Back-off before a finding whose record could not be published is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] PriorityError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
}

/// Runs until `shutdown` fires: consume findings, decide, act, record, ack.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let responder = Responder::new(&config)?;
    let options = ConnectOptions {
        url: config.nats.url.clone(),
        client_name: format!("vigil-responder@{}", config.node_name),
    };
    let bus = match connect(&options, &shutdown).await {
        Ok(bus) => bus,
        Err(ConnectError::Cancelled { .. }) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let replicas = config.nats.stream_replicas;
    topology::ensure_stream(&bus.jetstream, &topology::ACTIONS, replicas).await?;
    let spec = topology::responder_consumer(&config.node_name);
    let consumer = topology::ensure_consumer(&bus.jetstream, &spec, replicas).await?;
    let publisher = Publisher::new(bus.jetstream.clone());

    health.set_ready(true);
    tracing::info!(
        message = "Acting on findings.",
        node = %config.node_name, dry_run = config.dry_run,
        min_priority = %config.min_priority, consumer = %spec.durable_name
    );
    consume::run(consumer, shutdown, |delivery| {
        responder.handle(&publisher, delivery)
    })
    .await;
    health.set_ready(false);

    // Unflushed acks only mean redelivery, which the record ids absorb.
    if let Err(error) = bus.client.flush().await {
        tracing::warn!(message = "Could not flush the NATS client on shutdown.", %error);
    }
    tracing::info!(message = "Stopped.");
    Ok(())
}

struct Responder {
    policy: Policy,
    hierarchies: Hierarchies,
    freeze_timeout: Duration,
}

impl Responder {
    fn new(config: &Config) -> Result<Self, PriorityError> {
        let hierarchies = Hierarchies::detect_under(&config.cgroup_root);
        if hierarchies.unified.is_none() && hierarchies.freezer_v1.is_none() && !config.dry_run {
            // Not fatal: every freeze will be recorded FAILED with this reason.
            tracing::warn!(message = "No freezable cgroup hierarchy found.", root = %config.cgroup_root.display());
        }
        tracing::info!(message = "Cgroup hierarchies.", unified = ?hierarchies.unified, freezer_v1 = ?hierarchies.freezer_v1);
        Ok(Self {
            policy: config.policy()?,
            hierarchies,
            freeze_timeout: config.freeze_timeout(),
        })
    }

    /// decode → decide → act → publish the record → ack.
    async fn handle(&self, publisher: &Publisher, delivery: Delivery) -> Disposition {
        let received_ns = clock::monotonic_ns();
        let finding = match codec::decode::<Finding>(
            &delivery.payload,
            &delivery.subject,
            delivery.stream_sequence,
        ) {
            Ok(finding) => finding,
            Err(error) => {
                metrics::error("malformed_payload", "decode");
                return Disposition::Reject {
                    reason: error.to_string(),
                };
            }
        };

        let decision = decide(&self.policy, &finding, clock::wall_ns());
        ::metrics::counter!(metrics::FINDINGS, "decision" => decision.label()).increment(1);
        let acted = match decision {
            Decision::Ignore(why) => {
                tracing::debug!(message = "Not acting on finding.", id = %finding.id, ?why);
                return Disposition::Ack;
            }
            Decision::Refuse(reason) => {
                instant(ActionOutcome::Refused, reason, finding.cgroup_path.clone())
            }
            Decision::DryRun { cgroup } => instant(
                ActionOutcome::DryRun,
                format!("dry run: would freeze cgroup {cgroup}"),
                cgroup,
            ),
            Decision::Freeze { cgroup } => self.freeze(&finding, cgroup).await,
        };

        let context = Context {
            node: self.policy.node.clone(),
            dry_run: self.policy.dry_run,
            trace_id: delivery.trace.trace_id_hex(),
            finding_received_ns: received_ns,
        };
        let record = record::build(&finding, acted, &context, clock::wall_ns());
        match publish(publisher, &record, &delivery.trace.child()).await {
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

    async fn freeze(&self, finding: &Finding, cgroup: String) -> Acted {
        let started_ns = clock::monotonic_ns();
        let (outcome, reason) =
            freeze::freeze(&self.hierarchies, &cgroup, self.freeze_timeout).await;
        let completed_ns = clock::monotonic_ns();
        ::metrics::histogram!(metrics::ACTION_SECONDS, "kind" => "freeze")
            .record(metrics::nanos_to_seconds(started_ns, completed_ns));
        let event_ns = finding.events.first().map_or(0, |e| e.kernel_time_ns);
        if outcome == ActionOutcome::Succeeded && event_ns > 0 {
            ::metrics::histogram!(metrics::EVENT_TO_ACTION_SECONDS, "kind" => "freeze")
                .record(metrics::nanos_to_seconds(event_ns, completed_ns));
        }
        if outcome == ActionOutcome::Failed {
            metrics::error("freeze_failed", "act");
        }
        Acted {
            outcome,
            reason,
            cgroup_path: cgroup,
            started_ns,
            completed_ns,
        }
    }
}

/// A decision carried out by recording it: no time passes between start and end.
fn instant(outcome: ActionOutcome, reason: String, cgroup_path: String) -> Acted {
    let now = clock::monotonic_ns();
    Acted {
        outcome,
        reason,
        cgroup_path,
        started_ns: now,
        completed_ns: now,
    }
}

async fn publish(
    publisher: &Publisher,
    record: &ActionRecord,
    trace: &TraceContext,
) -> Result<(), PublishError> {
    let subject = subject::actions(&record.node, record.outcome());
    let ack = publisher
        .publish(subject.clone(), &record.id, trace, codec::encode(record))
        .await?;
    let outcome = subject::outcome_label(record.outcome());
    ::metrics::counter!(metrics::ACTIONS, "kind" => "freeze", "outcome" => outcome).increment(1);
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
