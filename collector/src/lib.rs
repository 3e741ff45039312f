//! `vigil-collector`: the node agent that turns kernel events into event
//! batches on the bus.
//!
//! ```text
//! source (source/): ebpf | replay | synthetic
//!   ebpf: tracepoints (bpf/vigil.bpf.c) ──ring buffer per CPU──▶ ring-buffer thread
//!         (kernel/): decode (decode/) ──▶ enrich (enrich/)
//!   ──▶ source::Sink ──▶ bounded channel ──▶ publisher (publish.rs): batch per partition
//!   ──▶ vigil.events.<node>.<partition> ──▶ acks awaited in a window
//! drop monitor (drops.rs): drops per interval ──▶ a finding
//! ```
//!
//! The kernel never waits for user space and the ring-buffer thread never
//! waits for the bus: the kernel drops and counts when a ring is full, the
//! [`source::Sink`] when the channel is, and every batch carries the drops
//! since the previous one. Every source, the kernel's included, hands its
//! events to the sink; only a replay waits there instead of dropping.
//!
//! [`run`] starts the source, then, once NATS answers, the publisher
//! ([`publish::run`]) and the drop monitor ([`drops::run`]), which turns
//! drops past a threshold into a finding. On shutdown the source stops
//! first, so the channel closes and the publisher flushes what is queued.

pub mod config;
pub mod decode;
pub mod drops;
pub mod enrich;
pub mod kernel;
pub mod metrics;
pub mod publish;
pub mod source;

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_bus::{ConnectError, topology};
use vigil_proto::v1::Event;
use vigil_service::{
    Health,
    runner::{self, Connected, Wiring},
};

pub use config::{Config, Source};
pub use enrich::pods::KUBE_PERMISSIONS;
use publish::{Batcher, DropCounts};
use source::{Sink, SourceError};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "collector";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Kube(#[from] enrich::pods::PodsError),
    #[error("record_path {path}: cannot create the recording: {source}")]
    Record {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
}

/// Runs until `shutdown` fires: read events from the configured source,
/// batch them by partition and publish them. Fails at once if the source
/// cannot start (BPF programs refused, corrupt recording).
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let (events, queued) = mpsc::channel(config.channel_capacity);
    let userspace_drops = Arc::new(AtomicU64::new(0));
    let recorder = (!config.record_path.is_empty())
        .then(|| publish::create_recorder(&config.record_path))
        .transpose()
        .map_err(|source| Error::Record {
            path: config.record_path.clone(),
            source,
        })?;
    let pods = enrich::PodDirectory::default();
    let watching = if config.kube.enabled {
        let client = config.kube.client().await?;
        let (node, pods, shutdown) = (config.node_name.clone(), pods.clone(), shutdown.clone());
        Some(tokio::spawn(async move {
            enrich::pods::watch(client, &node, pods, shutdown).await
        }))
    } else {
        None
    };
    let sink = Sink::new(events, userspace_drops.clone());
    let source = source::start(&config, sink, pods).await?;
    let drops = DropCounts {
        kernel: source.kernel_drops(),
        userspace: userspace_drops,
    };

    let mut source = Some(source);
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[&topology::EVENTS, &topology::FINDINGS],
    };
    let served = runner::serve(wiring, health, shutdown, |connected| {
        publish_events(&config, &mut source, queued, drops, recorder, connected)
    })
    .await;
    // Still here when shutdown came before NATS answered.
    if let Some(source) = source.take() {
        source.stop().await;
    }
    if let Some(watching) = watching {
        watching.abort();
    }
    served
}

/// Batches and publishes what the source queues until shutdown, then stops
/// the source and lets the publisher flush what is queued.
async fn publish_events(
    config: &Config,
    source: &mut Option<Box<dyn source::EventSource>>,
    queued: mpsc::Receiver<Event>,
    drops: DropCounts,
    recorder: Option<publish::Recorder>,
    connected: Connected,
) -> Result<(), Error> {
    let batcher = Batcher::new(&config.node_name, config.batch_max_events, drops.clone());
    let monitor = drops::DropMonitor::new(
        &config.node_name,
        batcher.run_id(),
        config.drops.clone(),
        drops,
    );
    let name = source.as_ref().map_or("none", |source| source.name());
    tracing::info!(message = "Publishing events.", node = %config.node_name, source = name, run_id = %batcher.run_id());
    let flush_interval = Duration::from_millis(config.flush_interval_ms);
    let bus = publish::Bus {
        publisher: connected.publisher(),
        client: connected.bus.client.clone(),
    };
    let publishing = tokio::spawn(publish::run(
        queued,
        bus.clone(),
        batcher,
        flush_interval,
        recorder,
        connected.shutdown.clone(),
    ));
    let monitoring = tokio::spawn(drops::run(monitor, bus, connected.shutdown.clone()));
    connected.ready();

    connected.shutdown.cancelled().await;
    // Stopping the source drops the channel's sender: the publisher then
    // flushes what is queued and waits for the last acks.
    if let Some(source) = source.take() {
        source.stop().await;
    }
    for (task, result) in [
        ("publisher", publishing.await),
        ("drop monitor", monitoring.await),
    ] {
        if let Err(error) = result {
            tracing::error!(message = "A collector task failed.", task, %error);
        }
    }
    Ok(())
}
