//! What the pipeline stored, read back from JetStream: every message a
//! stream holds, once a durable consumer has acknowledged all that another
//! stream held (the detectors have judged every event published so far).

use std::time::Duration;

use vigil_bus::{BusConnection, topology::StreamSpec};

use crate::in_process::poll;

/// Waits up to `patience` until `durable` on `stream` has acknowledged the
/// last message `stream` holds now; panics when it has not, or when the
/// stream is empty (nothing was published to judge).
pub async fn wait_acknowledged(
    bus: &BusConnection,
    stream: &StreamSpec,
    durable: &str,
    patience: Duration,
) {
    let mut handle = bus
        .jetstream
        .get_stream(stream.name)
        .await
        .unwrap_or_else(|e| panic!("stream {}: {e}", stream.name));
    let last = handle
        .info()
        .await
        .unwrap_or_else(|e| panic!("stream {} info: {e}", stream.name))
        .state
        .last_sequence;
    assert!(last > 0, "nothing was published to {}", stream.name);
    let what = format!("{durable} to acknowledge {} up to {last}", stream.name);
    poll(&what, patience, || async {
        let info = handle.consumer_info(durable).await.ok()?;
        (info.ack_floor.stream_sequence >= last).then_some(())
    })
    .await;
}

/// Every message `stream` holds, decoded; none when the stream does not
/// exist yet. Panics on a message that does not decode.
pub async fn stored<M: prost::Message + Default>(
    bus: &BusConnection,
    stream: &StreamSpec,
) -> Vec<M> {
    let Ok(mut handle) = bus.jetstream.get_stream(stream.name).await else {
        return Vec::new();
    };
    let state = handle
        .info()
        .await
        .unwrap_or_else(|e| panic!("stream {} info: {e}", stream.name))
        .state
        .clone();
    let mut messages = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = handle.get_raw_message(sequence).await {
            let decoded = vigil_bus::codec::decode(&message.payload, &message.subject, sequence)
                .unwrap_or_else(|e| panic!("{}: {e}", stream.name));
            messages.push(decoded);
        }
    }
    messages
}
