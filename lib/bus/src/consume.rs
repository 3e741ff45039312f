//! The one consume loop every service uses: pull, hand the message to the
//! service, then settle it as the service decided.
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
    jetstream::{AckKind, consumer::PullConsumer},
};
use bytes::Bytes;
use futures::StreamExt;
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

/// Runs until `shutdown` fires. The message being handled when it fires is
/// finished and settled; messages not yet handled are left unacknowledged and
/// JetStream redelivers them to the next instance.
pub async fn run<H, F>(consumer: PullConsumer, shutdown: CancellationToken, mut handle: H)
where
    H: FnMut(Delivery) -> F,
    F: Future<Output = Disposition>,
{
    let name = consumer
        .cached_info()
        .config
        .durable_name
        .clone()
        .unwrap_or_default();
    while !shutdown.is_cancelled() {
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
                () = shutdown.cancelled() => return,
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
            let subject = delivery.subject.clone();
            let disposition = handle(delivery).await;
            metrics::counter!("vigil_bus_messages_total", "consumer" => name.clone(), "disposition" => disposition.label())
                .increment(1);
            let kind = match disposition {
                Disposition::Ack => AckKind::Ack,
                Disposition::Retry { reason, delay } => {
                    tracing::warn!(message = "Will retry message.", consumer = %name, %subject, stream_sequence, delivered, %reason);
                    AckKind::Nak(Some(delay))
                }
                Disposition::Reject { reason } => {
                    tracing::warn!(message = "Rejected message.", consumer = %name, %subject, stream_sequence, %reason);
                    AckKind::Term
                }
            };
            if let Err(error) = message.ack_with(kind).await {
                // The server will redeliver; handlers are idempotent.
                tracing::warn!(message = "Could not settle message.", consumer = %name, %subject, stream_sequence, %error);
            }
        }
        sleep_unless_cancelled(&shutdown, RESUBSCRIBE_DELAY).await;
    }
}

async fn sleep_unless_cancelled(shutdown: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}
