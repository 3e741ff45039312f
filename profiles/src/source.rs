//! Where events come from: the VIGIL_EVENTS stream, or a file of
//! length-delimited `vigil.v1.EventBatch` messages (what the collector
//! publishes, one after another).

use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use vigil_proto::v1::EventBatch;

use crate::learn::{Observation, Selector};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: byte {offset}: not a length-delimited vigil.v1.EventBatch: {source}")]
    Decode {
        path: String,
        offset: usize,
        #[source]
        source: prost::DecodeError,
    },
    #[error("NATS: {0}")]
    Nats(String),
}

/// Writes batches as a file [`read_file`] reads.
pub fn encode_file(batches: &[EventBatch]) -> Vec<u8> {
    let mut out = Vec::new();
    for batch in batches {
        out.extend(batch.encode_length_delimited_to_vec());
    }
    out
}

/// The workload's events in a file of length-delimited batches.
pub fn read_file(path: &str, selector: &Selector) -> Result<Observation, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut observation = Observation::default();
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let batch = EventBatch::decode_length_delimited(&mut rest).map_err(|source| {
            SourceError::Decode {
                path: path.to_owned(),
                offset,
                source,
            }
        })?;
        add_batch(&mut observation, &batch, selector);
    }
    Ok(observation)
}

fn add_batch(observation: &mut Observation, batch: &EventBatch, selector: &Selector) {
    for event in batch.events.iter().filter(|e| selector.matches(e)) {
        observation.add(event);
    }
}

/// The workload's events in the VIGIL_EVENTS stream, read from the start
/// with an ephemeral ordered consumer (only the container's partition when
/// the selector names a container) up to the last message stored when the
/// read began, or until nothing arrives for `idle`: collectors keep
/// publishing, so "until the stream is quiet" would never end.
pub async fn read_stream(
    url: &str,
    selector: &Selector,
    idle: Duration,
) -> Result<Observation, SourceError> {
    let nats = |e: &dyn std::fmt::Display| SourceError::Nats(e.to_string());
    let client = async_nats::connect(url).await.map_err(|e| nats(&e))?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(vigil_bus::topology::EVENTS.name)
        .await
        .map_err(|e| nats(&e))?;
    let last = stream
        .info()
        .await
        .map_err(|e| nats(&e))?
        .state
        .last_sequence;
    let filter_subject = match &selector.container_id {
        Some(id) => {
            vigil_bus::subject::events_of_partition(vigil_bus::subject::event_partition(id))
        }
        None => vigil_bus::subject::EVENTS_ALL.to_owned(),
    };
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            filter_subject,
            ..Default::default()
        })
        .await
        .map_err(|e| nats(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| nats(&e))?;
    let mut observation = Observation::default();
    while let Ok(Some(message)) = tokio::time::timeout(idle, messages.next()).await {
        let message = message.map_err(|e| nats(&e))?;
        let sequence = message
            .info()
            .map(|i| i.stream_sequence)
            .unwrap_or(u64::MAX);
        match vigil_proto::batch::decode(&message.payload) {
            Ok(decoded) => add_batch(&mut observation, &decoded.batch, selector),
            // Named, never fatal: one bad batch must not stop learning.
            Err(e) => eprintln!(
                "vigil-profile: skipping batch {sequence} on {}: {e}",
                message.subject
            ),
        }
        if sequence >= last {
            break;
        }
    }
    Ok(observation)
}
