//! Publishing to JetStream with a message id (de-duplication) and trace context.

use async_nats::{
    HeaderMap,
    jetstream::{self, context::PublishAckFuture, message::PublishMessage, publish::PublishAck},
};
use bytes::Bytes;

use crate::trace::{TRACEPARENT, TraceContext};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publish to {subject} failed: {source}")]
    Send {
        subject: String,
        #[source]
        source: jetstream::context::PublishError,
    },
    #[error("JetStream did not confirm message {message_id} on {subject}: {source}")]
    Confirm {
        subject: String,
        message_id: String,
        #[source]
        source: jetstream::context::PublishError,
    },
}

/// Publishes JetStream did not take or did not confirm, by `stream` (the
/// subject's first two tokens, `vigil.findings`) and `stage` (`send`,
/// `confirm`). A caller may retry, but a failure it gives up on is data
/// never stored, so every one is counted here, whatever the caller does.
pub const PUBLISH_FAILURES: &str = "vigil_bus_publish_failures_total";

/// Header of a rule finding on `vigil.findings.*` carrying the same finding
/// as Falco's one-line JSON alert, for tools built for Falco output.
pub const FALCO_JSON: &str = "Vigil-Falco-Json";

/// Publishes Vigil messages. Every message carries `Nats-Msg-Id`, so a
/// repeat within the stream's duplicate window is stored once.
#[derive(Clone, Debug)]
pub struct Publisher {
    jetstream: jetstream::Context,
}

impl Publisher {
    pub fn new(jetstream: jetstream::Context) -> Self {
        Self { jetstream }
    }

    /// Sends a message and returns the future of its acknowledgement, so
    /// callers can pipeline many publishes and await them in windows.
    pub async fn send(
        &self,
        subject: String,
        message_id: &str,
        trace: &TraceContext,
        payload: Bytes,
    ) -> Result<PublishAckFuture, PublishError> {
        self.send_with_headers(subject, message_id, trace, payload, &[])
            .await
    }

    /// [`Publisher::send`] with extra headers (such as [`FALCO_JSON`]).
    pub async fn send_with_headers(
        &self,
        subject: String,
        message_id: &str,
        trace: &TraceContext,
        payload: Bytes,
        extra: &[(&'static str, &str)],
    ) -> Result<PublishAckFuture, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, trace.to_traceparent().as_str());
        for (name, value) in extra {
            headers.insert(*name, *value);
        }
        let message = PublishMessage::build()
            .payload(payload)
            .headers(headers)
            .message_id(message_id);
        self.jetstream
            .send_publish(subject.clone(), message)
            .await
            .map_err(|source| {
                count_failure(&subject, "send");
                PublishError::Send { subject, source }
            })
    }

    /// Waits for JetStream to store a message [`Publisher::send`] sent.
    pub async fn confirm(
        ack: PublishAckFuture,
        subject: String,
        message_id: &str,
    ) -> Result<PublishAck, PublishError> {
        ack.await.map_err(|source| {
            count_failure(&subject, "confirm");
            PublishError::Confirm {
                subject,
                message_id: message_id.to_owned(),
                source,
            }
        })
    }

    /// Sends a message and waits until JetStream has stored it.
    pub async fn publish(
        &self,
        subject: String,
        message_id: &str,
        trace: &TraceContext,
        payload: Bytes,
    ) -> Result<PublishAck, PublishError> {
        let ack = self
            .send(subject.clone(), message_id, trace, payload)
            .await?;
        Self::confirm(ack, subject, message_id).await
    }
}

fn count_failure(subject: &str, stage: &'static str) {
    let stream = subject.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    metrics::counter!(PUBLISH_FAILURES, "stream" => stream, "stage" => stage).increment(1);
}
