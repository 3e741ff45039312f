//! The real BPF programs on the running kernel: a child process performs
//! exactly the syscalls under test, and each must arrive as an event with
//! the child's pid and the arguments it used.
//!
//! The child is this test binary again, running only `trigger_helper` with
//! a plan in `VIGIL_COLLECTOR_TRIGGER` (Tetragon's tester-progs idea without
//! a separate program to build).

mod common;

use std::{
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use common::Probe;
use vigil_collector::kernel::{KernelOptions, KernelSource};
use vigil_proto::v1::{AddressFamily, Event, EventType};
use vigil_testkit::{require_root, wait_until};

const PLAN: &str = "VIGIL_COLLECTOR_TRIGGER";
const WAIT: Duration = Duration::from_secs(10);

/// Not a test of its own: the child process of the tests below. Performs
/// the `;`-separated steps of `VIGIL_COLLECTOR_TRIGGER`, if set.
#[test]
fn trigger_helper() {
    let Ok(plan) = std::env::var(PLAN) else {
        return;
    };
    for step in plan.split(';') {
        let (action, argument) = step.split_once(':').unwrap_or((step, ""));
        match action {
            "create" => drop(std::fs::File::create(argument).expect("create the file")),
            "open" => drop(std::fs::File::open(argument)),
            "connect" => drop(TcpStream::connect(argument).expect("connect")),
            "mkdir" => std::fs::create_dir(argument).expect("mkdir"),
            "symlink" => {
                let (target, link) = argument.split_once(',').expect("target,link");
                std::os::unix::fs::symlink(target, link).expect("symlink");
            }
            "rename" => {
                let (from, to) = argument.split_once(',').expect("from,to");
                std::fs::rename(from, to).expect("rename");
            }
            "pin" => {
                let mut cpus = nix::sched::CpuSet::new();
                cpus.set(argument.parse().expect("a CPU number"))
                    .expect("a CPU this machine has");
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)
                    .expect("move to the CPU");
            }
            "sleep" => std::thread::sleep(Duration::from_millis(argument.parse().unwrap())),
            other => panic!("unknown trigger step {other:?}"),
        }
    }
}

