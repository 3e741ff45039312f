//! Every syscall the collector can report: its name and number, the event
//! type it becomes, what the kernel reads for it (`SyscallSpec`, written
//! into the `syscall_specs` map) and how its raw arguments become
//! `vigil.v1.Args`. One table, so the kernel filter, the decoder and the
//! configuration cannot disagree.
//!
//! Numbers come from `libc::SYS_*` for the architecture being built; the
//! BPF programs read arguments from x86-64 registers, so only x86-64 is
//! supported for now.

use serde::{Deserialize, Serialize};
use vigil_proto::v1::{Args, EventType};

use super::abi::{self, SyscallSpec};

/// The process-exit event (sched_process_exit) in `[kernel] syscalls`; not
/// a syscall, named as Falco names it.
pub const PROCESS_EXIT: &str = "procexit";

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
}

/// Where a syscall's path argument is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// No path, or not one to resolve (a symlink's target, a mount source).
    None,
    /// The working directory.
    Cwd,
    /// The directory open at `args[i]` (`AT_FDCWD` for the working directory).
    DirFd(usize),
}

/// One reportable syscall.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    pub name: &'static str,
    pub nr: i64,
    pub event_type: EventType,
    pub spec: SyscallSpec,
    pub base: Base,
    /// What a relative `args.target_path` (rename's new name, a link, a
    /// mount point) is relative to.
    pub target_base: Base,
    pub args: fn(&RawSyscall) -> Args,
}

/// What the kernel reads besides the raw arguments, positions 0-based.
#[derive(Clone, Copy, Default)]
struct Reads {
    flags: u8,
    strings: [Option<u8>; 3],
    sockaddr: Option<(u8, u8)>,
    fd: Option<u8>,
    deref: Option<u8>,
    argv: Option<u8>,
}

const fn pos(index: Option<u8>) -> u8 {
    match index {
        Some(i) => i + 1,
        None => 0,
    }
}

const fn spec(reads: Reads) -> SyscallSpec {
    let (sockaddr_arg, sockaddr_len_arg) = match reads.sockaddr {
        Some((addr, len)) => (addr + 1, len + 1),
        None => (0, 0),
    };
    SyscallSpec {
        enabled: 1,
        flags: reads.flags,
        str_args: [
            pos(reads.strings[0]),
            pos(reads.strings[1]),
            pos(reads.strings[2]),
        ],
        sockaddr_arg,
        sockaddr_len_arg,
        fd_arg: pos(reads.fd),
        deref_arg: pos(reads.deref),
        argv_arg: pos(reads.argv),
        reserved: [0; 2],
    }
}

const NONE: Reads = Reads {
    flags: 0,
    strings: [None; 3],
    sockaddr: None,
    fd: None,
    deref: None,
    argv: None,
};

const fn path(i: u8) -> Reads {
    Reads {
        strings: [Some(i), None, None],
        ..NONE
    }
}

const fn paths(i: u8, j: u8) -> Reads {
    Reads {
        strings: [Some(i), Some(j), None],
        ..NONE
    }
}

const fn deref(i: u8) -> Reads {
    Reads {
        deref: Some(i),
        ..NONE
    }
}

const fn fd(i: u8) -> Reads {
    Reads {
        fd: Some(i),
        ..NONE
    }
}

/// accept: the peer from the caller's buffer, the local end from the socket.
const ACCEPT: Reads = sockaddr(1, 2, abi::SPEC_SOCKLEN_PTR | abi::SPEC_SOCK_LOCAL);

const fn sockaddr(addr: u8, len: u8, flags: u8) -> Reads {
    Reads {
        sockaddr: Some((addr, len)),
        fd: Some(0),
        flags,
        ..NONE
    }
}

macro_rules! syscall {
    ($name:ident, $type:ident, $reads:expr, $base:expr, $args:expr) => {
        syscall!($name, $type, $reads, $base, $args, target: Base::None)
    };
    ($name:ident, $type:ident, $reads:expr, $base:expr, $args:expr, target: $target:expr) => {
        Syscall {
            name: stringify!($name),
            nr: libc_nr::$name,
            event_type: EventType::$type,
            spec: spec($reads),
            base: $base,
            target_base: $target,
            args: $args,
        }
    };
}

