//! `vigil_syscall_record`: any syscall but exec at exit, given its meaning
//! by the syscall table (`kernel::syscalls`).

use std::mem::offset_of;

use super::{DecodeError, Decoded, Record, args::RawSyscall, resolved, until_nul};
use crate::kernel::{
    abi::{self, SyscallRecord},
    syscalls::{self, Base},
};

/// A path that must not be resolved against any directory: no `dirfd`
/// names it (the enricher finds no base for it and leaves it as it is).
pub const NO_BASE: i32 = -1;

pub(super) fn decode(record: &Record<'_>, decoded: &mut Decoded) -> Result<(), DecodeError> {
    let nr = record.u16(offset_of!(SyscallRecord, hdr.syscall))?;
    let syscall = syscalls::by_nr(nr).ok_or(DecodeError::UnknownSyscall { nr })?;
    let raw = raw(record, decoded)?;
    decoded.event.r#type = syscall.event_type.into();
    decoded.event.syscall = syscall.name.to_owned();
    decoded.dirfd = Some(base_fd(syscall.base, &raw));
    decoded.target_dirfd = Some(base_fd(syscall.target_base, &raw));
    let mut args = (syscall.args)(&raw);
    if !args.path.is_empty() {
        let raw_len = record.u32(offset_of!(SyscallRecord, sys.path_len))?;
        let raw_bytes = record.bytes(
            offset_of!(SyscallRecord, sys.path),
            abi::PATH_LEN,
            raw_len,
            "path_len",
        )?;
        let resolved = resolved::read(record, offset_of!(SyscallRecord, sys.resolved))?;
        resolved::apply(
            &mut args,
            resolved,
            std::str::from_utf8(raw_bytes).is_ok(),
            decoded.flags & abi::FLAG_PATH_TRUNCATED != 0,
        );
    }
    decoded.event.args = Some(args);
    Ok(())
}

/// The descriptor a path is relative to, as the enricher takes it.
fn base_fd(base: Base, raw: &RawSyscall) -> i32 {
    match base {
        Base::None => NO_BASE,
        Base::Cwd => abi::AT_FDCWD,
        // The kernel takes the low 32 bits of a dirfd argument as an int.
        Base::DirFd(index) => raw.args[index] as i32,
    }
}

