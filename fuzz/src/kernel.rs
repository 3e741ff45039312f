//! Kernel ring-buffer records (`collector/bpf/vigil.h`, `kernel::abi`):
//! a builder that lays fields out at the ABI's offsets, and the invariants
//! of `vigil_collector::decode::decode` on any bytes.

use std::mem::offset_of;

use vigil_collector::{
    decode::{self, DecodeError},
    kernel::abi::{self, ExecRecord, ExitRecord, Header, SyscallRecord},
};

/// The header fields a record carries, as the kernel writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderFields {
    pub flags: u8,
    pub syscall: u16,
    pub pid: u32,
    pub ktime_ns: u64,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub loginuid: u32,
    pub mnt_ns: u32,
    pub cgroup_id: u64,
    pub ret: i64,
    pub comm: [u8; abi::COMM_LEN],
    pub exec_id: u32,
}

/// The body of one record kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Exec {
        filename: Vec<u8>,
        argv: Vec<u8>,
    },
    Syscall {
        args: [u64; 6],
        path: Vec<u8>,
        path2: Vec<u8>,
        sockaddr: Vec<u8>,
        fd_kind: u8,
    },
    Exit {
        exit_code: i32,
    },
}

/// Lays `header` and `body` out as the BPF programs do. Buffers longer than
/// their ABI capacity are cut to it; the length fields say what was kept.
pub fn encode(header: &HeaderFields, body: &Body) -> Vec<u8> {
    let (kind, size) = match body {
        Body::Exec { .. } => (abi::KIND_EXEC, size_of::<ExecRecord>()),
        Body::Syscall { .. } => (abi::KIND_SYSCALL, size_of::<SyscallRecord>()),
        Body::Exit { .. } => (abi::KIND_EXIT, size_of::<ExitRecord>()),
    };
    let mut out = vec![0u8; size];
    let put = |out: &mut Vec<u8>, offset: usize, value: &[u8]| {
        out[offset..offset + value.len()].copy_from_slice(value);
    };
    put(&mut out, offset_of!(Header, kind), &[kind]);
    put(&mut out, offset_of!(Header, flags), &[header.flags]);
    put(
        &mut out,
        offset_of!(Header, syscall),
        &header.syscall.to_ne_bytes(),
    );
    put(&mut out, offset_of!(Header, pid), &header.pid.to_ne_bytes());
    put(
        &mut out,
        offset_of!(Header, ktime_ns),
        &header.ktime_ns.to_ne_bytes(),
    );
    put(&mut out, offset_of!(Header, tid), &header.tid.to_ne_bytes());
    put(
        &mut out,
        offset_of!(Header, ppid),
        &header.ppid.to_ne_bytes(),
    );
    put(&mut out, offset_of!(Header, uid), &header.uid.to_ne_bytes());
    put(&mut out, offset_of!(Header, gid), &header.gid.to_ne_bytes());
    put(
        &mut out,
        offset_of!(Header, loginuid),
        &header.loginuid.to_ne_bytes(),
    );
    put(
        &mut out,
        offset_of!(Header, mnt_ns),
        &header.mnt_ns.to_ne_bytes(),
    );
    put(
        &mut out,
        offset_of!(Header, cgroup_id),
        &header.cgroup_id.to_ne_bytes(),
    );
    put(&mut out, offset_of!(Header, ret), &header.ret.to_ne_bytes());
    put(&mut out, offset_of!(Header, comm), &header.comm);
    put(
        &mut out,
        offset_of!(Header, exec_id),
        &header.exec_id.to_ne_bytes(),
    );
    let buffer = |out: &mut Vec<u8>, len_at: usize, at: usize, capacity: usize, value: &[u8]| {
        let value = &value[..value.len().min(capacity)];
        put(out, len_at, &(value.len() as u32).to_ne_bytes());
        put(out, at, value);
    };
    match body {
        Body::Exec { filename, argv } => {
            buffer(
                &mut out,
                offset_of!(ExecRecord, exec.filename_len),
                offset_of!(ExecRecord, exec.filename),
                abi::PATH_LEN,
                filename,
            );
            buffer(
                &mut out,
                offset_of!(ExecRecord, exec.argv_len),
                offset_of!(ExecRecord, exec.argv),
                abi::ARGV_LEN,
                argv,
            );
        }
        Body::Syscall {
            args,
            path,
            path2,
            sockaddr,
            fd_kind,
        } => {
            for (i, arg) in args.iter().enumerate() {
                put(
                    &mut out,
                    offset_of!(SyscallRecord, sys.args) + i * 8,
                    &arg.to_ne_bytes(),
                );
            }
            buffer(
                &mut out,
                offset_of!(SyscallRecord, sys.path_len),
                offset_of!(SyscallRecord, sys.path),
                abi::PATH_LEN,
                path,
            );
            buffer(
                &mut out,
                offset_of!(SyscallRecord, sys.path2_len),
                offset_of!(SyscallRecord, sys.path2),
                abi::PATH_LEN,
                path2,
            );
            buffer(
                &mut out,
                offset_of!(SyscallRecord, sys.sockaddr_len),
                offset_of!(SyscallRecord, sys.sockaddr),
                abi::SOCKADDR_LEN,
                sockaddr,
            );
            put(
                &mut out,
                offset_of!(SyscallRecord, sys.fd_kind),
                &[*fd_kind],
            );
        }
        Body::Exit { exit_code } => {
            put(
                &mut out,
                offset_of!(ExitRecord, exit.exit_code),
                &exit_code.to_ne_bytes(),
            );
        }
    }
    out
}