/// `libc::SYS_<name>` under the syscall's own name, for the macro above.
#[allow(non_upper_case_globals, reason = "named exactly as the syscalls")]
mod libc_nr {
    macro_rules! numbers {
        ($($name:ident => $sys:ident),* $(,)?) => {
            $(pub const $name: i64 = libc::$sys as i64;)*
        };
    }
    numbers! {
        execve => SYS_execve, execveat => SYS_execveat, fork => SYS_fork, vfork => SYS_vfork,
        clone => SYS_clone, clone3 => SYS_clone3, open => SYS_open, openat => SYS_openat,
        openat2 => SYS_openat2, creat => SYS_creat, connect => SYS_connect,
        unlink => SYS_unlink, unlinkat => SYS_unlinkat, rmdir => SYS_rmdir,
        rename => SYS_rename, renameat => SYS_renameat, renameat2 => SYS_renameat2,
        link => SYS_link, linkat => SYS_linkat, symlink => SYS_symlink,
        symlinkat => SYS_symlinkat, chmod => SYS_chmod, fchmod => SYS_fchmod,
        fchmodat => SYS_fchmodat, chown => SYS_chown, fchown => SYS_fchown,
        lchown => SYS_lchown, fchownat => SYS_fchownat, mkdir => SYS_mkdir,
        mkdirat => SYS_mkdirat, mount => SYS_mount, umount2 => SYS_umount2,
        setuid => SYS_setuid, setgid => SYS_setgid, setreuid => SYS_setreuid,
        setregid => SYS_setregid, setresuid => SYS_setresuid, setresgid => SYS_setresgid,
        capset => SYS_capset, ptrace => SYS_ptrace, process_vm_writev => SYS_process_vm_writev,
        unshare => SYS_unshare, setns => SYS_setns, socket => SYS_socket,
        accept => SYS_accept, accept4 => SYS_accept4, bind => SYS_bind, listen => SYS_listen,
        dup => SYS_dup, dup2 => SYS_dup2, dup3 => SYS_dup3, memfd_create => SYS_memfd_create,
        mmap => SYS_mmap, mprotect => SYS_mprotect, init_module => SYS_init_module,
        finit_module => SYS_finit_module, delete_module => SYS_delete_module, bpf => SYS_bpf,
        kill => SYS_kill, tkill => SYS_tkill, tgkill => SYS_tgkill, prctl => SYS_prctl,
        userfaultfd => SYS_userfaultfd, io_uring_setup => SYS_io_uring_setup,
        keyctl => SYS_keyctl, chroot => SYS_chroot, pivot_root => SYS_pivot_root,
    }
}

const CREAT_FLAGS: u32 = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32;
const PR_SET_NAME: i32 = libc::PR_SET_NAME;

fn no_args(_: &RawSyscall) -> Args {
    Args::default()
}

fn open_args(raw: &RawSyscall, flags: u32, mode: u32) -> Args {
    Args {
        path: raw.path.clone(),
        flags,
        mode,
        // The descriptor the open returned; -1 when it failed.
        fd: i32::try_from(raw.ret)
            .ok()
            .filter(|fd| *fd >= 0)
            .unwrap_or(-1),
        ..Args::default()
    }
}

fn path_only(raw: &RawSyscall) -> Args {
    Args {
        path: raw.path.clone(),
        ..Args::default()
    }
}

fn two_paths(raw: &RawSyscall) -> Args {
    Args {
        path: raw.path.clone(),
        target_path: raw.path2.clone(),
        ..Args::default()
    }
}

fn path_mode(raw: &RawSyscall, mode: usize) -> Args {
    Args {
        path: raw.path.clone(),
        mode: raw.uint(mode),
        ..Args::default()
    }
}

fn chown(raw: &RawSyscall, first_id: usize) -> Args {
    Args {
        path: raw.path.clone(),
        ids: vec![raw.id(first_id), raw.id(first_id + 1)],
        ..Args::default()
    }
}

