//! Events → size- and time-bounded compact batches (`CompactBatch`, format 2
//! of `vigil/v1/batch.proto`) → JetStream.
//!
//! Any source can feed this: it only reads a channel of finished events and
//! a [`DropCounts`] to report what was lost on the way. Acks are awaited in
//! a bounded window: async-nats blocks every publish once 5000 acks are in
//! flight, and the collector must never wait on the bus with events queued.
//!
//! A batch is never given up while the collector runs: one JetStream did
//! not take or confirm is sent again (same message id, so a copy that was
//! stored after all is discarded as a duplicate) once the client is
//! connected. While NATS is away the window fills with such batches, no
//! event is taken from the channel, and the source drops and counts what
//! does not fit: every event is either stored or counted in a batch's
//! drops. Only shutdown can leave batches unconfirmed; their events are
//! counted in `vigil_collector_events_unconfirmed_total`.

use std::{
    fs::File,
    io::BufWriter,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    Publisher, TraceContext,
    async_nats::{
        self,
        connection::State,
        jetstream::{context::PublishError, publish::PublishAck},
    },
    codec, subject,
};
use vigil_proto::{
    batch::{CompactEncoder, Header},
    v1::{CompactBatch, Event},
};

use crate::{kernel::KernelDrops, metrics, source::recording::RecordingWriter};

/// Batches whose acks may be outstanding at once; beyond it no event is
/// taken from the channel until acks arrive.
const MAX_IN_FLIGHT: usize = 256;
/// Events taken from the channel per wake-up: one wake-up per event costs
/// more than the batching itself. A chunk can seal a few batches past
/// `MAX_IN_FLIGHT`, so the bound is that plus one chunk.
const RECEIVE_CHUNK: usize = 256;
/// The pause before a batch's second try; it doubles with each try after.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two tries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a batch waiting to be sent again looks whether the client is
/// connected (async-nats offers the state, not a way to await it).
const RECONNECT_CHECK: Duration = Duration::from_millis(100);
/// How long shutdown waits for the last acks: within the service runner's
/// bound on the whole drain, so a recording is still finished after it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
const _: () = assert!(DRAIN_TIMEOUT.as_secs() < vigil_service::runner::DRAIN_TIMEOUT.as_secs());

/// Events lost before publishing, as running totals.
#[derive(Clone, Debug, Default)]
pub struct DropCounts {
    /// Kernel drops (ring buffer full, ...), when the source is the kernel.
    pub kernel: Option<Arc<KernelDrops>>,
    /// Events the source could not queue because the channel was full.
    pub userspace: Arc<AtomicU64>,
}

/// Turns running totals into "since the previous batch".
#[derive(Debug, Default)]
struct DropTally {
    kernel_by_reason: Vec<(&'static str, u64)>,
    userspace: u64,
}

impl DropTally {
    /// Kernel and user-space drops since the last call; also counts them
    /// in the metrics.
    fn since_last(&mut self, counts: &DropCounts) -> (u64, u64) {
        let mut kernel = 0;
        if let Some(drops) = &counts.kernel {
            for (reason, total) in drops.by_reason() {
                let seen = self.kernel_seen(reason);
                let delta = total.saturating_sub(*seen);
                *seen = total.max(*seen);
                ::metrics::counter!(metrics::KERNEL_DROPS, "reason" => reason).increment(delta);
                kernel += delta;
            }
        }
        let userspace_total = counts.userspace.load(Ordering::Relaxed);
        let userspace = userspace_total.saturating_sub(self.userspace);
        self.userspace = userspace_total.max(self.userspace);
        (kernel, userspace)
    }

