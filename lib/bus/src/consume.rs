//! The one consume loop every service uses: pull, hand the message to the
//! service, then settle it as the service decided; one message at a time,
//! or several in flight (the detectors pipeline batches this way).
//!
//! * `Ack` only after the work is finished, including any downstream publish
//!   that JetStream has confirmed;
//! * `Retry` (a Nak with a delay) for transient failures, such as NATS being
//!   briefly unreachable when publishing the result;
//! * `Reject` (a Term) for input that can never succeed, such as a payload
//!   that does not decode: it is counted and logged, never redelivered.
//!
//! A durable deleted on the server (by an operator, or lost with a stream)
//! is recreated from its [`ConsumerSpec`], with back-off, and pulling
//! resumes; while it is missing, [`missing_consumers`] names it and the
//! service's readiness is withdrawn. The definition deliberately stays the
//! same, `DeliverPolicy::All` included, so the next `ensure_consumer` of a
//! restarted instance matches it: the recreated durable therefore delivers
//! again every message the stream still holds, not only the unacknowledged
//! ones. Handlers are idempotent (deterministic message ids, the
//! responder's handled-findings bucket), so this costs a replay, not
//! duplicate actions.
//!
//! The loop also watches its consumer for data JetStream discards before
//! handing it out, counts and reports it (see [`crate::loss`]).

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_nats::{
    HeaderMap,
    jetstream::{
        self, AckKind, Message,
        consumer::{PullConsumer, pull::MessagesErrorKind},
        context::ConsumerInfoErrorKind,
    },
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    loss::Watch,
    topology::{self, ConsumerSpec},
    trace::TraceContext,
};

const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// How long one pull request waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// The server's idle heartbeat on a waiting pull request. Two missed in a
/// row end the pull (see `run`), so a pull request the server dropped with
/// its consumer is noticed within two heartbeats, not at its expiry.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);
/// First and longest wait between attempts to recreate a missing consumer.
const RECREATE_FIRST_DELAY: Duration = Duration::from_millis(250);
const RECREATE_MAX_DELAY: Duration = Duration::from_secs(10);

/// How a consumer was created, so the loop can create it again.
struct Definition {
    js: jetstream::Context,
    spec: ConsumerSpec,
    replicas: usize,
}

/// Definitions by (stream, durable name), filled by
/// [`crate::topology::ensure_consumer`]: `run` takes only the consumer, whose
/// JetStream context async-nats keeps private.
static DEFINITIONS: Mutex<BTreeMap<(String, String), Definition>> = Mutex::new(BTreeMap::new());

/// Consumers of this process the server does not have right now, by
/// `<stream>/<durable>`, with how many loops wait for each.
static MISSING: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Remembers how `spec` was created for recreating it later.
pub(crate) fn remember(js: &jetstream::Context, spec: &ConsumerSpec, replicas: usize) {
    let key = (spec.stream.name.to_owned(), spec.durable_name.clone());
    let definition = Definition {
        js: js.clone(),
        spec: spec.clone(),
        replicas,
    };
    DEFINITIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, definition);
}

/// Consumers (`<stream>/<durable>`) a loop of this process is waiting to
/// recreate: the process is not consuming them, so it is not ready.
pub fn missing_consumers() -> Vec<String> {
    MISSING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .keys()
        .cloned()
        .collect()
}

/// Marks a consumer missing until dropped, on every way out of the wait.
struct MissingMark(String);

impl MissingMark {
    fn new(key: String) -> Self {
        *MISSING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default() += 1;
        metrics::gauge!("vigil_bus_consumer_missing", "consumer" => key.clone()).set(1.0);
        Self(key)
    }
}

impl Drop for MissingMark {
    fn drop(&mut self) {
        let mut missing = MISSING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = missing.get_mut(&self.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                missing.remove(&self.0);
                metrics::gauge!("vigil_bus_consumer_missing", "consumer" => self.0.clone())
                    .set(0.0);
            }
        }
    }
}

/// A message handed to a service.
#[derive(Debug)]
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Option<HeaderMap>,
    pub stream_sequence: u64,
    /// 1 on first delivery, more on redelivery.
    pub delivered: i64,
    /// Trace context from the headers, or a new root when absent.
    pub trace: TraceContext,
}

/// What to do with a delivered message.
#[derive(Debug, PartialEq)]
pub enum Disposition {
    Ack,
    Retry { reason: String, delay: Duration },
    Reject { reason: String },
}

