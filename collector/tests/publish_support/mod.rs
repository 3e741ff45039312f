//! Helpers for the tests that run the whole collector in-process against a
//! real nats-server and read what it published.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use vigil_bus::{async_nats::jetstream::consumer::pull, topology::StreamSpec};
use vigil_collector::{Config, Error, run};
use vigil_service::Health;
use vigil_testkit::NatsServer;
use vigil_testkit::in_process::{self, InProcess};

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
pub struct Running(InProcess<Error>);

impl std::ops::Deref for Running {
    type Target = InProcess<Error>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

const PATIENCE: Duration = Duration::from_secs(30);

impl Running {
    pub async fn start(config: Config) -> Self {
        Running(
            InProcess::start(
                "the collector",
                Health::default(),
                PATIENCE,
                |health, shutdown| run(config, health, shutdown),
            )
            .await,
        )
    }

    /// Shuts down and checks that `run` ended without error.
    pub async fn stop(self) {
        self.0.stop(PATIENCE).await;
    }
}

/// One stored message: its subject, message id and decoded payload.
pub struct Stored<M> {
    pub subject: String,
    pub message_id: String,
    pub message: M,
}

/// A payload these tests read back from a stream.
pub trait Payload: Sized {
    fn read(payload: &[u8]) -> Self;
}

/// Batches through the services' one batch reader, whole.
impl Payload for vigil_proto::v1::EventBatch {
    fn read(payload: &[u8]) -> Self {
        let decoded = vigil_proto::batch::decode(payload).expect("a valid batch");
        assert!(decoded.skipped.is_empty(), "{:?}", decoded.skipped);
        decoded.batch
    }
}

impl Payload for vigil_proto::v1::Finding {
    fn read(payload: &[u8]) -> Self {
        Self::decode(payload).expect("a valid finding")
    }
}

/// Reads `stream` (filtered on `filter`) from the start until `done` holds
/// for what was read, or `timeout` passes (then returns what it has).
pub async fn read<M: Payload>(
    nats: &NatsServer,
    stream: &StreamSpec,
    filter: &str,
    timeout: Duration,
    done: impl Fn(&[Stored<M>]) -> bool,
) -> Vec<Stored<M>> {
    let bus = in_process::bus(nats, "collector-test-reader").await;
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
            message: M::read(message.payload.as_ref()),
        });
    }
    read
}

/// Events in the batches read.
pub fn event_count(batches: &[Stored<vigil_proto::v1::EventBatch>]) -> usize {
    batches.iter().map(|b| b.message.events.len()).sum()
}
