//! Kernel records → `vigil.v1.Event`, one module per record kind.
//!
//! A record that is too short, names an unknown kind or carries an
//! impossible length is an error with a bounded `reason` (for the metric);
//! decoding never panics, whatever the bytes.

pub(crate) mod args;
mod exec;
mod exit;
mod resolved;
pub(crate) mod sockaddr;
mod syscall;

use std::{collections::HashMap, mem::offset_of, sync::LazyLock};

use vigil_proto::v1::{Event, EventType};

use crate::kernel::abi::{self, Header};
pub use args::RawSyscall;
pub use syscall::NO_BASE;

/// A decoded record: the event as the kernel saw it, before enrichment.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub event: Event,
    /// The directory a relative `args.path` is relative to: `abi::AT_FDCWD`
    /// for the working directory, a descriptor for the *at syscalls,
    /// [`NO_BASE`] for paths that are not to be resolved (a symlink's
    /// target, a mount source).
    pub dirfd: Option<i32>,
    /// The same for `args.target_path` (rename's new name, a new link, a
    /// mount point).
    pub target_dirfd: Option<i32>,
    /// `abi::FLAG_*` bits: truncated or unreadable arguments.
    pub flags: u8,
    /// The task's mount namespace and exec count, for the process table's
    /// runtime lineage (`enrich::Lineage`); `None` when the source
    /// did not say (a test's hand-made record).
    pub lineage: Option<crate::enrich::Lineage>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{kind} record of {len} bytes is shorter than {expected} bytes")]
    Truncated {
        kind: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("record of kind {kind} is not one this collector knows")]
    UnknownKind { kind: u8 },
    #[error("syscall record of syscall number {nr}, which this collector does not report")]
    UnknownSyscall { nr: u16 },
    #[error("{kind} record: {field} is {value}, more than its {capacity}-byte buffer")]
    BadLength {
        kind: &'static str,
        field: &'static str,
        value: u32,
        capacity: usize,
    },
}

impl DecodeError {
    /// The `reason` label of `vigil_collector_records_invalid_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::UnknownKind { .. } => "unknown_kind",
            DecodeError::UnknownSyscall { .. } => "unknown_syscall",
            DecodeError::BadLength { .. } => "bad_length",
        }
    }
}

/// One decoder per record kind: the kind byte, its label and the body decoder.
type BodyDecoder = fn(&Record<'_>, &mut Decoded) -> Result<(), DecodeError>;

const DECODERS: &[(u8, EventType, &str, usize, BodyDecoder)] = &[
    (
        abi::KIND_EXEC,
        EventType::Exec,
        "exec",
        size_of::<abi::ExecRecord>(),
        exec::decode,
    ),
    (
        abi::KIND_SYSCALL,
        // The syscall table gives the type.
        EventType::Unspecified,
        "syscall",
        size_of::<abi::SyscallRecord>(),
        syscall::decode,
    ),
    (
        abi::KIND_EXIT,
        EventType::Exit,
        "exit",
        size_of::<abi::ExitRecord>(),
        exit::decode,
    ),
];

/// The metric label of a decoded event's type: its proto name in lower
/// case without the prefix ("open", "memory_exec").
pub fn kind_label(event_type: EventType) -> &'static str {
    static LABELS: LazyLock<HashMap<i32, String>> = LazyLock::new(|| {
        (0..=i32::from(u8::MAX))
            .filter_map(|n| EventType::try_from(n).ok())
            .map(|t| {
                let name = t.as_str_name();
                let name = name.strip_prefix("EVENT_TYPE_").unwrap_or(name);
                (i32::from(t), name.to_ascii_lowercase())
            })
            .collect()
    });
    LABELS
        .get(&i32::from(event_type))
        .map_or("other", String::as_str)
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let kind = *bytes.first().ok_or(DecodeError::Truncated {
        kind: "any",
        len: 0,
        expected: size_of::<Header>(),
    })?;
    let (_, event_type, label, size, body) = DECODERS
        .iter()
        .find(|(k, ..)| *k == kind)
        .ok_or(DecodeError::UnknownKind { kind })?;
    if bytes.len() < *size {
        return Err(DecodeError::Truncated {
            kind: label,
            len: bytes.len(),
            expected: *size,
        });
    }
    let record = Record { bytes, kind: label };
    let mut decoded = header(&record, *event_type)?;
    body(&record, &mut decoded)?;
    Ok(decoded)
}

fn header(record: &Record<'_>, event_type: EventType) -> Result<Decoded, DecodeError> {
    let event = Event {
        r#type: event_type.into(),
        kernel_time_ns: record.u64(offset_of!(Header, ktime_ns))?,
        pid: record.u32(offset_of!(Header, pid))?,
        tid: record.u32(offset_of!(Header, tid))?,
        ppid: record.u32(offset_of!(Header, ppid))?,
        uid: record.u32(offset_of!(Header, uid))?,
        gid: record.u32(offset_of!(Header, gid))?,
        login_uid: record.u32(offset_of!(Header, loginuid))?,
        cgroup_id: record.u64(offset_of!(Header, cgroup_id))?,
        return_value: record.i64(offset_of!(Header, ret))?,
        comm: record.c_string(offset_of!(Header, comm), abi::COMM_LEN)?,
        ..Event::default()
    };
    Ok(Decoded {
        event,
        dirfd: None,
        target_dirfd: None,
        flags: record.u8(offset_of!(Header, flags))?,
        lineage: Some(crate::enrich::Lineage {
            mnt_ns: record.u32(offset_of!(Header, mnt_ns))?,
            exec_id: record.u32(offset_of!(Header, exec_id))?,
        }),
    })
}

