//! The live source: the BPF programs, through `crate::kernel`, decoded and
//! enriched on the ring-buffer thread.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{EventSource, Sink};
use crate::{
    Config,
    enrich::Enricher,
    kernel::{KernelDrops, KernelOptions, KernelSource, LoadError},
};

/// The kernel's events, enriched with `enricher`.
pub struct EbpfSource {
    kernel: KernelSource,
}

impl EbpfSource {
    /// Loads and attaches the programs; fails at once if the kernel refuses.
    pub async fn start(
        config: &Config,
        sink: Sink,
        pods: crate::enrich::PodDirectory,
    ) -> Result<Self, super::SourceError> {
        // Validated with the config, so an error cannot happen here; every
        // syscall is the safe reading if it did.
        let syscalls = config
            .kernel
            .syscalls
            .resolve()
            .unwrap_or_else(|_| crate::kernel::syscalls::EnabledSet::all());
        let options =
            KernelOptions::for_this_process(config.ring_buffer_bytes).with_syscalls(syscalls);
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

/// Loads the BPF programs and feeds every record through
/// [`crate::handle_record`] into `sink`. Blocks until the programs are attached.
pub fn start_kernel(
    options: KernelOptions,
    enricher: Enricher,
    sink: Sink,
) -> Result<KernelSource, LoadError> {
    let (events, drops) = (sink.events.clone(), sink.userspace_drops.clone());
    KernelSource::start_sink(
        options,
        Enriching {
            enricher,
            events,
            drops,
        },
    )
}

/// decode → enrich → queue on the ring-buffer thread.
struct Enriching {
    enricher: Enricher,
    events: tokio::sync::mpsc::Sender<vigil_proto::v1::Event>,
    drops: Arc<std::sync::atomic::AtomicU64>,
}

impl crate::kernel::RecordSink for Enriching {
    fn record(&mut self, record: &[u8]) {
        crate::handle_record(record, &mut self.enricher, &self.events, &self.drops);
    }

    fn read_end(&mut self) {
        crate::handle_read_end(&mut self.enricher, &self.events, &self.drops);
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
