//! The detectors' durable consumer deleted on the server while the service
//! runs (issue 17): the service recreates it and evaluates what was
//! published meanwhile, without a restart, and is not ready in between.
//!
//! Alone in its test binary: it installs the process-wide Prometheus
//! recorder through the admin endpoint, which can happen only once.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use common::*;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    TraceContext,
    topology::{EVENTS, FINDINGS},
};
use vigil_service::{AdminConfig, AdminServer};
use vigil_testkit::{NatsServer, http_get};

// Twenty deletions, each as soon as the durable is back: each gives the
// watcher thread one short window without the consumer, and on a loaded
// machine it can miss a single one (one run in six did), so many windows
// make "readiness was withdrawn" certain to be seen. Quick successive
// deletions are also what once left a pull request silently dropped with
// its consumer (vigil_bus::consume: a missed heartbeat now ends the pull).
const DELETIONS: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_consumer_is_recreated_and_readiness_is_withdrawn_meanwhile() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let admin_shutdown = CancellationToken::new();
    let admin = AdminServer::start(&AdminConfig::default(), admin_shutdown.clone())
        .await
        .expect("admin endpoint");
    let service = Running::start(&server, admin.health.clone()).await;
    assert_eq!(
        http_get(admin.local_addr, "/healthz").map(|r| r.0),
        Some(200)
    );
    publish_batch(&bus, &mixed_batch(1), "run-a:1", &TraceContext::new_root()).await;
    wait_stored(&bus, &FINDINGS, 3).await;

    // The window without the consumer lasts a few round trips to NATS, too
    // short to catch over HTTP: a thread watches readiness the whole time.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = std::thread::spawn({
        let (health, watching) = (admin.health.clone(), watching.clone());
        move || {
            let mut not_ready = false;
            while watching.load(Ordering::Relaxed) {
                not_ready |= !health.is_ready();
            }
            not_ready
        }
    });
    // Deleted again each time the service has recreated it, so the watcher
    // has many windows to see readiness withdrawn even on a loaded machine.
    let events = bus
        .jetstream
        .get_stream(EVENTS.name)
        .await
        .expect("events stream");
    for deletion in 1..=DELETIONS {
        poll("the service to recreate its consumer", || async {
            events.consumer_info("detectors").await.ok().map(|_| ())
        })
        .await;
        events
            .delete_consumer("detectors")
            .await
            .expect("delete the detectors' consumer");
        if deletion == 1 {
            publish_batch(&bus, &mixed_batch(2), "run-a:2", &TraceContext::new_root()).await;
        }
    }

    // Batch 1 is delivered again by the recreated durable (it starts from
    // the stream's first message); its findings carry the same message ids
    // and are discarded as duplicates, so 3 new findings exactly.
    wait_stored(&bus, &FINDINGS, 6).await;
    // The findings may all be stored before the last deletion's recreation:
    // the consumer is asked for only once it is back.
    poll(
        "the service to recreate its consumer after the last deletion",
        || async { events.consumer_info("detectors").await.ok().map(|_| ()) },
    )
    .await;
    wait_settled(&bus, &EVENTS, "detectors", 2).await;
    poll("/healthz to answer 200 again", || async {
        (http_get(admin.local_addr, "/healthz").map(|r| r.0) == Some(200)).then_some(())
    })
    .await;
    watching.store(false, Ordering::Relaxed);
    assert!(
        watcher.join().expect("readiness watcher"),
        "readiness was never withdrawn while the consumer was missing"
    );
    let (_, metrics) = http_get(admin.local_addr, "/metrics").expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l
                == format!(r#"vigil_bus_consumer_recreated_total{{consumer="VIGIL_EVENTS/detectors"}} {DELETIONS}"#)),
        "recreation not counted:\n{metrics}"
    );
    service.stop().await;
    admin_shutdown.cancel();
}
