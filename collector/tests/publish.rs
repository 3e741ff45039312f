//! The whole service in-process against a real nats-server: an open on the
//! host arrives in the VIGIL_EVENTS stream inside an EventBatch with a
//! message id of `<run_id>:<sequence>` and a trace context.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, async_nats::jetstream::consumer::pull, connect::connect, subject,
    topology::EVENTS,
};
use vigil_collector::{Config, run};
use vigil_proto::v1::{Event, EventBatch, EventType};
use vigil_service::Health;
use vigil_testkit::{NatsServer, require_root};

const NODE: &str = "publish-test";

fn config(nats: &NatsServer) -> Config {
    let mut nats_config = Config::default().nats;
    nats_config.url = nats.url();
    Config {
        node_name: NODE.to_owned(),
        nats: nats_config,
        ring_buffer_bytes: 1 << 24,
        ..Config::default()
    }
}

async fn wait_ready(health: &Health) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health.is_ready() {
        assert!(
            Instant::now() < deadline,
            "the collector did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_is_published_in_an_event_batch() {
    if !require_root("an_open_is_published_in_an_event_batch") {
        return;
    }
    let nats = NatsServer::start();
    let (health, shutdown) = (Health::default(), CancellationToken::new());
    let collector = tokio::spawn(run(config(&nats), health.clone(), shutdown.clone()));
    wait_ready(&health).await;

    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("published-marker");
    let status = std::process::Command::new("/bin/cat")
        .arg(&marker)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "cat of a missing file fails");

    let (batch, event) = find_event(&nats, |e| {
        e.r#type() == EventType::Open
            && e.args
                .as_ref()
                .is_some_and(|a| a.path == marker.to_str().unwrap())
    })
    .await;
    assert_eq!(event.return_value, -i64::from(libc::ENOENT));
    assert_eq!((event.node.as_str(), event.comm.as_str()), (NODE, "cat"));
    assert_eq!(batch.node, NODE);
    assert!(batch.sequence >= 1 && !batch.run_id.is_empty());

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), collector).await;
    stopped
        .expect("run returns after shutdown")
        .unwrap()
        .expect("run ends without error");
    assert!(!health.is_ready());
}

/// Reads VIGIL_EVENTS from the start until a batch has an event that
/// `matches`; checks every batch's headers on the way.
async fn find_event(nats: &NatsServer, matches: impl Fn(&Event) -> bool) -> (EventBatch, Event) {
    let options = ConnectOptions {
        url: nats.url(),
        client_name: "publish-test".into(),
    };
    let bus = connect(&options, &CancellationToken::new())
        .await
        .expect("connect to NATS");
    let stream = bus
        .jetstream
        .get_stream(EVENTS.name)
        .await
        .expect("the events stream exists");
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject::events(NODE, 0),
            ..Default::default()
        })
        .await
        .expect("create a consumer");
    let mut messages = consumer.messages().await.expect("pull messages");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, messages.next())
            .await
            .expect("the event within 20 s")
            .expect("the consumer stays open")
            .expect("a message");
        let batch = vigil_proto::batch::decode(message.payload.as_ref())
            .expect("a batch")
            .batch;
        let headers = message.headers.as_ref().expect("headers");
        let message_id = headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned());
        assert_eq!(
            message_id,
            Some(format!("{}:{}", batch.run_id, batch.sequence))
        );
        assert!(headers.get("traceparent").is_some());
        if let Some(event) = batch.events.iter().find(|e| matches(e)).cloned() {
            return (batch, event);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_before_nats_answers_is_clean() {
    if !require_root("shutdown_before_nats_answers_is_clean") {
        return;
    }
    let mut nats = Config::default().nats;
    nats.url = "nats://127.0.0.1:1".to_owned();
    let config = Config {
        nats,
        ..Config::default()
    };
    let (health, shutdown) = (Health::default(), CancellationToken::new());
    let collector = tokio::spawn(run(config, health.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!health.is_ready());
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), collector).await;
    stopped
        .expect("run returns after shutdown")
        .unwrap()
        .expect("a cancelled connect is not an error");
}
