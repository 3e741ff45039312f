//! Vigil's wire schema, generated from `proto/vigil/v1/*.proto`.
//!
//! The `.proto` files are the contract; this crate only adds small helpers
//! that every service would otherwise write again.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/vigil.v1.rs"));
}

pub mod batch;

/// Encoded descriptor set of every Vigil proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vigil_descriptor.bin"));

use v1::Priority;

/// A priority name that is none of Falco's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPriority(pub String);

impl std::fmt::Display for UnknownPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is not one of debug, info, notice, warning, error, critical, alert, emergency",
            self.0
        )
    }
}

impl std::error::Error for UnknownPriority {}

impl Priority {
    /// The lowercase name used in subjects, config files and Falco output
    /// (`warning`, `critical`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Priority::Unspecified => "unspecified",
            Priority::Debug => "debug",
            Priority::Informational => "informational",
            Priority::Notice => "notice",
            Priority::Warning => "warning",
            Priority::Error => "error",
            Priority::Critical => "critical",
            Priority::Alert => "alert",
            Priority::Emergency => "emergency",
        }
    }

    /// Parses a priority name like [`Priority::from_label`], with an error
    /// that lists the valid names.
    pub fn parse_label(label: &str) -> Result<Self, UnknownPriority> {
        Self::from_label(label).ok_or_else(|| UnknownPriority(label.to_owned()))
    }

    /// Parses a priority name, case-insensitively, accepting Falco's
    /// spellings (`INFO` and `informational` are the same).
    pub fn from_label(label: &str) -> Option<Self> {
        let priority = match label.to_ascii_lowercase().as_str() {
            "debug" => Priority::Debug,
            "info" | "informational" => Priority::Informational,
            "notice" => Priority::Notice,
            "warning" | "warn" => Priority::Warning,
            "error" => Priority::Error,
            "critical" => Priority::Critical,
            "alert" => Priority::Alert,
            "emergency" => Priority::Emergency,
            _ => return None,
        };
        Some(priority)
    }
}

#[cfg(test)]
mod tests {
    use super::v1::{Event, EventBatch, Priority};
    use prost::Message;

    #[test]
    fn priority_labels_round_trip() {
        for value in 1..=8 {
            let priority = Priority::try_from(value).unwrap();
            assert_eq!(Priority::from_label(priority.label()), Some(priority));
        }
        assert_eq!(Priority::from_label("INFO"), Some(Priority::Informational));
        assert_eq!(Priority::from_label("loud"), None);
        let error = Priority::parse_label("loud").unwrap_err().to_string();
        assert!(
            error.starts_with("\"loud\" is not one of debug,"),
            "{error}"
        );
    }

    #[test]
    fn priority_order_follows_severity() {
        assert!(Priority::Critical > Priority::Warning);
        assert!(Priority::Notice < Priority::Error);
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        // A newer writer adds field 99 to the batch; this reader must still
        // decode what it knows.
        let batch = EventBatch {
            node: "n1".into(),
            sequence: 7,
            events: vec![Event {
                pid: 42,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut bytes = batch.encode_to_vec();
        // field 99, wire type 2 (length-delimited), 3 bytes of payload
        bytes.extend_from_slice(&[0x9a, 0x06, 0x03, b'n', b'e', b'w']);
        let decoded = EventBatch::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, batch);
    }
}
