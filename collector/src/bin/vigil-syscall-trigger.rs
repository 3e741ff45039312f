//! Test tool for the collector's kernel tests: performs the syscalls named
//! on its command line, exactly (raw `syscall(2)`, no libc wrapper choosing
//! another variant), one process, one thread, and prints `name result` for
//! each, the result being the return value or the negative errno.
//!
//! ```text
//! vigil-syscall-trigger openat=/etc/hostname unlink=/tmp/x kill exit=3
//! ```
//!
//! Not part of the agent; it exists so that `tests/syscalls.rs` can watch a
//! process that does nothing else.

use std::{
    ffi::CString,
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream},
    os::{
        fd::AsRawFd as _,
        unix::net::{UnixListener, UnixStream},
    },
};

type Outcome = Result<i64, String>;

/// `syscall(nr, args...)`: the return value, or the negative errno.
#[allow(
    unsafe_code,
    reason = "raw syscalls are what this tool is for; the pointer arguments point into buffers that outlive the call"
)]
fn sys(nr: libc::c_long, args: &[i64]) -> i64 {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: every pointer passed is to a live buffer of the size the
    // syscall expects (built by the caller), every other value an integer.
    let ret = unsafe { libc::syscall(nr, arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)) };
    if ret < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        ret
    }
}

fn c(path: &str) -> Result<CString, String> {
    CString::new(path).map_err(|e| format!("{path:?}: {e}"))
}

fn ptr<T>(value: &T) -> i64 {
    std::ptr::from_ref(value) as i64
}

fn cptr(s: &CString) -> i64 {
    s.as_ptr() as i64
}

const AT_FDCWD: i64 = libc::AT_FDCWD as i64;
/// A pid no process has (above the kernel's pid_max ceiling).
const NO_PID: i64 = 0x3fff_fff0;

fn main() {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for step in std::env::args().skip(1) {
        let (name, arg) = step.split_once('=').unwrap_or((step.as_str(), ""));
        let args: Vec<&str> = arg.split(',').collect();
        match run(name, &args) {
            Ok(ret) => {
                let _ = writeln!(out, "{name} {ret}");
            }
            Err(error) => {
                let _ = writeln!(out, "{name} error {error}");
                failed = true;
            }
        }
        let _ = out.flush();
    }
    std::process::exit(i32::from(failed));
}

