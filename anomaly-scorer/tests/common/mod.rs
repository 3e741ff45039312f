//! Shared by the scorer's service tests: the service in-process against a
//! per-test nats-server, a synthetic workload and an attack, stream
//! inspection and a gRPC client.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::SocketAddr;
use std::time::Duration;

use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use vigil_anomaly_scorer::{Config, Error, run_reporting};
use vigil_bus::{BusConnection, Publisher, TraceContext, codec, subject, topology::StreamSpec};
use vigil_proto::v1::anomaly_scorer_client::AnomalyScorerClient;
use vigil_proto::v1::{
    AddressFamily, AnomalyScore, Args, Event, EventBatch, EventType, Finding, PodMeta,
    SocketAddress,
};
use vigil_service::{Health, NatsConfig};
use vigil_testkit::NatsServer;
use vigil_testkit::in_process::{self, InProcess};

pub const NODE: &str = "node-1";
pub const EVENTS_PER_WINDOW: u32 = 16;
pub const LEARNING_WINDOWS: u32 = 20;
const PATIENCE: Duration = Duration::from_secs(20);

/// The service running in a task of this test's runtime.
pub struct Running {
    pub grpc: SocketAddr,
    /// The partitions the instance consumes, as it reports them.
    pub owned: watch::Receiver<Vec<u32>>,
    service: InProcess<Error>,
}

pub fn config(server: &NatsServer) -> Config {
    Config {
        node_name: "scorer-test".into(),
        window_events: EVENTS_PER_WINDOW,
        window_stride: EVENTS_PER_WINDOW,
        learning_windows: LEARNING_WINDOWS,
        nats: NatsConfig {
            url: server.url(),
            ..Default::default()
        },
        ..Default::default()
    }
}

impl Running {
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, Health::default()).await
    }

    pub async fn start_with(config: Config, health: Health) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let grpc = listener.local_addr().expect("gRPC address");
        let (reporter, owned) = watch::channel(Vec::new());
        let service = InProcess::start("the scorer", health, PATIENCE, |health, shutdown| {
            run_reporting(config, listener, health, shutdown, reporter)
        })
        .await;
        Self {
            grpc,
            owned,
            service,
        }
    }

    /// The partitions it consumes now.
    pub fn owned(&self) -> Vec<u32> {
        self.owned.borrow().clone()
    }

    pub async fn client(&self) -> AnomalyScorerClient<tonic::transport::Channel> {
        AnomalyScorerClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("gRPC connect")
    }

    /// Shuts down as on SIGTERM and checks that `run` returned Ok.
    pub async fn stop(self) {
        self.service.stop(PATIENCE).await;
    }
}

pub async fn bus(server: &NatsServer) -> BusConnection {
    in_process::bus(server, "scorer-test").await
}

/// A container of the `web` Deployment (image `shop/web:1`).
pub struct Container {
    pub id: String,
    pub pod: String,
}

impl Container {
    pub fn new(id: &str, pod: &str) -> Self {
        Self {
            id: id.into(),
            pod: pod.into(),
        }
    }

    fn event(&self, syscall: &str, event_type: EventType, args: Args, ret: i64) -> Event {
        Event {
            node: NODE.into(),
            pid: 100,
            tid: 100,
            container_id: self.id.clone(),
            cgroup_path: format!("kubepods/pod-{}/{}", self.pod, self.id),
            syscall: syscall.into(),
            r#type: event_type as i32,
            return_value: ret,
            args: Some(args),
            pod: Some(PodMeta {
                name: self.pod.clone(),
                namespace: "shop".into(),
                image: "shop/web:1".into(),
                owner_kind: "Deployment".into(),
                owner_name: "web".into(),
                ..PodMeta::default()
            }),
            ..Event::default()
        }
    }

    fn open(&self, path: &str, ret: i64) -> Event {
        let args = Args {
            path: path.into(),
            ..Args::default()
        };
        self.event("openat", EventType::Open, args, ret)
    }

    fn connect(&self, ip: &str, port: u32) -> Event {
        let args = Args {
            address: Some(SocketAddress {
                family: AddressFamily::Inet as i32,
                ip: ip.into(),
                port,
                ..SocketAddress::default()
            }),
            ..Args::default()
        };
        self.event("connect", EventType::Connect, args, 0)
    }

    fn simple(&self, syscall: &str, event_type: EventType) -> Event {
        self.event(syscall, event_type, Args::default(), 0)
    }

