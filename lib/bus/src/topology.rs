//! Streams and durable consumers, created idempotently by the services.
//!
//! The publishing service owns a stream; consuming services ensure it too,
//! from this same definition, so start order never matters. Each consuming
//! service creates its own durable pull consumer with explicit acks.
//!
//! | stream          | subjects            | retention                     |
//! |-----------------|---------------------|-------------------------------|
//! | `VIGIL_EVENTS`  | `vigil.events.>`    | limits: 1 h, 2 GiB, drop old  |
//! | `VIGIL_FINDINGS`| `vigil.findings.>`  | limits: 7 days, 1 GiB         |
//! | `VIGIL_ACTIONS` | `vigil.actions.>`   | limits: 90 days (audit trail) |
//! | `VIGIL_SCORES`  | `vigil.scores.>`    | limits: 1 day, 1 GiB          |
//! | `VIGIL_AUDIT`   | `vigil.audit.>`     | limits: 90 days (console audit)|

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
};

use crate::subject;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A stream definition.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static str,
    pub description: &'static str,
    pub max_age: Duration,
    pub max_bytes: i64,
    /// Window in which a repeated `Nats-Msg-Id` is discarded.
    pub duplicate_window: Duration,
}

pub const EVENTS: StreamSpec = StreamSpec {
    name: "VIGIL_EVENTS",
    subjects: subject::EVENTS_ALL,
    description: "Event batches from the collectors; a short buffer, not an archive.",
    max_age: HOUR,
    max_bytes: 2 << 30,
    duplicate_window: Duration::from_secs(120),
};

pub const FINDINGS: StreamSpec = StreamSpec {
    name: "VIGIL_FINDINGS",
    subjects: subject::FINDINGS_ALL,
    description: "Findings from rules and anomaly models.",
    max_age: Duration::from_secs(7 * DAY.as_secs()),
    max_bytes: 1 << 30,
    duplicate_window: Duration::from_secs(600),
};

pub const ACTIONS: StreamSpec = StreamSpec {
    name: "VIGIL_ACTIONS",
    subjects: subject::ACTIONS_ALL,
    description: "Audit trail: every action the responder took or refused.",
    max_age: Duration::from_secs(90 * DAY.as_secs()),
    max_bytes: 1 << 30,
    duplicate_window: Duration::from_secs(600),
};

pub const SCORES: StreamSpec = StreamSpec {
    name: "VIGIL_SCORES",
    subjects: subject::SCORES_ALL,
    description: "Anomaly scores, one per container window.",
    max_age: DAY,
    max_bytes: 1 << 30,
    duplicate_window: Duration::from_secs(120),
};

pub const AUDIT: StreamSpec = StreamSpec {
    name: "VIGIL_AUDIT",
    subjects: subject::AUDIT_ALL,
    description: "Audit trail of the console: every workflow step and login, with the user's name.",
    max_age: Duration::from_secs(90 * DAY.as_secs()),
    max_bytes: 1 << 30,
    duplicate_window: Duration::from_secs(600),
};

/// Incident state (`vigil.v1.IncidentState`, key `<namespace>.<pod>` as
/// [`kv_key`] gives it), shared live by every console instance.
pub const INCIDENTS_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_INCIDENTS",
    description: "Incident state shared by every console: status, assignee, comments, proposals.",
    max_age: Duration::from_secs(90 * DAY.as_secs()),
};

/// Console login sessions (by SHA-256 of the session token), shared by
/// every console replica; the console sets `max_age` to its configured
/// session lifetime.
pub const CONSOLE_SESSIONS_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_CONSOLE_SESSIONS",
    description: "Console login sessions, by SHA-256 of the session token, shared by every console.",
    max_age: Duration::from_secs(8 * 3600),
};

/// A durable pull consumer definition.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub stream: &'static StreamSpec,
    pub durable_name: String,
    pub filter_subject: String,
    /// Several filter subjects (NATS 2.10+); when non-empty, used instead of
    /// `filter_subject`.
    pub filter_subjects: Vec<String>,
    /// How long a delivered message may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
    /// Deliveries before JetStream gives up on a message that keeps failing.
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}

/// The detectors' shared consumer: every instance pulls from it, so each
/// batch is evaluated by exactly one instance.
pub fn detectors_consumer() -> ConsumerSpec {
    ConsumerSpec {
        stream: &EVENTS,
        durable_name: "detectors".to_owned(),
        filter_subject: subject::EVENTS_ALL.to_owned(),
        filter_subjects: Vec::new(),
        ack_wait: Duration::from_secs(30),
        max_deliver: 20,
        max_ack_pending: 10_000,
    }
}

