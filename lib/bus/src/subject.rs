//! Subject hierarchy.
//!
//! ```text
//! vigil.events.<node>.<partition>             event batches from one collector
//! vigil.findings.<priority>.<namespace>       findings, filterable by wildcard
//! vigil.actions.<node>.<outcome>              responder audit records
//! vigil.scores.<namespace>                    anomaly scores per window
//! ```
//!
//! Events are partitioned by container ([`event_partition`]): a collector
//! splits each flush by partition, so a consumer that filters on some
//! partitions (`vigil.events.*.3`) sees every event of the containers it owns
//! and none of the others. That is how anomaly-scorer instances share the work.
//!
//! An operator follows all critical findings with `vigil.findings.critical.>`
//! and one namespace with `vigil.findings.*.shop`.

use vigil_proto::v1::{ActionOutcome, Priority};

/// Every subject of the events stream.
pub const EVENTS_ALL: &str = "vigil.events.>";
/// Every subject of the findings stream.
pub const FINDINGS_ALL: &str = "vigil.findings.>";
/// Every subject of the actions stream.
pub const ACTIONS_ALL: &str = "vigil.actions.>";
/// Every subject of the scores stream.
pub const SCORES_ALL: &str = "vigil.scores.>";
/// Every subject of the console's audit stream.
pub const AUDIT_ALL: &str = "vigil.audit.>";

/// Number of event partitions. Fixed: changing it moves containers between
/// partitions, so it is part of the wire contract.
pub const EVENT_PARTITIONS: u32 = 16;

/// Token used when a dimension is unknown (for example a host process has no namespace).
pub const NONE_TOKEN: &str = "_";

/// Subject for event batches of one `partition` published by the collector on `node`.
pub fn events(node: &str, partition: u32) -> String {
    format!("vigil.events.{}.{}", token(node), partition)
}

/// Filter subject for one partition's events from every node.
pub fn events_of_partition(partition: u32) -> String {
    format!("vigil.events.*.{partition}")
}

/// The partition of a container's events: FNV-1a of the container id, so
/// every collector and consumer agrees without coordination. Host processes
/// (empty id) land in partition 0.
pub fn event_partition(container_id: &str) -> u32 {
    if container_id.is_empty() {
        return 0;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in container_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % EVENT_PARTITIONS
}

/// Subject for anomaly scores of workloads in `namespace`.
pub fn scores(namespace: &str) -> String {
    format!("vigil.scores.{}", token(namespace))
}

/// Subject for the audit record of one console workflow `step` (`acknowledge`, `quarantine`, ...).
pub fn audit(step: &str) -> String {
    format!("vigil.audit.{}", token(step))
}

/// Subject for a finding of `priority` in Kubernetes `namespace` (empty when unknown).
pub fn findings(priority: Priority, namespace: &str) -> String {
    format!("vigil.findings.{}.{}", priority.label(), token(namespace))
}

/// Filter subject for findings of every priority in one namespace token
/// (`vigil.findings.*._`: those that name no namespace).
pub fn findings_of_namespace(namespace: &str) -> String {
    format!("vigil.findings.*.{}", token(namespace))
}

/// Filter subject for findings of one priority in every namespace.
pub fn findings_of_priority(priority: Priority) -> String {
    format!("vigil.findings.{}.>", priority.label())
}

/// The namespace token of a findings subject (`shop` of
/// `vigil.findings.critical.shop`), or `None` when `subject` is not one.
/// Who may publish on a subject is decided by its tokens (the NATS users'
/// permissions), so the responder compares this token, not the payload's
/// claim, with the namespace it would act in.
pub fn namespace_of_finding_subject(subject: &str) -> Option<&str> {
    let mut tokens = subject.split('.');
    match (
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
    ) {
        (Some("vigil"), Some("findings"), Some(_priority), Some(namespace), None) => {
            Some(namespace)
        }
        _ => None,
    }
}

/// Subject for an action record about `node` with `outcome`.
pub fn actions(node: &str, outcome: ActionOutcome) -> String {
    format!("vigil.actions.{}.{}", token(node), outcome_label(outcome))
}

/// Lowercase label for an action outcome, as used in subjects and metrics.
pub fn outcome_label(outcome: ActionOutcome) -> &'static str {
    match outcome {
        ActionOutcome::Unspecified => "unspecified",
        ActionOutcome::Succeeded => "succeeded",
        ActionOutcome::Failed => "failed",
        ActionOutcome::DryRun => "dry_run",
        ActionOutcome::Refused => "refused",
        ActionOutcome::AlreadyDone => "already_done",
    }
}

/// Makes `value` safe as one subject token: NATS tokens may not be empty or
/// contain `.`, `*`, `>` or whitespace, which node and namespace names from
/// outside could.
pub fn token(value: &str) -> String {
    if value.is_empty() {
        return NONE_TOKEN.to_owned();
    }
    value
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_subject_can_be_filtered_by_priority_and_namespace() {
        assert_eq!(
            findings(Priority::Critical, "shop"),
            "vigil.findings.critical.shop"
        );
        assert_eq!(findings(Priority::Warning, ""), "vigil.findings.warning._");
    }

    #[test]
    fn a_findings_subject_names_its_namespace_token() {
        let subject = findings(Priority::Critical, "shop");
        assert_eq!(namespace_of_finding_subject(&subject), Some("shop"));
        assert_eq!(
            namespace_of_finding_subject(&findings(Priority::Warning, "")),
            Some(NONE_TOKEN)
        );
        assert_eq!(
            namespace_of_finding_subject("vigil.findings.critical"),
            None
        );
        assert_eq!(namespace_of_finding_subject("vigil.findings.a.b.c"), None);
        assert_eq!(
            namespace_of_finding_subject("vigil.actions.n1.failed"),
            None
        );
        assert_eq!(findings_of_namespace(""), "vigil.findings.*._");
        assert_eq!(
            findings_of_priority(Priority::Warning),
            "vigil.findings.warning.>"
        );
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(event_partition(""), 0);
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(event_partition(id), event_partition(id));
        let used: std::collections::HashSet<u32> = (0..200)
            .map(|i| event_partition(&format!("container-{i}")))
            .collect();
        assert_eq!(used.len(), EVENT_PARTITIONS as usize, "{used:?}");
        assert_eq!(events_of_partition(5), "vigil.events.*.5");
    }

    #[test]
    fn tokens_cannot_break_the_hierarchy() {
        assert_eq!(events("node.a *>", 3), "vigil.events.node_a___.3");
        assert_eq!(
            actions("n1", ActionOutcome::DryRun),
            "vigil.actions.n1.dry_run"
        );
    }
}