    fn kernel_seen(&mut self, reason: &'static str) -> &mut u64 {
        let index = match self.kernel_by_reason.iter().position(|(r, _)| *r == reason) {
            Some(index) => index,
            None => {
                self.kernel_by_reason.push((reason, 0));
                self.kernel_by_reason.len() - 1
            }
        };
        &mut self.kernel_by_reason[index].1
    }
}

/// Collects events into one batch per partition
/// ([`subject::event_partition`] of the container id).
///
/// Every batch gets the next number of one sequence shared by all
/// partitions, so `<run_id>:<sequence>` (message id, and the detectors'
/// finding ids) stays unique per run; a consumer of one partition sees
/// increasing sequences with gaps. Drops are node-wide: they ride on the
/// next batch sealed, whatever its partition, and a batch that only reports
/// drops goes to partition 0.
///
/// Each partition's batch is encoded as its events arrive: an event's
/// process, container and pod context joins the batch's tables only when
/// the batch does not hold it yet, so a batch is encoded once and the
/// context of a busy process costs a lookup, not a copy.
#[derive(Debug)]
pub struct Batcher {
    node: String,
    run_id: String,
    next_sequence: u64,
    max_events: usize,
    partitions: Vec<CompactEncoder>,
    drops: DropCounts,
    tally: DropTally,
}

/// A sealed batch and the partition whose subject it goes to.
#[derive(Clone, Debug, PartialEq)]
pub struct Sealed {
    pub partition: u32,
    pub batch: CompactBatch,
}

impl Batcher {
    /// A batcher for one collector run; sequences start at 1.
    pub fn new(node: &str, max_events: usize, drops: DropCounts) -> Self {
        Self {
            node: node.to_owned(),
            run_id: uuid::Uuid::new_v4().to_string(),
            next_sequence: 1,
            max_events: max_events.max(1),
            partitions: (0..subject::EVENT_PARTITIONS)
                .map(|_| CompactEncoder::default())
                .collect(),
            drops,
            tally: DropTally::default(),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Adds an event; returns its partition's batch once that is full.
    pub fn push(&mut self, event: Event) -> Option<Sealed> {
        let partition = subject::event_partition(&event.container_id);
        let encoder = self.partitions.get_mut(partition as usize)?;
        encoder.push(event);
        (encoder.len() >= self.max_events).then(|| self.seal(partition))
    }

    /// Every partition's batch so far, and a batch reporting drops when
    /// there were drops but no events to carry them.
    pub fn flush(&mut self) -> Vec<Sealed> {
        let filled: Vec<u32> = (0..subject::EVENT_PARTITIONS)
            .filter(|p| {
                self.partitions
                    .get(*p as usize)
                    .is_some_and(|e| !e.is_empty())
            })
            .collect();
        let mut sealed: Vec<Sealed> = filled.into_iter().map(|p| self.seal(p)).collect();
        if sealed.is_empty() {
            let (kernel, userspace) = self.tally.since_last(&self.drops);
            if kernel != 0 || userspace != 0 {
                let batch = CompactEncoder::default().finish(self.header(kernel, userspace));
                sealed.push(Sealed {
                    partition: 0,
                    batch,
                });
            }
        }
        sealed
    }

    fn seal(&mut self, partition: u32) -> Sealed {
        let (kernel, userspace) = self.tally.since_last(&self.drops);
        let header = self.header(kernel, userspace);
        let batch = self
            .partitions
            .get_mut(partition as usize)
            .map(|encoder| encoder.finish(header))
            .unwrap_or_default();
        Sealed { partition, batch }
    }

    /// The next batch's header; takes its sequence number.
    fn header(&mut self, kernel_drops: u64, userspace_drops: u64) -> Header {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Header {
            node: self.node.clone(),
            sequence,
            run_id: self.run_id.clone(),
            kernel_drops,
            userspace_drops,
        }
    }
}

/// A batch on its way to JetStream.
struct Outgoing {
    subject: String,
    message_id: String,
    trace: TraceContext,
    payload: Bytes,
    events: usize,
    /// Tries so far, the one in flight included.
    attempt: u32,
    /// The batch's trace root: open until JetStream confirms the batch.
    span: tracing::Span,
}

/// Why a try of a batch failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Send(#[from] vigil_bus::PublishError),
    #[error("JetStream did not confirm it: {0}")]
    Confirm(#[from] PublishError),
}

impl Failure {
    fn stage(&self) -> &'static str {
        match self {
            Failure::Send(_) => "send",
            Failure::Confirm(_) => "confirm",
        }
    }
}

type Confirmation = (Outgoing, Result<PublishAck, Failure>);

/// Where batches go: the publisher, and its client for the connection state.
#[derive(Clone, Debug)]
pub struct Bus {
    pub publisher: Publisher,
    pub client: async_nats::Client,
}

/// The batches sent and not yet confirmed, and how many events they hold.
#[derive(Default)]
struct Window {
    tries: FuturesUnordered<BoxFuture<'static, Confirmation>>,
    events: usize,
}

impl Window {
    fn len(&self) -> usize {
        self.tries.len()
    }

