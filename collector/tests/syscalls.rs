//! Every syscall family on the real kernel: `vigil-syscall-trigger` (a
//! one-thread process doing nothing else) performs exactly the syscalls
//! under test, and each must arrive, decoded, with the trigger's pid, the
//! exact syscall name, its arguments and its return value (failed calls
//! with their negative errno).
//!
//! The events are read straight from the kernel source and decoded, without
//! enrichment: this is the kernel side's contract.

use std::{
    collections::HashMap,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use vigil_collector::{
    decode::{self, Decoded},
    kernel::{EnabledSet, KernelOptions, KernelSource, SyscallSelection},
};
use vigil_proto::v1::{AddressFamily, Args, Event, EventType, FdKind};
use vigil_testkit::require_root;

const TRIGGER: &str = env!("CARGO_BIN_EXE_vigil-syscall-trigger");
const WAIT: Duration = Duration::from_secs(10);
const RING_BUFFER_BYTES: u32 = 1 << 24;

/// The kernel programs with the decoded events collected in memory.
struct Probe {
    _source: KernelSource,
    events: Arc<Mutex<Vec<Decoded>>>,
}

impl Probe {
    fn start(syscalls: EnabledSet) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let options = KernelOptions::for_this_process(RING_BUFFER_BYTES).with_syscalls(syscalls);
        let source = KernelSource::start(options, move |record| {
            let decoded = decode::decode(record).expect("every kernel record decodes");
            sink.lock().expect("events lock").push(decoded);
        })
        .unwrap_or_else(|error| panic!("load the BPF programs: {error}"));
        Self {
            _source: source,
            events,
        }
    }

    fn all() -> Self {
        Self::start(EnabledSet::all())
    }

    /// The events of `pid` once `done` is among them (or the wait is over).
    fn events_of(&self, pid: u32, done: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events: Vec<Event> = self
                .events
                .lock()
                .expect("events lock")
                .iter()
                .filter(|d| d.event.pid == pid)
                .map(|d| d.event.clone())
                .collect();
            if events.iter().any(&done) || Instant::now() >= deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What the trigger printed: step name → result, in order.
struct Run {
    pid: u32,
    results: Vec<(String, i64)>,
}

impl Run {
    fn result(&self, step: &str) -> i64 {
        self.results
            .iter()
            .find(|(name, _)| name == step)
            .unwrap_or_else(|| panic!("no result for {step}: {:?}", self.results))
            .1
    }
}

/// Runs the trigger with `steps` in `cwd`; it must exit with `exit_code`.
fn trigger(steps: &[String], cwd: &Path, exit_code: i32) -> Run {
    let child = Command::new(TRIGGER)
        .args(steps)
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the trigger");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for the trigger");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(exit_code),
        "trigger said:\n{stdout}"
    );
    let results = stdout
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect();
    Run { pid, results }
}

/// The one event of `syscall` (the n-th when several), with its args.
fn find<'a>(events: &'a [Event], syscall: &str) -> (&'a Event, &'a Args) {
    nth(events, syscall, 0)
}

/// The event of `syscall` on `path` (the dynamic loader opens files too).
fn on_path<'a>(events: &'a [Event], syscall: &str, path: &Path) -> (&'a Event, &'a Args) {
    let event = events
        .iter()
        .find(|e| e.syscall == syscall && e.args.as_ref().is_some_and(|a| a.path == s(path)))
        .unwrap_or_else(|| panic!("no {syscall} of {}", path.display()));
    (event, event.args.as_ref().expect("args"))
}

fn nth<'a>(events: &'a [Event], syscall: &str, n: usize) -> (&'a Event, &'a Args) {
    let event = events
        .iter()
        .filter(|e| e.syscall == syscall)
        .nth(n)
        .unwrap_or_else(|| {
            let seen: Vec<&str> = events.iter().map(|e| e.syscall.as_str()).collect();
            panic!("no {syscall} event #{n}; seen {seen:?}")
        });
    (event, event.args.as_ref().expect("args"))
}

