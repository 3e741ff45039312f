//! Subject hierarchy.
//!
//! ```text
//! vigil.events.<node>                         event batches from one collector
//! vigil.findings.<priority>.<namespace>       findings, filterable by wildcard
//! vigil.actions.<node>.<outcome>              responder audit records
//! ```
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

/// Token used when a dimension is unknown (for example a host process has no namespace).
pub const NONE_TOKEN: &str = "_";

/// Subject for event batches published by the collector on `node`.
pub fn events(node: &str) -> String {
    format!("vigil.events.{}", token(node))
}

/// Subject for a finding of `priority` in Kubernetes `namespace` (empty when unknown).
pub fn findings(priority: Priority, namespace: &str) -> String {
    format!("vigil.findings.{}.{}", priority.label(), token(namespace))
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
    fn tokens_cannot_break_the_hierarchy() {
        assert_eq!(events("node.a *>"), "vigil.events.node_a___");
        assert_eq!(
            actions("n1", ActionOutcome::DryRun),
            "vigil.actions.n1.dry_run"
        );
    }
}
