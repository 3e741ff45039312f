//! Recording files (`collector/src/source/recording.rs`): every error names
//! a byte offset inside the file, and what reads writes back the same.

use prost::Message;
use vigil_collector::source::recording::{
    FormatError, HEADER_BYTES, MAX_RECORD_BYTES, RecordingReader, RecordingWriter,
};
use vigil_proto::v1::Event;

/// Writes `events` as a recording. The writer refuses an event that
/// encodes to nothing (all fields default): a record is 1 byte or more.
pub fn encode(events: &[Event]) -> std::io::Result<Vec<u8>> {
    let mut writer = RecordingWriter::new(Vec::new())?;
    events.iter().try_for_each(|event| writer.write(event))?;
    writer.finish()
}

/// Reads `bytes` as a recording and checks the events and the error.
pub fn check(bytes: &[u8]) {
    let mut events = Vec::new();
    let ended = match RecordingReader::new(bytes) {
        Err(error) => Err(error),
        Ok(mut reader) => loop {
            let before = reader.offset();
            match reader.next_event() {
                Ok(Some(event)) => {
                    assert!(reader.offset() > before, "offset did not advance");
                    events.push(event);
                }
                Ok(None) => break Ok(reader.offset()),
                Err(error) => break Err(error),
            }
        },
    };
    match ended {
        Ok(end) => {
            assert_eq!(end, bytes.len() as u64, "a clean end before the file's end");
            // Unknown protobuf fields are not kept, so the bytes may differ;
            // the events must not.
            // A record whose bytes are only unknown fields reads as a default
            // event, which the writer refuses to write.
            let again = match encode(&events) {
                Ok(again) => again,
                Err(error) => {
                    let empty = events.iter().any(|event| event.encoded_len() == 0);
                    assert!(empty, "a read event cannot be written again: {error}");
                    return;
                }
            };
            let reread: Result<Vec<Event>, _> = match RecordingReader::new(again.as_slice()) {
                Ok(reader) => reader.collect(),
                Err(error) => panic!("own recording rejected: {error}"),
            };
            match reread {
                Ok(reread) => assert!(same_events(&reread, &events), "round trip changed events"),
                Err(error) => panic!("own recording rejected: {error}"),
            }
        }
        Err(error) => check_error(bytes, &error),
    }
}

fn same_events(left: &[Event], right: &[Event]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .all(|(l, r)| crate::proto::same(l, r))
}

fn check_error(bytes: &[u8], error: &FormatError) {
    let text = error.to_string();
    let len = bytes.len() as u64;
    let offset = match error {
        FormatError::Io(source) => panic!("reading memory failed: {source}"),
        FormatError::BadMagic { .. } => 0,
        FormatError::UnsupportedVersion { .. } => 8,
        FormatError::Truncated {
            offset, available, ..
        } => {
            assert_eq!(offset + *available as u64, len, "{text}");
            *offset
        }
        FormatError::BadLength { offset, length } => {
            assert!(*length == 0 || *length > MAX_RECORD_BYTES, "{text}");
            *offset
        }
        FormatError::Decode { offset, length, .. } => {
            assert!(offset + u64::from(*length) <= len, "{text}");
            *offset
        }
    };
    assert!(offset <= len, "{text}");
    assert!(
        text.starts_with(&format!("byte {offset}: expected ")),
        "the message does not name byte {offset} and what was expected: {text}"
    );
    if offset >= HEADER_BYTES {
        assert!(
            bytes.starts_with(vigil_collector::source::recording::MAGIC),
            "{text}"
        );
    }
}
