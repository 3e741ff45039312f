//! The consume loop recreating its durable after quick successive
//! deletions on a real nats-server (issue 17).
//!
//! A deletion right after a recreation can reach the server together with
//! the loop's first pull request, which is then dropped without a reply;
//! before pulls carried a short heartbeat, the loop waited for that request
//! to expire (over 30 s). Before the fix, 5 of 8 runs of 400 deletions had
//! a round past 15 s.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, Disposition, Publisher, TraceContext, codec,
    connect::connect,
    consume, subject,
    topology::{self, EVENTS},
};
use vigil_proto::v1::EventBatch;
use vigil_testkit::{NatsServer, in_process::poll};

const ROUNDS: u32 = 400;
/// Far above a recreation (milliseconds) and a dropped pull request's
/// detection (two missed 1 s heartbeats), far below the old 30 s.
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_successive_deletions_are_each_recreated() {
    tracing_subscriber_init();
    let server = NatsServer::start();
    let options = ConnectOptions {
        url: server.url(),
        client_name: "bus-test".to_owned(),
    };
    let bus = connect(&options, &CancellationToken::new()).await.unwrap();
    let spec = topology::detectors_consumer();
    let consumer = topology::ensure_consumer(&bus.jetstream, &spec, 1)
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (seen, shutdown) = (seen.clone(), shutdown.clone());
        consume::run(consumer, shutdown, 1, move |delivery| {
            seen.lock().unwrap().push(delivery.stream_sequence);
            async move { Disposition::Ack }
        })
    });
    let stream = bus.jetstream.get_stream(EVENTS.name).await.unwrap();
    let mut slowest = Duration::ZERO;
    for round in 1..=ROUNDS {
        let started = Instant::now();
        while stream.consumer_info(&spec.durable_name).await.is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "round {round}: the consumer was not recreated within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        slowest = slowest.max(started.elapsed());
        stream.delete_consumer(&spec.durable_name).await.unwrap();
    }
    eprintln!("slowest recreation: {slowest:?}");
    // And after the last deletion it consumes again.
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events("n1", 0),
            "after-deletions",
            &TraceContext::new_root(),
            codec::encode(&EventBatch::default()),
        )
        .await
        .unwrap();
    poll(
        "the message published after the deletions",
        PATIENCE,
        || async { seen.lock().unwrap().contains(&1).then_some(()) },
    )
    .await;
    shutdown.cancel();
    task.await.unwrap();
}

fn tracing_subscriber_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("vigil_bus=info")
        .with_test_writer()
        .try_init();
}