fn ids(raw: &RawSyscall, count: usize) -> Args {
    Args {
        ids: (0..count).map(|i| raw.id(i)).collect(),
        ..Args::default()
    }
}

fn fd_kind(raw: &RawSyscall) -> i32 {
    i32::from(raw.fd_kind)
}

fn socket_call(raw: &RawSyscall, local: bool) -> Args {
    let address = crate::decode::sockaddr::parse(&raw.sockaddr);
    let (address, local_address) = if local {
        (None, address)
    } else {
        (address, crate::decode::sockaddr::parse(&raw.local_sockaddr))
    };
    Args {
        fd: raw.int(0),
        fd_kind: fd_kind(raw),
        address,
        local_address,
        ..Args::default()
    }
}

fn dup(raw: &RawSyscall, new_fd: i32, flags: u32) -> Args {
    Args {
        fd: raw.int(0),
        new_fd,
        fd_kind: fd_kind(raw),
        flags,
        ..Args::default()
    }
}

fn kill(raw: &RawSyscall, signal: usize) -> Args {
    Args {
        target_pid: raw.int(0),
        signal: raw.uint(signal),
        ..Args::default()
    }
}

fn request(raw: &RawSyscall) -> Args {
    Args {
        request: i64::from(raw.int(0)),
        ..Args::default()
    }
}

fn flags0(raw: &RawSyscall) -> Args {
    Args {
        flags: raw.uint(0),
        ..Args::default()
    }
}

const EXEC: Reads = Reads {
    flags: abi::SPEC_EXEC,
    strings: [Some(0), None, None],
    argv: Some(1),
    ..NONE
};
const EXECVEAT: Reads = Reads {
    flags: abi::SPEC_EXEC,
    strings: [Some(1), None, None],
    argv: Some(2),
    ..NONE
};
const MOUNT: Reads = Reads {
    strings: [Some(0), Some(1), Some(2)],
    ..NONE
};
const MMAP: Reads = Reads {
    flags: abi::SPEC_PROT_EXEC | abi::SPEC_MAP_ANON,
    ..NONE
};
const MPROTECT: Reads = Reads {
    flags: abi::SPEC_PROT_EXEC | abi::SPEC_ANON_VMA,
    ..NONE
};