/// Runs `trigger_helper` in a child with `plan` and the working directory
/// `cwd`; returns its pid once it has exited successfully.
fn trigger(plan: &str, cwd: &std::path::Path) -> u32 {
    let mut child = Command::new(std::env::current_exe().expect("path of this test binary"))
        .args([
            "--exact",
            "trigger_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PLAN, plan)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the trigger child");
    let pid = child.id();
    let status = child.wait().expect("wait for the trigger child");
    assert!(status.success(), "the trigger child failed: {status}");
    pid
}

fn path(event: &Event) -> &str {
    event.args.as_ref().map_or("", |a| a.path.as_str())
}

#[test]
fn exec_open_and_connect_arrive_with_pid_and_arguments() {
    if !require_root("exec_open_and_connect_arrive_with_pid_and_arguments") {
        return;
    }
    let mut probe = Probe::start("kernel-test");
    let dir = tempfile::tempdir().unwrap();
    let created = dir.path().join("created.txt");
    let missing = dir.path().join("missing.txt");
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let (v4_port, v6_port) = (
        v4.local_addr().unwrap().port(),
        v6.local_addr().unwrap().port(),
    );

    let marker = format!("vigil-exec-{}", std::process::id());
    let mut exec_child = Command::new("/bin/true")
        .args(["--vigil-marker", &marker])
        .spawn()
        .unwrap();
    let exec_pid = exec_child.id();
    exec_child.wait().unwrap();
    let plan = format!(
        "create:{};open:{};connect:127.0.0.1:{v4_port};connect:[::1]:{v6_port};open:relative.txt;mkdir:reldir;symlink:../target,link;create:relative.txt;rename:relative.txt,moved.txt;sleep:300",
        created.display(),
        missing.display()
    );
    let pid = trigger(&plan, dir.path());

    let exec = probe.expect("exec of /bin/true", exec_pid, WAIT, |e| {
        e.r#type() == EventType::Exec && e.pid == exec_pid
    });
    let args = exec.args.unwrap();
    // The image as the kernel resolved it (/bin may be a link to /usr/bin),
    // and the path as asked for.
    let image = std::fs::canonicalize("/bin/true").unwrap();
    assert_eq!(args.path, image.to_str().unwrap());
    assert_eq!(args.path_raw, "/bin/true");
    assert_eq!(args.argv, ["/bin/true", "--vigil-marker", marker.as_str()]);
    assert_eq!((exec.comm.as_str(), exec.return_value), ("true", 0));
    assert_eq!(exec.ppid, std::process::id());

    let opened = probe.expect("the created file", pid, WAIT, |e| {
        e.pid == pid && path(e) == created.to_str().unwrap()
    });
    assert_eq!(opened.r#type(), EventType::Open);
    let args = opened.args.clone().unwrap();
    let wanted = (libc::O_CREAT | libc::O_WRONLY) as u32;
    assert_eq!(args.flags & wanted, wanted, "flags {:#o}", args.flags);
    assert!(
        opened.return_value >= 0 && i64::from(args.fd) == opened.return_value,
        "{opened:?}"
    );
    assert_eq!(
        (opened.ppid, opened.uid, opened.tid > 0),
        (std::process::id(), 0, true)
    );
    assert!(opened.kernel_time_ns > 0 && opened.wall_time_ns > 0);
    assert_eq!(opened.node, "kernel-test");
    assert_eq!(
        opened.exe_path,
        std::env::current_exe().unwrap().to_str().unwrap()
    );

    let failed = probe.expect("the missing file", pid, WAIT, |e| {
        e.pid == pid && path(e) == missing.to_str().unwrap()
    });
    assert_eq!(failed.return_value, -i64::from(libc::ENOENT));
    assert_eq!(failed.args.unwrap().fd, -1);

    let relative = dir.path().join("relative.txt");
    let resolved = probe.expect("the relative open", pid, WAIT, |e| {
        e.pid == pid && path(e) == relative.to_str().unwrap()
    });
    assert_eq!(resolved.cwd, dir.path().to_str().unwrap());

    // Other path syscalls are resolved the same way, second paths too; a
    // symlink's target is kept as written (it is relative to the link, not
    // the cwd).
    let mkdir = probe.expect("the relative mkdir", pid, WAIT, |e| {
        e.pid == pid && e.r#type() == EventType::Mkdir
    });
    assert_eq!(path(&mkdir), dir.path().join("reldir").to_str().unwrap());
    let symlink = probe.expect("the symlink", pid, WAIT, |e| {
        e.pid == pid && e.r#type() == EventType::Symlink
    });
    assert_eq!(path(&symlink), "../target");
    assert_eq!(
        symlink.args.unwrap().target_path,
        dir.path().join("link").to_str().unwrap()
    );
    let renamed = probe.expect("the relative rename", pid, WAIT, |e| {
        e.pid == pid && e.r#type() == EventType::Rename
    });
    let args = renamed.args.unwrap();
    assert_eq!(
        (
            args.path.as_str(),
            args.target_path.as_str(),
            renamed.return_value
        ),
        (
            relative.to_str().unwrap(),
            dir.path().join("moved.txt").to_str().unwrap(),
            0
        )
    );

    for (family, ip, port) in [
        (AddressFamily::Inet, "127.0.0.1", v4_port),
        (AddressFamily::Inet6, "::1", v6_port),
    ] {
        let connect = probe.expect(&format!("connect to {ip}"), pid, WAIT, |e| {
            e.r#type() == EventType::Connect
                && e.pid == pid
                && e.args
                    .as_ref()
                    .and_then(|a| a.address.as_ref())
                    .is_some_and(|a| a.ip == ip && a.port == u32::from(port))
        });
        let args = connect.args.unwrap();
        let address = args.address.unwrap();
        assert_eq!((address.family(), connect.return_value), (family, 0));
        assert!(args.fd >= 0);
    }
}

#[test]
fn the_collectors_own_syscalls_are_ignored() {
    if !require_root("the_collectors_own_syscalls_are_ignored") {
        return;
    }
    let mut probe = Probe::start("kernel-test");
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own.txt");
    let child = dir.path().join("child.txt");
    drop(std::fs::File::create(&own).unwrap());
    let pid = trigger(&format!("create:{}", child.display()), dir.path());
    // The child's open proves the programs were running when ours happened.
    probe.expect("the child's open", pid, WAIT, |e| {
        path(e) == child.to_str().unwrap()
    });
    let ours = std::process::id();
    let mut leaked = probe.drain();
    leaked.retain(|e| e.pid == ours || path(e) == own.to_str().unwrap());
    assert!(
        leaked.is_empty(),
        "events of the collector's own process: {leaked:#?}"
    );
}

#[test]
fn a_full_ring_buffer_drops_and_counts_instead_of_blocking() {
    if !require_root("a_full_ring_buffer_drops_and_counts_instead_of_blocking") {
        return;
    }
    // The smallest ring buffer, and a consumer that stalls on its first record.
    let mut stalled = false;
    let options = KernelOptions::for_this_process(4096);
    let source = KernelSource::start(options, move |_record| {
        if !stalled {
            stalled = true;
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .expect("load the BPF programs");
    let drops = source.drops();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let plan = vec![format!("open:{}", missing.display()); 200].join(";");
    trigger(&plan, dir.path());
    let counted = wait_until(WAIT, || (drops.total() > 0).then_some(()));
    assert!(
        counted.is_some(),
        "no drops counted: {:?}",
        drops.by_reason()
    );
    let by_reason = drops.by_reason();
    assert!(
        by_reason
            .iter()
            .any(|(reason, n)| *reason == "ringbuf_full" && *n > 0),
        "{by_reason:?}"
    );
}

/// Each CPU writes into a ring buffer of its own: a process that moves
/// across every CPU this test may use is seen from each of them, and no
/// record is dropped for want of a ring.
#[test]
fn every_cpu_reports_through_its_own_ring_buffer() {
    if !require_root("every_cpu_reports_through_its_own_ring_buffer") {
        return;
    }
    let mut probe = Probe::start("kernel-test");
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&cpu| allowed.is_set(cpu).unwrap_or(false))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let marker = |cpu: usize| dir.path().join(format!("on-cpu-{cpu}"));
    let plan: Vec<String> = cpus
        .iter()
        .map(|&cpu| format!("pin:{cpu};open:{}", marker(cpu).display()))
        .collect();
    let pid = trigger(&plan.join(";"), dir.path());
    for &cpu in &cpus {
        let wanted = marker(cpu);
        probe.expect(&format!("the open on CPU {cpu}"), pid, WAIT, |e| {
            e.pid == pid && path(e) == wanted.to_str().unwrap()
        });
    }
    let no_ring = probe
        .source
        .drops()
        .by_reason()
        .into_iter()
        .find(|(reason, _)| *reason == "no_ring");
    assert_eq!(no_ring, Some(("no_ring", 0)));
    assert!(!cpus.is_empty());
}