/// The responder agent on `node` reads every finding and acts on those of
/// its own node.
pub fn responder_consumer(node: &str) -> ConsumerSpec {
    ConsumerSpec {
        stream: &FINDINGS,
        durable_name: format!("responder-{}", subject::token(node)),
        filter_subject: subject::FINDINGS_ALL.to_owned(),
        filter_subjects: Vec::new(),
        ack_wait: Duration::from_secs(30),
        max_deliver: 20,
        max_ack_pending: 1_000,
    }
}

/// The anomaly scorer's consumer of one event partition. Instances share
/// the partitions dynamically (`SCORER_MEMBERS_BUCKET`); whichever instance
/// owns partition `p` pulls from `anomaly-scorer-p<p>`, so the consumer's
/// position survives a hand-over and each container's events reach one
/// instance. One consumer per partition also gives the autoscaler one lag
/// per partition to add up.
pub fn anomaly_scorer_partition_consumer(partition: u32) -> ConsumerSpec {
    ConsumerSpec {
        stream: &EVENTS,
        durable_name: format!("anomaly-scorer-p{partition}"),
        filter_subject: subject::events_of_partition(partition),
        filter_subjects: Vec::new(),
        ack_wait: Duration::from_secs(30),
        max_deliver: 20,
        max_ack_pending: 1_000,
    }
}

/// The findings forwarder's consumer for one of its outputs
/// (`forwarder-<output>`): each output keeps its own position and
/// redeliveries, so an output that is down holds back only itself. A
/// finding is never given up on (`max_deliver` unlimited): the output
/// retries it with back-off until it accepts it or the stream ages it out.
pub fn forwarder_consumer(output: &str) -> ConsumerSpec {
    ConsumerSpec {
        stream: &FINDINGS,
        durable_name: format!("forwarder-{}", subject::token(output)),
        filter_subject: subject::FINDINGS_ALL.to_owned(),
        filter_subjects: Vec::new(),
        ack_wait: Duration::from_secs(30),
        max_deliver: -1,
        max_ack_pending: 1_000,
    }
}

/// Every anomaly-scorer consumer, one per event partition.
pub fn anomaly_scorer_consumers() -> Vec<ConsumerSpec> {
    (0..subject::EVENT_PARTITIONS)
        .map(anomaly_scorer_partition_consumer)
        .collect()
}

/// Object store bucket of the anomaly scorer's per-workload models, so a
/// restarted or additional instance scores with what another learnt.
pub const SCORER_MODELS_BUCKET: &str = "VIGIL_SCORER_MODELS";

/// Stream or consumer creation failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "cannot create or update stream {stream} (updating one is the admin credential's install step): {source}"
    )]
    Stream {
        stream: &'static str,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("cannot look up stream {stream}: {source}")]
    GetStream {
        stream: &'static str,
        #[source]
        source: jetstream::context::GetStreamError,
    },
    #[error("cannot create consumer {consumer} on stream {stream}: {source}")]
    Consumer {
        stream: &'static str,
        consumer: String,
        #[source]
        source: jetstream::stream::ConsumerError,
    },
    #[error("cannot create key-value bucket {bucket}: {source}")]
    Bucket {
        bucket: &'static str,
        #[source]
        source: jetstream::context::CreateKeyValueError,
    },
}

