//! OpenTelemetry end to end: the collector (replaying a recorded attack),
//! the detectors and the responder run as processes pointed at an OTLP/gRPC
//! receiver served by this test (opentelemetry-proto's own service types on
//! tonic). One batch is one trace: the collector's batch span is its root,
//! the detectors' span is its child, the responder's span a child of that;
//! each process exports what it still holds when it is stopped.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};
use tokio_util::sync::CancellationToken;
use vigil_bus::{ConnectOptions, connect::connect, topology::ACTIONS};
use vigil_collector::source::recording::RecordingWriter;
use vigil_e2e::Tail;
use vigil_proto::v1::{ActionRecord, EventBatch};
use vigil_testkit::{Pipeline, ServiceSpec, wait_until};

const NODE: &str = "otel-node";

/// A span as received, with the `service.name` of the process that sent it.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

/// The OTLP/gRPC trace service: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.clone())
                .map(|value| match value {
                    Value::StringValue(name) => name,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                spans.extend(scope_spans.spans.into_iter().map(|span| Received {
                    service: service.clone(),
                    span,
                }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on a free loopback port until the test ends.
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn binaries() -> PathBuf {
    vigil_testkit::binary("vigil-detectors")
        .parent()
        .expect("binary directory")
        .to_owned()
}

/// The recorded shadow-read attack as a collector recording, to replay.
fn recording(dir: &std::path::Path) -> PathBuf {
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/shadow-read.batch");
    let bytes = std::fs::read(&scenario).expect("read the recorded attack");
    let batch: EventBatch =
        vigil_bus::codec::decode(&bytes, &scenario.display().to_string(), 0).expect("decode it");
    let path = dir.join("shadow-read.vigilrec");
    let file = std::fs::File::create(&path).expect("create the recording");
    let mut writer = RecordingWriter::new(file).expect("recording header");
    for mut event in batch.events {
        event.node = NODE.to_owned();
        writer.write(&event).expect("write an event");
    }
    writer.finish().expect("finish the recording");
    path
}

/// The shipped policy with every response on, in dry run: the replayed
/// container does not exist here, so nothing could be frozen, but every
/// decision is still recorded as an action.
fn policy(dir: &std::path::Path) -> String {
    let path = dir.join("policy.yaml");
    let text = vigil_responder::policy::default_policy_enforcing("{ all: true }");
    std::fs::write(&path, text).expect("write the policy");
    path.display().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one span of `service` named `name` in `trace`.
fn span_of<'a>(spans: &'a [Received], service: &str, name: &str, trace: &[u8]) -> &'a Span {
    let found: Vec<&Received> = spans
        .iter()
        .filter(|r| r.service == service && r.span.name == name && r.span.trace_id == trace)
        .collect();
    let summary: BTreeSet<String> = spans
        .iter()
        .map(|r| {
            format!(
                "{} {} trace {}",
                r.service,
                r.span.name,
                hex(&r.span.trace_id)
            )
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name:?} span of {service} in trace {}; received: {summary:#?}",
        hex(trace)
    );
    &found[0].span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_is_one_trace_from_collector_through_detectors_to_the_responder() {
    let receiver = Receiver::default();
    let endpoint = format!("http://{}", receiver.start().await);
    let dir = tempfile::tempdir().expect("temporary directory");
    let replay = recording(dir.path());
    let services = [
        ServiceSpec::new("vigil-collector")
            .with("SOURCE", "replay")
            .with("REPLAY__PATH", &replay.display().to_string())
            .with("REPLAY__PACE", "fast"),
        ServiceSpec::new("vigil-detectors"),
        ServiceSpec::new("vigil-responder")
            .with("POLICY_FILE", &policy(dir.path()))
            .with("DRY_RUN", "true"),
    ]
    .map(|spec| spec.with("LOG__OTLP__ENDPOINT", &endpoint));
    // The scorer reads the same batches with no endpoint set: it must export nothing.
    let unexported = ServiceSpec::new("vigil-anomaly-scorer");
    let services: Vec<ServiceSpec> = services.into_iter().chain([unexported]).collect();
    let mut pipeline =
        Pipeline::start(&binaries(), NODE, &services).unwrap_or_else(|e| panic!("{e}"));

    let options = ConnectOptions {
        url: pipeline.nats.url(),
        client_name: "otel-test".into(),
    };
    let bus = connect(&options, &CancellationToken::new())
        .await
        .expect("connect to the test nats-server");
    let mut actions = Tail::<ActionRecord>::from_start(&bus.jetstream, &ACTIONS)
        .await
        .expect("follow actions");
    let log = |pipeline: &Pipeline| -> String {
        pipeline
            .services
            .iter()
            .map(|s| format!("--- {} ---\n{}", s.name, s.log_text()))
            .collect()
    };
    let action = actions
        .next_matching(Duration::from_secs(30), |a| !a.trace_id.is_empty())
        .await
        .unwrap_or_else(|| panic!("no action recorded; logs:\n{}", log(&pipeline)));

    let scored = wait_until(Duration::from_secs(30), || {
        let scorer = pipeline.service("vigil-anomaly-scorer")?;
        (counter(&scorer.metrics(), SCORER_EVENTS) > 0.0).then_some(())
    });
    assert!(
        scored.is_some(),
        "the scorer read no event; logs:\n{}",
        log(&pipeline)
    );

    // Stopping each process must export the spans it still holds.
    for service in &mut pipeline.services {
        let status = service.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} stopped with {status:?}",
            service.name
        );
    }
    let spans = receiver.spans();
    let trace = spans
        .iter()
        .find(|r| hex(&r.span.trace_id) == action.trace_id)
        .map(|r| r.span.trace_id.clone())
        .unwrap_or_else(|| {
            panic!(
                "no span in the action's trace {}; logs:\n{}",
                action.trace_id,
                log(&pipeline)
            )
        });

    let batch = span_of(&spans, "vigil-collector", "publish_batch", &trace);
    let detect = span_of(&spans, "vigil-detectors", "detect", &trace);
    assert!(
        batch.parent_span_id.is_empty(),
        "the batch span is the root"
    );
    assert_eq!(
        detect.parent_span_id, batch.span_id,
        "detectors under the batch"
    );
    // A batch may raise several findings: one response span for each.
    let responses: Vec<&Span> = spans
        .iter()
        .filter(|r| r.service == "vigil-responder" && r.span.name == "respond")
        .map(|r| &r.span)
        .filter(|span| span.trace_id == trace)
        .collect();
    assert!(
        !responses.is_empty(),
        "no respond span in the action's trace"
    );
    for respond in &responses {
        assert_eq!(
            respond.parent_span_id, detect.span_id,
            "responder under the finding's span"
        );
        assert!(detect.start_time_unix_nano <= respond.start_time_unix_nano);
    }
    for span in responses.into_iter().chain([batch, detect]) {
        assert_eq!(span.span_id.len(), 8);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    assert!(batch.start_time_unix_nano <= detect.start_time_unix_nano);
    let from_scorer = spans
        .iter()
        .filter(|r| r.service == "vigil-anomaly-scorer")
        .count();
    assert_eq!(from_scorer, 0, "no endpoint configured, nothing exported");
}

const SCORER_EVENTS: &str = "vigil_anomaly_scorer_events_total";

/// The value of an unlabelled counter in Prometheus text; 0 when absent.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .sum()
}