/// Every syscall the kernel side can report (exec's arguments come in an
/// exec record, decoded elsewhere; its entry here is for the filter).
pub static SYSCALLS: &[Syscall] = &[
    syscall!(execve, Exec, EXEC, Base::Cwd, no_args),
    syscall!(execveat, Exec, EXECVEAT, Base::DirFd(0), no_args),
    syscall!(fork, Clone, NONE, Base::None, no_args),
    syscall!(vfork, Clone, NONE, Base::None, no_args),
    syscall!(clone, Clone, NONE, Base::None, |r| Args {
        flags: r.uint(0),
        ..Args::default()
    }),
    syscall!(clone3, Clone, deref(0), Base::None, |r| Args {
        // struct clone_args starts with the u64 flags.
        flags: r.deref_u64(0) as u32,
        ..Args::default()
    }),
    syscall!(open, Open, path(0), Base::Cwd, |r| open_args(
        r,
        r.uint(1),
        r.uint(2)
    )),
    syscall!(openat, Open, path(1), Base::DirFd(0), |r| open_args(
        r,
        r.uint(2),
        r.uint(3)
    )),
    syscall!(
        openat2,
        Open,
        Reads {
            deref: Some(2),
            ..path(1)
        },
        Base::DirFd(0),
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        |r| open_args(r, r.deref_u64(0) as u32, r.deref_u64(8) as u32)
    ),
    syscall!(creat, Open, path(0), Base::Cwd, |r| open_args(
        r,
        CREAT_FLAGS,
        r.uint(1)
    )),
    syscall!(connect, Connect, sockaddr(1, 2, 0), Base::None, |r| {
        socket_call(r, false)
    }),
    syscall!(unlink, Unlink, path(0), Base::Cwd, path_only),
    syscall!(unlinkat, Unlink, path(1), Base::DirFd(0), |r| Args {
        flags: r.uint(2),
        ..path_only(r)
    }),
    syscall!(rmdir, Unlink, path(0), Base::Cwd, path_only),
    syscall!(rename, Rename, paths(0, 1), Base::Cwd, two_paths, target: Base::Cwd),
    syscall!(renameat, Rename, paths(1, 3), Base::DirFd(0), two_paths, target: Base::DirFd(2)),
    syscall!(renameat2, Rename, paths(1, 3), Base::DirFd(0), |r| Args {
        flags: r.uint(4),
        ..two_paths(r)
    }, target: Base::DirFd(2)),
    syscall!(link, Link, paths(0, 1), Base::Cwd, two_paths, target: Base::Cwd),
    syscall!(linkat, Link, paths(1, 3), Base::DirFd(0), |r| Args {
        flags: r.uint(4),
        ..two_paths(r)
    }, target: Base::DirFd(2)),
    // symlink(target, linkpath): the target is kept as written, the link
    // resolved.
    syscall!(symlink, Symlink, paths(0, 1), Base::None, two_paths, target: Base::Cwd),
    syscall!(symlinkat, Symlink, paths(0, 2), Base::None, two_paths, target: Base::DirFd(1)),
    syscall!(chmod, Chmod, path(0), Base::Cwd, |r| path_mode(r, 1)),
    syscall!(fchmod, Chmod, fd(0), Base::None, |r| Args {
        fd: r.int(0),
        mode: r.uint(1),
        fd_kind: fd_kind(r),
        ..Args::default()
    }),
    syscall!(fchmodat, Chmod, path(1), Base::DirFd(0), |r| path_mode(
        r, 2
    )),
    syscall!(chown, Chown, path(0), Base::Cwd, |r| chown(r, 1)),
    syscall!(lchown, Chown, path(0), Base::Cwd, |r| chown(r, 1)),
    syscall!(fchown, Chown, fd(0), Base::None, |r| Args {
        fd: r.int(0),
        fd_kind: fd_kind(r),
        ..chown(r, 1)
    }),
    syscall!(fchownat, Chown, path(1), Base::DirFd(0), |r| Args {
        flags: r.uint(4),
        ..chown(r, 2)
    }),
    syscall!(mkdir, Mkdir, path(0), Base::Cwd, |r| path_mode(r, 1)),
    syscall!(mkdirat, Mkdir, path(1), Base::DirFd(0), |r| path_mode(r, 2)),
    syscall!(mount, Mount, MOUNT, Base::None, |r| Args {
        fs_type: r.str3.clone(),
        flags: r.uint(3),
        ..two_paths(r)
    }, target: Base::Cwd),
    syscall!(umount2, Umount, path(0), Base::None, |r| Args {
        flags: r.uint(1),
        ..path_only(r)
    }),
    syscall!(setuid, Setuid, NONE, Base::None, |r| ids(r, 1)),
    syscall!(setreuid, Setuid, NONE, Base::None, |r| ids(r, 2)),
    syscall!(setresuid, Setuid, NONE, Base::None, |r| ids(r, 3)),
    syscall!(setgid, Setgid, NONE, Base::None, |r| ids(r, 1)),
    syscall!(setregid, Setgid, NONE, Base::None, |r| ids(r, 2)),
    syscall!(setresgid, Setgid, NONE, Base::None, |r| ids(r, 3)),
    // capset(header, data): data[0] holds the low 32 capability bits and
    // data[1] the high ones, each { effective, permitted, inheritable }.
    syscall!(capset, Capset, deref(1), Base::None, |r| Args {
        cap_effective: u64::from(r.deref_u32(0)) | (u64::from(r.deref_u32(12)) << 32),
        cap_permitted: u64::from(r.deref_u32(4)) | (u64::from(r.deref_u32(16)) << 32),
        ..Args::default()
    }),
    syscall!(ptrace, Ptrace, NONE, Base::None, |r| Args {
        request: i64::from(r.int(0)),
        target_pid: r.int(1),
        ..Args::default()
    }),
    syscall!(process_vm_writev, ProcessVmWritev, NONE, Base::None, |r| {
        Args {
            target_pid: r.int(0),
            ..Args::default()
        }
    }),
    syscall!(unshare, Unshare, NONE, Base::None, flags0),
    syscall!(setns, Setns, fd(0), Base::None, |r| Args {
        fd: r.int(0),
        flags: r.uint(1),
        fd_kind: fd_kind(r),
        ..Args::default()
    }),
    syscall!(socket, Socket, NONE, Base::None, |r| Args {
        domain: r.int(0),
        socket_type: r.int(1),
        protocol: r.int(2),
        fd: i32::try_from(r.ret).unwrap_or(-1),
        ..Args::default()
    }),
    syscall!(accept, Accept, ACCEPT, Base::None, |r| socket_call(
        r, false
    )),
    syscall!(accept4, Accept, ACCEPT, Base::None, |r| Args {
        flags: r.uint(3),
        ..socket_call(r, false)
    }),
    syscall!(bind, Bind, sockaddr(1, 2, 0), Base::None, |r| socket_call(
        r, true
    )),
    syscall!(
        listen,
        Listen,
        Reads {
            flags: abi::SPEC_SOCK_LOCAL,
            ..fd(0)
        },
        Base::None,
        // The kernel wrote the socket's local end as a sockaddr.
        |r| Args {
            fd: r.int(0),
            fd_kind: fd_kind(r),
            local_address: crate::decode::sockaddr::parse(&r.local_sockaddr),
            ..Args::default()
        }
    ),
    syscall!(dup, Dup, fd(0), Base::None, |r| dup(
        r,
        i32::try_from(r.ret).unwrap_or(-1),
        0
    )),
    syscall!(dup2, Dup, fd(0), Base::None, |r| dup(r, r.int(1), 0)),
    syscall!(dup3, Dup, fd(0), Base::None, |r| dup(
        r,
        r.int(1),
        r.uint(2)
    )),
    syscall!(memfd_create, MemfdCreate, path(0), Base::None, |r| Args {
        name: r.path.clone(),
        flags: r.uint(1),
        fd: i32::try_from(r.ret).unwrap_or(-1),
        ..Args::default()
    }),
    syscall!(mmap, MemoryExec, MMAP, Base::None, |r| Args {
        prot: r.uint(2),
        flags: r.uint(3),
        fd: r.int(4),
        ..Args::default()
    }),
    syscall!(mprotect, MemoryExec, MPROTECT, Base::None, |r| Args {
        prot: r.uint(2),
        ..Args::default()
    }),
    // init_module(image, len, params): the module's name is inside the image.
    syscall!(init_module, ModuleLoad, NONE, Base::None, no_args),
    syscall!(finit_module, ModuleLoad, fd(0), Base::None, |r| Args {
        fd: r.int(0),
        flags: r.uint(2),
        fd_kind: fd_kind(r),
        ..Args::default()
    }),
    syscall!(delete_module, ModuleUnload, path(0), Base::None, |r| Args {
        name: r.path.clone(),
        flags: r.uint(1),
        ..Args::default()
    }),
    syscall!(bpf, Bpf, NONE, Base::None, request),
    syscall!(kill, Kill, NONE, Base::None, |r| kill(r, 1)),
    syscall!(tkill, Kill, NONE, Base::None, |r| kill(r, 1)),
    syscall!(tgkill, Kill, NONE, Base::None, |r| kill(r, 2)),
    syscall!(prctl, Prctl, NONE, Base::None, |r| Args {
        // At exit the thread already carries PR_SET_NAME's new name.
        name: if r.int(0) == PR_SET_NAME {
            r.comm.clone()
        } else {
            String::new()
        },
        ..request(r)
    }),
    syscall!(userfaultfd, Userfaultfd, NONE, Base::None, flags0),
    // io_uring_setup(entries, params): params.flags follows two u32 counts.
    syscall!(io_uring_setup, IoUringSetup, deref(1), Base::None, |r| {
        Args {
            flags: r.deref_u32(8),
            ..Args::default()
        }
    }),
    syscall!(keyctl, Keyctl, NONE, Base::None, request),
    syscall!(chroot, Chroot, path(0), Base::Cwd, path_only),
    syscall!(pivot_root, PivotRoot, paths(0, 1), Base::Cwd, two_paths, target: Base::Cwd),
];

