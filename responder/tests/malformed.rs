//! A malformed finding (bytes that do not decode, or a finding without an
//! id) is terminated (never redelivered), counted in
//! `/metrics`, and the agent goes on with the next finding.
//!
//! Alone in its test binary: it installs the process-wide Prometheus
//! recorder through the admin endpoint, which can happen only once.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use tokio_util::sync::CancellationToken;
use vigil_bus::{Publisher, TraceContext, subject};
use vigil_proto::v1::{ActionOutcome, Priority};
use vigil_service::{AdminConfig, AdminServer};
use vigil_testkit::{NatsServer, http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_finding_is_terminated_counted_and_the_next_one_is_handled() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let admin_shutdown = CancellationToken::new();
    let admin = AdminServer::start(&AdminConfig::default(), admin_shutdown.clone())
        .await
        .expect("admin endpoint");
    let service = Running::start(config(&server), admin.health.clone()).await;
    assert_eq!(
        http_get(admin.local_addr, "/healthz").map(|r| r.0),
        Some(200)
    );

    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::findings(Priority::Critical, "x"),
            "garbage",
            &TraceContext::new_root(),
            Bytes::from_static(b"\xff\xff\xffnot a finding"),
        )
        .await
        .expect("publish garbage");
    // Decodes, but names no finding id: acting on it could not be de-duplicated.
    let anonymous = finding("", "", "", "", "shop");
    publish_finding(&bus, &anonymous, "anonymous", &TraceContext::new_root()).await;
    let host = finding("f-host", "", "", "", "");
    publish_finding(&bus, &host, &host.id, &TraceContext::new_root()).await;

    let (_, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(record.outcome(), ActionOutcome::Refused);
    wait_settled(&bus, 3).await;
    // Long enough for a Nak'd or unacknowledged message to come back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let info = consumer_info(&bus).await;
    assert_eq!(
        info.num_redelivered, 0,
        "the malformed finding is never redelivered"
    );
    assert_eq!(
        info.delivered.consumer_sequence, 3,
        "each message delivered once"
    );

    let (_, metrics) = http_get(admin.local_addr, "/metrics").expect("metrics");
    let has = |name: &str, labels: &[&str], value: &str| {
        metrics.lines().any(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels.iter().all(|l| line.contains(l))
                && line.ends_with(&format!(" {value}"))
        })
    };
    assert!(
        has(
            "vigil_responder_errors_total",
            &[r#"error_type="malformed_payload""#, r#"stage="decode""#],
            "2"
        ),
        "malformed finding not counted:\n{metrics}"
    );
    assert!(
        has(
            "vigil_responder_findings_total",
            &[r#"decision="refused""#],
            "1"
        ),
        "{metrics}"
    );
    assert!(
        has(
            "vigil_responder_actions_total",
            &[r#"kind="freeze""#, r#"outcome="refused""#],
            "1"
        ),
        "{metrics}"
    );
    service.stop().await;
    admin_shutdown.cancel();
}
