//! Structured logs, and spans exported over OTLP/gRPC when an endpoint is
//! configured (`[log.otlp]` or OpenTelemetry's own variables).
//!
//! Spans are `tracing` spans bridged to OpenTelemetry; only Vigil's own
//! (targets `vigil…`) are exported, whatever the log filter says, so a
//! quiet log does not break a trace. Without an endpoint no OpenTelemetry
//! layer is installed and nothing is exported; `vigil_bus::trace` then
//! makes the ids it sends in the headers itself.

use std::time::Duration;

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::Targets, fmt, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

use crate::config::{LogConfig, LogFormat};

/// Spans handed to the OTLP endpoint and accepted.
pub const SPANS_EXPORTED: &str = "vigil_telemetry_spans_exported_total";
/// Span batches the OTLP endpoint did not take (down, refused, timed out):
/// those spans are lost, the service goes on.
pub const EXPORT_FAILURES: &str = "vigil_telemetry_export_failures_total";

/// How long shutdown waits for the last spans to be exported.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The span exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export spans to {endpoint}: {source}")]
pub struct TelemetryError {
    pub endpoint: String,
    #[source]
    pub source: opentelemetry_otlp::ExporterBuildError,
}

/// What was installed; [`Telemetry::shutdown`] exports what is pending.
#[must_use = "call shutdown() so the last spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered (within [`FLUSH_TIMEOUT`]) and stops
    /// the exporter. Call it inside the Tokio runtime the exporter was
    /// built in, from a thread that may block.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(message = "Could not export the last spans.", %error);
        }
    }
}

/// Installs the global log subscriber and, when `endpoint` is set, the OTLP
/// span exporter for `service`. Must run inside a Tokio runtime
/// (the gRPC channel is created on it). The log filter was validated with
/// the rest of the configuration; a subscriber already installed (tests) is
/// left in place.
pub fn init(
    service: &str,
    log: &LogConfig,
    endpoint: Option<&str>,
) -> Result<Telemetry, TelemetryError> {
    let provider = endpoint
        .map(|endpoint| provider(service, endpoint, log.otlp.timeout_ms))
        .transpose()?;
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("vigil"))
            .with_filter(Targets::new().with_target("vigil", LevelFilter::INFO))
    });
    let _already_installed = Registry::default()
        .with(log_layer(log))
        .with(spans)
        .try_init();
    Ok(Telemetry { provider })
}

/// Installs the global log subscriber only (tools and tests that export no
/// spans).
pub fn init_logging(config: &LogConfig) {
    let _already_installed = Registry::default().with(log_layer(config)).try_init();
}

fn log_layer(config: &LogConfig) -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = fmt::layer().with_writer(std::io::stderr);
    match config.format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
    }
}

fn provider(
    service: &str,
    endpoint: &str,
    timeout_ms: u64,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_millis(timeout_ms))
        .build()
        .map_err(|source| TelemetryError {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let resource = Resource::builder_empty()
        .with_service_name(format!("vigil-{service}"))
        .with_attributes([
            KeyValue::new("host.name", crate::config::default_node_name()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(Counted(exporter))
        .with_resource(resource)
        .build())
}

/// The OTLP exporter, with what it exports and fails to export counted.
#[derive(Debug)]
struct Counted<E>(E);

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.0.export(batch).await;
        match &result {
            Ok(()) => metrics::counter!(SPANS_EXPORTED).increment(spans),
            Err(error) => {
                metrics::counter!(EXPORT_FAILURES).increment(1);
                tracing::warn!(message = "The OTLP endpoint did not take a batch of spans.", spans, %error);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}
