//! Helpers for the tests that run the whole collector in-process against a
//! real nats-server and read what it published.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, async_nats::jetstream::consumer::pull, connect::connect, topology::StreamSpec,
};
use vigil_collector::{Config, Error, run};
use vigil_service::Health;
use vigil_testkit::NatsServer;

/// A collector config for `nats`, with the synthetic source.
pub fn config(nats: &NatsServer, node: &str) -> Config {
    let mut config = Config {
        node_name: node.to_owned(),
        source: vigil_collector::Source::Synthetic,
        ..Config::default()
    };
    config.nats.url = nats.url();
    config
}

/// The collector running as a task.
pub struct Running {
    pub health: Health,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), Error>>,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        let (health, shutdown) = (Health::default(), CancellationToken::new());
        let task = tokio::spawn(run(config, health.clone(), shutdown.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !health.is_ready() {
            assert!(
                !task.is_finished(),
                "the collector stopped before it was ready"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "the collector did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            health,
            shutdown,
            task,
        }
    }

    /// Shuts down and checks that `run` ended without error.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("run returns after shutdown")
            .unwrap()
            .expect("run ends without error");
    }
}

/// One stored message: its subject, message id and decoded payload.
pub struct Stored<M> {
    pub subject: String,
    pub message_id: String,
    pub message: M,
}

/// Reads `stream` (filtered on `filter`) from the start until `done` holds
/// for what was read, or `timeout` passes (then returns what it has).
pub async fn read<M: Message + Default>(
    nats: &NatsServer,
    stream: &StreamSpec,
    filter: &str,
    timeout: Duration,
    done: impl Fn(&[Stored<M>]) -> bool,
) -> Vec<Stored<M>> {
    let options = ConnectOptions {
        url: nats.url(),
        client_name: "collector-test-reader".into(),
    };
    let bus = connect(&options, &CancellationToken::new())
        .await
        .expect("connect to NATS");
    let consumer = bus
        .jetstream
        .get_stream(stream.name)
        .await
        .expect("the stream exists")
        .create_consumer(pull::Config {
            filter_subject: filter.to_owned(),
            ..Default::default()
        })
        .await
        .expect("create a consumer");
    let mut messages = consumer.messages().await.expect("pull messages");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut read = Vec::new();
    while !done(&read) {
        let Ok(next) = tokio::time::timeout_at(deadline, messages.next()).await else {
            break;
        };
        let message = next.expect("the consumer stays open").expect("a message");
        let message_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        read.push(Stored {
            subject: message.subject.to_string(),
            message_id,
            message: M::decode(message.payload.as_ref()).expect("a valid payload"),
        });
    }
    read
}

/// Events in the batches read.
pub fn event_count(batches: &[Stored<vigil_proto::v1::EventBatch>]) -> usize {
    batches.iter().map(|b| b.message.events.len()).sum()
}
