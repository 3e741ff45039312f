//! The process table against real processes: seeded from /proc, updated by
//! exec events from the real BPF programs, by clone and exit events, and
//! bounded. Clone and exit events are built here from real pids until the
//! kernel side emits them.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::Probe;
use vigil_collector::enrich::{ProcessTable, procfs::read_proc};
use vigil_proto::v1::{Args, Event, EventType};
use vigil_testkit::require_root;

fn sleeper() -> Child {
    Command::new("/bin/sleep")
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn proc_root() -> &'static Path {
    Path::new("/proc")
}

#[test]
fn processes_that_existed_before_are_known_with_their_ancestry() {
    let mut child = sleeper();
    let pid = child.id();
    let me = std::process::id();
    let mut table = ProcessTable::seeded(proc_root(), 3, 1 << 16);

    let info = table
        .get(pid)
        .expect("the sleeper is in the seeded table")
        .clone();
    assert_eq!(info.cmdline, ["/bin/sleep", "30"]);
    assert_eq!(info.comm, "sleep");
    assert_eq!(info.ppid, me);
    assert!(info.exe.ends_with("/sleep"), "{}", info.exe);
    assert!(info.start_ns > 0);
    assert_eq!(info.cwd, std::env::current_dir().unwrap().to_string_lossy());

    let ancestors = table.ancestors(pid);
    assert_eq!(ancestors[0].pid, me, "parent first");
    assert_eq!(
        ancestors[0].exe_path,
        std::env::current_exe().unwrap().to_string_lossy()
    );
    assert!(ancestors.len() <= 3, "depth is bounded: {ancestors:?}");
    assert!(
        ancestors.iter().all(|a| a.pid != pid),
        "no cycle through itself"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn clone_copies_the_parent_and_exit_reclaims_the_entry() {
    let me = std::process::id();
    let mut child = sleeper();
    let pid = child.id();
    let mut table = ProcessTable::new(proc_root(), 4, 1 << 16);
    assert!(table.is_empty());

    // The parent's clone, as the kernel reports it: the child's pid is the
    // return value.
    let mut clone = Event {
        r#type: EventType::Clone.into(),
        pid: me,
        tid: me,
        return_value: i64::from(pid),
        kernel_time_ns: 42,
        args: Some(Args::default()),
        ..Event::default()
    };
    table.apply(&mut clone);
    let entry = table.get(pid).unwrap().clone();
    assert_eq!(entry.ppid, me);
    assert_eq!(entry.start_ns, 42);
    assert_eq!(entry.cmdline, table.get(me).unwrap().cmdline);

    // A thread is not a process.
    let mut thread = Event {
        args: Some(Args {
            flags: 0x0001_0000,
            ..Args::default()
        }),
        return_value: i64::from(u32::MAX - 1),
        ..clone.clone()
    };
    table.apply(&mut thread);
    assert!(table.get(u32::MAX - 1).is_none());

    let mut exit = Event {
        r#type: EventType::Exit.into(),
        pid,
        tid: pid,
        ..Event::default()
    };
    table.apply(&mut exit);
    assert_eq!(exit.ancestors[0].pid, me, "the exit is still enriched");
    assert!(table.get(pid).is_none(), "reclaimed on exit");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_vanished_process_is_normal_and_a_full_table_forgets_the_dead() {
    let mut gone = Command::new("/bin/true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    assert!(read_proc(proc_root(), gone_pid).is_none());

    // Depth 0: no ancestors are looked up, so only the processes of the
    // events fill the table.
    let mut table = ProcessTable::new(proc_root(), 0, 2);
    let mut event = Event {
        r#type: EventType::Open.into(),
        pid: gone_pid,
        ..Event::default()
    };
    table.apply(&mut event);
    assert!(event.ancestors.is_empty() && event.cmdline.is_empty());

    // Fill the table with a process that then dies; a live one replaces it.
    let mut short = sleeper();
    let mut live = sleeper();
    let mut me = Event {
        pid: std::process::id(),
        ..Event::default()
    };
    table.apply(&mut me);
    table.apply(&mut Event {
        pid: short.id(),
        ..Event::default()
    });
    assert_eq!(table.len(), 2);
    short.kill().unwrap();
    short.wait().unwrap();
    table.apply(&mut Event {
        pid: live.id(),
        ..Event::default()
    });
    assert!(
        table.get(live.id()).is_some(),
        "the dead entry was reclaimed"
    );
    assert!(table.get(short.id()).is_none());
    assert!(table.len() <= 2);
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn exec_events_from_the_kernel_carry_cmdline_and_ancestry() {
    if !require_root("exec_events_from_the_kernel_carry_cmdline_and_ancestry") {
        return;
    }
    let mut probe = Probe::start("process-table-test");
    let mut shell = Command::new("/bin/sh")
        .args(["-c", "/bin/cat /etc/hostname; exit 0"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let shell_pid = shell.id();
    assert!(shell.wait().unwrap().success());

    let exec = probe.expect("the exec of cat", shell_pid, Duration::from_secs(10), |e| {
        e.r#type() == EventType::Exec && e.comm == "cat" && e.ppid == shell_pid
    });
    assert_eq!(exec.cmdline, ["/bin/cat", "/etc/hostname"]);
    assert!(exec.exe_path.ends_with("/cat"), "{}", exec.exe_path);
    assert!(exec.process_start_ns > 0);
    let parent = &exec.ancestors[0];
    assert_eq!(parent.pid, shell_pid, "{:?}", exec.ancestors);
    assert_eq!(
        parent.cmdline,
        ["/bin/sh", "-c", "/bin/cat /etc/hostname; exit 0"]
    );
    assert_eq!(exec.ancestors[1].pid, std::process::id());
    assert!(exec.ancestors.len() <= 4);
}
