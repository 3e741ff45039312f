//! Protobuf payloads on the bus.

use bytes::Bytes;
use prost::Message;

/// A payload that is not a valid protobuf message of the expected type.
#[derive(Debug, thiserror::Error)]
#[error("malformed {kind} on subject {subject} (stream sequence {sequence}): {source}")]
pub struct DecodeError {
    pub kind: &'static str,
    pub subject: String,
    pub sequence: u64,
    #[source]
    pub source: prost::DecodeError,
}

/// Encodes a message for publishing.
pub fn encode<M: Message>(message: &M) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// Decodes `payload` as `M`; `subject` and `sequence` only feed the error.
pub fn decode<M: Message + Default>(
    payload: &[u8],
    subject: &str,
    sequence: u64,
) -> Result<M, DecodeError> {
    M::decode(payload).map_err(|source| DecodeError {
        kind: short_type_name::<M>(),
        subject: subject.to_owned(),
        sequence,
        source,
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::v1::EventBatch;

    #[test]
    fn decode_error_names_type_subject_and_sequence() {
        let error = decode::<EventBatch>(&[0xff, 0xff, 0xff], "vigil.events.n1", 9).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("malformed EventBatch on subject vigil.events.n1 (stream sequence 9)"),
            "{text}"
        );
    }
}