/// The reportable syscall with number `nr`.
pub fn by_nr(nr: u16) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.nr == i64::from(nr))
}

/// The reportable syscall called `name`.
pub fn by_name(name: &str) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.name == name)
}

/// The `[kernel]` section of the collector's configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// What the kernel reports; everything else is filtered out in the kernel.
    pub syscalls: SyscallSelection,
}

impl KernelConfig {
    /// Adds a problem for `kernel.syscalls` when it names no valid set.
    pub fn validate(&self, problems: &mut vigil_service::Problems) {
        if let Err(message) = self.syscalls.resolve() {
            problems.add("kernel.syscalls", message);
        }
    }
}

/// `[kernel] syscalls`: `"default"` (every syscall above and process exit)
/// or a list of names.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SyscallSelection {
    Preset(String),
    List(Vec<String>),
}

impl Default for SyscallSelection {
    fn default() -> Self {
        SyscallSelection::Preset("default".to_owned())
    }
}

/// The `syscall_specs` map contents a selection asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnabledSet {
    /// (slot, spec) for every enabled slot.
    pub slots: Vec<(u32, SyscallSpec)>,
}

impl EnabledSet {
    /// Every syscall and process exit.
    pub fn all() -> Self {
        let names = SYSCALLS
            .iter()
            .map(|s| s.name)
            .chain([PROCESS_EXIT])
            .collect::<Vec<_>>();
        Self::from_names(&names).unwrap_or_default()
    }

