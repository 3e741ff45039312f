//! The recording file format: events as the collector published them, so
//! a capture from one host can be replayed on another (benchmarks, the
//! demo on hosts without BPF, regression tests).
//!
//! ```text
//! file   = header record*
//! header = magic "VIGILREC" (8 bytes) | version: u16 little-endian (1) | reserved: u16 (0)
//! record = length: u32 little-endian (1 ..= 1 MiB) | `length` bytes: one vigil.v1.Event (protobuf)
//! ```
//!
//! The file ends after a complete record. Anything else — another magic, an
//! unknown version, a length outside its bounds, a body that is not an
//! Event, a file that ends inside a header, length or body — is an error
//! that names the byte offset and what was expected there.

use std::io::{self, Read, Write};

use prost::Message;
use vigil_proto::v1::Event;

pub const MAGIC: &[u8; 8] = b"VIGILREC";
pub const VERSION: u16 = 1;
pub const HEADER_BYTES: u64 = 12;
/// Far above any real event (an exec with a full argv is about 1 KiB), so
/// a length beyond it means the file is corrupt, not that the event is big.
pub const MAX_RECORD_BYTES: u32 = 1 << 20;

/// What is wrong with a recording, and where.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read the recording: {0}")]
    Io(#[source] io::Error),
    #[error(
        "byte 0: expected the magic {:?}, found {found:?}; not a Vigil recording",
        String::from_utf8_lossy(MAGIC)
    )]
    BadMagic { found: String },
    #[error("byte 8: expected format version {VERSION}, found {found}")]
    UnsupportedVersion { found: u16 },
    #[error("byte {offset}: expected {expected}, but the file ends after {available} of them")]
    Truncated {
        offset: u64,
        expected: String,
        available: usize,
    },
    #[error(
        "byte {offset}: expected a record length between 1 and {MAX_RECORD_BYTES}, found {length}"
    )]
    BadLength { offset: u64, length: u32 },
    #[error(
        "byte {offset}: expected a {length}-byte vigil.v1.Event, which does not decode: {source}"
    )]
    Decode {
        offset: u64,
        length: u32,
        #[source]
        source: prost::DecodeError,
    },
}

impl FormatError {
    /// The `reason` label of the replay error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            FormatError::Io(_) => "io",
            FormatError::BadMagic { .. } => "bad_magic",
            FormatError::UnsupportedVersion { .. } => "unsupported_version",
            FormatError::Truncated { .. } => "truncated",
            FormatError::BadLength { .. } => "bad_length",
            FormatError::Decode { .. } => "decode",
        }
    }
}

/// Writes a recording: the header at once, then one record per event.
#[derive(Debug)]
pub struct RecordingWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    events: u64,
}

impl<W: Write> RecordingWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&0u16.to_le_bytes())?;
        Ok(Self {
            out,
            buffer: Vec::new(),
            events: 0,
        })
    }

    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        self.buffer.clear();
        event.encode(&mut self.buffer).map_err(io::Error::other)?;
        let length = u32::try_from(self.buffer.len())
            .ok()
            .filter(|len| (1..=MAX_RECORD_BYTES).contains(len))
            .ok_or_else(|| {
                io::Error::other(format!(
                    "an event of {} bytes cannot be recorded (1 to {MAX_RECORD_BYTES})",
                    self.buffer.len()
                ))
            })?;
        self.out.write_all(&length.to_le_bytes())?;
        self.out.write_all(&self.buffer)?;
        self.events += 1;
        Ok(())
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a recording event by event, checking the header first.
#[derive(Debug)]
pub struct RecordingReader<R: Read> {
    input: R,
    offset: u64,
    body: Vec<u8>,
}