fn run(name: &str, a: &[&str]) -> Outcome {
    let first = a.first().copied().unwrap_or("");
    let second = a.get(1).copied().unwrap_or("");
    match name {
        "seccomp_deny" => seccomp_deny(first),
        "open" => Ok(sys(libc::SYS_open, &[cptr(&c(first)?), 0])),
        "openat" => Ok(sys(libc::SYS_openat, &[AT_FDCWD, cptr(&c(first)?), 0, 0])),
        "openat2" => {
            // struct open_how { flags, mode, resolve }
            let how: [u64; 3] = [(libc::O_CREAT | libc::O_WRONLY) as u64, 0o640, 0];
            let path = c(first)?;
            Ok(sys(
                libc::SYS_openat2,
                &[AT_FDCWD, cptr(&path), ptr(&how), 24],
            ))
        }
        "creat" => Ok(sys(libc::SYS_creat, &[cptr(&c(first)?), 0o640])),
        "unlink" => Ok(sys(libc::SYS_unlink, &[cptr(&c(first)?)])),
        "unlinkat" => Ok(sys(
            libc::SYS_unlinkat,
            &[AT_FDCWD, cptr(&c(first)?), i64::from(libc::AT_REMOVEDIR)],
        )),
        "rmdir" => Ok(sys(libc::SYS_rmdir, &[cptr(&c(first)?)])),
        "mkdir" => Ok(sys(libc::SYS_mkdir, &[cptr(&c(first)?), 0o750])),
        "mkdirat" => Ok(sys(libc::SYS_mkdirat, &[AT_FDCWD, cptr(&c(first)?), 0o700])),
        "rename" | "link" | "symlink" | "pivot_root" => {
            let nr = match name {
                "rename" => libc::SYS_rename,
                "link" => libc::SYS_link,
                "symlink" => libc::SYS_symlink,
                _ => libc::SYS_pivot_root,
            };
            let (from, to) = (c(first)?, c(second)?);
            Ok(sys(nr, &[cptr(&from), cptr(&to)]))
        }
        "renameat" | "renameat2" | "linkat" => {
            let nr = match name {
                "renameat" => libc::SYS_renameat,
                "renameat2" => libc::SYS_renameat2,
                _ => libc::SYS_linkat,
            };
            let flags = if name == "renameat2" {
                i64::from(libc::RENAME_NOREPLACE)
            } else {
                0
            };
            let (from, to) = (c(first)?, c(second)?);
            Ok(sys(
                nr,
                &[AT_FDCWD, cptr(&from), AT_FDCWD, cptr(&to), flags],
            ))
        }
        "symlinkat" => {
            let (target, link) = (c(first)?, c(second)?);
            Ok(sys(
                libc::SYS_symlinkat,
                &[cptr(&target), AT_FDCWD, cptr(&link)],
            ))
        }
        "chmod" => Ok(sys(libc::SYS_chmod, &[cptr(&c(first)?), 0o600])),
        "fchmodat" => Ok(sys(
            libc::SYS_fchmodat,
            &[AT_FDCWD, cptr(&c(first)?), 0o604],
        )),
        "fchmod" => with_fd(first, |fd| sys(libc::SYS_fchmod, &[fd, 0o640])),
        "chown" => Ok(sys(libc::SYS_chown, &[cptr(&c(first)?), 1234, 5678])),
        "lchown" => Ok(sys(libc::SYS_lchown, &[cptr(&c(first)?), -1, 42])),
        "fchown" => with_fd(first, |fd| sys(libc::SYS_fchown, &[fd, 7, -1])),
        "fchownat" => Ok(sys(
            libc::SYS_fchownat,
            &[AT_FDCWD, cptr(&c(first)?), 11, 12, 0],
        )),
        "setuid" => Ok(sys(libc::SYS_setuid, &[0])),
        "setgid" => Ok(sys(libc::SYS_setgid, &[0])),
        "setreuid" => Ok(sys(libc::SYS_setreuid, &[-1, 0])),
        "setregid" => Ok(sys(libc::SYS_setregid, &[-1, 0])),
        "setresuid" => Ok(sys(libc::SYS_setresuid, &[-1, 0, -1])),
        "setresgid" => Ok(sys(libc::SYS_setresgid, &[-1, -1, 0])),
        "capset" => capset(),
        "ptrace" => Ok(sys(libc::SYS_ptrace, &[libc::PTRACE_ATTACH as i64, NO_PID])),
        "process_vm_writev" => {
            let buf = [0u8; 8];
            let iov = [buf.as_ptr() as i64, buf.len() as i64];
            Ok(sys(
                libc::SYS_process_vm_writev,
                &[NO_PID, ptr(&iov), 1, ptr(&iov), 1, 0],
            ))
        }
        "unshare" => Ok(sys(
            libc::SYS_unshare,
            &[i64::from(libc::CLONE_NEWNS | libc::CLONE_NEWUTS)],
        )),
        "setns" => with_fd("/proc/self/ns/uts", |fd| {
            sys(libc::SYS_setns, &[fd, i64::from(libc::CLONE_NEWUTS)])
        }),
        "mount" => {
            // Private first, so nothing propagates out of this namespace.
            let root = c("/")?;
            let private = sys(
                libc::SYS_mount,
                &[
                    0,
                    cptr(&root),
                    0,
                    (libc::MS_REC | libc::MS_PRIVATE) as i64,
                    0,
                ],
            );
            if private < 0 {
                return Err(format!("making / private: {private}"));
            }
            let (source, target, fs) = (c("vigil-tmp")?, c(first)?, c("tmpfs")?);
            Ok(sys(
                libc::SYS_mount,
                &[
                    cptr(&source),
                    cptr(&target),
                    cptr(&fs),
                    libc::MS_NOSUID as i64,
                    0,
                ],
            ))
        }
        "umount2" => Ok(sys(
            libc::SYS_umount2,
            &[cptr(&c(first)?), i64::from(libc::MNT_DETACH)],
        )),
        "chroot" => Ok(sys(libc::SYS_chroot, &[cptr(&c(first)?)])),
        "socket" => Ok(sys(
            libc::SYS_socket,
            &[i64::from(libc::AF_INET6), i64::from(libc::SOCK_DGRAM), 0],
        )),
        "tcp4" => tcp(Ipv4Addr::LOCALHOST.into()),
        "tcp6" => tcp(Ipv6Addr::LOCALHOST.into()),
        "unix" => unix(first),
        "dup" => with_socket(|fd| sys(libc::SYS_dup, &[fd])),
        // dup of a fresh memfd: the descriptor's kind is memfd.
        "dup_memfd" => {
            let name = c("vigil-dup")?;
            let fd = sys(libc::SYS_memfd_create, &[cptr(&name), 0]);
            Ok(sys(libc::SYS_dup, &[fd]))
        }
        "dup2" => with_socket(|fd| sys(libc::SYS_dup2, &[fd, 100])),
        "dup3" => with_socket(|fd| sys(libc::SYS_dup3, &[fd, 101, i64::from(libc::O_CLOEXEC)])),
        "memfd_create" => Ok(sys(
            libc::SYS_memfd_create,
            &[cptr(&c(first)?), i64::from(libc::MFD_CLOEXEC)],
        )),
        "mmap" => Ok(mmap(libc::PROT_READ | libc::PROT_EXEC)),
        "mmap_rw" => Ok(mmap(libc::PROT_READ | libc::PROT_WRITE)),
        "mprotect" => {
            let addr = mmap(libc::PROT_READ | libc::PROT_WRITE);
            Ok(sys(
                libc::SYS_mprotect,
                &[addr, 4096, i64::from(libc::PROT_READ | libc::PROT_EXEC)],
            ))
        }
        "init_module" => {
            let image = [0u8; 64];
            let params = c("")?;
            Ok(sys(
                libc::SYS_init_module,
                &[image.as_ptr() as i64, image.len() as i64, cptr(&params)],
            ))
        }
        "finit_module" => {
            let params = c("")?;
            with_fd("/dev/null", |fd| {
                sys(libc::SYS_finit_module, &[fd, cptr(&params), 0])
            })
        }
        "delete_module" => Ok(sys(
            libc::SYS_delete_module,
            &[cptr(&c(first)?), i64::from(libc::O_NONBLOCK)],
        )),
        // BPF_MAP_GET_NEXT_ID with a zeroed attribute: harmless.
        "bpf" => {
            let attr = [0u8; 16];
            Ok(sys(libc::SYS_bpf, &[12, attr.as_ptr() as i64, 16]))
        }
        "kill" => Ok(sys(libc::SYS_kill, &[NO_PID, i64::from(libc::SIGTERM)])),
        "tkill" => Ok(sys(libc::SYS_tkill, &[sys(libc::SYS_gettid, &[]), 0])),
        "tgkill" => {
            let (pid, tid) = (sys(libc::SYS_getpid, &[]), sys(libc::SYS_gettid, &[]));
            Ok(sys(libc::SYS_tgkill, &[pid, tid, i64::from(libc::SIGCONT)]))
        }
        "prctl" => Ok(sys(
            libc::SYS_prctl,
            &[i64::from(libc::PR_SET_NAME), cptr(&c(first)?)],
        )),
        "userfaultfd" => Ok(sys(libc::SYS_userfaultfd, &[i64::from(libc::O_CLOEXEC)])),
        "io_uring_setup" => {
            // struct io_uring_params: 120 bytes; flags after two u32 counts.
            let mut params = [0u32; 30];
            params[2] = 1 << 4; // IORING_SETUP_CLAMP
            Ok(sys(
                libc::SYS_io_uring_setup,
                &[4, params.as_mut_ptr() as i64],
            ))
        }
        // KEYCTL_REVOKE of key 0: no such key.
        "keyctl" => Ok(sys(libc::SYS_keyctl, &[3, 0])),
        "fork" => fork(),
        // std spawns threads with clone3(CLONE_THREAD | ...).
        "thread" => std::thread::spawn(|| sys(libc::SYS_gettid, &[]))
            .join()
            .map_err(|_| "the thread panicked".to_owned()),
        "execve" => exec(libc::SYS_execve, first, a.get(1..).unwrap_or_default()),
        "exit" => {
            let code = first
                .parse::<i32>()
                .map_err(|e| format!("exit code: {e}"))?;
            std::process::exit(code)
        }
        other => Err(format!("unknown step {other:?}")),
    }
}

