//! Helpers shared by the end-to-end tests, the demo and the benchmarks:
//! reading what the pipeline published, from the streams themselves.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
};
use futures::StreamExt;
use prost::Message;
use vigil_bus::topology::StreamSpec;

pub mod chaos;
pub mod scenario;

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot read stream {stream}: {reason}")]
    Stream {
        stream: &'static str,
        reason: String,
    },
}

/// Follows one stream from its start (or from now) and decodes its messages.
pub struct Tail<T> {
    stream: &'static str,
    messages: jetstream::consumer::pull::Ordered,
    _payload: std::marker::PhantomData<T>,
}

impl<T: Message + Default> Tail<T> {
    /// Follows `spec` from its first message.
    pub async fn from_start(js: &jetstream::Context, spec: &StreamSpec) -> Result<Self, TailError> {
        Self::open(js, spec, DeliverPolicy::All).await
    }

    /// Follows `spec` from the next message published.
    pub async fn from_now(js: &jetstream::Context, spec: &StreamSpec) -> Result<Self, TailError> {
        Self::open(js, spec, DeliverPolicy::New).await
    }

    async fn open(
        js: &jetstream::Context,
        spec: &StreamSpec,
        deliver_policy: DeliverPolicy,
    ) -> Result<Self, TailError> {
        let error = |reason: String| TailError::Stream {
            stream: spec.name,
            reason,
        };
        vigil_bus::topology::ensure_stream(js, spec, 1)
            .await
            .map_err(|e| error(e.to_string()))?;
        let stream = js
            .get_stream(spec.name)
            .await
            .map_err(|e| error(e.to_string()))?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| error(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(Self {
            stream: spec.name,
            messages,
            _payload: std::marker::PhantomData,
        })
    }

    /// The next message for which `matches` holds, within `timeout`.
    pub async fn next_matching(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&T) -> bool,
    ) -> Option<T> {
        let search = async {
            while let Some(message) = self.messages.next().await {
                let Ok(message) = message else { continue };
                match T::decode(message.payload.as_ref()) {
                    Ok(decoded) if matches(&decoded) => return Some(decoded),
                    _ => continue,
                }
            }
            None
        };
        tokio::time::timeout(timeout, search).await.ok().flatten()
    }

    /// Every message that arrives within `window`.
    pub async fn collect_for(&mut self, window: Duration) -> Vec<T> {
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout_at(deadline, self.messages.next()).await
        {
            if let Ok(decoded) = T::decode(message.payload.as_ref()) {
                found.push(decoded);
            }
        }
        found
    }

    pub fn stream_name(&self) -> &'static str {
        self.stream
    }
}