/// Bounds-checked reads at ABI offsets.
pub(crate) struct Record<'a> {
    bytes: &'a [u8],
    kind: &'static str,
}

impl<'a> Record<'a> {
    fn slice(&self, offset: usize, len: usize) -> Result<&'a [u8], DecodeError> {
        self.bytes
            .get(offset..offset.saturating_add(len))
            .ok_or(DecodeError::Truncated {
                kind: self.kind,
                len: self.bytes.len(),
                expected: offset.saturating_add(len),
            })
    }

    pub(crate) fn array<const N: usize>(&self, offset: usize) -> Result<[u8; N], DecodeError> {
        let slice = self.slice(offset, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&self, offset: usize) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(offset)?[0])
    }

    pub(crate) fn u16(&self, offset: usize) -> Result<u16, DecodeError> {
        self.array(offset).map(u16::from_ne_bytes)
    }

    pub(crate) fn u32(&self, offset: usize) -> Result<u32, DecodeError> {
        self.array(offset).map(u32::from_ne_bytes)
    }

    pub(crate) fn i32(&self, offset: usize) -> Result<i32, DecodeError> {
        self.array(offset).map(i32::from_ne_bytes)
    }

    pub(crate) fn u64(&self, offset: usize) -> Result<u64, DecodeError> {
        self.array(offset).map(u64::from_ne_bytes)
    }

    pub(crate) fn i64(&self, offset: usize) -> Result<i64, DecodeError> {
        self.array(offset).map(i64::from_ne_bytes)
    }

    /// The first `len` bytes of a buffer of `capacity`, rejecting a length
    /// the buffer cannot hold.
    pub(crate) fn bytes(
        &self,
        offset: usize,
        capacity: usize,
        len: u32,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len_usize = len as usize;
        if len_usize > capacity {
            return Err(DecodeError::BadLength {
                kind: self.kind,
                field,
                value: len,
                capacity,
            });
        }
        self.slice(offset, len_usize)
    }

    /// A NUL-terminated string in a buffer of `capacity` (no length field).
    pub(crate) fn c_string(&self, offset: usize, capacity: usize) -> Result<String, DecodeError> {
        Ok(until_nul(self.slice(offset, capacity)?))
    }
}

/// Text up to the first NUL, with invalid UTF-8 replaced (paths and
/// arguments are bytes to the kernel; the event schema carries strings).
pub(crate) fn until_nul(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::kernel::abi::{ExecRecord, ExitRecord, Header, SyscallRecord};

    /// A zeroed record of `size` bytes with `kind`, pid 42 and comm "cat".
    pub(crate) fn record(kind: u8, size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; size];
        bytes[0] = kind;
        put(&mut bytes, offset_of!(Header, pid), &42u32.to_ne_bytes());
        put(&mut bytes, offset_of!(Header, tid), &43u32.to_ne_bytes());
        put(
            &mut bytes,
            offset_of!(Header, ktime_ns),
            &7u64.to_ne_bytes(),
        );
        put(&mut bytes, offset_of!(Header, ret), &(-2i64).to_ne_bytes());
        put(&mut bytes, offset_of!(Header, comm), b"cat\0");
        bytes
    }

    pub(crate) fn put(bytes: &mut [u8], offset: usize, value: &[u8]) {
        bytes[offset..offset + value.len()].copy_from_slice(value);
    }

    #[test]
    fn header_fields_are_read_at_their_offsets() {
        let bytes = record(abi::KIND_EXIT, size_of::<ExitRecord>());
        let decoded = decode(&bytes).unwrap();
        let event = decoded.event;
        assert_eq!((event.pid, event.tid, event.kernel_time_ns), (42, 43, 7));
        assert_eq!(event.return_value, -2);
        assert_eq!(event.comm, "cat");
        assert_eq!(event.r#type(), EventType::Exit);
    }

    #[test]
    fn empty_truncated_and_unknown_records_are_errors() {
        assert_eq!(decode(&[]).unwrap_err().reason(), "truncated");
        let unknown = record(99, size_of::<ExecRecord>());
        assert_eq!(
            decode(&unknown).unwrap_err(),
            DecodeError::UnknownKind { kind: 99 }
        );
        for (kind, size) in [
            (abi::KIND_EXEC, size_of::<ExecRecord>()),
            (abi::KIND_SYSCALL, size_of::<SyscallRecord>()),
            (abi::KIND_EXIT, size_of::<ExitRecord>()),
        ] {
            let full = record(kind, size);
            for len in [1, size_of::<Header>() - 1, size_of::<Header>(), size - 1] {
                let error = decode(&full[..len]).unwrap_err();
                assert_eq!(
                    error.reason(),
                    "truncated",
                    "kind {kind}, {len} bytes: {error}"
                );
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every kind byte, many lengths, noisy content.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in (0..1024).step_by(7) {
            for kind in 0..=6u8 {
                let mut bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                if let Some(first) = bytes.first_mut() {
                    *first = kind;
                }
                let _outcome = decode(&bytes);
            }
        }
    }
}
