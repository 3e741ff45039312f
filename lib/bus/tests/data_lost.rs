//! Data JetStream discards before the consume loop handled it, counted and
//! reported once as a finding, against a real nats-server (issue 17): the
//! events stream driven past its limit while its consumer is stopped, a
//! message that exhausts its maximum deliveries, and a publish JetStream
//! never stores.
//!
//! Each test installs the process-wide Prometheus recorder, which nextest's
//! process per test allows.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    BusConnection, ConnectOptions, Disposition, PublishError, Publisher, TraceContext, codec,
    connect::connect,
    consume,
    loss::{FINDING_NAME, LOSS_CHECKS, LOST_MESSAGES},
    publish::PUBLISH_FAILURES,
    subject,
    topology::{self, ConsumerSpec, EVENTS, FINDINGS},
};
use vigil_proto::v1::{EventBatch, Finding, FindingSource};
use vigil_testkit::{NatsServer, in_process::poll};

const PATIENCE: Duration = Duration::from_secs(30);

/// The process's metrics, a server and a connection to it, with the
/// findings stream the reports go to.
async fn start() -> (PrometheusHandle, NatsServer, BusConnection) {
    let metrics = PrometheusBuilder::new().install_recorder().unwrap();
    let server = NatsServer::start();
    let options = ConnectOptions {
        url: server.url(),
        client_name: "bus-test".to_owned(),
    };
    let bus = connect(&options, &CancellationToken::new()).await.unwrap();
    topology::ensure_stream(&bus.jetstream, &FINDINGS, 1)
        .await
        .unwrap();
    (metrics, server, bus)
}

async fn publish(bus: &BusConnection, sequences: std::ops::RangeInclusive<u64>) {
    let publisher = Publisher::new(bus.jetstream.clone());
    let trace = TraceContext::new_root();
    for sequence in sequences {
        let batch = EventBatch {
            node: "n1".into(),
            sequence,
            run_id: "run".into(),
            ..Default::default()
        };
        publisher
            .publish(
                subject::events("n1", 0),
                &format!("run:{sequence}"),
                &trace,
                codec::encode(&batch),
            )
            .await
            .unwrap();
    }
}

/// Keeps at most `max` messages in the events stream (discard old).
async fn limit_events(bus: &BusConnection, max: i64) {
    let stream = bus.jetstream.get_stream(EVENTS.name).await.unwrap();
    let mut config = stream.cached_info().config.clone();
    config.max_messages = max;
    bus.jetstream.update_stream(config).await.unwrap();
}

/// The consume loop on `spec`, counting what it is handed and settling
/// every message as `disposition` says.
struct Loop {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    handed: Arc<AtomicU64>,
}

impl Loop {
    async fn start(
        bus: &BusConnection,
        spec: &ConsumerSpec,
        disposition: fn() -> Disposition,
    ) -> Self {
        let consumer = topology::ensure_consumer(&bus.jetstream, spec, 1)
            .await
            .unwrap();
        let (shutdown, handed) = (CancellationToken::new(), Arc::new(AtomicU64::new(0)));
        let task = tokio::spawn({
            let handed = handed.clone();
            consume::run(consumer, shutdown.clone(), 1, move |_| {
                handed.fetch_add(1, Ordering::Relaxed);
                async move { disposition() }
            })
        });
        Self {
            shutdown,
            task,
            handed,
        }
    }

    async fn wait_handed(&self, count: u64) {
        poll("the loop to be handed the messages", PATIENCE, || async {
            (self.handed.load(Ordering::Relaxed) >= count).then_some(())
        })
        .await;
    }

    async fn stop(self) -> u64 {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.handed.load(Ordering::Relaxed)
    }
}

/// Every data-loss finding stored in the findings stream.
async fn loss_findings(bus: &BusConnection) -> Vec<Finding> {
    let stream = bus.jetstream.get_stream(FINDINGS.name).await.unwrap();
    let state = stream.cached_info().state.clone();
    let mut findings = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let finding: Finding = codec::decode(&message.payload, &message.subject, sequence).unwrap();
        if finding.name == FINDING_NAME {
            assert_eq!(message.subject.as_str(), "vigil.findings.warning._");
            findings.push(finding);
        }
    }
    findings
}

