//! Events → size- and time-bounded `EventBatch`es → JetStream.
//!
//! Any source can feed this: it only reads a channel of finished events and
//! a [`DropCounts`] to report what was lost on the way. Acks are awaited in
//! a bounded window: async-nats blocks every publish once 5000 acks are in
//! flight, and the collector must never wait on the bus with events queued.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use tokio::sync::mpsc;
use vigil_bus::{
    Publisher, TraceContext,
    async_nats::jetstream::{context::PublishError, publish::PublishAck},
    codec, subject,
};
use vigil_proto::v1::{Event, EventBatch};

use crate::{kernel::KernelDrops, metrics};

/// Batches whose acks may be outstanding at once; beyond it no event is
/// taken from the channel until acks arrive.
const MAX_IN_FLIGHT: usize = 256;
/// Attempts per batch (same message id, so a repeat JetStream did store is
/// discarded as a duplicate).
const MAX_ATTEMPTS: u32 = 3;
/// How long shutdown waits for the last acks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Collects events into batches with sequence numbers.
#[derive(Debug)]
pub struct Batcher {
    node: String,
    run_id: String,
    next_sequence: u64,
    max_events: usize,
    events: Vec<Event>,
    drops: DropCounts,
    tally: DropTally,
}

impl Batcher {
    /// A batcher for one collector run; sequences start at 1.
    pub fn new(node: &str, max_events: usize, drops: DropCounts) -> Self {
        Self {
            node: node.to_owned(),
            run_id: uuid::Uuid::new_v4().to_string(),
            next_sequence: 1,
            max_events: max_events.max(1),
            events: Vec::with_capacity(max_events),
            drops,
            tally: DropTally::default(),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Adds an event; returns the batch once it is full.
    pub fn push(&mut self, event: Event) -> Option<EventBatch> {
        self.events.push(event);
        (self.events.len() >= self.max_events).then(|| self.seal())
    }

    /// The batch so far, if it has events or drops to report.
    pub fn flush(&mut self) -> Option<EventBatch> {
        if self.events.is_empty() {
            let (kernel, userspace) = self.tally.since_last(&self.drops);
            if kernel == 0 && userspace == 0 {
                return None;
            }
            return Some(self.batch(Vec::new(), kernel, userspace));
        }
        Some(self.seal())
    }

    fn seal(&mut self) -> EventBatch {
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(self.max_events));
        let (kernel, userspace) = self.tally.since_last(&self.drops);
        self.batch(events, kernel, userspace)
    }

    fn batch(&mut self, events: Vec<Event>, kernel_drops: u64, userspace_drops: u64) -> EventBatch {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        EventBatch {
            node: self.node.clone(),
            sequence,
            events,
            kernel_drops,
            userspace_drops,
            run_id: self.run_id.clone(),
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
    attempt: u32,
}

type Confirmation = (Outgoing, Result<PublishAck, PublishError>);
type InFlight = FuturesUnordered<BoxFuture<'static, Confirmation>>;

/// Publishes batches from `events` until the channel closes (every sender
/// dropped), then flushes the last batch and waits for outstanding acks.
pub async fn run(
    mut events: mpsc::Receiver<Event>,
    publisher: Publisher,
    mut batcher: Batcher,
    flush_interval: Duration,
) {
    let mut in_flight = InFlight::new();
    let mut ticker = tokio::time::interval(flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some((outgoing, result)) = in_flight.next(), if !in_flight.is_empty() => {
                settle(&publisher, &mut in_flight, outgoing, result).await;
            }
            event = events.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let Some(event) = event else { break };
                if let Some(batch) = batcher.push(event) {
                    send(&publisher, &mut in_flight, outgoing(batch)).await;
                }
            }
            _ = ticker.tick() => {
                if let Some(batch) = batcher.flush() {
                    send(&publisher, &mut in_flight, outgoing(batch)).await;
                }
            }
        }
    }
    if let Some(batch) = batcher.flush() {
        send(&publisher, &mut in_flight, outgoing(batch)).await;
    }
    drain(&publisher, &mut in_flight).await;
}

async fn drain(publisher: &Publisher, in_flight: &mut InFlight) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, in_flight.next()).await {
            Ok(Some((outgoing, result))) => settle(publisher, in_flight, outgoing, result).await,
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    message = "Shut down with batches unconfirmed.",
                    batches = in_flight.len()
                );
                break;
            }
        }
    }
}