fn with_fd(path: &str, call: impl FnOnce(i64) -> i64) -> Outcome {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(call(i64::from(file.as_raw_fd())))
}

/// Runs `call` with a connected TCP socket's descriptor.
fn with_socket(call: impl FnOnce(i64) -> i64) -> Outcome {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    Ok(call(i64::from(stream.as_raw_fd())))
}

/// socket, bind, listen, connect, accept on loopback; the result is the port.
fn tcp(ip: std::net::IpAddr) -> Outcome {
    let listener = match ip {
        std::net::IpAddr::V4(v4) => TcpListener::bind(SocketAddrV4::new(v4, 0)),
        std::net::IpAddr::V6(v6) => TcpListener::bind(SocketAddrV6::new(v6, 0, 0, 0)),
    }
    .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let _client = TcpStream::connect(address).map_err(|e| e.to_string())?;
    let _accepted = listener.accept().map_err(|e| e.to_string())?;
    Ok(i64::from(address.port()))
}

fn unix(path: &str) -> Outcome {
    let listener = UnixListener::bind(path).map_err(|e| format!("{path}: {e}"))?;
    let _client = UnixStream::connect(path).map_err(|e| e.to_string())?;
    let _accepted = listener.accept().map_err(|e| e.to_string())?;
    Ok(0)
}

