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

use std::{future::Future, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{AckKind, Message, consumer::PullConsumer},
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::trace::TraceContext;

const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

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
pub async fn run<H, F>(
    consumer: PullConsumer,
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
    'subscribe: while !shutdown.is_cancelled() {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(message = "Cannot pull from consumer; retrying.", consumer = %name, %error);
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
                Some(Err(error)) => {
                    // Missed heartbeats and similar while NATS restarts: the
                    // stream recovers by itself, so log and keep reading.
                    tracing::warn!(message = "Consumer stream reported an error.", consumer = %name, %error);
                    continue;
                }
                None => break,
            };
            let (stream_sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(_) => (0, 1),
            };
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
        sleep_unless_cancelled(&shutdown, RESUBSCRIBE_DELAY).await;
    }
    while !in_flight.is_empty() {
        join(&mut in_flight, &name).await;
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