fn outgoing(batch: EventBatch) -> Outgoing {
    Outgoing {
        subject: subject::events(&batch.node, 0),
        message_id: format!("{}:{}", batch.run_id, batch.sequence),
        trace: TraceContext::new_root(),
        events: batch.events.len(),
        payload: codec::encode(&batch),
        attempt: 1,
    }
}

/// Sends a batch and queues its ack. A batch that cannot even be handed to
/// the client is lost: counted and logged, never retried in a loop that
/// would hold up the next ones.
async fn send(publisher: &Publisher, in_flight: &mut InFlight, outgoing: Outgoing) {
    let sent = publisher
        .send(
            outgoing.subject.clone(),
            &outgoing.message_id,
            &outgoing.trace,
            outgoing.payload.clone(),
        )
        .await;
    match sent {
        Ok(ack) => in_flight.push(Box::pin(async move { (outgoing, ack.await) })),
        Err(error) => {
            ::metrics::counter!(metrics::PUBLISH_ERRORS, "stage" => "send").increment(1);
            tracing::warn!(
                message = "Dropped a batch that could not be sent.",
                message_id = %outgoing.message_id, events = outgoing.events, %error
            );
        }
    }
}

/// Counts a confirmed batch, or sends an unconfirmed one again.
async fn settle(
    publisher: &Publisher,
    in_flight: &mut InFlight,
    mut outgoing: Outgoing,
    result: Result<PublishAck, PublishError>,
) {
    match result {
        Ok(_) => {
            ::metrics::counter!(metrics::BATCHES_PUBLISHED).increment(1);
        }
        Err(error) if outgoing.attempt < MAX_ATTEMPTS => {
            ::metrics::counter!(metrics::PUBLISH_ERRORS, "stage" => "confirm").increment(1);
            tracing::warn!(
                message = "JetStream did not confirm a batch; sending it again.",
                message_id = %outgoing.message_id, attempt = outgoing.attempt, %error
            );
            outgoing.attempt += 1;
            send(publisher, in_flight, outgoing).await;
        }
        Err(error) => {
            ::metrics::counter!(metrics::PUBLISH_ERRORS, "stage" => "confirm").increment(1);
            tracing::warn!(
                message = "Dropped a batch JetStream never confirmed.",
                message_id = %outgoing.message_id, events = outgoing.events, attempts = outgoing.attempt, %error
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pid: u32) -> Event {
        Event {
            pid,
            ..Event::default()
        }
    }

    #[test]
    fn batches_are_bounded_numbered_and_share_the_run_id() {
        let mut batcher = Batcher::new("n1", 2, DropCounts::default());
        assert!(batcher.push(event(1)).is_none());
        let first = batcher.push(event(2)).unwrap();
        assert_eq!((first.sequence, first.events.len()), (1, 2));
        assert_eq!(first.node, "n1");
        assert!(batcher.push(event(3)).is_none());
        let second = batcher.flush().unwrap();
        assert_eq!((second.sequence, second.events.len()), (2, 1));
        assert_eq!(first.run_id, second.run_id);
        assert_eq!(first.run_id, batcher.run_id());
        assert!(batcher.flush().is_none(), "nothing to report");
    }

    #[test]
    fn drops_are_reported_once_as_deltas() {
        let drops = DropCounts::default();
        let mut batcher = Batcher::new("n1", 10, drops.clone());
        drops.userspace.fetch_add(3, Ordering::Relaxed);
        let batch = batcher.flush().expect("a batch that only reports drops");
        assert_eq!((batch.userspace_drops, batch.events.len()), (3, 0));
        assert!(batcher.flush().is_none());
        drops.userspace.fetch_add(2, Ordering::Relaxed);
        batcher.push(event(1));
        let batch = batcher.flush().unwrap();
        assert_eq!((batch.userspace_drops, batch.kernel_drops), (2, 0));
    }
}