/// Creates the stream if it is missing, and updates it when it differs from
/// this definition; `replicas` is 1 on a single server and 3 on a
/// JetStream cluster. A stream that matches is only looked up: services'
/// NATS credentials may create a missing stream but never update one
/// (`vigil_bus::access`), so a service meeting a stream an older version
/// defined fails here until the admin credential updated it
/// ([`ensure_all`], `vigil-admin streams ensure`).
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    replicas: usize,
) -> Result<(), TopologyError> {
    // A cluster that is still electing its leaders times requests out; a
    // service starting beside it waits for it rather than failing.
    let started = std::time::Instant::now();
    loop {
        match define_stream(js, spec, replicas).await {
            Ok(()) => break,
            Err(error) if started.elapsed() >= CLUSTER_PATIENCE => return Err(error),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    if replicas > 1 {
        wait_for_leader(js, spec.name).await;
    }
    Ok(())
}

/// How long topology set-up waits for a forming cluster.
const CLUSTER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

async fn define_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    replicas: usize,
) -> Result<(), TopologyError> {
    let config = stream_config(spec, replicas);
    let stream_error = |source| TopologyError::Stream {
        stream: spec.name,
        source,
    };
    match js.get_stream(spec.name).await {
        Ok(stream) => {
            if same_definition(&stream.cached_info().config, &config) {
                return Ok(());
            }
            js.update_stream(config)
                .await
                .map(|_| ())
                .map_err(stream_error)
        }
        Err(error) if is_stream_not_found(&error) => js
            .create_stream(config)
            .await
            .map(|_| ())
            .map_err(stream_error),
        Err(source) => Err(TopologyError::GetStream {
            stream: spec.name,
            source,
        }),
    }
}

fn stream_config(spec: &StreamSpec, replicas: usize) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: spec.name.to_owned(),
        subjects: vec![spec.subjects.to_owned()],
        description: Some(spec.description.to_owned()),
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        max_age: spec.max_age,
        max_bytes: spec.max_bytes,
        duplicate_window: spec.duplicate_window,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

/// True when the server's stream has every setting Vigil defines.
fn same_definition(found: &jetstream::stream::Config, wanted: &jetstream::stream::Config) -> bool {
    found.subjects == wanted.subjects
        && found.description == wanted.description
        && found.retention == wanted.retention
        && found.discard == wanted.discard
        && found.storage == wanted.storage
        && found.max_age == wanted.max_age
        && found.max_bytes == wanted.max_bytes
        && found.duplicate_window == wanted.duplicate_window
        && found.num_replicas == wanted.num_replicas
}

fn is_stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(inner)
            if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Every stream and key-value bucket of Vigil, created or updated to this
/// version's definitions: the install step run with the admin credential
/// (`vigil-admin streams ensure`), the only one allowed to update them.
pub async fn ensure_all(js: &jetstream::Context, replicas: usize) -> Result<(), TopologyError> {
    for spec in [&EVENTS, &FINDINGS, &ACTIONS, &SCORES, &AUDIT] {
        ensure_stream(js, spec, replicas).await?;
    }
    for bucket in [
        &INCIDENTS_BUCKET,
        &CONSOLE_SESSIONS_BUCKET,
        &RESPONDER_FINDINGS_BUCKET,
        &QUARANTINE_BUCKET,
        &RESPONDER_LIMITS_BUCKET,
        &SCORER_MEMBERS_BUCKET,
    ] {
        ensure_bucket(js, bucket, replicas).await?;
    }
    Ok(())
}

/// Ensures the consumer's stream and the consumer itself, and returns it.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    replicas: usize,
) -> Result<PullConsumer, TopologyError> {
    ensure_stream(js, spec.stream, replicas).await?;
    let stream =
        js.get_stream(spec.stream.name)
            .await
            .map_err(|source| TopologyError::GetStream {
                stream: spec.stream.name,
                source,
            })?;
    let config = pull::Config {
        durable_name: Some(spec.durable_name.clone()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: spec.ack_wait,
        max_deliver: spec.max_deliver,
        max_ack_pending: spec.max_ack_pending,
        filter_subject: if spec.filter_subjects.is_empty() {
            spec.filter_subject.clone()
        } else {
            String::new()
        },
        filter_subjects: spec.filter_subjects.clone(),
        ..Default::default()
    };
    let consumer =
        stream
            .create_consumer(config)
            .await
            .map_err(|source| TopologyError::Consumer {
                stream: spec.stream.name,
                consumer: spec.durable_name.clone(),
                source,
            })?;
    // The consume loop recreates it from this if the server loses it.
    crate::consume::remember(js, spec, replicas);
    Ok(consumer)
}

/// The responder's cluster actor reads every finding (all nodes) and does
/// the Kubernetes API actions. Upper case cannot be a node name, so this
/// durable never collides with a node agent's.
pub fn responder_cluster_consumer() -> ConsumerSpec {
    ConsumerSpec {
        durable_name: "responder-CLUSTER".to_owned(),
        ..responder_consumer("_")
    }
}

/// A key-value bucket definition.
#[derive(Clone, Debug)]
pub struct BucketSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Entries older than this are dropped (zero: kept until deleted).
    pub max_age: Duration,
}

/// Finding ids the responder has handled (key: the id as a KV key, see
/// [`kv_key`]; value: the record ids), so a finding delivered twice acts
/// once. As long-lived as the findings stream it guards.
pub const RESPONDER_FINDINGS_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_RESPONDER_FINDINGS",
    description: "Findings the responder has acted on, by finding id.",
    max_age: Duration::from_secs(7 * DAY.as_secs()),
};

