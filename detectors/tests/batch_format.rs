//! The collector's compact batches (format 2) through the service: they
//! raise the same findings as whole batches; a batch in an unknown format
//! version is refused unread and counted; an event whose process entry the
//! batch lacks is skipped and counted while the rest of its batch is
//! evaluated.
//!
//! Alone in its test binary: it installs the process-wide Prometheus
//! recorder through the admin endpoint, which can happen only once.

mod common;

use bytes::Bytes;
use common::*;
use prost::Message;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    Publisher, TraceContext, subject,
    topology::{EVENTS, FINDINGS},
};
use vigil_detectors::{RulesConfig, engine, finding};
use vigil_proto::batch;
use vigil_service::{AdminConfig, AdminServer};
use vigil_testkit::{NatsServer, http_get};

/// Evaluation time for the offline comparisons.
const NOW_NS: u64 = 1_765_000_000_000_000_000;

#[test]
fn compact_batches_raise_the_same_findings_as_whole_ones() {
    let rules = engine::load(&RulesConfig::default()).expect("the default pack");
    let whole = mixed_batch(1);
    let compact = batch::compact(whole.clone()).encode_to_vec();
    let decoded = batch::decode(&compact).expect("decodes");
    assert_eq!(decoded.format, batch::COMPACT_FORMAT);
    let expected = finding::evaluate(&rules, &whole, NOW_NS);
    assert!(!expected.is_empty(), "the mix raises findings");
    assert_eq!(finding::evaluate(&rules, &decoded.batch, NOW_NS), expected);
}

async fn publish_raw(bus: &vigil_bus::BusConnection, id: &str, payload: Vec<u8>) {
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events(NODE, 0),
            id,
            &TraceContext::new_root(),
            Bytes::from(payload),
        )
        .await
        .expect("publish");
}

fn counted(metrics: &str, error_type: &str, count: u64) -> bool {
    metrics.lines().any(|line| {
        line.starts_with("vigil_detectors_errors_total{")
            && line.contains(&format!(r#"error_type="{error_type}""#))
            && line.contains(r#"stage="decode""#)
            && line.ends_with(&format!(" {count}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_versions_are_refused_and_missing_context_is_skipped_both_counted() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let admin_shutdown = CancellationToken::new();
    let admin = AdminServer::start(&AdminConfig::default(), admin_shutdown.clone())
        .await
        .expect("admin endpoint");
    let service = Running::start(&server, admin.health.clone()).await;
    let rules = engine::load(&RulesConfig::default()).expect("the default pack");

    let mut newer = batch::compact(mixed_batch(1));
    newer.format_version = 3;
    publish_raw(&bus, "newer:1", newer.encode_to_vec()).await;

    let good = mixed_batch(1);
    publish_raw(
        &bus,
        "run-a:1",
        batch::compact(good.clone()).encode_to_vec(),
    )
    .await;

    // The host's bash (event 6) refers to a process the batch does not hold.
    let mut broken = batch::compact(mixed_batch(2));
    broken.events[6].process = 999;
    let broken_bytes = broken.encode_to_vec();
    let readable = batch::decode(&broken_bytes).expect("decodes").batch;
    assert_eq!(readable.events.len(), 7);
    publish_raw(&bus, "run-a:2", broken_bytes).await;

    let expected = finding::evaluate(&rules, &good, NOW_NS).len()
        + finding::evaluate(&rules, &readable, NOW_NS).len();
    wait_settled(&bus, &EVENTS, "detectors", 3).await;
    let stored = wait_stored(&bus, &FINDINGS, expected as u64).await;
    assert_eq!(stored.len(), expected);
    let info = consumer_info(&bus, &EVENTS, "detectors").await;
    assert_eq!(
        info.num_redelivered, 0,
        "the refused batch is not redelivered"
    );
    assert_eq!(info.delivered.consumer_sequence, 3);

    let (_, metrics) = http_get(admin.local_addr, "/metrics").expect("metrics");
    assert!(
        counted(&metrics, "unknown_format_version", 1),
        "the unknown version is not counted:\n{metrics}"
    );
    assert!(
        counted(&metrics, "missing_context", 1),
        "the skipped event is not counted:\n{metrics}"
    );
    for series in [
        "vigil_detectors_batches_total 2",
        "vigil_detectors_events_total 15",
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} missing:\n{metrics}"
        );
    }
    service.stop().await;
    admin_shutdown.cancel();
}
