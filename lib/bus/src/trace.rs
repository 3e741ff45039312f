//! W3C Trace Context (`traceparent`) carried in NATS headers, and the link
//! between those headers and the `tracing` spans each service records.
//!
//! The header is written and read by OpenTelemetry's W3C propagator, so any
//! OTel SDK reading our messages joins the same trace. The collector starts a
//! trace per batch ([`start_trace`]); each service that handles a message
//! makes its processing span a child of the message's context
//! ([`continue_trace`]) and sends that span's context on with what it
//! publishes. When spans are exported (`vigil-service`'s telemetry installs
//! the OpenTelemetry layer) the ids are the exported spans' own; without it
//! the same ids are made here, so the headers and the trace ids in action
//! records are there either way.

use async_nats::HeaderMap;
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rand::RngCore;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A sampled span context: 16-byte trace id, 8-byte span id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl TraceContext {
    /// Starts a new trace (for work that no message caused and no span records).
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        rng.fill_bytes(&mut trace_id);
        rng.fill_bytes(&mut span_id);
        Self { trace_id, span_id }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        let mut span_id = [0u8; 8];
        rand::rng().fill_bytes(&mut span_id);
        Self {
            trace_id: self.trace_id,
            span_id,
        }
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The context as OpenTelemetry's: a sampled remote parent.
    pub fn to_otel(&self) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    /// The span context in `context`; `None` when it holds no valid one.
    pub fn from_otel(context: &Context) -> Option<Self> {
        let span = context.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| Self {
            trace_id: span_context.trace_id().to_bytes(),
            span_id: span_context.span_id().to_bytes(),
        })
    }

    /// The context `span` records under, when the OpenTelemetry layer records it.
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        Self::from_otel(&span.context())
    }

    /// The `traceparent` header value: version 00, sampled.
    pub fn to_traceparent(&self) -> String {
        let mut carrier = SingleHeader(None);
        TraceContextPropagator::new().inject_context(&self.to_otel(), &mut carrier);
        carrier.0.unwrap_or_default()
    }

    /// Parses a `traceparent` value; `None` for anything malformed or all-zero,
    /// which the spec says to treat as absent.
    pub fn from_traceparent(value: &str) -> Option<Self> {
        Self::from_otel(
            &TraceContextPropagator::new().extract(&SingleHeader(Some(value.trim().to_owned()))),
        )
    }

    /// Writes the context into message headers.
    pub fn inject(&self, headers: &mut HeaderMap) {
        TraceContextPropagator::new().inject_context(&self.to_otel(), &mut NatsHeaders(headers));
    }

    /// Reads the context from message headers, if present and valid.
    pub fn from_headers(headers: Option<&HeaderMap>) -> Option<Self> {
        let headers = headers?;
        Self::from_otel(&TraceContextPropagator::new().extract(&NatsHeadersRead(headers)))
    }
}

/// Starts a trace with `span` as its root (the collector, once per batch) and
/// returns the context to publish with. Create `span` with `parent: None`.
pub fn start_trace(span: &tracing::Span) -> TraceContext {
    TraceContext::of_span(span).unwrap_or_else(TraceContext::new_root)
}

/// Makes `span` (the work a message caused) a child of the message's context
/// `parent` and returns the context to publish what the work produces with.
/// Call it before the span is first entered.
pub fn continue_trace(span: &tracing::Span, parent: &TraceContext) -> TraceContext {
    // Fails only when no OpenTelemetry layer records spans (nothing is
    // exported then) or the span is filtered out: the ids are made here.
    if span.set_parent(parent.to_otel()).is_err() {
        return parent.child();
    }
    TraceContext::of_span(span).unwrap_or_else(|| parent.child())
}

/// One `traceparent` value, for [`TraceContext::to_traceparent`] and back.
struct SingleHeader(Option<String>);

impl Injector for SingleHeader {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

impl Extractor for SingleHeader {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// NATS headers as the propagator's carrier.
struct NatsHeaders<'a>(&'a mut HeaderMap);

impl Injector for NatsHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct NatsHeadersRead<'a>(&'a HeaderMap);

impl Extractor for NatsHeadersRead<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_children_share_the_trace() {
        let root = TraceContext::new_root();
        let parsed = TraceContext::from_traceparent(&root.to_traceparent()).unwrap();
        assert_eq!(parsed, root);
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
    }

    #[test]
    fn the_header_is_w3c_version_00_sampled() {
        let context = TraceContext {
            trace_id: [0x4b; 16],
            span_id: [0xf0; 8],
        };
        assert_eq!(
            context.to_traceparent(),
            format!("00-{}-{}-01", "4b".repeat(16), "f0".repeat(8))
        );
        let mut headers = HeaderMap::new();
        context.inject(&mut headers);
        assert_eq!(
            headers.get(TRACEPARENT).map(|v| v.as_str().to_owned()),
            Some(context.to_traceparent())
        );
        assert_eq!(TraceContext::from_headers(Some(&headers)), Some(context));
        assert_eq!(TraceContext::from_headers(Some(&HeaderMap::new())), None);
    }

    #[test]
    fn without_a_recording_layer_the_work_gets_a_child_id_in_the_same_trace() {
        let parent = TraceContext::new_root();
        let span = tracing::info_span!("work");
        let sent = continue_trace(&span, &parent);
        assert_eq!(sent.trace_id, parent.trace_id);
        assert_ne!(sent.span_id, parent.span_id);
        let root = tracing::info_span!(parent: None, "batch");
        assert_ne!(start_trace(&root).trace_id, parent.trace_id);
    }

    /// Keeps the spans it is given (the SDK's in-memory exporter needs its
    /// `testing` feature).
    #[derive(Clone, Debug, Default)]
    struct Kept(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Kept {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(batch);
            Ok(())
        }
    }

    #[test]
    fn with_a_recording_layer_the_sent_context_is_the_recorded_span_under_its_parent() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        let kept = Kept::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(kept.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let parent = TraceContext::new_root();
        let (root, sent) = tracing::subscriber::with_default(subscriber, || {
            let batch = tracing::info_span!(parent: None, "batch");
            let root = start_trace(&batch);
            let work = tracing::info_span!("work");
            let sent = continue_trace(&work, &parent);
            assert_eq!(TraceContext::of_span(&work), Some(sent));
            (root, sent)
        });
        let spans = kept
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let recorded = |name: &str| {
            spans
                .iter()
                .find(|span| span.name == name)
                .unwrap_or_else(|| panic!("no {name} span in {spans:?}"))
        };
        let work = recorded("work");
        assert_eq!(work.span_context.trace_id().to_bytes(), parent.trace_id);
        assert_eq!(work.span_context.span_id().to_bytes(), sent.span_id);
        assert_eq!(work.parent_span_id.to_bytes(), parent.span_id);
        let batch = recorded("batch");
        assert_eq!(batch.span_context.trace_id().to_bytes(), root.trace_id);
        assert_eq!(batch.parent_span_id, SpanId::INVALID);
    }

    #[test]
    fn malformed_traceparent_is_absent() {
        for bad in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
        assert!(
            TraceContext::from_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )
            .is_some()
        );
    }
}