    /// `count` events of a web server: accept a request, read a page, ask
    /// the database, log; sometimes a cache miss or a second page. Fixed
    /// pseudo-random choices from `seed`, so every run sees the same data.
    pub fn normal(&self, seed: u64, count: usize) -> Vec<Event> {
        let mut state = seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut events = Vec::new();
        while events.len() < count {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let pick = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 58;
            events.push(self.simple("accept4", EventType::Accept));
            events.push(self.open(&format!("/srv/page{}.html", pick % 4), 5));
            if pick.is_multiple_of(3) {
                events.push(self.connect("10.0.0.5", 6379));
            }
            events.push(self.connect("10.0.0.7", 5432));
            if pick.is_multiple_of(5) {
                events.push(self.open("/srv/missing.html", -2));
            }
            events.push(self.open("/var/log/web.log", 6));
        }
        events.truncate(count);
        events
    }

    /// A reverse shell: a shell runs, reads credentials, calls out, drops a
    /// binary and runs it.
    pub fn attack(&self) -> Vec<Event> {
        let exec = |path: &str| Args {
            path: path.into(),
            ..Args::default()
        };
        let mut events = vec![
            self.event("execve", EventType::Exec, exec("/bin/sh"), 0),
            self.open("/etc/shadow", 3),
            self.connect("203.0.113.9", 4444),
            self.simple("dup2", EventType::Dup),
            self.simple("clone", EventType::Clone),
            self.event("execve", EventType::Exec, exec("/tmp/.x"), 0),
            self.open("/root/.ssh/id_rsa", -13),
            self.simple("ptrace", EventType::Ptrace),
        ];
        events.extend(events.clone());
        events.truncate(EVENTS_PER_WINDOW as usize);
        events
    }
}

/// Publishes `events` as the collector would: one batch on the
/// container's partition subject.
pub async fn publish(
    bus: &BusConnection,
    container: &Container,
    sequence: u64,
    mut events: Vec<Event>,
) {
    for (i, event) in events.iter_mut().enumerate() {
        event.wall_time_ns = 1_700_000_000_000_000_000 + sequence * 1_000_000 + i as u64;
    }
    let batch = EventBatch {
        node: NODE.into(),
        sequence,
        events,
        run_id: "run-a".into(),
        ..EventBatch::default()
    };
    let partition = subject::event_partition(&container.id);
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events(NODE, partition),
            &format!("run-a:{}:{sequence}", container.id),
            &TraceContext::new_root(),
            codec::encode(&batch),
        )
        .await
        .expect("publish batch");
}

/// Publishes `windows` windows of normal behaviour, one batch per window.
pub async fn publish_normal(bus: &BusConnection, container: &Container, first: u64, windows: u64) {
    for i in first..first + windows {
        let events = container.normal(i, EVENTS_PER_WINDOW as usize);
        publish(bus, container, i, events).await;
    }
}

/// Every message stored in `stream`, decoded as `M`.
pub async fn stored<M: Message + Default>(bus: &BusConnection, stream: &StreamSpec) -> Vec<M> {
    let Ok(mut handle) = bus.jetstream.get_stream(stream.name).await else {
        return Vec::new();
    };
    let state = handle.info().await.expect("stream info").state.clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = handle.get_raw_message(sequence).await {
            messages.push(M::decode(message.payload).expect("decodes"));
        }
    }
    messages
}

pub async fn scores(bus: &BusConnection) -> Vec<AnomalyScore> {
    stored(bus, &vigil_bus::topology::SCORES).await
}

pub async fn findings(bus: &BusConnection) -> Vec<Finding> {
    stored(bus, &vigil_bus::topology::FINDINGS).await
}

/// Waits until the scores stream holds `count` scores of `container`.
pub async fn wait_scores(bus: &BusConnection, container: &str, count: usize) -> Vec<AnomalyScore> {
    poll("scores of the container", || async {
        let mine: Vec<AnomalyScore> = scores(bus)
            .await
            .into_iter()
            .filter(|s| s.container_id == container)
            .collect();
        assert!(
            mine.len() <= count,
            "{} scores, expected {count}",
            mine.len()
        );
        (mine.len() == count).then_some(mine)
    })
    .await
}

/// Polls `check` every 20 ms until it yields a value; panics after PATIENCE.
pub async fn poll<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    in_process::poll(what, PATIENCE, check).await
}
