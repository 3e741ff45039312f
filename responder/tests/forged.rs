//! A finding whose payload names a namespace its subject does not (a pod's
//! namespace on the namespace-less subject, which credentials other than
//! the detectors' and the scorer's may publish on) is rejected and counted,
//! never acted on; the next genuine finding is handled.
//!
//! Alone in its test binary: it installs the process-wide Prometheus
//! recorder through the admin endpoint, which can happen only once.

mod common;

use common::*;
use tokio_util::sync::CancellationToken;
use vigil_bus::{Publisher, TraceContext, codec, subject};
use vigil_proto::v1::{ActionOutcome, Priority};
use vigil_service::{AdminConfig, AdminServer};
use vigil_testkit::{NatsServer, http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_its_subject_does_not_vouch_for_is_rejected_and_counted() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let admin_shutdown = CancellationToken::new();
    let admin = AdminServer::start(&AdminConfig::default(), admin_shutdown.clone())
        .await
        .expect("admin endpoint");
    let service = Running::start(config(&server), admin.health.clone()).await;

    let forged = finding("f-forged", "", "", "", "shop");
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::findings(Priority::Warning, ""),
            &forged.id,
            &TraceContext::new_root(),
            codec::encode(&forged),
        )
        .await
        .expect("publish the forged finding");
    let host = finding("f-host", "", "", "", "");
    publish_finding(&bus, &host, &host.id, &TraceContext::new_root()).await;

    // One record only: the genuine finding's (refused: it names no pod).
    let (_, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(record.finding_id, "f-host");
    assert_eq!(record.outcome(), ActionOutcome::Refused);
    let info = wait_settled(&bus, 2).await;
    assert_eq!(
        info.num_redelivered, 0,
        "the forged finding is never redelivered"
    );

    let (_, metrics) = http_get(admin.local_addr, "/metrics").expect("metrics");
    let counted = metrics.lines().any(|line| {
        line.starts_with("vigil_responder_errors_total{")
            && line.contains(r#"error_type="finding_not_vouched""#)
            && line.ends_with(" 1")
    });
    assert!(counted, "forged finding not counted:\n{metrics}");

    service.stop().await;
    admin_shutdown.cancel();
}
