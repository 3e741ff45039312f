//! The audit record of one action (taken, refused, dry-run or failed).

use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, ActionTimings, Finding};

/// Deterministic, so a redelivered finding's record is stored only once.
pub fn record_id(finding_id: &str, action: &str) -> String {
    format!("{finding_id}:{action}")
}

/// What the responder knows beyond the finding.
#[derive(Clone, Debug)]
pub struct Context {
    pub node: String,
    pub dry_run: bool,
    pub trace_id: String,
    pub finding_received_ns: u64,
    /// The policy rule (or "manual") behind the action.
    pub policy: String,
    /// "policy", or the user of the console or CLI.
    pub requested_by: String,
}

/// The result of acting (or declining to act).
#[derive(Clone, Debug)]
pub struct Acted {
    /// Record id suffix: the action's policy name (`freeze`, `thaw`, ...).
    pub action: &'static str,
    pub kind: ActionKind,
    pub outcome: ActionOutcome,
    pub reason: String,
    /// The cgroup acted on, or named by the finding when refused.
    pub cgroup_path: String,
    pub pid: u32,
    pub started_ns: u64,
    pub completed_ns: u64,
}

pub fn build(finding: &Finding, acted: Acted, context: &Context, now_wall_ns: u64) -> ActionRecord {
    let event_kernel_time_ns = finding.events.first().map_or(0, |e| e.kernel_time_ns);
    ActionRecord {
        id: record_id(&finding.id, acted.action),
        finding_id: finding.id.clone(),
        kind: acted.kind as i32,
        outcome: acted.outcome as i32,
        reason: acted.reason,
        dry_run: acted.outcome == ActionOutcome::DryRun || context.dry_run,
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
    }
}
