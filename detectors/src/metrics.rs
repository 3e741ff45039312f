//! Metric names, defined once (`vigil_<service>_<noun>_<unit>[_total]`).

/// Events evaluated.
pub const EVENTS: &str = "vigil_detectors_events_total";
/// Event batches evaluated.
pub const BATCHES: &str = "vigil_detectors_batches_total";
/// Findings stored by JetStream (duplicates not counted), by `rule`.
pub const FINDINGS: &str = "vigil_detectors_findings_total";
/// Errors by `error_type` and `stage`.
pub const ERRORS: &str = "vigil_detectors_errors_total";
/// Rules in the running rule set.
pub const RULES_LOADED: &str = "vigil_detectors_rules_loaded";
/// Rules selected to run but skipped: they need fields the events do not
/// carry, or name unknown fields with `skip-if-unknown-filter`.
pub const RULES_SKIPPED: &str = "vigil_detectors_rules_skipped";
/// Rule reloads by `outcome` (`applied`, `failed`).
pub const RELOADS: &str = "vigil_detectors_rule_reloads_total";
/// Batches evaluated but not yet settled (findings awaiting confirmation).
pub const IN_FLIGHT: &str = "vigil_detectors_batches_in_flight";

/// Registers descriptions, so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events evaluated against the rules.");
    metrics::describe_counter!(BATCHES, "Event batches evaluated.");
    metrics::describe_counter!(FINDINGS, "Findings published and stored, by rule.");
    metrics::describe_counter!(ERRORS, "Errors, by error_type and stage.");
    metrics::describe_gauge!(RULES_LOADED, "Rules in the running rule set.");
    metrics::describe_gauge!(
        RULES_SKIPPED,
        "Rules selected but skipped: they need unsupported or unknown fields (named in the log)."
    );
    metrics::describe_counter!(RELOADS, "Rule reloads, by outcome (applied, failed).");
    metrics::describe_gauge!(
        IN_FLIGHT,
        "Batches evaluated whose findings await confirmation."
    );
}

/// Counts one error.
pub fn error(error_type: &'static str, stage: &'static str) {
    metrics::counter!(ERRORS, "error_type" => error_type, "stage" => stage).increment(1);
}