impl<R: Read> RecordingReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, FormatError> {
        let mut header = [0u8; HEADER_BYTES as usize];
        let got = read_full(&mut input, &mut header)?;
        let magic = header.get(..8).unwrap_or_default();
        if got < 8 || magic != MAGIC {
            if got < 8 && MAGIC.starts_with(&header[..got]) {
                return Err(truncated(0, "the 8-byte magic \"VIGILREC\"", got));
            }
            return Err(FormatError::BadMagic {
                found: String::from_utf8_lossy(&header[..got.min(8)]).into_owned(),
            });
        }
        if got < header.len() {
            return Err(truncated(
                8,
                "a 2-byte version and 2 reserved bytes",
                got - 8,
            ));
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion { found: version });
        }
        Ok(Self {
            input,
            offset: HEADER_BYTES,
            body: Vec::new(),
        })
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next event; `None` at a clean end of file.
    pub fn next_event(&mut self) -> Result<Option<Event>, FormatError> {
        let start = self.offset;
        let mut prefix = [0u8; 4];
        let got = read_full(&mut self.input, &mut prefix)?;
        if got == 0 {
            return Ok(None);
        }
        if got < prefix.len() {
            return Err(truncated(start, "a 4-byte record length", got));
        }
        let length = u32::from_le_bytes(prefix);
        if !(1..=MAX_RECORD_BYTES).contains(&length) {
            return Err(FormatError::BadLength {
                offset: start,
                length,
            });
        }
        let body_offset = start + 4;
        self.body.resize(length as usize, 0);
        let got = read_full(&mut self.input, &mut self.body)?;
        if got < self.body.len() {
            let expected = format!("a {length}-byte record body");
            return Err(truncated(body_offset, &expected, got));
        }
        let event = Event::decode(self.body.as_slice()).map_err(|source| FormatError::Decode {
            offset: body_offset,
            length,
            source,
        })?;
        self.offset = body_offset + u64::from(length);
        Ok(Some(event))
    }
}

impl<R: Read> Iterator for RecordingReader<R> {
    type Item = Result<Event, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

fn truncated(offset: u64, expected: &str, available: usize) -> FormatError {
    FormatError::Truncated {
        offset,
        expected: expected.to_owned(),
        available,
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, FormatError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(FormatError::Io(error)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(events: &[Event]) -> Vec<u8> {
        let mut writer = RecordingWriter::new(Vec::new()).unwrap();
        for event in events {
            writer.write(event).unwrap();
        }
        writer.finish().unwrap()
    }

    fn event(pid: u32) -> Event {
        Event {
            pid,
            comm: format!("proc-{pid}"),
            ..Event::default()
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Event>, FormatError> {
        RecordingReader::new(bytes)?.collect()
    }

    #[test]
    fn events_round_trip() {
        let events = vec![event(1), event(2), event(3)];
        assert_eq!(read_all(&recording(&events)).unwrap(), events);
        assert!(read_all(&recording(&[])).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_names_its_offset() {
        let bytes = recording(&[event(1), event(2)]);
        let first_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let second = 12 + 4 + first_len;
        for cut in 1..bytes.len() {
            if cut == 12 || cut == second {
                // Clean ends: after the header, after the first record.
                assert!(read_all(&bytes[..cut]).is_ok(), "cut at {cut}");
                continue;
            }
            let error = read_all(&bytes[..cut]).unwrap_err();
            let FormatError::Truncated { offset, .. } = error else {
                panic!("cut at {cut}: {error}");
            };
            let expected_offset = match cut {
                ..8 => 0,
                8..12 => 8,
                c if c < 16 => 12,
                c if c < 16 + first_len => 16,
                c if c < second + 4 => second as u64,
                _ => second as u64 + 4,
            };
            assert_eq!(offset, expected_offset, "cut at {cut}: {error}");
        }
    }

    #[test]
    fn corruption_is_reported_with_what_was_expected() {
        let bytes = recording(&[event(1)]);
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'X';
        let text = read_all(&bad_magic).unwrap_err().to_string();
        assert!(text.starts_with("byte 0: expected the magic"), "{text}");

        let mut bad_version = bytes.clone();
        bad_version[8] = 9;
        let text = read_all(&bad_version).unwrap_err().to_string();
        assert_eq!(text, "byte 8: expected format version 1, found 9");

        let mut bad_length = bytes.clone();
        bad_length[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let text = read_all(&bad_length).unwrap_err().to_string();
        assert!(
            text.starts_with("byte 12: expected a record length"),
            "{text}"
        );

        let mut bad_body = bytes.clone();
        let len = bad_body.len();
        bad_body[16..len].fill(0xff);
        let error = read_all(&bad_body).unwrap_err();
        assert!(
            matches!(error, FormatError::Decode { offset: 16, .. }),
            "{error}"
        );
    }
}