fn raw(record: &Record<'_>, decoded: &Decoded) -> Result<RawSyscall, DecodeError> {
    let mut args = [0u64; 6];
    for (i, arg) in args.iter_mut().enumerate() {
        *arg = record.u64(offset_of!(SyscallRecord, sys.args) + i * 8)?;
    }
    let string = |len_at: usize, at: usize, field: &'static str| -> Result<String, DecodeError> {
        let len = record.u32(len_at)?;
        Ok(until_nul(record.bytes(at, abi::PATH_LEN, len, field)?))
    };
    let sockaddr_len = record.u32(offset_of!(SyscallRecord, sys.sockaddr_len))?;
    let local_len = record.u32(offset_of!(SyscallRecord, sys.local_sockaddr_len))?;
    Ok(RawSyscall {
        args,
        path: string(
            offset_of!(SyscallRecord, sys.path_len),
            offset_of!(SyscallRecord, sys.path),
            "path_len",
        )?,
        path2: string(
            offset_of!(SyscallRecord, sys.path2_len),
            offset_of!(SyscallRecord, sys.path2),
            "path2_len",
        )?,
        str3: record.c_string(offset_of!(SyscallRecord, sys.str3), abi::STR3_LEN)?,
        sockaddr: record
            .bytes(
                offset_of!(SyscallRecord, sys.sockaddr),
                abi::SOCKADDR_LEN,
                sockaddr_len,
                "sockaddr_len",
            )?
            .to_vec(),
        local_sockaddr: record
            .bytes(
                offset_of!(SyscallRecord, sys.local_sockaddr),
                abi::LOCAL_SOCKADDR_LEN,
                local_len,
                "local_sockaddr_len",
            )?
            .to_vec(),
        fd_kind: record.u8(offset_of!(SyscallRecord, sys.fd_kind))?,
        deref: record.array(offset_of!(SyscallRecord, sys.deref))?,
        ret: decoded.event.return_value,
        comm: decoded.event.comm.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use vigil_proto::v1::{AddressFamily, EventType, FdKind};

    use super::*;
    use crate::decode::{
        self,
        tests::{put, record},
    };

    /// A syscall record of `nr` with raw `args`, returning `ret`.
    fn syscall_record(nr: i64, args: [u64; 6], ret: i64) -> Vec<u8> {
        let mut bytes = record(abi::KIND_SYSCALL, size_of::<SyscallRecord>());
        put(
            &mut bytes,
            offset_of!(SyscallRecord, hdr.syscall),
            &(nr as u16).to_ne_bytes(),
        );
        put(
            &mut bytes,
            offset_of!(SyscallRecord, hdr.ret),
            &ret.to_ne_bytes(),
        );
        for (i, arg) in args.iter().enumerate() {
            put(
                &mut bytes,
                offset_of!(SyscallRecord, sys.args) + i * 8,
                &arg.to_ne_bytes(),
            );
        }
        bytes
    }

    fn with_path(mut bytes: Vec<u8>, len_at: usize, at: usize, path: &[u8]) -> Vec<u8> {
        put(&mut bytes, len_at, &(path.len() as u32).to_ne_bytes());
        put(&mut bytes, at, path);
        bytes
    }

    #[test]
    fn openat_gets_its_name_type_path_flags_and_dirfd() {
        let flags = (libc::O_CREAT | libc::O_WRONLY) as u64;
        let bytes = syscall_record(libc::SYS_openat, [7, 0, flags, 0o600, 0, 0], 5);
        let bytes = with_path(
            bytes,
            offset_of!(SyscallRecord, sys.path_len),
            offset_of!(SyscallRecord, sys.path),
            b"data/x",
        );
        let decoded = decode::decode(&bytes).unwrap();
        let event = &decoded.event;
        assert_eq!(
            (event.syscall.as_str(), event.r#type()),
            ("openat", EventType::Open)
        );
        let args = event.args.as_ref().unwrap();
        assert_eq!(
            (
                args.path.as_str(),
                u64::from(args.flags),
                args.mode,
                args.fd
            ),
            ("data/x", flags, 0o600, 5)
        );
        assert_eq!(decoded.dirfd, Some(7));
    }

    #[test]
    fn a_two_path_call_and_a_socket_address_decode() {
        let bytes = syscall_record(libc::SYS_rename, [0; 6], -18);
        let bytes = with_path(
            bytes,
            offset_of!(SyscallRecord, sys.path_len),
            offset_of!(SyscallRecord, sys.path),
            b"/a",
        );
        let bytes = with_path(
            bytes,
            offset_of!(SyscallRecord, sys.path2_len),
            offset_of!(SyscallRecord, sys.path2),
            b"/b",
        );
        let decoded = decode::decode(&bytes).unwrap();
        let args = decoded.event.args.unwrap();
        assert_eq!(
            (args.path.as_str(), args.target_path.as_str()),
            ("/a", "/b")
        );
        assert_eq!(
            (decoded.event.return_value, decoded.dirfd),
            (-18, Some(abi::AT_FDCWD))
        );

        let mut bytes = syscall_record(libc::SYS_connect, [3, 0, 0, 16, 0, 0], 0);
        let mut sockaddr = abi::AF_INET.to_ne_bytes().to_vec();
        sockaddr.extend(443u16.to_be_bytes());
        sockaddr.extend([192, 0, 2, 1]);
        bytes = with_path(
            bytes,
            offset_of!(SyscallRecord, sys.sockaddr_len),
            offset_of!(SyscallRecord, sys.sockaddr),
            &sockaddr,
        );
        put(
            &mut bytes,
            offset_of!(SyscallRecord, sys.fd_kind),
            &[FdKind::SocketInet as u8],
        );
        let args = decode::decode(&bytes).unwrap().event.args.unwrap();
        let address = args.address.as_ref().unwrap();
        assert_eq!(
            (address.family(), address.ip.as_str(), address.port),
            (AddressFamily::Inet, "192.0.2.1", 443)
        );
        assert_eq!((args.fd, args.fd_kind()), (3, FdKind::SocketInet));
    }

    #[test]
    fn unknown_syscalls_and_impossible_lengths_are_errors() {
        let unknown = syscall_record(499, [0; 6], 0);
        assert_eq!(
            decode::decode(&unknown).unwrap_err(),
            DecodeError::UnknownSyscall { nr: 499 }
        );
        assert_eq!(
            decode::decode(&unknown).unwrap_err().reason(),
            "unknown_syscall"
        );
        for (len_at, capacity) in [
            (offset_of!(SyscallRecord, sys.path_len), abi::PATH_LEN),
            (offset_of!(SyscallRecord, sys.path2_len), abi::PATH_LEN),
            (
                offset_of!(SyscallRecord, sys.sockaddr_len),
                abi::SOCKADDR_LEN,
            ),
            (
                offset_of!(SyscallRecord, sys.local_sockaddr_len),
                abi::LOCAL_SOCKADDR_LEN,
            ),
        ] {
            let mut bytes = syscall_record(libc::SYS_rename, [0; 6], 0);
            put(&mut bytes, len_at, &(capacity as u32 + 1).to_ne_bytes());
            let error = decode::decode(&bytes).unwrap_err();
            assert_eq!(error.reason(), "bad_length", "{error}");
        }
    }

    #[test]
    fn paths_that_are_not_to_be_resolved_say_so() {
        let bytes = syscall_record(libc::SYS_symlink, [0; 6], 0);
        let decoded = decode::decode(&bytes).unwrap();
        assert_eq!(decoded.dirfd, Some(NO_BASE));
    }
}
