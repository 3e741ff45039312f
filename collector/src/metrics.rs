//! Metric names, defined once (`vigil_<service>_<noun>_<unit>[_total]`).

/// Events decoded and handed to the publisher, by `kind`.
pub const EVENTS: &str = "vigil_collector_events_total";
/// Ring-buffer records that did not decode, by `reason`.
pub const RECORDS_INVALID: &str = "vigil_collector_records_invalid_total";
/// Events in batches stored by JetStream.
pub const EVENTS_PUBLISHED: &str = "vigil_collector_events_published_total";
/// Batches stored by JetStream.
pub const BATCHES_PUBLISHED: &str = "vigil_collector_batches_published_total";
/// Events the kernel could not deliver, by `reason` (`ringbuf_full`, `no_ring`).
pub const KERNEL_DROPS: &str = "vigil_collector_kernel_drops_total";
/// Events dropped in user space because the publisher fell behind.
pub const USERSPACE_DROPS: &str = "vigil_collector_userspace_drops_total";
/// Publish attempts that failed, by `stage` (`send`, `confirm`,
/// `drop_finding`); each is tried again.
pub const PUBLISH_ERRORS: &str = "vigil_collector_publish_errors_total";
/// Events in batches still unconfirmed when shutdown ended the wait for
/// their acks: stored or lost, JetStream did not say.
pub const EVENTS_UNCONFIRMED: &str = "vigil_collector_events_unconfirmed_total";

/// Replays that stopped on a recording error, by `reason`.
pub const REPLAY_ERRORS: &str = "vigil_collector_replay_errors_total";
/// Recordings stopped by a write error.
pub const RECORD_ERRORS: &str = "vigil_collector_record_errors_total";
/// "Collector dropped events" findings published.
pub const DROP_FINDINGS: &str = "vigil_collector_drop_findings_total";

/// Failed requests or watch errors against the Kubernetes API.
pub const KUBE_ERRORS: &str = "vigil_collector_kube_errors_total";

/// Registers descriptions, so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events decoded from the kernel, by kind.");
    metrics::describe_counter!(
        RECORDS_INVALID,
        "Kernel records that did not decode, by reason."
    );
    metrics::describe_counter!(BATCHES_PUBLISHED, "Event batches stored by JetStream.");
    metrics::describe_counter!(KERNEL_DROPS, "Events the kernel dropped, by reason.");
    metrics::describe_counter!(
        USERSPACE_DROPS,
        "Events dropped because publishing fell behind."
    );
    metrics::describe_counter!(
        PUBLISH_ERRORS,
        "Failed publish attempts (each tried again), by stage."
    );
    metrics::describe_counter!(
        EVENTS_UNCONFIRMED,
        "Events in batches unconfirmed at shutdown (stored or lost)."
    );
    metrics::describe_counter!(
        REPLAY_ERRORS,
        "Replays stopped by a bad recording, by reason."
    );
    metrics::describe_counter!(RECORD_ERRORS, "Recordings stopped by a write error.");
    metrics::describe_counter!(EVENTS_PUBLISHED, "Events in batches stored by JetStream.");
    metrics::describe_counter!(KUBE_ERRORS, "Errors watching pods in the Kubernetes API.");
    metrics::describe_counter!(
        DROP_FINDINGS,
        "Findings raised because events were dropped."
    );
}
