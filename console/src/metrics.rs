//! The console's Prometheus metrics (`vigil_console_*`, bounded labels).

pub const MESSAGES: &str = "vigil_console_messages_total";
pub const ERRORS: &str = "vigil_console_errors_total";
pub const STEPS: &str = "vigil_console_workflow_steps_total";
pub const LIVE_CLIENTS: &str = "vigil_console_live_clients";
pub const EVICTED: &str = "vigil_console_evicted_total";

pub fn describe() {
    metrics::describe_counter!(MESSAGES, "Messages read from each stream, by stream.");
    metrics::describe_counter!(
        ERRORS,
        "Errors by type and stage (malformed_payload/decode, bad_request/api, unauthenticated/api, forbidden/api, responder/quarantine, ...)."
    );
    metrics::describe_counter!(STEPS, "Workflow steps by step and outcome.");
    metrics::describe_gauge!(LIVE_CLIENTS, "Browsers connected to the live stream.");
    metrics::describe_counter!(
        EVICTED,
        "Findings and incidents dropped from memory at their bound (max_findings, max_incidents), oldest first, by what."
    );
}

pub fn error(error_type: &'static str, stage: &'static str) {
    metrics::counter!(ERRORS, "error_type" => error_type, "stage" => stage).increment(1);
}