/// A comm as the kernel keeps it: NUL-padded, at most 15 bytes of name.
pub fn comm(name: &[u8]) -> [u8; abi::COMM_LEN] {
    let mut out = [0u8; abi::COMM_LEN];
    let len = name.len().min(abi::COMM_LEN - 1);
    out[..len].copy_from_slice(&name[..len]);
    out
}

/// The syscall numbers the decoder reports, for building valid records.
pub fn reported_syscalls() -> impl Iterator<Item = u16> {
    vigil_collector::kernel::syscalls::SYSCALLS
        .iter()
        .filter_map(|s| u16::try_from(s.nr).ok())
}

/// Decodes `bytes` as a ring-buffer record and checks what came out.
pub fn check(bytes: &[u8]) {
    match decode::decode(bytes) {
        Ok(decoded) => check_decoded(bytes, &decoded),
        Err(error) => check_error(bytes, &error),
    }
}

fn check_decoded(bytes: &[u8], decoded: &decode::Decoded) {
    let event = &decoded.event;
    let at = |offset: usize, len: usize| &bytes[offset..offset + len];
    let u32_at = |offset| u32::from_ne_bytes(at(offset, 4).try_into().unwrap_or_default());
    let u64_at = |offset| u64::from_ne_bytes(at(offset, 8).try_into().unwrap_or_default());
    assert_eq!(event.pid, u32_at(offset_of!(Header, pid)), "pid");
    assert_eq!(event.tid, u32_at(offset_of!(Header, tid)), "tid");
    assert_eq!(event.ppid, u32_at(offset_of!(Header, ppid)), "ppid");
    assert_eq!(event.uid, u32_at(offset_of!(Header, uid)), "uid");
    assert_eq!(
        event.kernel_time_ns,
        u64_at(offset_of!(Header, ktime_ns)),
        "ktime_ns"
    );
    assert_eq!(
        event.cgroup_id,
        u64_at(offset_of!(Header, cgroup_id)),
        "cgroup_id"
    );
    assert_eq!(
        event.return_value as u64,
        u64_at(offset_of!(Header, ret)),
        "ret"
    );
    assert_eq!(decoded.flags, bytes[offset_of!(Header, flags)], "flags");
    assert!(
        !event.comm.contains('\0'),
        "comm keeps a NUL: {:?}",
        event.comm
    );
    // Lossy UTF-8 turns each bad byte into at most 3 bytes of U+FFFD.
    assert!(
        event.comm.len() <= 3 * abi::COMM_LEN,
        "comm of {} bytes",
        event.comm.len()
    );
    let args = event.args.as_ref();
    assert!(
        args.is_some(),
        "a decoded {:?} record has no args",
        bytes[0]
    );
    assert!(
        !event.syscall.is_empty(),
        "a decoded record names no syscall"
    );
}

fn check_error(bytes: &[u8], error: &DecodeError) {
    let text = error.to_string();
    assert!(!text.is_empty(), "empty message for {error:?}");
    match *error {
        DecodeError::Truncated { len, expected, .. } => {
            assert_eq!(len, bytes.len(), "{text}");
            assert!(expected > len, "{text}");
        }
        DecodeError::UnknownKind { kind } => assert_eq!(Some(&kind), bytes.first(), "{text}"),
        DecodeError::UnknownSyscall { nr } => {
            let at = offset_of!(Header, syscall);
            assert_eq!(nr.to_ne_bytes(), bytes[at..at + 2], "{text}");
        }
        DecodeError::BadLength {
            value, capacity, ..
        } => assert!(value as usize > capacity, "{text}"),
    }
    assert!(
        ["truncated", "unknown_kind", "unknown_syscall", "bad_length"].contains(&error.reason()),
        "{text}"
    );
}
