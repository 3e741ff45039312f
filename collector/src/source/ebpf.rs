//! The live source: the BPF programs, through `crate::kernel`, decoded and
//! enriched on the ring-buffer thread and offered to the [`Sink`].

use std::sync::Arc;

use futures::future::BoxFuture;
use vigil_proto::v1::Event;

use super::{EventSource, Sink};
use crate::{
    Config, decode,
    enrich::{Enricher, PodDirectory},
    kernel::{KernelDrops, KernelOptions, KernelSource, LoadError, RecordSink},
    metrics,
};

/// The kernel's events, enriched.
pub struct EbpfSource {
    kernel: KernelSource,
}

impl EbpfSource {
    /// Loads and attaches the programs; fails at once if the kernel refuses.
    pub async fn start(
        config: &Config,
        sink: Sink,
        pods: PodDirectory,
    ) -> Result<Self, super::SourceError> {
        let options = KernelOptions::for_config(config);
        let config = config.clone();
        // Seeding the process table reads all of /proc: off the runtime.
        let kernel = tokio::task::spawn_blocking(move || {
            let enricher = Enricher::for_config(&config).with_pods(pods);
            start_kernel(options, enricher, sink)
        })
        .await??;
        Ok(Self { kernel })
    }
}

/// Loads the BPF programs and feeds every record, decoded and enriched by
/// `enricher`, into `sink`. Blocks until the programs are attached.
pub fn start_kernel(
    options: KernelOptions,
    enricher: Enricher,
    sink: Sink,
) -> Result<KernelSource, LoadError> {
    KernelSource::start_sink(options, Enriching { enricher, sink })
}

/// decode → enrich → offer, on the ring-buffer thread. Never blocks: the
/// sink drops and counts what the publisher has no room for.
struct Enriching {
    enricher: Enricher,
    sink: Sink,
}

impl Enriching {
    fn offer(sink: &Sink, event: Event) {
        ::metrics::counter!(metrics::EVENTS, "kind" => decode::kind_label(event.r#type()))
            .increment(1);
        // A closed sink means shutting down: the publisher is gone and
        // nothing is lost that it would have sent.
        sink.offer(event);
    }
}

impl RecordSink for Enriching {
    fn record(&mut self, record: &[u8]) {
        let decoded = match decode::decode(record) {
            Ok(decoded) => decoded,
            Err(error) => {
                ::metrics::counter!(metrics::RECORDS_INVALID, "reason" => error.reason())
                    .increment(1);
                tracing::debug!(message = "Skipped an invalid kernel record.", len = record.len(), %error);
                return;
            }
        };
        let sink = &self.sink;
        self.enricher
            .push(decoded, &mut |event| Self::offer(sink, event));
    }

    /// Records held for a late clone or exec record are let go once it came
    /// or their patience ran out.
    fn read_end(&mut self) {
        let sink = &self.sink;
        self.enricher
            .release(std::time::Instant::now(), &mut |event| {
                Self::offer(sink, event)
            });
    }
}

impl EventSource for EbpfSource {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn kernel_drops(&self) -> Option<Arc<KernelDrops>> {
        Some(self.kernel.drops())
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        let mut kernel = self.kernel;
        Box::pin(async move {
            // Joining the ring-buffer thread blocks for up to one poll timeout.
            if let Err(error) = tokio::task::spawn_blocking(move || kernel.stop()).await {
                tracing::error!(message = "Stopping the kernel source failed.", %error);
            }
        })
    }
}
