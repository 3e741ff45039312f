//! Shared by the detectors' service tests: the service in-process against a
//! per-test nats-server, hand-built batches, and stream inspection.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use vigil_bus::{
    BusConnection, Publisher, TraceContext,
    async_nats::jetstream::{consumer, message::StreamMessage},
    codec, subject,
    topology::StreamSpec,
};
use vigil_detectors::{Config, Error, RulesConfig, run};
use vigil_proto::v1::{AddressFamily, Args, Event, EventBatch, EventType, SocketAddress};
use vigil_service::{Health, NatsConfig};
use vigil_testkit::NatsServer;
use vigil_testkit::in_process::{self, InProcess};

pub const NODE: &str = "node-1";
pub const CONTAINER: &str = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
pub const POD_UID: &str = "0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
const PATIENCE: Duration = Duration::from_secs(15);

/// The service running in a task of this test's runtime.
pub struct Running(InProcess<Error>);

impl std::ops::Deref for Running {
    type Target = InProcess<Error>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Running {
    pub async fn start(server: &NatsServer, health: Health) -> Self {
        Self::start_with(server, health, RulesConfig::default()).await
    }

    /// Starts with the given rules configuration.
    pub async fn start_with(server: &NatsServer, health: Health, rules: RulesConfig) -> Self {
        let config = Config {
            node_name: "detectors-test".into(),
            rules,
            nats: NatsConfig {
                url: server.url(),
                ..Default::default()
            },
            ..Default::default()
        };
        Running(
            InProcess::start("the detectors", health, PATIENCE, |health, shutdown| {
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
    in_process::bus(server, "detectors-test").await
}

/// Publishes `batch` as the collector would; returns whether JetStream
/// discarded it as a duplicate.
pub async fn publish_batch(
    bus: &BusConnection,
    batch: &EventBatch,
    message_id: &str,
    trace: &TraceContext,
) -> bool {
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events(&batch.node, 0),
            message_id,
            trace,
            codec::encode(batch),
        )
        .await
        .expect("publish batch")
        .duplicate
}

/// Polls `check` every 20 ms until it yields a value; panics after PATIENCE.
pub async fn poll<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    in_process::poll(what, PATIENCE, check).await
}

pub async fn consumer_info(bus: &BusConnection, stream: &StreamSpec, name: &str) -> consumer::Info {
    bus.jetstream
        .get_stream(stream.name)
        .await
        .expect("stream")
        .consumer_info(name)
        .await
        .expect("consumer info")
}

/// Waits until consumer `name` has settled every message up to stream
/// sequence `sequence` (acked or terminated) and holds nothing pending.
pub async fn wait_settled(
    bus: &BusConnection,
    stream: &StreamSpec,
    name: &str,
    sequence: u64,
) -> consumer::Info {
    poll("the consumer to settle its messages", || async {
        let info = consumer_info(bus, stream, name).await;
        (info.ack_floor.stream_sequence >= sequence && info.num_ack_pending == 0).then_some(info)
    })
    .await
}

/// Every message stored in `stream`, in order.
pub async fn stored(bus: &BusConnection, stream: &StreamSpec) -> Vec<StreamMessage> {
    let mut handle = bus.jetstream.get_stream(stream.name).await.expect("stream");
    let state = handle.info().await.expect("stream info").state.clone();
    let mut messages = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = handle.get_raw_message(sequence).await {
            messages.push(message);
        }
    }
    messages
}

/// Waits until `stream` holds exactly `count` messages, then returns them.
pub async fn wait_stored(
    bus: &BusConnection,
    stream: &StreamSpec,
    count: u64,
) -> Vec<StreamMessage> {
    poll("messages in the stream", || async {
        let mut handle = bus.jetstream.get_stream(stream.name).await.ok()?;
        let stored = handle.info().await.ok()?.state.messages;
        assert!(
            stored <= count,
            "{stored} messages in {}, expected {count}",
            stream.name
        );
        (stored == count).then_some(())
    })
    .await;
    stored(bus, stream).await
}

pub fn pod_cgroup() -> String {
    format!("kubepods/besteffort/pod{POD_UID}/{CONTAINER}")
}

fn event(event_type: EventType, comm: &str, exe: &str, in_container: bool, args: Args) -> Event {
    Event {
        kernel_time_ns: 1_000,
        wall_time_ns: 2_000,
        node: NODE.into(),
        pid: 4242,
        tid: 4242,
        ppid: 1,
        uid: 0,
        login_uid: u32::MAX,
        comm: comm.into(),
        exe_path: exe.into(),
        cwd: "/".into(),
        r#type: event_type as i32,
        args: Some(args),
        cgroup_path: if in_container {
            pod_cgroup()
        } else {
            "user.slice".into()
        },
        container_id: if in_container {
            CONTAINER.into()
        } else {
            String::new()
        },
        pod_uid: if in_container {
            POD_UID.into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

pub fn exec(path: &str, argv: &[&str], in_container: bool) -> Event {
    let comm = path.rsplit('/').next().unwrap_or(path);
    let args = Args {
        path: path.into(),
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    event(EventType::Exec, comm, path, in_container, args)
}

pub fn open(path: &str, return_value: i64, in_container: bool) -> Event {
    let args = Args {
        path: path.into(),
        ..Default::default()
    };
    let mut event = event(EventType::Open, "cat", "/usr/bin/cat", in_container, args);
    event.return_value = return_value;
    event
}

pub fn connect_to(ip: &str, port: u32, in_container: bool) -> Event {
    let args = Args {
        address: Some(SocketAddress {
            family: AddressFamily::Inet as i32,
            ip: ip.into(),
            port,
            unix_path: String::new(),
        }),
        ..Default::default()
    };
    let mut event = event(
        EventType::Connect,
        "curl",
        "/usr/bin/curl",
        in_container,
        args,
    );
    event.return_value = -115;
    event
}

/// Three events that must raise a finding each (indices 0, 2 and 4), among
/// benign ones that are close to them.
pub fn mixed_batch(sequence: u64) -> EventBatch {
    let events = vec![
        exec("/bin/sh", &["sh", "-c", "id"], true),
        exec("/usr/bin/python3", &["python3", "app.py"], true),
        open("/etc/shadow", 3, true),
        open("/etc/passwd", 3, true),
        connect_to("203.0.113.5", 4444, true),
        connect_to("203.0.113.5", 443, true),
        exec("/bin/bash", &["bash"], false),
        Event {
            r#type: EventType::Heartbeat as i32,
            ..Default::default()
        },
    ];
    EventBatch {
        node: NODE.into(),
        sequence,
        events,
        run_id: "run-a".into(),
        ..Default::default()
    }
}
