//! The audit record of one action (taken, refused, dry-run or failed), and
//! publishing it.

use vigil_bus::{PublishError, Publisher, TraceContext, codec, subject};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, ActionTimings, Finding};

use crate::{actions::Done, metrics};

/// Deterministic, so a redelivered finding's record is stored only once.
pub fn record_id(request: &str, action: &str) -> String {
    format!("{request}:{action}")
}

/// What the responder knows beyond the finding.
#[derive(Clone, Debug)]
pub struct Context {
    /// What the record ids start with: the finding's id for an automatic
    /// response (a redelivery's records are then duplicates JetStream
    /// drops), a manual request's own id otherwise (never dropped).
    pub request: String,
    pub node: String,
    pub dry_run: bool,
    pub trace_id: String,
    pub finding_received_ns: u64,
    /// The policy rule (or "manual") behind the action.
    pub policy: String,
    /// "policy", or the user of the console or CLI.
    pub requested_by: String,
}

/// The result of acting (or declining to act) on one action.
#[derive(Clone, Debug)]
pub struct ActionResult {
    /// The action's name: record id suffix and `kind` metric label.
    pub label: &'static str,
    pub kind: ActionKind,
    pub done: Done,
    /// The cgroup acted on, or named by the finding when refused.
    pub cgroup_path: String,
    pub pid: u32,
    pub started_ns: u64,
    pub completed_ns: u64,
}

/// An audit record with the metric label of its action.
#[derive(Clone, Debug)]
pub struct Record {
    pub label: &'static str,
    pub record: ActionRecord,
}

/// A record JetStream did not confirm; the work behind it is redone.
#[derive(Debug, thiserror::Error)]
#[error("action record {id}: {source}")]
pub struct RecordError {
    pub id: String,
    #[source]
    pub source: PublishError,
}

impl RecordError {
    /// Publishing is retried by redoing the (idempotent) work: NATS away or
    /// slow is the only way it fails.
    pub fn retryable(&self) -> bool {
        true
    }
}

pub fn build(
    finding: &Finding,
    acted: ActionResult,
    context: &Context,
    now_wall_ns: u64,
) -> Record {
    let event_kernel_time_ns = finding.events.first().map_or(0, |e| e.kernel_time_ns);
    let record = ActionRecord {
        id: record_id(&context.request, acted.label),
        finding_id: finding.id.clone(),
        kind: acted.kind as i32,
        outcome: acted.done.outcome as i32,
        reason: acted.done.detail,
        dry_run: acted.done.outcome == ActionOutcome::DryRun || context.dry_run,
        node: context.node.clone(),
        container_id: finding.container_id.clone(),
        cgroup_path: acted.cgroup_path,
        pod: finding.pod.clone(),
        namespace: finding.namespace.clone(),
        policy: context.policy.clone(),
        timings: Some(ActionTimings {
            event_kernel_time_ns,
            finding_received_ns: context.finding_received_ns,
            action_started_ns: acted.started_ns,
            action_completed_ns: acted.completed_ns,
        }),
        trace_id: context.trace_id.clone(),
        time_ns: now_wall_ns,
        finding_name: finding.name.clone(),
        requested_by: context.requested_by.clone(),
        pid: acted.pid,
    };
    Record {
        label: acted.label,
        record,
    }
}

/// Publishes `record`; JetStream confirms it before the finding is acked.
pub async fn publish(
    publisher: &Publisher,
    record: &Record,
    trace: &TraceContext,
) -> Result<(), RecordError> {
    let Record { label, record } = record;
    let subject = subject::actions(&record.node, record.outcome());
    let ack = publisher
        .publish(subject.clone(), &record.id, trace, codec::encode(record))
        .await
        .map_err(|source| RecordError {
            id: record.id.clone(),
            source,
        })?;
    let outcome = subject::outcome_label(record.outcome());
    ::metrics::counter!(metrics::ACTIONS, "kind" => *label, "outcome" => outcome).increment(1);
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
