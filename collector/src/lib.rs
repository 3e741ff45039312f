//! `vigil-collector`: the node agent that turns kernel events into event
//! batches on the bus.
//!
//! ```text
//! tracepoints (bpf/vigil.bpf.c) ──ring buffer──▶ ring-buffer thread:
//!     decode (decode/) ──▶ enrich (enrich/) ──try_send──▶ bounded channel
//!         ──▶ batcher (publish.rs) ──▶ vigil.events.<node> ──▶ acks awaited in a window
//! ```
//!
//! The kernel never waits for user space and the ring-buffer thread never
//! waits for the bus: each place that cannot keep up drops and counts, and
//! every batch carries the drops since the previous one.
//!
//! decode → enrich → batch are separate steps, so another source (a
//! recording, a replay) can feed [`publish::run`] through the same channel.

pub mod config;
pub mod decode;
pub mod enrich;
pub mod kernel;
pub mod metrics;
pub mod publish;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use vigil_bus::{ConnectError, ConnectOptions, Publisher, connect::connect, topology};
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::Event;
use vigil_service::Health;

pub use config::{Config, Source};
use enrich::Enricher;
use kernel::{KernelOptions, KernelSource, LoadError};
use publish::{Batcher, DropCounts};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "collector";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("the kernel source's start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs until `shutdown` fires: read the kernel's events, batch them and
/// publish them. Fails at once if the BPF programs cannot be loaded.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let (events, queued) = mpsc::channel(config.channel_capacity);
    let userspace_drops = Arc::new(AtomicU64::new(0));
    let options = KernelOptions::for_this_process(config.ring_buffer_bytes);
    let source = {
        let (node, dropped) = (config.node_name.clone(), userspace_drops.clone());
        tokio::task::spawn_blocking(move || start_kernel_source(options, &node, events, dropped))
            .await??
    };
    let drops = DropCounts {
        kernel: Some(source.drops()),
        userspace: userspace_drops,
    };

    let options = ConnectOptions {
        url: config.nats.url.clone(),
        client_name: format!("vigil-collector@{}", config.node_name),
    };
    let bus = match connect(&options, &shutdown).await {
        Ok(bus) => bus,
        Err(ConnectError::Cancelled { .. }) => {
            stop(source).await;
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    topology::ensure_stream(
        &bus.jetstream,
        &topology::EVENTS,
        config.nats.stream_replicas,
    )
    .await?;
    let batcher = Batcher::new(&config.node_name, config.batch_max_events, drops);
    tracing::info!(message = "Publishing events.", node = %config.node_name, run_id = %batcher.run_id());
    let publisher = Publisher::new(bus.jetstream.clone());
    let flush_interval = Duration::from_millis(config.flush_interval_ms);
    let publishing = tokio::spawn(publish::run(queued, publisher, batcher, flush_interval));
    health.set_ready(true);

    shutdown.cancelled().await;
    health.set_ready(false);
    // Stopping the source drops the channel's sender: the publisher then
    // flushes what is queued and waits for the last acks.
    stop(source).await;
    if let Err(error) = publishing.await {
        tracing::error!(message = "The publisher task failed.", %error);
    }
    if let Err(error) = bus.client.flush().await {
        tracing::warn!(message = "Could not flush the NATS client on shutdown.", %error);
    }
    tracing::info!(message = "Stopped.");
    Ok(())
}

/// Loads the BPF programs and feeds every record through
/// [`handle_record`] into `events`. Blocks until the programs are attached.
pub fn start_kernel_source(
    options: KernelOptions,
    node: &str,
    events: mpsc::Sender<Event>,
    userspace_drops: Arc<AtomicU64>,
) -> Result<KernelSource, LoadError> {
    let mut enricher = Enricher::new(node, Hierarchies::detect());
    KernelSource::start(options, move |record| {
        handle_record(record, &mut enricher, &events, &userspace_drops);
    })
}

/// decode → enrich → queue, for one kernel record. Never blocks: when the
/// channel is full the event is dropped and counted.
pub fn handle_record(
    record: &[u8],
    enricher: &mut Enricher,
    events: &mpsc::Sender<Event>,
    userspace_drops: &AtomicU64,
) {
    let decoded = match decode::decode(record) {
        Ok(decoded) => decoded,
        Err(error) => {
            ::metrics::counter!(metrics::RECORDS_INVALID, "reason" => error.reason()).increment(1);
            tracing::debug!(message = "Skipped an invalid kernel record.", len = record.len(), %error);
            return;
        }
    };
    let event = enricher.enrich(decoded);
    ::metrics::counter!(metrics::EVENTS, "kind" => decode::kind_label(event.r#type())).increment(1);
    match events.try_send(event) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            userspace_drops.fetch_add(1, Ordering::Relaxed);
            ::metrics::counter!(metrics::USERSPACE_DROPS).increment(1);
        }
        // Shutting down: the publisher is gone and nothing is lost that it
        // would have sent.
        Err(TrySendError::Closed(_)) => {}
    }
}

async fn stop(mut source: KernelSource) {
    // Joining the ring-buffer thread blocks for up to one poll timeout.
    let stopped = tokio::task::spawn_blocking(move || source.stop()).await;
    if let Err(error) = stopped {
        tracing::error!(message = "Stopping the kernel source failed.", %error);
    }
}