/// The value of the Prometheus sample `name` with these labels (in any
/// order), if rendered.
fn sample(metrics: &PrometheusHandle, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let rendered = metrics.render();
    let prefix = format!("{name}{{");
    rendered.lines().find_map(|line| {
        let (labelled, value) = line.strip_prefix(&prefix)?.rsplit_once("} ")?;
        let mut found: Vec<&str> = labelled.split(',').collect();
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        found.sort_unstable();
        wanted.sort_unstable();
        (found == wanted).then(|| value.parse().unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_stream_discarded_while_the_consumer_was_stopped_are_reported_once() {
    let (metrics, _server, bus) = start().await;
    topology::ensure_stream(&bus.jetstream, &EVENTS, 1)
        .await
        .unwrap();
    // Messages aged out before the consumer existed are no loss of its.
    limit_events(&bus, 10).await;
    publish(&bus, 1..=30).await;
    let spec = topology::detectors_consumer();
    let running = Loop::start(&bus, &spec, || Disposition::Ack).await;
    running.wait_handed(10).await;
    limit_events(&bus, 100).await;
    publish(&bus, 31..=50).await;
    running.wait_handed(30).await;
    assert_eq!(running.stop().await, 30);

    // Stopped: 500 more through a stream that keeps 100, so the oldest
    // 400 of them are discarded unread.
    publish(&bus, 51..=550).await;
    let lost = 400;
    let restarted = Loop::start(&bus, &spec, || Disposition::Ack).await;
    restarted.wait_handed(100).await;
    let labels = [
        ("stream", "VIGIL_EVENTS"),
        ("consumer", "detectors"),
        ("reason", "stream_limits"),
    ];
    let finding = poll("the data-loss finding", PATIENCE, || async {
        loss_findings(&bus).await.pop()
    })
    .await;
    assert_eq!(finding.source(), FindingSource::Internal);
    assert_eq!(finding.output_fields["lost_messages"], lost.to_string());
    assert_eq!(finding.output_fields["stream"], "VIGIL_EVENTS");
    assert_eq!(finding.output_fields["consumer"], "detectors");
    assert_eq!(finding.output_fields["reason"], "stream_limits");
    // Stream sequences 51..=450 (the batches of the same numbers).
    assert_eq!(finding.output_fields["first_sequence"], "51");
    assert_eq!(finding.output_fields["last_sequence"], "450");
    assert_eq!(sample(&metrics, LOST_MESSAGES, &labels), Some(lost));

    // Reported once: later comparisons, and a third start, add nothing.
    let checks = [("consumer", "VIGIL_EVENTS/detectors")];
    let before = sample(&metrics, LOSS_CHECKS, &checks).unwrap();
    poll("two more comparisons", PATIENCE, || async {
        (sample(&metrics, LOSS_CHECKS, &checks).unwrap() >= before + 2).then_some(())
    })
    .await;
    assert_eq!(restarted.stop().await, 100);
    let again = Loop::start(&bus, &spec, || Disposition::Ack).await;
    let before = sample(&metrics, LOSS_CHECKS, &checks).unwrap();
    poll("a comparison after the third start", PATIENCE, || async {
        (sample(&metrics, LOSS_CHECKS, &checks).unwrap() > before).then_some(())
    })
    .await;
    again.stop().await;
    assert_eq!(loss_findings(&bus).await.len(), 1, "one loss, one finding");
    assert_eq!(sample(&metrics, LOST_MESSAGES, &labels), Some(lost));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_exhausts_its_deliveries_is_reported() {
    let (metrics, _server, bus) = start().await;
    let spec = ConsumerSpec {
        max_deliver: 3,
        ..topology::detectors_consumer()
    };
    let failing = Loop::start(&bus, &spec, || Disposition::Retry {
        reason: "always failing, for the test".to_owned(),
        delay: Duration::from_millis(10),
    })
    .await;
    publish(&bus, 1..=2).await;
    failing.wait_handed(6).await;
    let findings = poll("both data-loss findings", PATIENCE, || async {
        let findings = loss_findings(&bus).await;
        (findings.len() >= 2).then_some(findings)
    })
    .await;
    let labels = [
        ("stream", "VIGIL_EVENTS"),
        ("consumer", "detectors"),
        ("reason", "max_deliveries"),
    ];
    poll("the metric", PATIENCE, || async {
        (sample(&metrics, LOST_MESSAGES, &labels) == Some(2)).then_some(())
    })
    .await;
    assert_eq!(
        failing.stop().await,
        6,
        "three deliveries each, then no more"
    );
    let mut sequences: Vec<_> = findings
        .iter()
        .map(|f| {
            assert_eq!(f.output_fields["reason"], "max_deliveries");
            assert_eq!(f.output_fields["deliveries"], "3");
            assert_eq!(f.output_fields["lost_messages"], "1");
            f.output_fields["first_sequence"].clone()
        })
        .collect();
    sequences.sort();
    assert_eq!(sequences, ["1", "2"]);
    assert_eq!(loss_findings(&bus).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_jetstream_does_not_store_is_counted() {
    let (metrics, _server, bus) = start().await;
    // No stream captures this subject, so nothing confirms it.
    let error = Publisher::new(bus.jetstream.clone())
        .publish(
            "vigil.nowhere.n1".to_owned(),
            "lost:1",
            &TraceContext::new_root(),
            bytes::Bytes::from_static(b"x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::Confirm { .. }), "{error}");
    let labels = [("stream", "vigil.nowhere"), ("stage", "confirm")];
    assert_eq!(sample(&metrics, PUBLISH_FAILURES, &labels), Some(1));
}