    fn is_empty(&self) -> bool {
        self.tries.is_empty()
    }

    fn push(&mut self, events: usize, attempt: BoxFuture<'static, Confirmation>) {
        self.events += events;
        self.tries.push(attempt);
    }

    async fn next(&mut self) -> Option<Confirmation> {
        let confirmation = self.tries.next().await?;
        self.events -= confirmation.0.events;
        Some(confirmation)
    }
}

/// Publishes batches from `events` until the channel closes (every sender
/// dropped), then flushes the last batches and waits for outstanding acks.
/// With `recorder`, every event is also appended to a recording. Once
/// `shutdown` fires the window no longer holds events back: what is queued
/// is sent (or counted unconfirmed) even while NATS is away.
pub async fn run(
    mut events: mpsc::Receiver<Event>,
    bus: Bus,
    mut batcher: Batcher,
    flush_interval: Duration,
    mut recorder: Option<Recorder>,
    shutdown: CancellationToken,
) {
    let mut window = Window::default();
    let mut chunk = Vec::with_capacity(RECEIVE_CHUNK);
    let mut ticker = tokio::time::interval(flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // At MAX_IN_FLIGHT neither new events nor flushes are taken: the
        // channel fills and the source drops and counts, so memory stays
        // bounded while the bus is slow or away.
        let room = window.len() < MAX_IN_FLIGHT || shutdown.is_cancelled();
        tokio::select! {
            Some((outgoing, result)) = window.next(), if !window.is_empty() => {
                settle(&bus, &mut window, outgoing, result);
            }
            // Only wakes the loop to see that there is room now.
            () = shutdown.cancelled(), if !room => {}
            received = events.recv_many(&mut chunk, RECEIVE_CHUNK), if room => {
                if received == 0 {
                    break;
                }
                for event in chunk.drain(..) {
                    record(&mut recorder, &event);
                    if let Some(sealed) = batcher.push(event) {
                        send(&bus, &mut window, outgoing(sealed)).await;
                    }
                }
            }
            _ = ticker.tick(), if room => {
                for sealed in batcher.flush() {
                    send(&bus, &mut window, outgoing(sealed)).await;
                }
            }
        }
    }
    for sealed in batcher.flush() {
        send(&bus, &mut window, outgoing(sealed)).await;
    }
    drain(&bus, &mut window).await;
    if let Some(recorder) = recorder {
        match recorder.finish() {
            Ok(_) => tracing::info!(message = "Recording closed."),
            Err(error) => tracing::warn!(message = "Could not finish the recording.", %error),
        }
    }
}

/// A recording being written by the publisher.
pub type Recorder = RecordingWriter<BufWriter<File>>;

/// Creates (truncates) a recording at `path`.
pub fn create_recorder(path: &str) -> std::io::Result<Recorder> {
    RecordingWriter::new(BufWriter::with_capacity(1 << 16, File::create(path)?))
}

/// Appends to the recording; on a write error the recording stops (the
/// events still go to the bus).
fn record(recorder: &mut Option<Recorder>, event: &Event) {
    let Some(writer) = recorder else { return };
    if let Err(error) = writer.write(event) {
        ::metrics::counter!(metrics::RECORD_ERRORS).increment(1);
        tracing::error!(message = "Stopped recording after a write error.", events = writer.events(), %error);
        *recorder = None;
    }
}

/// Waits up to [`DRAIN_TIMEOUT`] for the batches in flight, still trying
/// failed ones; counts the events of those unconfirmed then.
async fn drain(bus: &Bus, window: &mut Window) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while !window.is_empty() {
        match tokio::time::timeout_at(deadline, window.next()).await {
            Ok(Some((outgoing, result))) => settle(bus, window, outgoing, result),
            Ok(None) => break,
            Err(_) => {
                ::metrics::counter!(metrics::EVENTS_UNCONFIRMED).increment(window.events as u64);
                tracing::warn!(
                    message = "Shut down with batches unconfirmed: JetStream may or may not have stored them.",
                    batches = window.len(),
                    events = window.events
                );
                break;
            }
        }
    }
}

fn outgoing(Sealed { partition, batch }: Sealed) -> Outgoing {
    let subject = subject::events(&batch.node, partition);
    // One trace per batch: every finding and action it causes joins it.
    let span = tracing::info_span!(
        parent: None,
        "publish_batch",
        messaging.destination = %subject,
        vigil.batch_sequence = batch.sequence,
        vigil.events = batch.events.len(),
    );
    Outgoing {
        trace: vigil_bus::trace::start_trace(&span),
        subject,
        message_id: format!("{}:{}", batch.run_id, batch.sequence),
        events: batch.events.len(),
        payload: codec::encode(&batch),
        attempt: 1,
        span,
    }
}

/// Hands a batch to the client (waiting while its buffer is full, which
/// holds up the next batches and so keeps their order) and puts its ack in
/// the window; a batch the client refuses is tried again later.
async fn send(bus: &Bus, window: &mut Window, outgoing: Outgoing) {
    let events = outgoing.events;
    let attempt: BoxFuture<'static, Confirmation> = match try_send(&bus.publisher, &outgoing).await
    {
        Ok(ack) => Box::pin(async move { (outgoing, ack.await.map_err(Failure::from)) }),
        Err(failure) => Box::pin(async move { (outgoing, Err(failure)) }),
    };
    window.push(events, attempt);
}

async fn try_send(
    publisher: &Publisher,
    outgoing: &Outgoing,
) -> Result<async_nats::jetstream::context::PublishAckFuture, Failure> {
    Ok(publisher
        .send(
            outgoing.subject.clone(),
            &outgoing.message_id,
            &outgoing.trace,
            outgoing.payload.clone(),
        )
        .await?)
}

/// Counts a confirmed batch, or tries a failed one again.
fn settle(bus: &Bus, window: &mut Window, outgoing: Outgoing, result: Result<PublishAck, Failure>) {
    match result {
        Ok(_) => {
            ::metrics::counter!(metrics::BATCHES_PUBLISHED).increment(1);
            ::metrics::counter!(metrics::EVENTS_PUBLISHED).increment(outgoing.events as u64);
        }
        Err(failure) => {
            ::metrics::counter!(metrics::PUBLISH_ERRORS, "stage" => failure.stage()).increment(1);
            // Every try of a long outage fails: the first and then every
            // tenth are enough to follow it.
            if outgoing.attempt % 10 == 1 {
                // In the batch's span, so the trace shows the retries too.
                outgoing.span.in_scope(|| {
                    tracing::warn!(
                        message = "JetStream did not take a batch; it is kept and sent again.",
                        message_id = %outgoing.message_id, events = outgoing.events,
                        attempt = outgoing.attempt, %failure
                    );
                });
            }
            retry(bus, window, outgoing);
        }
    }
}

/// Sends `outgoing` again after a pause that grows with its tries, once the
/// client is connected: a copy sent while disconnected waits in the client's
/// buffer already, and each further one would only add to it.
fn retry(bus: &Bus, window: &mut Window, mut outgoing: Outgoing) {
    let pause = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(outgoing.attempt.saturating_sub(1)))
        .min(MAX_BACKOFF);
    outgoing.attempt += 1;
    let (publisher, client) = (bus.publisher.clone(), bus.client.clone());
    let events = outgoing.events;
    window.push(
        events,
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            while client.connection_state() != State::Connected {
                tokio::time::sleep(RECONNECT_CHECK).await;
            }
            let result = match try_send(&publisher, &outgoing).await {
                Ok(ack) => ack.await.map_err(Failure::from),
                Err(failure) => Err(failure),
            };
            (outgoing, result)
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pid: u32, container_id: &str) -> Event {
        Event {
            pid,
            container_id: container_id.to_owned(),
            ..Event::default()
        }
    }