    /// The slots for `names`; the unknown names otherwise.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, Vec<String>> {
        let mut slots = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name == PROCESS_EXIT {
                slots.push((abi::SLOT_EXIT, spec(NONE)));
                continue;
            }
            let Some(syscall) = by_name(name) else {
                unknown.push(name.to_owned());
                continue;
            };
            let Ok(slot) = u32::try_from(syscall.nr) else {
                unknown.push(name.to_owned());
                continue;
            };
            slots.push((slot, syscall.spec));
            // A successful exec arrives through sched_process_exec.
            if syscall.spec.flags & abi::SPEC_EXEC != 0 {
                slots.push((abi::SLOT_EXEC, spec(NONE)));
            }
        }
        slots.sort_by_key(|(slot, _)| *slot);
        slots.dedup_by_key(|(slot, _)| *slot);
        if unknown.is_empty() {
            Ok(Self { slots })
        } else {
            Err(unknown)
        }
    }

    /// Whether `slot` is enabled.
    pub fn contains(&self, slot: u32) -> bool {
        self.slots.iter().any(|(s, _)| *s == slot)
    }
}

impl SyscallSelection {
    /// The enabled set, or a message naming what is wrong.
    pub fn resolve(&self) -> Result<EnabledSet, String> {
        match self {
            SyscallSelection::Preset(preset) if preset == "default" => Ok(EnabledSet::all()),
            SyscallSelection::Preset(other) => Err(format!(
                "{other:?} is not a preset: use \"default\" or a list of syscall names"
            )),
            SyscallSelection::List(names) if names.is_empty() => {
                Err("an empty list would report nothing".to_owned())
            }
            SyscallSelection::List(names) => EnabledSet::from_names(names).map_err(|unknown| {
                format!(
                    "unknown syscall(s) {}; known: {}, {PROCESS_EXIT}",
                    unknown.join(", "),
                    SYSCALLS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_unique_and_fit_the_map() {
        for (i, a) in SYSCALLS.iter().enumerate() {
            assert!(
                (0..i64::from(abi::SLOT_EXEC)).contains(&a.nr),
                "{} = {}",
                a.name,
                a.nr
            );
            for b in &SYSCALLS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.nr, b.nr, "{} and {}", a.name, b.name);
            }
        }
        assert_eq!(by_name("openat").map(|s| s.nr), Some(libc::SYS_openat));
        assert_eq!(by_nr(libc::SYS_kill as u16).map(|s| s.name), Some("kill"));
    }

    #[test]
    fn every_event_type_of_the_schema_has_a_source() {
        let missing: Vec<EventType> = (1..=i32::from(u8::MAX))
            .filter_map(|n| EventType::try_from(n).ok())
            .filter(|t| !matches!(t, EventType::Exit | EventType::Heartbeat))
            .filter(|t| !SYSCALLS.iter().any(|s| s.event_type == *t))
            .collect();
        assert!(missing.is_empty(), "no syscall reports {missing:?}");
    }

    #[test]
    fn the_default_enables_every_syscall_exec_and_exit() {
        let all = SyscallSelection::default().resolve().unwrap();
        assert_eq!(all.slots.len(), SYSCALLS.len() + 2);
        assert!(all.contains(abi::SLOT_EXEC) && all.contains(abi::SLOT_EXIT));
    }

    #[test]
    fn a_list_enables_only_its_syscalls() {
        let set = SyscallSelection::List(vec!["openat".into(), "execve".into()])
            .resolve()
            .unwrap();
        let slots: Vec<u32> = set.slots.iter().map(|(s, _)| *s).collect();
        let mut expected = vec![
            libc::SYS_openat as u32,
            libc::SYS_execve as u32,
            abi::SLOT_EXEC,
        ];
        expected.sort_unstable();
        assert_eq!(slots, expected);
        let spec = set.slots[0].1;
        assert_eq!(spec.enabled, 1);
    }

    #[test]
    fn unknown_names_and_presets_are_named() {
        let error = SyscallSelection::List(vec!["openat".into(), "frobnicate".into()])
            .resolve()
            .unwrap_err();
        assert!(
            error.contains("frobnicate") && error.contains("known: execve"),
            "{error}"
        );
        let error = SyscallSelection::Preset("all".into())
            .resolve()
            .unwrap_err();
        assert!(error.contains("\"all\""), "{error}");
        assert!(SyscallSelection::List(vec![]).resolve().is_err());
    }

    fn load(toml: &str) -> Result<crate::Config, vigil_service::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(&file, toml).unwrap();
        vigil_service::config::load(crate::SERVICE, Some(&file), [])
    }

    #[test]
    fn the_config_selects_syscalls_by_name_and_names_the_bad_ones() {
        let config = load("[kernel]\nsyscalls = [\"openat\", \"procexit\"]\n").unwrap();
        let options = crate::kernel::KernelOptions::for_config(&config);
        let slots: Vec<u32> = options.syscalls.slots.iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, [libc::SYS_openat as u32, abi::SLOT_EXIT]);
        let default = load("").unwrap();
        assert_eq!(default.kernel.syscalls, SyscallSelection::default());
        assert_eq!(
            crate::kernel::KernelOptions::for_config(&default).syscalls,
            EnabledSet::all()
        );
        let error = load("[kernel]\nsyscalls = [\"openat\", \"opnat\"]\n").unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("kernel.syscalls") && text.contains("opnat"),
            "{text}"
        );
        let error = load("[kernel]\nsyscall = \"default\"\n").unwrap_err();
        assert!(error.to_string().contains("syscall"), "{error}");
    }

    #[test]
    fn specs_name_the_arguments_the_kernel_reads() {
        let openat = by_name("openat").unwrap().spec;
        assert_eq!(openat.str_args, [2, 0, 0]);
        let accept = by_name("accept").unwrap().spec;
        assert_eq!((accept.sockaddr_arg, accept.sockaddr_len_arg), (2, 3));
        assert_ne!(accept.flags & abi::SPEC_SOCKLEN_PTR, 0);
        let mmap = by_name("mmap").unwrap().spec;
        assert_eq!(mmap.flags, abi::SPEC_PROT_EXEC | abi::SPEC_MAP_ANON);
        assert_eq!(
            openat.to_bytes(),
            [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "C field order"
        );
    }
}
