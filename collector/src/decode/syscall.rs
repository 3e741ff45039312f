//! `vigil_syscall_record`: any syscall but exec at exit, given its meaning
//! by the syscall table (`kernel::syscalls`).

use std::mem::offset_of;

use super::{DecodeError, Decoded, Record, until_nul};
use crate::kernel::{
    abi::{self, SyscallRecord},
    syscalls::{self, Base, RawSyscall},
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
    decoded.dirfd = Some(match syscall.base {
        Base::None => NO_BASE,
        Base::Cwd => abi::AT_FDCWD,
        Base::DirFd(index) => raw.args[index] as i32,
    });
    decoded.event.args = Some((syscall.args)(&raw));
    Ok(())
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
        fd_kind: record.u8(offset_of!(SyscallRecord, sys.fd_kind))?,
        deref: record.array(offset_of!(SyscallRecord, sys.deref))?,
        ret: decoded.event.return_value,
        comm: decoded.event.comm.clone(),
    })
}
