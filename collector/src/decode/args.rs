//! A syscall's raw arguments → `vigil.v1.Args`: one function per syscall
//! (or per family that reads its arguments alike), named after it. The
//! syscall table (`kernel::syscalls`) says which one each syscall uses.

use vigil_proto::v1::Args;

use super::sockaddr;
use crate::kernel::abi;

/// A syscall's arguments as the kernel record carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSyscall {
    pub args: [u64; 6],
    pub path: String,
    pub path2: String,
    pub str3: String,
    /// The socket address bytes as the caller passed them.
    pub sockaddr: Vec<u8>,
    /// The local end of the descriptor's socket, as a sockaddr.
    pub local_sockaddr: Vec<u8>,
    pub fd_kind: u8,
    pub deref: [u8; abi::DEREF_LEN],
    pub ret: i64,
    /// The acting thread's name after the call (PR_SET_NAME's new name).
    pub comm: String,
}

impl RawSyscall {
    fn int(&self, index: usize) -> i32 {
        self.args[index] as i32
    }

    fn uint(&self, index: usize) -> u32 {
        self.args[index] as u32
    }

    /// A uid or gid argument, `-1` for "unchanged".
    fn id(&self, index: usize) -> i64 {
        i64::from(self.int(index))
    }

    fn deref_u32(&self, offset: usize) -> u32 {
        let mut bytes = [0u8; 4];
        if let Some(slice) = self.deref.get(offset..offset + 4) {
            bytes.copy_from_slice(slice);
        }
        u32::from_ne_bytes(bytes)
    }

    fn deref_u64(&self, offset: usize) -> u64 {
        u64::from(self.deref_u32(offset)) | (u64::from(self.deref_u32(offset + 4)) << 32)
    }

    fn fd_kind(&self) -> i32 {
        i32::from(self.fd_kind)
    }

    /// The descriptor a call returned; -1 when it failed.
    fn returned_fd(&self) -> i32 {
        i32::try_from(self.ret).unwrap_or(-1)
    }
}

const CREAT_FLAGS: u32 = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32;

/// Nothing worth reporting beyond the header (exec's arguments come in an
/// exec record of their own).
pub fn none(_: &RawSyscall) -> Args {
    Args::default()
}

pub fn clone3(raw: &RawSyscall) -> Args {
    Args {
        // struct clone_args starts with the u64 flags.
        flags: raw.deref_u64(0) as u32,
        ..Args::default()
    }
}

fn opened(raw: &RawSyscall, flags: u32, mode: u32) -> Args {
    Args {
        path: raw.path.clone(),
        flags,
        mode,
        fd: i32::try_from(raw.ret)
            .ok()
            .filter(|fd| *fd >= 0)
            .unwrap_or(-1),
        ..Args::default()
    }
}

pub fn open(raw: &RawSyscall) -> Args {
    opened(raw, raw.uint(1), raw.uint(2))
}

pub fn openat(raw: &RawSyscall) -> Args {
    opened(raw, raw.uint(2), raw.uint(3))
}

/// struct open_how { u64 flags; u64 mode; u64 resolve; }
pub fn openat2(raw: &RawSyscall) -> Args {
    opened(raw, raw.deref_u64(0) as u32, raw.deref_u64(8) as u32)
}

pub fn creat(raw: &RawSyscall) -> Args {
    opened(raw, CREAT_FLAGS, raw.uint(1))
}

pub fn path(raw: &RawSyscall) -> Args {
    Args {
        path: raw.path.clone(),
        ..Args::default()
    }
}

/// unlinkat(dirfd, path, flags), umount2(path, flags).
pub fn path_then_flags<const FLAGS: usize>(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.uint(FLAGS),
        ..path(raw)
    }
}

/// rename, link, symlink, pivot_root: a path and its target.
pub fn two_paths(raw: &RawSyscall) -> Args {
    Args {
        path: raw.path.clone(),
        target_path: raw.path2.clone(),
        ..Args::default()
    }
}

/// renameat2(…, flags), linkat(…, flags): the flags after four arguments.
pub fn two_paths_then_flags(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.uint(4),
        ..two_paths(raw)
    }
}

/// chmod, mkdir and their *at forms: the mode after the path.
pub fn path_mode<const MODE: usize>(raw: &RawSyscall) -> Args {
    Args {
        path: raw.path.clone(),
        mode: raw.uint(MODE),
        ..Args::default()
    }
}

pub fn fchmod(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        mode: raw.uint(1),
        fd_kind: raw.fd_kind(),
        ..Args::default()
    }
}

/// chown, lchown: the owner and group after the path.
pub fn chown(raw: &RawSyscall) -> Args {
    owner(raw, 1)
}

fn owner(raw: &RawSyscall, first_id: usize) -> Args {
    Args {
        path: raw.path.clone(),
        ids: vec![raw.id(first_id), raw.id(first_id + 1)],
        ..Args::default()
    }
}

pub fn fchown(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        fd_kind: raw.fd_kind(),
        ..owner(raw, 1)
    }
}

pub fn fchownat(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.uint(4),
        ..owner(raw, 2)
    }
}