impl Disposition {
    fn label(&self) -> &'static str {
        match self {
            Disposition::Ack => "acked",
            Disposition::Retry { .. } => "retried",
            Disposition::Reject { .. } => "rejected",
        }
    }
}

/// Runs until `shutdown` fires, with up to `max_in_flight` messages handled
/// at once (at least one). Each message is handled and settled in its own
/// task, so handlers spread over the runtime's worker threads and one
/// message's wait for JetStream overlaps the next one's work; with 1 a
/// message is settled before the next is pulled. On shutdown the messages
/// in hand are finished and settled; messages not yet handed out are left
/// unacknowledged and JetStream redelivers them to the next instance.
/// A consumer deleted on the server is recreated (see the module docs).
pub async fn run<H, F>(
    mut consumer: PullConsumer,
    shutdown: CancellationToken,
    max_in_flight: usize,
    mut handle: H,
) where
    H: FnMut(Delivery) -> F,
    F: Future<Output = Disposition> + Send + 'static,
{
    let name = consumer
        .cached_info()
        .config
        .durable_name
        .clone()
        .unwrap_or_default();
    let mut in_flight = JoinSet::new();
    // The watch's tasks end with the loop, however it returns.
    let watching = shutdown.child_token();
    let _stop_watching = watching.clone().drop_guard();
    let watch = watch(&consumer, &watching);
    'subscribe: while !shutdown.is_cancelled() {
        if let Some(watch) = &watch {
            // Before the server moves the consumer past a gap.
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = watch.check_limits(&consumer) => {}
            }
        }
        let pulled = consumer
            .stream()
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await;
        let mut messages = match pulled {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(message = "Cannot pull from consumer; retrying.", consumer = %name, %error);
                if let Some(found) = recover(&consumer, &shutdown).await {
                    consumer = found;
                    continue;
                }
                sleep_unless_cancelled(&shutdown, RESUBSCRIBE_DELAY).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break 'subscribe,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error))
                    if matches!(
                        error.kind(),
                        MessagesErrorKind::ConsumerDeleted
                            | MessagesErrorKind::NoResponders
                            | MessagesErrorKind::MissingHeartbeat
                    ) =>
                {
                    // The server says the consumer is gone, nothing answers
                    // pull requests for it, or the pull request went silent:
                    // a consumer deleted just as the request reached it
                    // drops the request without a "Consumer Deleted" reply,
                    // and the stream would only pull again at its expiry.
                    // Find out which below, then pull afresh.
                    tracing::warn!(message = "Consumer stream reported an error.", consumer = %name, %error);
                    break;
                }
                Some(Err(error)) => {
                    // Transient errors of one pull: the stream recovers by
                    // itself, so log and keep reading.
                    tracing::warn!(message = "Consumer stream reported an error.", consumer = %name, %error);
                    continue;
                }
                None => break,
            };
            let (stream_sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(_) => (0, 1),
            };
            if let Some(watch) = &watch {
                watch.handed(stream_sequence);
            }
            let delivery = Delivery {
                subject: message.subject.to_string(),
                payload: message.payload.clone(),
                headers: message.headers.clone(),
                stream_sequence,
                delivered,
                trace: TraceContext::from_headers(message.headers.as_ref())
                    .unwrap_or_else(TraceContext::new_root),
            };
            let work = handle(delivery);
            let consumer = name.clone();
            in_flight.spawn(async move { settle(message, work.await, &consumer).await });
            while in_flight.len() >= max_in_flight.max(1) {
                join(&mut in_flight, &name).await;
            }
            while let Some(joined) = in_flight.try_join_next() {
                log_panic(joined, &name);
            }
        }
        if let Some(found) = recover(&consumer, &shutdown).await {
            consumer = found;
            continue;
        }
        sleep_unless_cancelled(&shutdown, RESUBSCRIBE_DELAY).await;
    }
    while !in_flight.is_empty() {
        join(&mut in_flight, &name).await;
    }
}

/// The loss watch of `consumer`, with its advisory and periodic tasks
/// started; None for a consumer not created by
/// [`crate::topology::ensure_consumer`], whose connection is unknown.
fn watch(consumer: &PullConsumer, stop: &CancellationToken) -> Option<Arc<Watch>> {
    let info = consumer.cached_info();
    let key = (info.stream_name.clone(), info.name.clone());
    let definition = DEFINITIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .map(|d| (d.js.clone(), d.spec.stream.subjects));
    let Some((js, subjects)) = definition else {
        tracing::warn!(message = "Consumer not created by topology::ensure_consumer: its data losses are not watched.", consumer = %info.name, stream = %info.stream_name);
        return None;
    };
    let watch = Watch::new(js, consumer, subjects, stop.clone());
    tokio::spawn(watch.clone().follow_max_deliveries());
    tokio::spawn(watch.clone().check_periodically(consumer.clone()));
    Some(watch)
}

