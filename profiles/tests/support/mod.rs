//! The workload of the profile tests and what the collector reports of it.
#![allow(clippy::unwrap_used, dead_code, reason = "test helpers")]

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_proto::v1::{Args, Event, EventBatch, EventType, PodMeta};

pub const CONTAINER: &str = "5f1c0ffee5f1c0ffee5f1c0ffee5f1c0ffee5f1c0ffee5f1c0ffee5f1c0ffee0";

/// A small service: reads a file, writes one, starts a child program and
/// waits for it, prints a result.
pub const WORKLOAD: &str = r#"open(my $f, "<", "/etc/hostname") or die "open: $!"; my $h = <$f>; close $f;
open(my $o, ">", "$ENV{OUT}") or die "write: $!"; print $o "done\n"; close $o;
my $pid = fork() // die "fork: $!"; if ($pid == 0) { exec("/bin/true") or exit 1 } waitpid($pid, 0);
die "child failed: $?" if $?; print "workload ok\n";"#;

fn event(kind: EventType, syscall: &str, ret: i64, args: Args) -> Event {
    Event {
        r#type: kind as i32,
        syscall: syscall.to_owned(),
        return_value: ret,
        args: Some(args),
        container_id: CONTAINER.to_owned(),
        pod: Some(PodMeta {
            namespace: "shop".into(),
            name: "web-7d9".into(),
            ..Default::default()
        }),
        exe_path: "/usr/bin/perl".into(),
        ..Default::default()
    }
}

/// The security-relevant calls the collector reports for one run of the
/// workload (its other calls — read, mmap, wait4, ... — are below what the
/// collector reports), plus one event of another container that must not
/// leak into the profile.
pub fn observed_batches() -> Vec<EventBatch> {
    let open = |path: &str, flags: u32| Args {
        path: path.into(),
        flags,
        ..Default::default()
    };
    let exec = |path: &str| Args {
        path: path.into(),
        ..Default::default()
    };
    let mut events = vec![
        event(EventType::Exec, "execve", 0, exec("/usr/bin/perl")),
        event(EventType::Open, "openat", 3, open("/etc/ld.so.cache", 0)),
        event(
            EventType::Open,
            "openat",
            3,
            open("/lib/x86_64-linux-gnu/libc.so.6", 0),
        ),
        event(EventType::Open, "openat", 3, open("/etc/hostname", 0)),
        event(
            EventType::Open,
            "openat",
            3,
            open("/tmp/out", 0o1 | 0o100 | 0o1000),
        ),
        event(EventType::Clone, "clone", 4242, Args::default()),
        event(EventType::Exec, "execve", 0, exec("/bin/true")),
    ];
    let mut stranger = event(EventType::Unshare, "unshare", 0, Args::default());
    stranger.container_id = "another".into();
    stranger.pod = None;
    events.push(stranger);
    vec![
        EventBatch {
            node: "node-1".into(),
            sequence: 1,
            events: events[..4].to_vec(),
            ..Default::default()
        },
        EventBatch {
            node: "node-1".into(),
            sequence: 2,
            events: events[4..].to_vec(),
            ..Default::default()
        },
    ]
}

pub fn runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigil-profile"))
}

/// Learns profiles from the recorded events into `out`; returns the
/// seccomp profile's path.
pub fn learn(out: &Path, enforce: bool) -> PathBuf {
    let events = out.join("events.pb");
    std::fs::write(
        &events,
        vigil_profiles::source::encode_file(&observed_batches()),
    )
    .unwrap();
    let mut command = Command::new(runner());
    command.args([
        "learn",
        "--name",
        "web",
        "--pod",
        "shop/web-7d9",
        "--workload",
        "web",
        "--container-name",
        "web",
    ]);
    command.arg("--events").arg(&events).arg("--out").arg(out);
    if enforce {
        command.arg("--enforce");
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "learn failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out.join("web.json")
}

/// Runs the workload under `vigil-profile exec` with these extra arguments.
pub fn run_workload(exec_args: &[&str], out_file: &Path) -> std::process::Output {
    Command::new(runner())
        .arg("exec")
        .args(exec_args)
        .args(["--", "perl", "-e", WORKLOAD])
        .env("OUT", out_file)
        .output()
        .unwrap()
}

/// `apparmor_parser` (Debian's apparmor package) parses the profile without
/// loading it into the kernel.
pub fn apparmor_parse(path: &Path) -> Result<(), String> {
    let output = Command::new("apparmor_parser")
        .args(["--skip-kernel-load", "--skip-cache", "--quiet"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run apparmor_parser (Debian package apparmor): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