/// mount(source, target, fs_type, flags, data).
pub fn mount(raw: &RawSyscall) -> Args {
    Args {
        fs_type: raw.str3.clone(),
        flags: raw.uint(3),
        ..two_paths(raw)
    }
}

/// setuid and setgid families: their first `COUNT` arguments are ids.
pub fn ids<const COUNT: usize>(raw: &RawSyscall) -> Args {
    Args {
        ids: (0..COUNT).map(|i| raw.id(i)).collect(),
        ..Args::default()
    }
}

/// capset(header, data): data[0] holds the low 32 capability bits and
/// data[1] the high ones, each { effective, permitted, inheritable }.
pub fn capset(raw: &RawSyscall) -> Args {
    Args {
        cap_effective: u64::from(raw.deref_u32(0)) | (u64::from(raw.deref_u32(12)) << 32),
        cap_permitted: u64::from(raw.deref_u32(4)) | (u64::from(raw.deref_u32(16)) << 32),
        ..Args::default()
    }
}

pub fn ptrace(raw: &RawSyscall) -> Args {
    Args {
        target_pid: raw.int(1),
        ..request(raw)
    }
}

pub fn process_vm_writev(raw: &RawSyscall) -> Args {
    Args {
        target_pid: raw.int(0),
        ..Args::default()
    }
}

/// clone, unshare, userfaultfd: flags in the first argument.
pub fn flags0(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.uint(0),
        ..Args::default()
    }
}

pub fn setns(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        flags: raw.uint(1),
        fd_kind: raw.fd_kind(),
        ..Args::default()
    }
}

pub fn socket(raw: &RawSyscall) -> Args {
    Args {
        domain: raw.int(0),
        socket_type: raw.int(1),
        protocol: raw.int(2),
        fd: raw.returned_fd(),
        ..Args::default()
    }
}

/// connect, accept: the peer from the caller's buffer, the local end from
/// the socket.
pub fn peer(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        fd_kind: raw.fd_kind(),
        address: sockaddr::parse(&raw.sockaddr),
        local_address: sockaddr::parse(&raw.local_sockaddr),
        ..Args::default()
    }
}

pub fn accept4(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.uint(3),
        ..peer(raw)
    }
}

/// bind: the caller's address is the socket's local end.
pub fn bind(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        fd_kind: raw.fd_kind(),
        local_address: sockaddr::parse(&raw.sockaddr),
        ..Args::default()
    }
}

/// listen: the kernel wrote the socket's local end as a sockaddr.
pub fn listen(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        fd_kind: raw.fd_kind(),
        local_address: sockaddr::parse(&raw.local_sockaddr),
        ..Args::default()
    }
}

fn duplicated(raw: &RawSyscall, new_fd: i32, flags: u32) -> Args {
    Args {
        fd: raw.int(0),
        new_fd,
        fd_kind: raw.fd_kind(),
        flags,
        ..Args::default()
    }
}

pub fn dup(raw: &RawSyscall) -> Args {
    duplicated(raw, raw.returned_fd(), 0)
}

pub fn dup2(raw: &RawSyscall) -> Args {
    duplicated(raw, raw.int(1), 0)
}

pub fn dup3(raw: &RawSyscall) -> Args {
    duplicated(raw, raw.int(1), raw.uint(2))
}

pub fn memfd_create(raw: &RawSyscall) -> Args {
    Args {
        name: raw.path.clone(),
        flags: raw.uint(1),
        fd: raw.returned_fd(),
        ..Args::default()
    }
}

pub fn mmap(raw: &RawSyscall) -> Args {
    Args {
        prot: raw.uint(2),
        flags: raw.uint(3),
        fd: raw.int(4),
        ..Args::default()
    }
}

pub fn mprotect(raw: &RawSyscall) -> Args {
    Args {
        prot: raw.uint(2),
        ..Args::default()
    }
}

pub fn finit_module(raw: &RawSyscall) -> Args {
    Args {
        fd: raw.int(0),
        flags: raw.uint(2),
        fd_kind: raw.fd_kind(),
        ..Args::default()
    }
}

pub fn delete_module(raw: &RawSyscall) -> Args {
    Args {
        name: raw.path.clone(),
        flags: raw.uint(1),
        ..Args::default()
    }
}

/// bpf, keyctl: the command in the first argument.
pub fn request(raw: &RawSyscall) -> Args {
    Args {
        request: i64::from(raw.int(0)),
        ..Args::default()
    }
}

/// kill(pid, sig), tkill(tid, sig), tgkill(tgid, tid, sig).
pub fn kill<const SIGNAL: usize>(raw: &RawSyscall) -> Args {
    Args {
        target_pid: raw.int(0),
        signal: raw.uint(SIGNAL),
        ..Args::default()
    }
}

pub fn prctl(raw: &RawSyscall) -> Args {
    Args {
        // At exit the thread already carries PR_SET_NAME's new name.
        name: if raw.int(0) == libc::PR_SET_NAME {
            raw.comm.clone()
        } else {
            String::new()
        },
        ..request(raw)
    }
}

/// io_uring_setup(entries, params): params.flags follows two u32 counts.
pub fn io_uring_setup(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.deref_u32(8),
        ..Args::default()
    }
}
