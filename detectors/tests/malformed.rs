//! A malformed payload is terminated (never redelivered), counted in
//! `/metrics`, and the service goes on with the next batch.
//!
//! Alone in its test binary: it installs the process-wide Prometheus
//! recorder through the admin endpoint, which can happen only once.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    Publisher, TraceContext, subject,
    topology::{EVENTS, FINDINGS},
};
use vigil_service::{AdminConfig, AdminServer};
use vigil_testkit::{NatsServer, http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batch_is_terminated_counted_and_the_next_batch_is_evaluated() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let admin_shutdown = CancellationToken::new();
    let admin = AdminServer::start(&AdminConfig::default(), admin_shutdown.clone())
        .await
        .expect("admin endpoint");
    assert_eq!(
        http_get(admin.local_addr, "/healthz").map(|r| r.0),
        Some(503),
        "not ready before run"
    );
    let service = Running::start(&server, admin.health.clone()).await;
    assert_eq!(
        http_get(admin.local_addr, "/healthz").map(|r| r.0),
        Some(200)
    );

    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events("x", 0),
            "garbage",
            &TraceContext::new_root(),
            Bytes::from_static(b"\xff\xff\xffnot a batch"),
        )
        .await
        .expect("publish garbage");
    publish_batch(&bus, &mixed_batch(1), "run-a:1", &TraceContext::new_root()).await;

    wait_stored(&bus, &FINDINGS, 3).await;
    wait_settled(&bus, &EVENTS, "detectors", 2).await;
    // Long enough for a Nak'd or unacknowledged message to come back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let info = consumer_info(&bus, &EVENTS, "detectors").await;
    assert_eq!(
        info.num_redelivered, 0,
        "the malformed batch is never redelivered"
    );
    assert_eq!(
        info.delivered.consumer_sequence, 2,
        "each message delivered once"
    );
    assert_eq!(info.num_ack_pending, 0);

    let (_, metrics) = http_get(admin.local_addr, "/metrics").expect("metrics");
    let counted = metrics.lines().any(|line| {
        line.starts_with("vigil_detectors_errors_total{")
            && line.contains(r#"error_type="malformed_payload""#)
            && line.contains(r#"stage="decode""#)
            && line.ends_with(" 1")
    });
    assert!(counted, "malformed payload not counted:\n{metrics}");
    for series in [
        "vigil_detectors_batches_total 1",
        "vigil_detectors_events_total 8",
        r#"vigil_detectors_findings_total{rule="Read of /etc/shadow"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} missing:\n{metrics}"
        );
    }
    service.stop().await;
    admin_shutdown.cancel();
}