    /// Two container ids in different partitions.
    fn two_partitions() -> (String, String) {
        let a = "container-a".to_owned();
        let b = (0..)
            .map(|i| format!("container-b{i}"))
            .find(|b| subject::event_partition(b) != subject::event_partition(&a))
            .unwrap();
        (a, b)
    }

    #[test]
    fn batches_are_bounded_per_partition_and_numbered_once_per_run() {
        let (a, b) = two_partitions();
        let mut batcher = Batcher::new("n1", 2, DropCounts::default());
        assert!(batcher.push(event(1, &a)).is_none());
        assert!(batcher.push(event(2, &b)).is_none(), "b has its own batch");
        let first = batcher.push(event(3, &a)).unwrap();
        assert_eq!(first.partition, subject::event_partition(&a));
        assert_eq!((first.batch.sequence, first.batch.events.len()), (1, 2));
        let whole = vigil_proto::batch::expand(first.batch.clone()).batch;
        assert!(whole.events.iter().all(|e| e.container_id == a));
        assert_eq!(first.batch.node, "n1");
        let rest = batcher.flush();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].partition, subject::event_partition(&b));
        assert_eq!((rest[0].batch.sequence, rest[0].batch.events.len()), (2, 1));
        assert_eq!(first.batch.run_id, rest[0].batch.run_id);
        assert_eq!(first.batch.run_id, batcher.run_id());
        assert!(batcher.flush().is_empty(), "nothing to report");
    }

    #[test]
    fn a_sealed_batch_holds_each_process_once_and_reads_back_whole() {
        let mut batcher = Batcher::new("n1", 4, DropCounts::default());
        let pushed: Vec<Event> = [1, 2, 1, 1]
            .into_iter()
            .map(|pid| Event {
                comm: format!("worker-{pid}"),
                cmdline: vec!["worker".into(), "--serve".into()],
                ..event(pid, "container-a")
            })
            .collect();
        let sealed = pushed
            .iter()
            .cloned()
            .find_map(|e| batcher.push(e))
            .unwrap();
        assert_eq!(sealed.batch.processes.len(), 2);
        assert_eq!(sealed.batch.containers.len(), 1);
        let decoded = vigil_proto::batch::decode(&codec::encode(&sealed.batch)).unwrap();
        assert_eq!(decoded.batch.events, pushed);
        assert!(decoded.skipped.is_empty());
    }

    #[test]
    fn host_events_go_to_partition_zero() {
        let mut batcher = Batcher::new("n1", 10, DropCounts::default());
        batcher.push(event(1, ""));
        let sealed = batcher.flush();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].partition, 0);
    }

    #[test]
    fn drops_are_reported_once_as_deltas() {
        let drops = DropCounts::default();
        let mut batcher = Batcher::new("n1", 10, drops.clone());
        drops.userspace.fetch_add(3, Ordering::Relaxed);
        let sealed = batcher.flush();
        assert_eq!(sealed.len(), 1, "a batch that only reports drops");
        assert_eq!(sealed[0].partition, 0);
        let batch = &sealed[0].batch;
        assert_eq!((batch.userspace_drops, batch.events.len()), (3, 0));
        assert!(batcher.flush().is_empty());
        drops.userspace.fetch_add(2, Ordering::Relaxed);
        let (a, b) = two_partitions();
        batcher.push(event(1, &a));
        batcher.push(event(2, &b));
        let sealed = batcher.flush();
        let reported: Vec<u64> = sealed.iter().map(|s| s.batch.userspace_drops).collect();
        assert_eq!(reported.iter().sum::<u64>(), 2, "{reported:?}");
        assert!(sealed.iter().all(|s| s.batch.kernel_drops == 0));
    }
}
