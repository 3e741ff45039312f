//! Metric names, defined once (`vigil_<service>_<noun>_<unit>[_total]`).

/// Events placed in windows.
pub const EVENTS: &str = "vigil_anomaly_scorer_events_total";
/// Windows closed, by `phase` (`learning`, `scored`).
pub const WINDOWS: &str = "vigil_anomaly_scorer_windows_total";
/// Anomaly findings stored by JetStream.
pub const FINDINGS: &str = "vigil_anomaly_scorer_findings_total";
/// Models by `outcome` (`fitted`, `loaded`, `refitted`).
pub const MODELS: &str = "vigil_anomaly_scorer_models_total";
/// Windows kept out of learning because their container raised a rule finding.
pub const UNTRUSTED_WINDOWS: &str = "vigil_anomaly_scorer_untrusted_windows_total";
/// Time to featurize and score one window.
pub const SCORE_SECONDS: &str = "vigil_anomaly_scorer_window_score_seconds";
/// Event partitions this instance consumes now.
pub const PARTITIONS: &str = "vigil_anomaly_scorer_partitions";
/// Changes of the owned partitions (the first assignment included).
pub const REBALANCES: &str = "vigil_anomaly_scorer_rebalances_total";
/// Errors by `error_type` and `stage`.
pub const ERRORS: &str = "vigil_anomaly_scorer_errors_total";

/// Registers descriptions, so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events placed in container windows.");
    metrics::describe_counter!(WINDOWS, "Windows closed, by phase (learning, scored).");
    metrics::describe_counter!(FINDINGS, "Anomaly findings published and stored.");
    metrics::describe_counter!(MODELS, "Workload models fitted, loaded or refitted.");
    metrics::describe_counter!(
        UNTRUSTED_WINDOWS,
        "Windows kept out of learning: their container raised a rule finding."
    );
    metrics::describe_histogram!(SCORE_SECONDS, "Time to featurize and score one window.");
    metrics::describe_gauge!(PARTITIONS, "Event partitions this instance consumes now.");
    metrics::describe_counter!(
        REBALANCES,
        "Changes of the owned partitions, the first assignment included."
    );
    metrics::describe_counter!(ERRORS, "Errors, by error_type and stage.");
}

/// Counts one error.
pub fn error(error_type: &'static str, stage: &'static str) {
    metrics::counter!(ERRORS, "error_type" => error_type, "stage" => stage).increment(1);
}