fn mmap(prot: i32) -> i64 {
    sys(
        libc::SYS_mmap,
        &[
            0,
            4096,
            i64::from(prot),
            i64::from(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS),
            -1,
            0,
        ],
    )
}

/// capset with the capabilities this process already has: a no-op that
/// still goes through the syscall.
fn capset() -> Outcome {
    // struct __user_cap_header_struct { version, pid }, _LINUX_CAPABILITY_VERSION_3
    let header: [u32; 2] = [0x2008_0522, 0];
    let mut data = [0u32; 6];
    let got = sys(libc::SYS_capget, &[ptr(&header), data.as_mut_ptr() as i64]);
    if got < 0 {
        return Err(format!("capget: {got}"));
    }
    Ok(sys(libc::SYS_capset, &[ptr(&header), data.as_ptr() as i64]))
}

/// A raw fork whose child exits at once with status 5.
fn fork() -> Outcome {
    let child = sys(libc::SYS_fork, &[]);
    if child == 0 {
        sys(libc::SYS_exit_group, &[5]);
    }
    if child < 0 {
        return Err(format!("fork: {child}"));
    }
    let mut status = 0i32;
    let waited = sys(
        libc::SYS_wait4,
        &[child, std::ptr::from_mut(&mut status) as i64, 0, 0],
    );
    if waited != child {
        return Err(format!("wait4: {waited}"));
    }
    Ok(child)
}

/// execve(path, [path, args...], environ): returns only when it failed.
fn exec(nr: libc::c_long, path: &str, args: &[&str]) -> Outcome {
    let path = c(path)?;
    let owned: Vec<CString> = args.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let mut argv: Vec<i64> = vec![cptr(&path)];
    argv.extend(owned.iter().map(cptr));
    argv.push(0);
    let envp: [i64; 1] = [0];
    Ok(sys(
        nr,
        &[cptr(&path), argv.as_ptr() as i64, envp.as_ptr() as i64],
    ))
}

/// From here on, the syscall `name` fails with EPERM (a seccomp filter, as a
/// container runtime's profile would install); everything else is allowed.
fn seccomp_deny(name: &str) -> Outcome {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let nr = match name {
        "mkdir" => libc::SYS_mkdir,
        other => return Err(format!("seccomp_deny knows mkdir, not {other:?}")),
    };
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("{e:?}"))?;
    let filter = SeccompFilter::new(
        [(nr, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let program: BpfProgram = filter.try_into().map_err(|e| format!("{e:?}"))?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    Ok(0)
}
