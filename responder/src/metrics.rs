//! Metric names, defined once (`vigil_<service>_<noun>_<unit>[_total]`).

use std::time::Duration;

/// Findings received, by `decision`.
pub const FINDINGS: &str = "vigil_responder_findings_total";
/// Action records published, by `kind` and `outcome`.
pub const ACTIONS: &str = "vigil_responder_actions_total";
/// Time to carry out an action, by `kind`.
pub const ACTION_SECONDS: &str = "vigil_responder_action_seconds";
/// Syscall (kernel timestamp) to completed containment, by `kind`.
pub const EVENT_TO_ACTION_SECONDS: &str = "vigil_responder_event_to_action_seconds";
/// Errors by `error_type` and `stage`.
pub const ERRORS: &str = "vigil_responder_errors_total";

pub fn describe() {
    metrics::describe_counter!(FINDINGS, "Findings received, by decision.");
    metrics::describe_counter!(ACTIONS, "Action records published, by kind and outcome.");
    metrics::describe_histogram!(
        ACTION_SECONDS,
        metrics::Unit::Seconds,
        "Time to carry out an action."
    );
    metrics::describe_histogram!(
        EVENT_TO_ACTION_SECONDS,
        metrics::Unit::Seconds,
        "From the triggering syscall to completed containment (same node, CLOCK_MONOTONIC)."
    );
    metrics::describe_counter!(ERRORS, "Errors, by error_type and stage.");
}

pub fn error(error_type: &'static str, stage: &'static str) {
    metrics::counter!(ERRORS, "error_type" => error_type, "stage" => stage).increment(1);
}

pub fn nanos_to_seconds(start_ns: u64, end_ns: u64) -> f64 {
    Duration::from_nanos(end_ns.saturating_sub(start_ns)).as_secs_f64()
}