fn errno(code: i32) -> i64 {
    -i64::from(code)
}

fn step(name: &str, args: &[&Path]) -> String {
    let args: Vec<String> = args.iter().map(|p| p.display().to_string()).collect();
    if args.is_empty() {
        name.to_owned()
    } else {
        format!("{name}={}", args.join(","))
    }
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn file_syscalls_carry_paths_modes_ids_and_results() {
    if !require_root("file_syscalls_carry_paths_modes_ids_and_results") {
        return;
    }
    let probe = Probe::all();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let steps = [
        step("creat", &[&p("a")]),
        step("openat", &[&p("a")]),
        step("openat2", &[&p("b")]),
        step("open", &[&p("missing")]),
        step("mkdir", &[&p("d1")]),
        step("mkdirat", &[&p("d2")]),
        step("rmdir", &[&p("d1")]),
        step("unlinkat", &[&p("d2")]),
        step("rename", &[&p("a"), &p("c")]),
        step("renameat", &[&p("c"), &p("a")]),
        step("renameat2", &[&p("a"), &p("b")]),
        step("link", &[&p("a"), &p("l1")]),
        step("linkat", &[&p("a"), &p("l2")]),
        step("symlink", &[Path::new("a"), &p("s1")]),
        step("symlinkat", &[Path::new("a"), &p("s2")]),
        step("chmod", &[&p("a")]),
        step("fchmod", &[&p("a")]),
        step("fchmodat", &[&p("a")]),
        step("chown", &[&p("a")]),
        step("lchown", &[&p("s1")]),
        step("fchown", &[&p("a")]),
        step("fchownat", &[&p("a")]),
        step("unlink", &[&p("b")]),
        "exit=0".to_owned(),
    ];
    let run = trigger(&steps, dir.path(), 0);
    let events = probe.events_of(run.pid, |e| e.r#type() == EventType::Exit);

    let (creat, args) = find(&events, "creat");
    assert_eq!(
        (creat.r#type(), args.path.clone()),
        (EventType::Open, s(&p("a")))
    );
    assert_eq!(
        (args.mode, i64::from(args.fd)),
        (0o640, run.result("creat"))
    );
    assert_eq!(
        args.flags,
        (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32
    );
    let (openat, args) = on_path(&events, "openat", &p("a"));
    assert_eq!(
        (args.path.clone(), openat.return_value),
        (s(&p("a")), run.result("openat"))
    );
    let (_, args) = find(&events, "openat2");
    assert_eq!((args.path.clone(), args.mode), (s(&p("b")), 0o640));
    assert_ne!(args.flags & libc::O_CREAT as u32, 0);
    let (open, args) = on_path(&events, "open", &p("missing"));
    assert_eq!(
        (args.path.clone(), open.return_value, args.fd),
        (s(&p("missing")), errno(libc::ENOENT), -1)
    );

    for (syscall, path, mode) in [("mkdir", "d1", 0o750), ("mkdirat", "d2", 0o700)] {
        let (event, args) = find(&events, syscall);
        assert_eq!(event.r#type(), EventType::Mkdir);
        assert_eq!(
            (args.path.clone(), args.mode, event.return_value),
            (s(&p(path)), mode, 0)
        );
    }
    for (syscall, path) in [("rmdir", "d1"), ("unlinkat", "d2"), ("unlink", "b")] {
        let (event, args) = find(&events, syscall);
        assert_eq!(event.r#type(), EventType::Unlink);
        assert_eq!((args.path.clone(), event.return_value), (s(&p(path)), 0));
    }
    for (syscall, from, to, ret) in [
        ("rename", "a", "c", 0),
        ("renameat", "c", "a", 0),
        // RENAME_NOREPLACE onto an existing file.
        ("renameat2", "a", "b", errno(libc::EEXIST)),
    ] {
        let (event, args) = find(&events, syscall);
        assert_eq!(event.r#type(), EventType::Rename);
        assert_eq!(
            (
                args.path.clone(),
                args.target_path.clone(),
                event.return_value
            ),
            (s(&p(from)), s(&p(to)), ret),
            "{syscall}"
        );
    }
    for (syscall, link) in [("link", "l1"), ("linkat", "l2")] {
        let (event, args) = find(&events, syscall);
        assert_eq!(event.r#type(), EventType::Link);
        assert_eq!(
            (args.path.clone(), args.target_path.clone()),
            (s(&p("a")), s(&p(link)))
        );
    }
    for (syscall, link) in [("symlink", "s1"), ("symlinkat", "s2")] {
        let (event, args) = find(&events, syscall);
        assert_eq!(event.r#type(), EventType::Symlink);
        // The target stays as written; the link is where it was made.
        assert_eq!(
            (args.path.as_str(), args.target_path.clone()),
            ("a", s(&p(link)))
        );
    }
    for (syscall, mode) in [("chmod", 0o600), ("fchmod", 0o640), ("fchmodat", 0o604)] {
        let (event, args) = find(&events, syscall);
        assert_eq!(
            (event.r#type(), args.mode, event.return_value),
            (EventType::Chmod, mode, 0)
        );
    }
    assert_eq!(find(&events, "chmod").1.path, s(&p("a")));
    assert_eq!(find(&events, "fchmod").1.fd_kind(), FdKind::File);
    for (syscall, ids) in [
        ("chown", [1234, 5678]),
        ("lchown", [-1, 42]),
        ("fchown", [7, -1]),
        ("fchownat", [11, 12]),
    ] {
        let (event, args) = find(&events, syscall);
        assert_eq!(
            (event.r#type(), args.ids.as_slice()),
            (EventType::Chown, ids.as_slice())
        );
    }
}

#[test]
fn process_syscalls_exec_clone_exit_ids_and_signals() {
    if !require_root("process_syscalls_exec_clone_exit_ids_and_signals") {
        return;
    }
    let probe = Probe::all();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-binary");
    let steps: Vec<String> = [
        "fork".to_owned(),
        "thread".to_owned(),
        format!("execve={},--first,second", missing.display()),
        "setuid".to_owned(),
        "setgid".to_owned(),
        "setreuid".to_owned(),
        "setregid".to_owned(),
        "setresuid".to_owned(),
        "setresgid".to_owned(),
        "capset".to_owned(),
        "ptrace".to_owned(),
        "process_vm_writev".to_owned(),
        "kill".to_owned(),
        "tkill".to_owned(),
        "tgkill".to_owned(),
        "prctl=vigil-renamed".to_owned(),
        "exit=3".to_owned(),
    ]
    .into();
    let run = trigger(&steps, dir.path(), 3);
    let events = probe.events_of(run.pid, |e| e.r#type() == EventType::Exit);

    // The trigger's own exec: the new image and its argv.
    let exec = events
        .iter()
        .find(|e| e.r#type() == EventType::Exec && e.return_value == 0)
        .expect("the trigger's exec");
    let args = exec.args.as_ref().unwrap();
    assert_eq!(
        (exec.syscall.as_str(), args.path.as_str()),
        ("execve", TRIGGER)
    );
    assert_eq!(args.argv.first().map(String::as_str), Some(TRIGGER));
    assert_eq!(args.argv.get(1), Some(&"fork".to_owned()));

    let (failed, args) = find(&events, "execve");
    let failed = if failed.return_value == 0 {
        nth(&events, "execve", 1)
    } else {
        (failed, args)
    };
    let (failed, args) = failed;
    assert_eq!(
        (failed.r#type(), failed.return_value),
        (EventType::Exec, errno(libc::ENOENT))
    );
    assert_eq!(args.path, s(&missing));
    assert_eq!(
        args.argv,
        [s(&missing), "--first".to_owned(), "second".to_owned()]
    );

    let (fork, _) = find(&events, "fork");
    let child = run.result("fork");
    assert_eq!(
        (fork.r#type(), fork.return_value),
        (EventType::Clone, child)
    );
    let child_events = probe.events_of(child as u32, |e| e.r#type() == EventType::Exit);
    let child_exit = child_events
        .iter()
        .find(|e| e.r#type() == EventType::Exit)
        .expect("the child's exit");
    assert_eq!(child_exit.args.as_ref().unwrap().exit_code, 5 << 8);
    assert_eq!(child_exit.ppid, run.pid);

    let thread = run.result("thread");
    let clone3 = events
        .iter()
        .find(|e| e.syscall == "clone3" && e.return_value == thread)
        .expect("the thread's clone3");
    let flags = clone3.args.as_ref().unwrap().flags;
    assert_eq!(clone3.r#type(), EventType::Clone);
    assert_ne!(flags & libc::CLONE_THREAD as u32, 0, "{flags:#x}");

    for (syscall, event_type, ids) in [
        ("setuid", EventType::Setuid, vec![0]),
        ("setgid", EventType::Setgid, vec![0]),
        ("setreuid", EventType::Setuid, vec![-1, 0]),
        ("setregid", EventType::Setgid, vec![-1, 0]),
        ("setresuid", EventType::Setuid, vec![-1, 0, -1]),
        ("setresgid", EventType::Setgid, vec![-1, -1, 0]),
    ] {
        let (event, args) = find(&events, syscall);
        assert_eq!(
            (event.r#type(), &args.ids, event.return_value),
            (event_type, &ids, 0),
            "{syscall}"
        );
    }
    let (capset, args) = find(&events, "capset");
    assert_eq!(
        (capset.r#type(), capset.return_value),
        (EventType::Capset, 0)
    );
    // Root keeps every capability; CAP_SYS_ADMIN (21) is surely among them.
    assert_ne!(args.cap_effective & (1 << 21), 0, "{args:?}");
    assert_ne!(args.cap_permitted & (1 << 21), 0, "{args:?}");

    let no_pid = 0x3fff_fff0;
    let (ptrace, args) = find(&events, "ptrace");
    assert_eq!(
        (ptrace.r#type(), args.request, args.target_pid),
        (EventType::Ptrace, i64::from(libc::PTRACE_ATTACH), no_pid)
    );
    assert_eq!(ptrace.return_value, errno(libc::ESRCH));
    let (writev, args) = find(&events, "process_vm_writev");
    assert_eq!(
        (writev.r#type(), args.target_pid, writev.return_value),
        (EventType::ProcessVmWritev, no_pid, errno(libc::ESRCH))
    );

    let (kill, args) = find(&events, "kill");
    assert_eq!(
        (kill.r#type(), args.target_pid, args.signal),
        (EventType::Kill, no_pid, libc::SIGTERM as u32)
    );
    assert_eq!(kill.return_value, errno(libc::ESRCH));
    let (tkill, args) = find(&events, "tkill");
    assert_eq!((tkill.return_value, args.target_pid), (0, run.pid as i32));
    let (_, args) = find(&events, "tgkill");
    assert_eq!(
        (args.target_pid, args.signal),
        (run.pid as i32, libc::SIGCONT as u32)
    );

    let (prctl, args) = find(&events, "prctl");
    assert_eq!(
        (prctl.r#type(), args.request, args.name.as_str()),
        (
            EventType::Prctl,
            i64::from(libc::PR_SET_NAME),
            "vigil-renamed"
        )
    );

    let exit = events
        .iter()
        .find(|e| e.r#type() == EventType::Exit)
        .expect("the exit");
    assert_eq!(
        (exit.syscall.as_str(), exit.args.as_ref().unwrap().exit_code),
        ("procexit", 3 << 8)
    );
}

#[test]
fn network_syscalls_carry_addresses_and_descriptor_kinds() {
    if !require_root("network_syscalls_carry_addresses_and_descriptor_kinds") {
        return;
    }
    let probe = Probe::all();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vigil.sock");
    let steps = [
        "socket".to_owned(),
        "tcp4".to_owned(),
        "tcp6".to_owned(),
        step("unix", &[&sock]),
        "dup".to_owned(),
        "dup2".to_owned(),
        "dup3".to_owned(),
        "exit=0".to_owned(),
    ];
    let run = trigger(&steps, dir.path(), 0);
    let events = probe.events_of(run.pid, |e| e.r#type() == EventType::Exit);

    let (socket, args) = find(&events, "socket");
    assert_eq!(
        (socket.r#type(), args.domain, args.socket_type),
        (EventType::Socket, libc::AF_INET6, libc::SOCK_DGRAM)
    );
    assert_eq!(i64::from(args.fd), run.result("socket"));

    let port4 = run.result("tcp4") as u32;
    let port6 = run.result("tcp6") as u32;
    for (family, ip, port, kind) in [
        (AddressFamily::Inet, "127.0.0.1", port4, FdKind::SocketInet),
        (AddressFamily::Inet6, "::1", port6, FdKind::SocketInet6),
    ] {
        let on = |a: &Option<vigil_proto::v1::SocketAddress>, port: u32| {
            a.as_ref()
                .is_some_and(|a| a.family() == family && a.ip == ip && a.port == port)
        };
        let at = events
            .iter()
            .position(|e| e.syscall == "bind" && on(&e.args.as_ref().unwrap().local_address, 0))
            .unwrap_or_else(|| panic!("bind {ip}:{port}"));
        // Descriptor numbers are reused: look only after this bind.
        let (bind, after) = (&events[at], &events[at..]);
        assert_eq!((bind.r#type(), bind.return_value), (EventType::Bind, 0));
        assert_eq!(bind.args.as_ref().unwrap().fd_kind(), kind);
        let connect = events
            .iter()
            .find(|e| e.syscall == "connect" && on(&e.args.as_ref().unwrap().address, port))
            .unwrap_or_else(|| panic!("connect {ip}:{port}"));
        assert_eq!(
            (connect.r#type(), connect.return_value),
            (EventType::Connect, 0)
        );
        let listener = bind.args.as_ref().unwrap().fd;
        let listen = after
            .iter()
            .find(|e| e.syscall == "listen" && e.args.as_ref().unwrap().fd == listener)
            .expect("listen");
        assert_eq!(
            (listen.r#type(), listen.args.as_ref().unwrap().fd_kind()),
            (EventType::Listen, kind)
        );
        // listen knows the port bind chose.
        assert!(
            on(&listen.args.as_ref().unwrap().local_address, port),
            "{listen:?}"
        );
        // accept4: the peer's address, on the listening descriptor.
        let accept = after
            .iter()
            .find(|e| {
                e.syscall == "accept4"
                    && e.args.as_ref().unwrap().fd == listener
                    && e.return_value >= 0
            })
            .expect("accept4");
        let peer = accept
            .args
            .as_ref()
            .unwrap()
            .address
            .as_ref()
            .expect("peer address");
        assert_eq!(
            (accept.r#type(), peer.family(), peer.ip.as_str()),
            (EventType::Accept, family, ip)
        );
        assert_ne!(peer.port, 0);
        let local = &accept.args.as_ref().unwrap().local_address;
        assert!(on(local, port), "{accept:?}");
    }

    let unix = |syscall: &str, local: bool| {
        events
            .iter()
            .find(|e| {
                let a = e.args.as_ref().unwrap();
                let address = if local { &a.local_address } else { &a.address };
                e.syscall == syscall
                    && address.as_ref().is_some_and(|a| {
                        a.family() == AddressFamily::Unix && a.unix_path == s(&sock)
                    })
            })
            .unwrap_or_else(|| panic!("{syscall} on {}", sock.display()))
    };
    assert_eq!(
        unix("bind", true).args.as_ref().unwrap().fd_kind(),
        FdKind::SocketUnix
    );
    assert_eq!(unix("connect", false).return_value, 0);

    // Before the exec, the spawning side moved a pipe onto stdout: the
    // redirection is visible with the kind of what was moved.
    let redirect = events
        .iter()
        .find(|e| e.syscall == "dup2" && e.args.as_ref().unwrap().new_fd == 1)
        .expect("stdout redirected to the pipe");
    assert_eq!(redirect.args.as_ref().unwrap().fd_kind(), FdKind::Pipe);
    for (syscall, new_fd) in [("dup", run.result("dup")), ("dup2", 100), ("dup3", 101)] {
        let dup = events
            .iter()
            .find(|e| e.syscall == syscall && e.return_value == new_fd)
            .unwrap_or_else(|| panic!("{syscall} to {new_fd}"));
        let args = dup.args.as_ref().unwrap();
        assert_eq!(dup.r#type(), EventType::Dup);
        assert_eq!(
            (i64::from(args.new_fd), args.fd_kind(), dup.return_value),
            (new_fd, FdKind::SocketInet, new_fd),
            "{syscall}"
        );
    }
    assert_eq!(find(&events, "dup3").1.flags, libc::O_CLOEXEC as u32);
}

#[test]
fn namespace_mount_memory_module_and_kernel_interface_syscalls() {
    if !require_root("namespace_mount_memory_module_and_kernel_interface_syscalls") {
        return;
    }
    let probe = Probe::all();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let steps = [
        "unshare".to_owned(),
        "setns".to_owned(),
        step("mkdir", &[&mnt]),
        step("mount", &[&mnt]),
        step("umount2", &[&mnt]),
        step("pivot_root", &[dir.path(), &mnt]),
        "memfd_create=vigil-payload".to_owned(),
        "dup_memfd".to_owned(),
        "mmap_rw".to_owned(),
        "mmap".to_owned(),
        "mprotect".to_owned(),
        "init_module".to_owned(),
        "finit_module".to_owned(),
        "delete_module=vigil_nothing".to_owned(),
        "bpf".to_owned(),
        "userfaultfd".to_owned(),
        "io_uring_setup".to_owned(),
        "keyctl".to_owned(),
        step("chroot", &[dir.path()]),
        "exit=0".to_owned(),
    ];
    let run = trigger(&steps, dir.path(), 0);
    let events = probe.events_of(run.pid, |e| e.r#type() == EventType::Exit);

    let (unshare, args) = find(&events, "unshare");
    assert_eq!(
        (unshare.r#type(), args.flags, unshare.return_value),
        (
            EventType::Unshare,
            (libc::CLONE_NEWNS | libc::CLONE_NEWUTS) as u32,
            0
        )
    );
    let (setns, args) = find(&events, "setns");
    assert_eq!(
        (setns.r#type(), args.flags, setns.return_value),
        (EventType::Setns, libc::CLONE_NEWUTS as u32, 0)
    );

    // The first mount makes / private (no source, no type); the second is ours.
    let (mount, args) = nth(&events, "mount", 1);
    assert_eq!(mount.r#type(), EventType::Mount);
    assert_eq!(
        (
            args.path.as_str(),
            args.target_path.clone(),
            args.fs_type.as_str()
        ),
        ("vigil-tmp", s(&mnt), "tmpfs")
    );
    assert_eq!(
        (args.flags, mount.return_value),
        (libc::MS_NOSUID as u32, 0)
    );
    let (umount, args) = find(&events, "umount2");
    assert_eq!(
        (umount.r#type(), args.path.clone(), args.flags),
        (EventType::Umount, s(&mnt), libc::MNT_DETACH as u32)
    );
    let (pivot, args) = find(&events, "pivot_root");
    assert_eq!(
        (pivot.r#type(), args.path.clone(), args.target_path.clone()),
        (EventType::PivotRoot, s(dir.path()), s(&mnt))
    );
    assert!(pivot.return_value < 0, "{pivot:?}");

    let (memfd, args) = find(&events, "memfd_create");
    assert_eq!(
        (memfd.r#type(), args.name.as_str(), args.flags),
        (EventType::MemfdCreate, "vigil-payload", libc::MFD_CLOEXEC)
    );
    assert_eq!(i64::from(args.fd), run.result("memfd_create"));
    let dup = events
        .iter()
        .find(|e| e.syscall == "dup" && e.return_value == run.result("dup_memfd"))
        .expect("the memfd's dup");
    assert_eq!(dup.args.as_ref().unwrap().fd_kind(), FdKind::Memfd);
    // Only the executable mapping is reported, not the read-write one.
    let mmaps: Vec<&Event> = events.iter().filter(|e| e.syscall == "mmap").collect();
    assert_eq!(mmaps.len(), 1, "{mmaps:#?}");
    let args = mmaps[0].args.as_ref().unwrap();
    assert_eq!(
        (mmaps[0].r#type(), args.prot),
        (
            EventType::MemoryExec,
            (libc::PROT_READ | libc::PROT_EXEC) as u32
        )
    );
    assert_eq!(mmaps[0].return_value, run.result("mmap"));
    let (mprotect, args) = find(&events, "mprotect");
    assert_eq!(
        (mprotect.r#type(), args.prot, mprotect.return_value),
        (
            EventType::MemoryExec,
            (libc::PROT_READ | libc::PROT_EXEC) as u32,
            0
        )
    );

    for (syscall, event_type) in [
        ("init_module", EventType::ModuleLoad),
        ("finit_module", EventType::ModuleLoad),
        ("delete_module", EventType::ModuleUnload),
    ] {
        let (event, _) = find(&events, syscall);
        assert_eq!(
            (event.r#type(), event.return_value),
            (event_type, run.result(syscall))
        );
        assert!(event.return_value < 0, "{syscall}: {event:?}");
    }
    assert_eq!(find(&events, "delete_module").1.name, "vigil_nothing");
    assert_eq!(find(&events, "finit_module").1.fd_kind(), FdKind::Other);

    let (bpf, args) = find(&events, "bpf");
    assert_eq!(
        (bpf.r#type(), args.request, bpf.return_value),
        (EventType::Bpf, 12, run.result("bpf"))
    );
    let (uffd, args) = find(&events, "userfaultfd");
    assert_eq!(
        (uffd.r#type(), args.flags),
        (EventType::Userfaultfd, libc::O_CLOEXEC as u32)
    );
    let (uring, args) = find(&events, "io_uring_setup");
    assert_eq!(
        (uring.r#type(), args.flags, uring.return_value),
        (
            EventType::IoUringSetup,
            1 << 4,
            run.result("io_uring_setup")
        )
    );
    let (keyctl, args) = find(&events, "keyctl");
    assert_eq!(
        (keyctl.r#type(), args.request, keyctl.return_value),
        (EventType::Keyctl, 3, run.result("keyctl"))
    );
    let (chroot, args) = find(&events, "chroot");
    assert_eq!(
        (chroot.r#type(), args.path.clone(), chroot.return_value),
        (EventType::Chroot, s(dir.path()), 0)
    );
}

#[test]
fn syscalls_not_enabled_send_nothing() {
    if !require_root("syscalls_not_enabled_send_nothing") {
        return;
    }
    let only_openat = SyscallSelection::List(vec!["openat".to_owned()])
        .resolve()
        .unwrap();
    let probe = Probe::start(only_openat);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let steps = [
        step("creat", &[&file]),
        step("chmod", &[&file]),
        step("unlink", &[&file]),
        "kill".to_owned(),
        // Last, so that once it is seen the others would have been too.
        step("openat", &[&file]),
    ];
    let run = trigger(&steps, dir.path(), 0);
    let events = probe.events_of(run.pid, |e| {
        e.args.as_ref().is_some_and(|a| a.path == s(&file))
    });
    // The dynamic loader's opens are there too, but nothing else: not the
    // creat, chmod, unlink or kill, nor the exec and the exit.
    let mut syscalls: Vec<&str> = events.iter().map(|e| e.syscall.as_str()).collect();
    syscalls.dedup();
    assert_eq!(syscalls, ["openat"]);
    let (openat, _) = on_path(&events, "openat", &file);
    assert_eq!(openat.return_value, errno(libc::ENOENT));
}

/// A call a seccomp profile refuses is still reported, with the error it
/// got: an attempt that was blocked is worth knowing about.
#[test]
fn a_syscall_refused_by_seccomp_is_reported_with_its_error() {
    if !require_root("a_syscall_refused_by_seccomp_is_reported_with_its_error") {
        return;
    }
    let probe = Probe::start(EnabledSet::all());
    let dir = tempfile::tempdir().unwrap();
    let (allowed, refused) = (dir.path().join("allowed"), dir.path().join("refused"));
    let steps = [
        step("mkdir", &[&allowed]),
        "seccomp_deny=mkdir".to_owned(),
        step("mkdir", &[&refused]),
    ];
    let run = trigger(&steps, dir.path(), 0);
    let events = probe.events_of(run.pid, |e| {
        e.args.as_ref().is_some_and(|a| a.path == s(&refused))
    });
    let (before, _) = on_path(&events, "mkdir", &allowed);
    assert_eq!(before.return_value, 0);
    let (blocked, _) = on_path(&events, "mkdir", &refused);
    assert_eq!(blocked.return_value, errno(libc::EPERM));
    assert!(!refused.exists());
}

#[test]
fn the_drop_counters_are_per_reason_and_the_flood_decodes() {
    if !require_root("the_drop_counters_are_per_reason_and_the_flood_decodes") {
        return;
    }
    // The smallest ring buffer and a consumer that stalls once: the flood
    // of kills must be dropped and counted, and what arrives decodes.
    let decoded = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let sink = decoded.clone();
    let mut stalled = false;
    let options = KernelOptions::for_this_process(4096);
    let source = KernelSource::start(options, move |record| {
        if !stalled {
            stalled = true;
            std::thread::sleep(Duration::from_millis(500));
        }
        let outcome = match decode::decode(record) {
            Ok(d) => d.event.syscall,
            Err(e) => e.reason().to_owned(),
        };
        *sink.lock().unwrap().entry(outcome).or_default() += 1;
    })
    .expect("load the BPF programs");
    let dir = tempfile::tempdir().unwrap();
    let steps = vec!["kill".to_owned(); 500];
    let run = trigger(&steps, dir.path(), 0);
    assert_eq!(run.results.len(), 500);
    let drops = source.drops();
    let counted = vigil_testkit::wait_until(WAIT, || (drops.total() > 0).then_some(()));
    assert!(
        counted.is_some(),
        "no drops counted: {:?}",
        drops.by_reason()
    );
    let ringbuf_full = drops
        .by_reason()
        .into_iter()
        .find(|(r, _)| *r == "ringbuf_full")
        .map(|(_, n)| n);
    assert!(
        ringbuf_full.is_some_and(|n| n > 0),
        "{:?}",
        drops.by_reason()
    );
    drop(source);
    let decoded = decoded.lock().unwrap();
    assert!(
        decoded
            .keys()
            .all(|k| !k.is_empty() && !k.contains("truncated") && !k.contains("unknown")),
        "{decoded:?}"
    );
}
