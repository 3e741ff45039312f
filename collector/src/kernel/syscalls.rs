//! Every syscall the collector can report: its name and number, the event
//! type it becomes, what the kernel reads for it (`SyscallSpec`, written
//! into the `syscall_specs` map) and which decoder in `decode::args` turns
//! its raw arguments into `vigil.v1.Args`. One table, so the kernel filter,
//! the decoder and the configuration (`kernel::selection`) cannot disagree.
//!
//! Numbers come from `libc::SYS_*` for the architecture being built; the
//! BPF programs read arguments from x86-64 registers, so only x86-64 is
//! supported for now.

use vigil_proto::v1::{Args, EventType};

use super::abi::{self, SyscallSpec};
use crate::decode::args::{self, RawSyscall};

/// The process-exit event (sched_process_exit) in `[kernel] syscalls`; not
/// a syscall, named as Falco names it.
pub const PROCESS_EXIT: &str = "procexit";

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

/// What the kernel reads for an event that is not a syscall (exec's
/// tracepoint, process exit): nothing besides the header.
pub(super) const HEADER_ONLY: SyscallSpec = spec(NONE);

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
#[rustfmt::skip]
pub static SYSCALLS: &[Syscall] = &[
    syscall!(execve, Exec, EXEC, Base::Cwd, args::none),
    syscall!(execveat, Exec, EXECVEAT, Base::DirFd(0), args::none),
    syscall!(fork, Clone, NONE, Base::None, args::none),
    syscall!(vfork, Clone, NONE, Base::None, args::none),
    syscall!(clone, Clone, NONE, Base::None, args::flags0),
    syscall!(clone3, Clone, deref(0), Base::None, args::clone3),
    syscall!(open, Open, path(0), Base::Cwd, args::open),
    syscall!(openat, Open, path(1), Base::DirFd(0), args::openat),
    syscall!(openat2, Open, Reads { deref: Some(2), ..path(1) }, Base::DirFd(0), args::openat2),
    syscall!(creat, Open, path(0), Base::Cwd, args::creat),
    syscall!(connect, Connect, sockaddr(1, 2, 0), Base::None, args::peer),
    syscall!(unlink, Unlink, path(0), Base::Cwd, args::path),
    syscall!(unlinkat, Unlink, path(1), Base::DirFd(0), args::path_then_flags::<2>),
    syscall!(rmdir, Unlink, path(0), Base::Cwd, args::path),
    syscall!(rename, Rename, paths(0, 1), Base::Cwd, args::two_paths, target: Base::Cwd),
    syscall!(renameat, Rename, paths(1, 3), Base::DirFd(0), args::two_paths, target: Base::DirFd(2)),
    syscall!(renameat2, Rename, paths(1, 3), Base::DirFd(0), args::two_paths_then_flags, target: Base::DirFd(2)),
    syscall!(link, Link, paths(0, 1), Base::Cwd, args::two_paths, target: Base::Cwd),
    syscall!(linkat, Link, paths(1, 3), Base::DirFd(0), args::two_paths_then_flags, target: Base::DirFd(2)),
    // symlink(target, linkpath): the target is kept as written, the link
    // resolved.
    syscall!(symlink, Symlink, paths(0, 1), Base::None, args::two_paths, target: Base::Cwd),
    syscall!(symlinkat, Symlink, paths(0, 2), Base::None, args::two_paths, target: Base::DirFd(1)),
    syscall!(chmod, Chmod, path(0), Base::Cwd, args::path_mode::<1>),
    syscall!(fchmod, Chmod, fd(0), Base::None, args::fchmod),
    syscall!(fchmodat, Chmod, path(1), Base::DirFd(0), args::path_mode::<2>),
    syscall!(chown, Chown, path(0), Base::Cwd, args::chown),
    syscall!(lchown, Chown, path(0), Base::Cwd, args::chown),
    syscall!(fchown, Chown, fd(0), Base::None, args::fchown),
    syscall!(fchownat, Chown, path(1), Base::DirFd(0), args::fchownat),
    syscall!(mkdir, Mkdir, path(0), Base::Cwd, args::path_mode::<1>),
    syscall!(mkdirat, Mkdir, path(1), Base::DirFd(0), args::path_mode::<2>),
    syscall!(mount, Mount, MOUNT, Base::None, args::mount, target: Base::Cwd),
    syscall!(umount2, Umount, path(0), Base::None, args::path_then_flags::<1>),
    syscall!(setuid, Setuid, NONE, Base::None, args::ids::<1>),
    syscall!(setreuid, Setuid, NONE, Base::None, args::ids::<2>),
    syscall!(setresuid, Setuid, NONE, Base::None, args::ids::<3>),
    syscall!(setgid, Setgid, NONE, Base::None, args::ids::<1>),
    syscall!(setregid, Setgid, NONE, Base::None, args::ids::<2>),
    syscall!(setresgid, Setgid, NONE, Base::None, args::ids::<3>),
    syscall!(capset, Capset, deref(1), Base::None, args::capset),
    syscall!(ptrace, Ptrace, NONE, Base::None, args::ptrace),
    syscall!(process_vm_writev, ProcessVmWritev, NONE, Base::None, args::process_vm_writev),
    syscall!(unshare, Unshare, NONE, Base::None, args::flags0),
    syscall!(setns, Setns, fd(0), Base::None, args::setns),
    syscall!(socket, Socket, NONE, Base::None, args::socket),
    syscall!(accept, Accept, ACCEPT, Base::None, args::peer),
    syscall!(accept4, Accept, ACCEPT, Base::None, args::accept4),
    syscall!(bind, Bind, sockaddr(1, 2, 0), Base::None, args::bind),
    syscall!(listen, Listen, Reads { flags: abi::SPEC_SOCK_LOCAL, ..fd(0) }, Base::None, args::listen),
    syscall!(dup, Dup, fd(0), Base::None, args::dup),
    syscall!(dup2, Dup, fd(0), Base::None, args::dup2),
    syscall!(dup3, Dup, fd(0), Base::None, args::dup3),
    syscall!(memfd_create, MemfdCreate, path(0), Base::None, args::memfd_create),
    syscall!(mmap, MemoryExec, MMAP, Base::None, args::mmap),
    syscall!(mprotect, MemoryExec, MPROTECT, Base::None, args::mprotect),
    // init_module(image, len, params): the module's name is inside the image.
    syscall!(init_module, ModuleLoad, NONE, Base::None, args::none),
    syscall!(finit_module, ModuleLoad, fd(0), Base::None, args::finit_module),
    syscall!(delete_module, ModuleUnload, path(0), Base::None, args::delete_module),
    syscall!(bpf, Bpf, NONE, Base::None, args::request),
    syscall!(kill, Kill, NONE, Base::None, args::kill::<1>),
    syscall!(tkill, Kill, NONE, Base::None, args::kill::<1>),
    syscall!(tgkill, Kill, NONE, Base::None, args::kill::<2>),
    syscall!(prctl, Prctl, NONE, Base::None, args::prctl),
    syscall!(userfaultfd, Userfaultfd, NONE, Base::None, args::flags0),
    syscall!(io_uring_setup, IoUringSetup, deref(1), Base::None, args::io_uring_setup),
    syscall!(keyctl, Keyctl, NONE, Base::None, args::request),
    syscall!(chroot, Chroot, path(0), Base::Cwd, args::path),
    syscall!(pivot_root, PivotRoot, paths(0, 1), Base::Cwd, args::two_paths, target: Base::Cwd),
];

/// The reportable syscall with number `nr`.
pub fn by_nr(nr: u16) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.nr == i64::from(nr))
}

/// The reportable syscall called `name`.
pub fn by_name(name: &str) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.name == name)
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