/// Pods in quarantine (`vigil.v1.QuarantineState`, key `<namespace>.<pod>`
/// as [`kv_key`] gives it): what is in force and must be undone on release.
pub const QUARANTINE_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_QUARANTINE",
    description: "Quarantined pods and the actions in force on them.",
    max_age: Duration::ZERO,
};

/// The responder's rate-limit counters, shared by all its replicas: one
/// key per scope (a pod, or all pods) and fixed window, its value the
/// containments counted in it, taken by compare-and-set. Old windows expire.
pub const RESPONDER_LIMITS_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_RESPONDER_LIMITS",
    description: "Responder rate-limit counters per scope and window.",
    max_age: Duration::from_secs(2 * DAY.as_secs()),
};

/// Live anomaly-scorer instances: one key per instance (its member id),
/// refreshed every third of `max_age`, deleted on graceful shutdown. The
/// short `max_age` makes a crashed instance's key expire, so the others
/// take over its partitions within seconds.
pub const SCORER_MEMBERS_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_SCORER_MEMBERS",
    description: "Live anomaly-scorer instances, for sharing the event partitions.",
    max_age: Duration::from_secs(15),
};

/// A key-value key for arbitrary text: KV keys allow only
/// `[-/_=.a-zA-Z0-9]`, so anything else is written as `=XX` (hex), and
/// leading or trailing dots (not allowed either) likewise.
pub fn kv_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    let last = text.len().saturating_sub(1);
    for (i, byte) in text.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'/')
            || (byte == b'.' && i != 0 && i != last);
        if plain {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    if key.is_empty() {
        key.push_str("=00");
    }
    key
}

/// Creates the bucket if missing and returns it.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
    replicas: usize,
) -> Result<jetstream::kv::Store, TopologyError> {
    if let Ok(store) = js.get_key_value(spec.name).await {
        if replicas > 1 {
            wait_for_leader(js, &format!("KV_{}", spec.name)).await;
        }
        return Ok(store);
    }
    let config = jetstream::kv::Config {
        bucket: spec.name.to_owned(),
        description: spec.description.to_owned(),
        history: 1,
        max_age: spec.max_age,
        storage: StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    let store = js
        .create_key_value(config)
        .await
        .map_err(|source| TopologyError::Bucket {
            bucket: spec.name,
            source,
        })?;
    if replicas > 1 {
        wait_for_leader(js, &format!("KV_{}", spec.name)).await;
    }
    Ok(store)
}

/// A replicated stream answers publishes only once its replicas have
/// elected a leader; until then a publish finds no stream. Waits for the
/// leader for a bounded time and then goes on: a publish that still comes
/// too early is retried by its publisher like any other.
async fn wait_for_leader(js: &jetstream::Context, stream: &str) {
    const STEP: std::time::Duration = std::time::Duration::from_millis(50);
    let started = std::time::Instant::now();
    while started.elapsed() < CLUSTER_PATIENCE {
        if let Ok(mut found) = js.get_stream(stream).await
            && let Ok(info) = found.info().await
            && info.cluster.as_ref().is_some_and(|c| c.leader.is_some())
        {
            return;
        }
        tokio::time::sleep(STEP).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_captures_its_own_subjects_only() {
        let streams = [&EVENTS, &FINDINGS, &ACTIONS, &SCORES, &AUDIT];
        for (i, a) in streams.iter().enumerate() {
            for b in &streams[i + 1..] {
                assert_ne!(a.subjects, b.subjects);
                assert_ne!(a.name, b.name);
            }
        }
        assert!(EVENTS.max_age < FINDINGS.max_age && FINDINGS.max_age < ACTIONS.max_age);
        assert!(DAY < FINDINGS.max_age);
    }

    #[test]
    fn scorer_consumers_filter_on_their_partition_only() {
        let spec = anomaly_scorer_partition_consumer(3);
        assert_eq!(spec.durable_name, "anomaly-scorer-p3");
        assert_eq!(spec.filter_subject, "vigil.events.*.3");
        assert!(spec.filter_subjects.is_empty());
        let all = anomaly_scorer_consumers();
        assert_eq!(all.len(), subject::EVENT_PARTITIONS as usize);
        let names: std::collections::BTreeSet<_> =
            all.iter().map(|c| c.durable_name.clone()).collect();
        assert_eq!(names.len(), all.len(), "one distinct durable per partition");
        assert!(!names.contains(&detectors_consumer().durable_name));
    }
}
