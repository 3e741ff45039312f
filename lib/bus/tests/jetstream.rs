//! vigil-bus against a real nats-server: topology, de-duplication, trace
//! context, the consume loop's dispositions, reconnects.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    BusConnection, ConnectOptions, Disposition, Publisher, TraceContext,
    async_nats::jetstream::consumer::PullConsumer,
    codec,
    connect::connect,
    consume, subject,
    topology::{self, EVENTS},
};
use vigil_proto::v1::EventBatch;
use vigil_testkit::NatsServer;

fn options(server: &NatsServer) -> ConnectOptions {
    ConnectOptions {
        url: server.url(),
        client_name: "bus-test".to_owned(),
    }
}

fn batch(sequence: u64) -> EventBatch {
    EventBatch {
        node: "n1".into(),
        sequence,
        run_id: "run".into(),
        ..Default::default()
    }
}

/// A connection to `server` and the detectors' consumer on `VIGIL_EVENTS`.
async fn detectors_consumer(server: &NatsServer) -> (BusConnection, PullConsumer) {
    let bus = connect(&options(server), &CancellationToken::new())
        .await
        .unwrap();
    let consumer = topology::ensure_consumer(&bus.jetstream, &topology::detectors_consumer(), 1)
        .await
        .unwrap();
    (bus, consumer)
}

/// Publishes the batches `sequences` on `vigil.events.n1.0`, ids `run:<n>`.
async fn publish_batches(publisher: &Publisher, sequences: std::ops::RangeInclusive<u64>) {
    let trace = TraceContext::new_root();
    for sequence in sequences {
        publisher
            .publish(
                subject::events("n1", 0),
                &format!("run:{sequence}"),
                &trace,
                codec::encode(&batch(sequence)),
            )
            .await
            .unwrap();
    }
}

async fn wait_for(seen: &Arc<Mutex<Vec<u64>>>, count: usize) -> Vec<u64> {
    for _ in 0..1000 {
        if seen.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen.lock().unwrap().clone()
}

/// Like `wait_for`, counting each value once: delivery is at least once, so
/// a redelivered message must not stand in for one still to come.
async fn wait_for_distinct(seen: &Arc<Mutex<Vec<u64>>>, count: usize) -> Vec<u64> {
    let distinct = || {
        let mut values = seen.lock().unwrap().clone();
        values.sort_unstable();
        values.dedup();
        values
    };
    for _ in 0..1000 {
        if distinct().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    distinct()
}

#[tokio::test]
async fn topology_is_idempotent_and_duplicates_are_discarded() {
    let server = NatsServer::start();
    let bus = connect(&options(&server), &CancellationToken::new())
        .await
        .unwrap();
    for _ in 0..2 {
        topology::ensure_stream(&bus.jetstream, &EVENTS, 1)
            .await
            .unwrap();
        topology::ensure_consumer(&bus.jetstream, &topology::detectors_consumer(), 1)
            .await
            .unwrap();
    }
    let publisher = Publisher::new(bus.jetstream.clone());
    let trace = TraceContext::new_root();
    let first = publisher
        .publish(
            subject::events("n1", 0),
            "run:1",
            &trace,
            codec::encode(&batch(1)),
        )
        .await
        .unwrap();
    let again = publisher
        .publish(
            subject::events("n1", 0),
            "run:1",
            &trace,
            codec::encode(&batch(1)),
        )
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        again.duplicate,
        "same message id within the window must be discarded"
    );
    let mut stream = bus.jetstream.get_stream(EVENTS.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn consume_acks_good_rejects_malformed_and_carries_the_trace() {
    let server = NatsServer::start();
    let (bus, consumer) = detectors_consumer(&server).await;
    let publisher = Publisher::new(bus.jetstream.clone());
    let trace = TraceContext::new_root();
    publisher
        .publish(
            subject::events("n1", 0),
            "bad",
            &trace,
            Bytes::from_static(&[0xff, 0xff]),
        )
        .await
        .unwrap();
    publisher
        .publish(
            subject::events("n1", 0),
            "run:2",
            &trace,
            codec::encode(&batch(2)),
        )
        .await
        .unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let traces = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (seen, rejected, traces, shutdown) = (
            seen.clone(),
            rejected.clone(),
            traces.clone(),
            shutdown.clone(),
        );
        consume::run(consumer, shutdown, 1, move |delivery| {
            let (seen, rejected, traces) = (seen.clone(), rejected.clone(), traces.clone());
            async move {
                traces.lock().unwrap().push(delivery.trace.trace_id);
                match codec::decode::<EventBatch>(
                    &delivery.payload,
                    &delivery.subject,
                    delivery.stream_sequence,
                ) {
                    Ok(batch) => {
                        seen.lock().unwrap().push(batch.sequence);
                        Disposition::Ack
                    }
                    Err(error) => {
                        rejected
                            .lock()
                            .unwrap()
                            .push((delivery.stream_sequence, delivery.delivered));
                        Disposition::Reject {
                            reason: error.to_string(),
                        }
                    }
                }
            }
        })
    });
    assert_eq!(wait_for(&seen, 1).await, vec![2]);
    // Give JetStream time to redeliver the malformed one if it were going to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        *rejected.lock().unwrap(),
        vec![(1, 1)],
        "malformed message delivered once, then terminated"
    );
    assert!(
        traces.lock().unwrap().iter().all(|t| *t == trace.trace_id),
        "traceparent travels in headers"
    );

    let mut consumer = bus
        .jetstream
        .get_stream(EVENTS.name)
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("detectors")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
}

