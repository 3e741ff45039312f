//! Where events come from, behind one interface.
//!
//! Every source pushes finished events into a [`Sink`]: the bounded channel
//! the publisher reads. A live source must never wait for the publisher, so
//! it [`Sink::offer`]s and the sink drops and counts what does not fit; a
//! replay must not lose what it replays, so it [`Sink::send`]s and waits.
//!
//! | `source` | what | needs |
//! |---|---|---|
//! | `ebpf` | the BPF programs in `collector/bpf/` | root, BTF |
//! | `replay` | a recording ([`recording`]) at its original pace or as fast as possible | the file |
//! | `synthetic` | a realistic mix of execs, opens, connects, clones and exits from pods, at a set rate | nothing |

pub mod ebpf;
pub mod recording;
pub mod replay;
pub mod synthetic;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures::future::BoxFuture;
use tokio::sync::mpsc::{self, error::TrySendError};
use vigil_proto::v1::Event;

use crate::{
    config::{Config, Source},
    kernel::{KernelDrops, LoadError},
    metrics,
};

/// A running source. Dropping the future of [`EventSource::stop`] is not
/// enough: await it, so the source's senders are gone when it returns and
/// the publisher sees the channel close.
pub trait EventSource: Send {
    /// The config name of this source.
    fn name(&self) -> &'static str;
    /// Drops counted before events reach user space (the kernel's ring
    /// buffer), when the source has such a stage.
    fn kernel_drops(&self) -> Option<Arc<KernelDrops>> {
        None
    }
    /// Stops producing events and releases the sink.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Kernel(#[from] LoadError),
    #[error("replay.path {path}: {source}")]
    Recording {
        path: String,
        #[source]
        source: recording::FormatError,
    },
    #[error("cannot start the source's thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the source's start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The publisher's end of the channel, as the sources see it.
#[derive(Clone, Debug)]
pub struct Sink {
    events: mpsc::Sender<Event>,
    userspace_drops: Arc<AtomicU64>,
}

impl Sink {
    pub fn new(events: mpsc::Sender<Event>, userspace_drops: Arc<AtomicU64>) -> Self {
        Self {
            events,
            userspace_drops,
        }
    }

    /// Queues `event` without waiting; a full channel drops and counts it.
    /// Returns false once the publisher is gone.
    pub fn offer(&self, event: Event) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.userspace_drops.fetch_add(1, Ordering::Relaxed);
                ::metrics::counter!(metrics::USERSPACE_DROPS).increment(1);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Queues `event`, waiting for room. Returns false once the publisher is gone.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// The running total of dropped events.
    pub fn userspace_drops(&self) -> Arc<AtomicU64> {
        self.userspace_drops.clone()
    }
}

/// Starts the source `config.source` names.
/// `pods` attributes containers to pods for the live source (recorded and
/// synthetic events carry their pods already).
pub async fn start(
    config: &Config,
    sink: Sink,
    pods: crate::enrich::PodDirectory,
) -> Result<Box<dyn EventSource>, SourceError> {
    match config.source {
        Source::Ebpf => Ok(Box::new(ebpf::EbpfSource::start(config, sink, pods).await?)),
        Source::Replay => Ok(Box::new(replay::ReplaySource::start(&config.replay, sink)?)),
        Source::Synthetic => Ok(Box::new(
            synthetic::SyntheticSource::start(&config.node_name, &config.synthetic, sink)
                .map_err(SourceError::Thread)?,
        )),
    }
}

/// A source that runs as one tokio task, or on a thread of its own, until
/// done or cancelled.
pub struct TaskSource {
    name: &'static str,
    cancel: tokio_util::sync::CancellationToken,
    runner: Runner,
}

enum Runner {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

impl TaskSource {
    pub fn spawn<F>(
        name: &'static str,
        body: impl FnOnce(tokio_util::sync::CancellationToken) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(body(cancel.clone()));
        Self {
            name,
            cancel,
            runner: Runner::Task(task),
        }
    }

    /// Runs `body` on a thread named `vigil-<name>`, like the kernel's
    /// ring-buffer thread: a source that is busy all the time must not hold
    /// a runtime worker that the publisher needs, and its CPU can be told
    /// apart (`/proc/<pid>/task/*/comm`).
    pub fn spawn_thread(
        name: &'static str,
        body: impl FnOnce(tokio_util::sync::CancellationToken) + Send + 'static,
    ) -> std::io::Result<Self> {
        let cancel = tokio_util::sync::CancellationToken::new();
        let thread = std::thread::Builder::new()
            .name(format!("vigil-{name}"))
            .spawn({
                let cancel = cancel.clone();
                move || body(cancel)
            })?;
        Ok(Self {
            name,
            cancel,
            runner: Runner::Thread(thread),
        })
    }
}

impl EventSource for TaskSource {
    fn name(&self) -> &'static str {
        self.name
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.cancel.cancel();
            let failed = match self.runner {
                Runner::Task(task) => task.await.is_err(),
                Runner::Thread(thread) => {
                    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                    !matches!(joined, Ok(Ok(())))
                }
            };
            if failed {
                tracing::error!(message = "The event source failed.", source = self.name);
            }
        })
    }
}
