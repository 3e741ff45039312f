//! Metric names, defined once (`vigil_<service>_<noun>_<unit>[_total]`).
//! Every series has the label `output` (the configured output's name).

/// Findings an output accepted.
pub const DELIVERED: &str = "vigil_forwarder_delivered_total";
/// Delivery attempts that failed, by `reason` (`connect`, `status_500`, `timeout`, …).
pub const FAILED: &str = "vigil_forwarder_failed_total";
/// Attempts that were a retry of a finding an earlier attempt failed to deliver.
pub const RETRIES: &str = "vigil_forwarder_retries_total";
/// Findings that can never be delivered to an output (malformed payload,
/// too large for a UDP datagram), by `reason`; JetStream does not redeliver them.
pub const REJECTED: &str = "vigil_forwarder_rejected_total";
/// `Vigil-Falco-Json` headers that were not a Falco alert (the finding is
/// forwarded from its protobuf alone).
pub const BAD_HEADERS: &str = "vigil_forwarder_bad_headers_total";
/// Time one accepted attempt took (request to answer).
pub const SEND_SECONDS: &str = "vigil_forwarder_send_seconds";
/// From the finding being made to an output accepting it.
pub const DELIVERY_SECONDS: &str = "vigil_forwarder_delivery_seconds";

/// Registers descriptions, so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(DELIVERED, "Findings accepted, by output.");
    metrics::describe_counter!(
        FAILED,
        "Failed delivery attempts (retried with back-off), by output and reason."
    );
    metrics::describe_counter!(
        RETRIES,
        "Delivery attempts that retried an earlier failure, by output."
    );
    metrics::describe_counter!(
        REJECTED,
        "Findings that can never be delivered, by output and reason."
    );
    metrics::describe_counter!(
        BAD_HEADERS,
        "Falco JSON headers that did not parse (forwarded from the protobuf), by output."
    );
    metrics::describe_histogram!(SEND_SECONDS, "Time of one accepted delivery attempt.");
    metrics::describe_histogram!(
        DELIVERY_SECONDS,
        "From the finding being made to the output accepting it."
    );
}