/// When the server no longer has `consumer`, marks it missing and
/// recreates it from its definition, with back-off, until that succeeds,
/// someone else recreates it, or shutdown. Returns the consumer to pull
/// from then; None when it was not missing (NATS away, or it was there).
async fn recover(consumer: &PullConsumer, shutdown: &CancellationToken) -> Option<PullConsumer> {
    if !is_gone(consumer).await {
        return None;
    }
    let info = consumer.cached_info();
    let (stream, name) = (info.stream_name.clone(), info.name.clone());
    let key = format!("{stream}/{name}");
    tracing::warn!(message = "Consumer is gone from the server; recreating it.", consumer = %name, %stream);
    let _missing = MissingMark::new(key.clone());
    let mut delay = RECREATE_FIRST_DELAY;
    while !shutdown.is_cancelled() {
        let definition = DEFINITIONS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(stream.clone(), name.clone()))
            .map(|d| (d.js.clone(), d.spec.clone(), d.replicas));
        let error = match definition {
            Some((js, spec, replicas)) => {
                match topology::ensure_consumer(&js, &spec, replicas).await {
                    Ok(recreated) => {
                        metrics::counter!("vigil_bus_consumer_recreated_total", "consumer" => key)
                            .increment(1);
                        tracing::info!(message = "Recreated the consumer; consuming again.", consumer = %name, %stream);
                        return Some(recreated);
                    }
                    Err(error) => error.to_string(),
                }
            }
            None if !is_gone(consumer).await => {
                tracing::info!(message = "The consumer is back; consuming again.", consumer = %name, %stream);
                return Some(consumer.clone());
            }
            None => "its definition is unknown: it was not created by topology::ensure_consumer, \
                     so only someone else can recreate it"
                .to_owned(),
        };
        tracing::warn!(message = "Cannot recreate the consumer; retrying.", consumer = %name, %stream, %error, retry_in = ?delay);
        sleep_unless_cancelled(shutdown, delay).await;
        delay = (delay * 2).min(RECREATE_MAX_DELAY);
    }
    None
}

/// Whether the server says the consumer (or its whole stream) does not
/// exist; any other answer, or none, is not proof of that.
async fn is_gone(consumer: &PullConsumer) -> bool {
    match consumer.get_info().await {
        Ok(_) => false,
        Err(error) => matches!(
            error.kind(),
            ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
        ),
    }
}

/// Acks, naks or terms `message` as `disposition` says, and counts it.
async fn settle(message: Message, disposition: Disposition, consumer: &str) {
    let subject = message.subject.as_str();
    let (stream_sequence, delivered) = message
        .info()
        .map_or((0, 1), |info| (info.stream_sequence, info.delivered));
    metrics::counter!("vigil_bus_messages_total", "consumer" => consumer.to_owned(), "disposition" => disposition.label())
        .increment(1);
    let kind = match disposition {
        Disposition::Ack => AckKind::Ack,
        Disposition::Retry { reason, delay } => {
            tracing::warn!(message = "Will retry message.", consumer, %subject, stream_sequence, delivered, %reason);
            AckKind::Nak(Some(delay))
        }
        Disposition::Reject { reason } => {
            tracing::warn!(message = "Rejected message.", consumer, %subject, stream_sequence, %reason);
            AckKind::Term
        }
    };
    if let Err(error) = message.ack_with(kind).await {
        // The server will redeliver; handlers are idempotent.
        tracing::warn!(message = "Could not settle message.", consumer, %subject, stream_sequence, %error);
    }
}

async fn join(in_flight: &mut JoinSet<()>, consumer: &str) {
    if let Some(joined) = in_flight.join_next().await {
        log_panic(joined, consumer);
    }
}

/// A handler that panicked leaves its message unsettled: JetStream
/// redelivers it after the ack wait.
fn log_panic(joined: Result<(), JoinError>, consumer: &str) {
    if let Err(error) = joined {
        tracing::error!(message = "A message handler failed; the message will be redelivered.", consumer, %error);
    }
}

async fn sleep_unless_cancelled(shutdown: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}
