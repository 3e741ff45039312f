//! Shared by the responder's service tests: the service in-process against a
//! per-test nats-server, hand-built findings, and stream inspection.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use vigil_bus::{
    BusConnection, Publisher, TraceContext,
    async_nats::jetstream::{consumer, message::StreamMessage},
    codec, subject,
    topology::{self, ACTIONS, FINDINGS, StreamSpec},
};
use vigil_proto::v1::{ActionRecord, Event, EventType, Finding, FindingSource, Priority};
use vigil_responder::{Config, Error, run};
use vigil_service::{Health, NatsConfig, clock};
use vigil_testkit::NatsServer;
use vigil_testkit::in_process::{self, InProcess};

pub const NODE: &str = "node-1";
/// The durable consumer of the responder on NODE.
pub const CONSUMER: &str = "responder-node-1";
const PATIENCE: Duration = Duration::from_secs(15);

/// The shipped default policy with enforcement everywhere: the shipped one
/// only records what it would do, and these tests expect real actions.
pub fn enforcing_default_policy() -> std::path::PathBuf {
    policy_file(
        "enforce-all",
        &vigil_responder::policy::default_policy_enforcing("{ all: true }"),
    )
}

/// Writes a policy for this test process under cargo's per-test tmpdir.
pub fn policy_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "responder-policy-{name}-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write the test policy");
    path
}

pub fn config(server: &NatsServer) -> Config {
    Config {
        node_name: NODE.into(),
        policy_file: Some(enforcing_default_policy()),
        nats: NatsConfig {
            url: server.url(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The service running in a task of this test's runtime.
pub struct Running(InProcess<Error>);

impl std::ops::Deref for Running {
    type Target = InProcess<Error>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Running {
    pub async fn start(config: Config, health: Health) -> Self {
        Running(
            InProcess::start("the responder", health, PATIENCE, |health, shutdown| {
                run(config, health, shutdown)
            })
            .await,
        )
    }

    /// Shuts down as on SIGTERM and checks that `run` returned Ok.
    pub async fn stop(self) {
        self.0.stop(PATIENCE).await;
    }
}

pub async fn bus(server: &NatsServer) -> BusConnection {
    in_process::bus(server, "responder-test").await
}

/// A finding as the detectors would publish it, for a process in `cgroup_path`.
pub fn finding(
    id: &str,
    cgroup_path: &str,
    container_id: &str,
    pod_uid: &str,
    namespace: &str,
) -> Finding {
    Finding {
        id: id.into(),
        time_ns: clock::wall_ns(),
        source: FindingSource::Rule as i32,
        name: "Read of /etc/shadow".into(),
        priority: Priority::Warning as i32,
        container_id: container_id.into(),
        namespace: namespace.into(),
        node: NODE.into(),
        cgroup_path: cgroup_path.into(),
        pod_uid: pod_uid.into(),
        events: vec![Event {
            kernel_time_ns: clock::monotonic_ns(),
            node: NODE.into(),
            r#type: EventType::Open as i32,
            cgroup_path: cgroup_path.into(),
            container_id: container_id.into(),
            pod_uid: pod_uid.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Publishes `finding` under `message_id`; returns whether JetStream
/// discarded it as a duplicate.
pub async fn publish_finding(
    bus: &BusConnection,
    finding: &Finding,
    message_id: &str,
    trace: &TraceContext,
) -> bool {
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::findings(finding.priority(), &finding.namespace),
            message_id,
            trace,
            codec::encode(finding),
        )
        .await
        .expect("publish finding")
        .duplicate
}

/// Polls `check` every 20 ms until it yields a value; panics after 15 s.
pub async fn poll<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_within(what, PATIENCE, check).await
}

/// [`poll`] with its own patience.
pub async fn poll_within<T, F, Fut>(what: &str, patience: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    in_process::poll(what, patience, check).await
}

pub async fn consumer_info(bus: &BusConnection) -> consumer::Info {
    consumer_info_of(bus, CONSUMER).await
}

pub async fn consumer_info_of(bus: &BusConnection, consumer: &str) -> consumer::Info {
    bus.jetstream
        .get_stream(FINDINGS.name)
        .await
        .expect("findings stream")
        .consumer_info(consumer)
        .await
        .expect("consumer info")
}

/// Waits until the responder has settled every finding up to stream
/// sequence `sequence` (acked or terminated) and holds nothing pending.
pub async fn wait_settled(bus: &BusConnection, sequence: u64) -> consumer::Info {
    wait_settled_on(bus, CONSUMER, sequence).await
}

/// [`wait_settled`] for the consumer named `consumer`.
pub async fn wait_settled_on(bus: &BusConnection, consumer: &str, sequence: u64) -> consumer::Info {
    poll("the responder to settle its findings", || async {
        let info = consumer_info_of(bus, consumer).await;
        (info.ack_floor.stream_sequence >= sequence && info.num_ack_pending == 0).then_some(info)
    })
    .await
}

async fn stored(bus: &BusConnection, stream: &StreamSpec) -> Vec<StreamMessage> {
    let Ok(mut handle) = bus.jetstream.get_stream(stream.name).await else {
        return Vec::new();
    };
    let state = handle.info().await.expect("stream info").state.clone();
    let mut messages = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = handle.get_raw_message(sequence).await {
            messages.push(message);
        }
    }
    messages
}

/// Every action record stored, with its subject.
pub async fn records(bus: &BusConnection) -> Vec<(String, ActionRecord)> {
    stored(bus, &ACTIONS)
        .await
        .iter()
        .map(|m| {
            let record =
                codec::decode(&m.payload, m.subject.as_str(), m.sequence).expect("an ActionRecord");
            (m.subject.to_string(), record)
        })
        .collect()
}

/// The keys of the findings the responder remembers as handled
/// (`<consumer>.<finding id>`).
pub async fn handled_keys(bus: &BusConnection) -> Vec<String> {
    use futures::StreamExt;
    let handled = bus
        .jetstream
        .get_key_value(topology::RESPONDER_FINDINGS_BUCKET.name)
        .await
        .expect("the handled-findings bucket");
    handled
        .keys()
        .await
        .expect("list the handled findings")
        .map(|k| k.expect("a handled-finding key"))
        .collect()
        .await
}

/// Waits until exactly `count` action records are stored, then returns them.
pub async fn wait_records(bus: &BusConnection, count: usize) -> Vec<(String, ActionRecord)> {
    poll("action records", || async {
        let found = records(bus).await;
        assert!(
            found.len() <= count,
            "{} records, expected {count}: {found:?}",
            found.len()
        );
        (found.len() == count).then_some(found)
    })
    .await
}