#[tokio::test]
async fn connect_retries_until_the_server_starts() {
    let mut server = NatsServer::start();
    server.stop();
    let opts = options(&server);
    let connecting = tokio::spawn(async move { connect(&opts, &CancellationToken::new()).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !connecting.is_finished(),
        "no server yet, so connect must still be retrying"
    );
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let bus = tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(bus.client.server_info().version.starts_with("2."));
    drop(server);
}

#[tokio::test]
async fn connect_gives_up_on_shutdown() {
    let mut server = NatsServer::start();
    server.stop();
    let shutdown = CancellationToken::new();
    let opts = options(&server);
    let connecting = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { connect(&opts, &shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    let error = connecting.await.unwrap().unwrap_err();
    assert!(
        error.to_string().contains("shut down before NATS"),
        "{error}"
    );
}

#[tokio::test]
async fn consuming_survives_a_server_restart_without_losing_acknowledged_messages() {
    let mut server = NatsServer::start();
    let (bus, consumer) = detectors_consumer(&server).await;
    let publisher = Publisher::new(bus.jetstream.clone());
    let trace = TraceContext::new_root();
    publish_batches(&publisher, 1..=5).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (seen, shutdown) = (seen.clone(), shutdown.clone());
        consume::run(consumer, shutdown, 1, move |delivery| {
            let seen = seen.clone();
            async move {
                let batch: EventBatch =
                    codec::decode(&delivery.payload, &delivery.subject, 0).unwrap();
                seen.lock().unwrap().push(batch.sequence);
                Disposition::Ack
            }
        })
    });
    assert_eq!(wait_for(&seen, 5).await.len(), 5);

    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    // Published after the restart, once the client has reconnected.
    for sequence in 6..=10 {
        let mut attempts = 0;
        while publisher
            .publish(
                subject::events("n1", 0),
                &format!("run:{sequence}"),
                &trace,
                codec::encode(&batch(sequence)),
            )
            .await
            .is_err()
        {
            attempts += 1;
            assert!(attempts < 100, "publisher never reconnected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let all = wait_for_distinct(&seen, 10).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(
        all,
        (1..=10).collect::<Vec<_>>(),
        "every acknowledged message handled across the restart"
    );
    drop(server);
}

/// A server that requires a login accepts the user and password written in
/// `nats.url`, as the Kubernetes manifests pass them; a wrong password is
/// refused (the connect keeps retrying until shut down).
#[tokio::test]
async fn the_login_in_the_url_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("users.conf");
    std::fs::write(
        &config,
        "authorization { users = [ { user: scorer, password: \"p@ss/w:rd\" } ] }\n",
    )
    .unwrap();
    let server = NatsServer::start_with_config(&config, &[]);
    let host = server.url().trim_start_matches("nats://").to_owned();
    let login = |password: &str| ConnectOptions {
        url: format!("nats://scorer:{password}@{host}"),
        client_name: "bus-test".to_owned(),
    };
    let shutdown = CancellationToken::new();
    let bus = connect(&login("p%40ss/w:rd"), &shutdown).await.unwrap();
    bus.client.flush().await.unwrap();

    let refused = CancellationToken::new();
    let cancel = refused.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        cancel.cancel();
    });
    let error = connect(&login("wrong"), &refused).await.unwrap_err();
    assert!(
        matches!(&error, vigil_bus::ConnectError::Cancelled { url } if !url.contains("wrong")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_max_in_flight_messages_are_handled_at_once() {
    const IN_FLIGHT: usize = 3;
    let server = NatsServer::start();
    let (bus, consumer) = detectors_consumer(&server).await;
    publish_batches(&Publisher::new(bus.jetstream.clone()), 1..=IN_FLIGHT as u64).await;
    // Each handler waits until all of them have started: they finish only
    // if the loop hands out the next messages before settling the first.
    let barrier = Arc::new(tokio::sync::Barrier::new(IN_FLIGHT));
    let mut settled = consumer.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (barrier, seen, shutdown) = (barrier.clone(), seen.clone(), shutdown.clone());
        consume::run(consumer, shutdown, IN_FLIGHT, move |delivery| {
            let (barrier, seen) = (barrier.clone(), seen.clone());
            async move {
                barrier.wait().await;
                seen.lock().unwrap().push(delivery.stream_sequence);
                Disposition::Ack
            }
        })
    });
    let mut handled = wait_for(&seen, IN_FLIGHT).await;
    handled.sort_unstable();
    assert_eq!(handled, vec![1, 2, 3]);
    shutdown.cancel();
    task.await.unwrap();
    let info = settled.info().await.unwrap();
    assert_eq!(
        info.ack_floor.stream_sequence, IN_FLIGHT as u64,
        "all settled"
    );
}

/// A durable deleted on the server while the loop pulls from it is
/// recreated from its definition, and the messages published meanwhile are
/// all handled (issue 17: the services stayed blind until restarted).
#[tokio::test]
async fn a_deleted_consumer_is_recreated_and_consuming_resumes() {
    const N: u64 = 6;
    let server = NatsServer::start();
    let (bus, consumer) = detectors_consumer(&server).await;
    let publisher = Publisher::new(bus.jetstream.clone());
    publish_batches(&publisher, 1..=2).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (seen, shutdown) = (seen.clone(), shutdown.clone());
        consume::run(consumer, shutdown, 1, move |delivery| {
            let seen = seen.clone();
            async move {
                let batch: EventBatch =
                    codec::decode(&delivery.payload, &delivery.subject, 0).unwrap();
                seen.lock().unwrap().push(batch.sequence);
                Disposition::Ack
            }
        })
    });
    assert_eq!(wait_for_distinct(&seen, 2).await, vec![1, 2]);

    let spec = topology::detectors_consumer();
    let stream = bus.jetstream.get_stream(EVENTS.name).await.unwrap();
    let original = stream
        .consumer_info(&spec.durable_name)
        .await
        .unwrap()
        .created;
    stream.delete_consumer(&spec.durable_name).await.unwrap();
    publish_batches(&publisher, 3..=N + 2).await;

    let all = wait_for_distinct(&seen, (N + 2) as usize).await;
    assert_eq!(
        all,
        (1..=N + 2).collect::<Vec<_>>(),
        "every message published while the consumer was gone is handled"
    );
    let info = stream
        .get_consumer::<vigil_bus::async_nats::jetstream::consumer::pull::Config>(
            &spec.durable_name,
        )
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_ne!(info.created, original, "the loop created the durable again");
    assert_eq!(info.config.ack_wait, spec.ack_wait, "recreated as defined");
    assert_eq!(info.config.max_deliver, spec.max_deliver);
    assert!(
        consume::missing_consumers().is_empty(),
        "no consumer is reported missing once recreated: {:?}",
        consume::missing_consumers()
    );
    shutdown.cancel();
    task.await.unwrap();
}
