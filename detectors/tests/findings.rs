//! The detectors in-process against a real nats-server: which findings a
//! batch raises, what they carry, and that repeats never duplicate them.

mod common;

use common::*;
use vigil_bus::{
    TraceContext,
    topology::{self, EVENTS, FINDINGS},
};
use vigil_detectors::finding::finding_id;
use vigil_proto::v1::{Finding, FindingSource, Priority};
use vigil_service::{Health, clock};
use vigil_testkit::NatsServer;

fn decode(message: &vigil_bus::async_nats::jetstream::message::StreamMessage) -> Finding {
    vigil_bus::codec::decode(&message.payload, message.subject.as_str(), message.sequence)
        .expect("a Finding")
}

#[tokio::test]
async fn a_batch_raises_exactly_the_expected_findings() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(&server, Health::default()).await;
    let batch = mixed_batch(1);
    let trace = TraceContext::new_root();
    let before = clock::wall_ns();
    assert!(!publish_batch(&bus, &batch, "run-a:1", &trace).await);

    let stored = wait_stored(&bus, &FINDINGS, 3).await;
    wait_settled(&bus, &EVENTS, "detectors", 1).await;
    let expected = [
        (
            0,
            "Shell spawned in container",
            Priority::Notice,
            "vigil.findings.notice._",
            "T1059.004",
        ),
        (
            2,
            "Read of /etc/shadow",
            Priority::Warning,
            "vigil.findings.warning._",
            "T1003.008",
        ),
        (
            4,
            "Outbound connection to suspicious port",
            Priority::Critical,
            "vigil.findings.critical._",
            "T1571",
        ),
    ];
    for (index, name, priority, subject, technique) in expected {
        let message = stored
            .iter()
            .find(|m| decode(m).name == name)
            .unwrap_or_else(|| panic!("no finding named {name}"));
        let finding = decode(message);
        let event = &batch.events[index];
        assert_eq!(message.subject.as_str(), subject);
        assert_eq!(finding.id, finding_id(&batch, index, name));
        assert_eq!(finding.priority(), priority);
        assert_eq!(finding.source(), FindingSource::Rule);
        assert!(
            finding.tags.iter().any(|t| t == technique),
            "{:?}",
            finding.tags
        );
        assert!(finding.time_ns >= before && finding.time_ns <= clock::wall_ns());
        assert_eq!(finding.node, NODE);
        assert_eq!(finding.container_id, CONTAINER);
        assert_eq!(finding.cgroup_path, pod_cgroup());
        assert_eq!(finding.pod_uid, POD_UID);
        assert_eq!(finding.namespace, "");
        assert_eq!(finding.events, vec![event.clone()]);
        assert_eq!(finding.output_fields["proc.pid"], "4242");
        assert_eq!(finding.output_fields["container.id"], &CONTAINER[..12]);
        assert_eq!(finding.output_fields["proc.name"], event.comm);
        assert!(
            finding
                .output
                .contains(&format!("container.id={}", &CONTAINER[..12])),
            "{}",
            finding.output
        );
        let traceparent = message
            .headers
            .get("traceparent")
            .expect("traceparent")
            .as_str();
        let context = TraceContext::from_traceparent(traceparent).expect("valid traceparent");
        assert_eq!(
            context.trace_id, trace.trace_id,
            "the finding continues the batch's trace"
        );
        assert_ne!(context.span_id, trace.span_id, "as a child span");
    }
    let shadow = decode(
        stored
            .iter()
            .find(|m| decode(m).name == "Read of /etc/shadow")
            .expect("shadow"),
    );
    assert_eq!(shadow.output_fields["fd.name"], "/etc/shadow");
    assert_eq!(shadow.output_fields["evt.type"], "openat");
    let port = decode(
        stored
            .iter()
            .find(|m| decode(m).name.contains("port"))
            .expect("port"),
    );
    assert_eq!(port.output_fields["fd.name"], "203.0.113.5:4444");
    service.stop().await;
}

#[tokio::test]
async fn republished_and_redelivered_batches_raise_no_duplicate_findings() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(&server, Health::default()).await;
    let batch = mixed_batch(7);
    let trace = TraceContext::new_root();
    publish_batch(&bus, &batch, "run-a:7", &trace).await;
    let first: Vec<_> = wait_stored(&bus, &FINDINGS, 3)
        .await
        .iter()
        .map(decode)
        .collect();

    // The collector retrying with the same message id: JetStream drops it.
    assert!(
        publish_batch(&bus, &batch, "run-a:7", &trace).await,
        "duplicate batch discarded"
    );
    // The same batch delivered again under another id (as after a lost ack,
    // or a collector retrying past the duplicate window): evaluated again,
    // same finding ids, so JetStream discards every finding.
    assert!(!publish_batch(&bus, &batch, "run-a:7:again", &trace).await);
    wait_settled(&bus, &EVENTS, "detectors", 2).await;
    let after: Vec<_> = wait_stored(&bus, &FINDINGS, 3)
        .await
        .iter()
        .map(decode)
        .collect();
    assert_eq!(after, first);
    service.stop().await;
}

#[tokio::test]
async fn a_failed_publish_is_retried_until_the_findings_are_stored() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(&server, Health::default()).await;
    // Without its stream, publishing a finding fails as during an outage.
    bus.jetstream
        .delete_stream(FINDINGS.name)
        .await
        .expect("delete findings stream");
    publish_batch(&bus, &mixed_batch(1), "run-a:1", &TraceContext::new_root()).await;
    poll("a redelivery after the failed publish", || async {
        let info = consumer_info(&bus, &EVENTS, "detectors").await;
        (info.num_redelivered > 0 || info.delivered.consumer_sequence > 1).then_some(())
    })
    .await;

    topology::ensure_stream(&bus.jetstream, &FINDINGS, 1)
        .await
        .expect("recreate findings stream");
    wait_stored(&bus, &FINDINGS, 3).await;
    wait_settled(&bus, &EVENTS, "detectors", 1).await;
    assert!(service.health.is_ready());
    service.stop().await;
}
