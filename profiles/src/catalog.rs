//! The breakout catalog: container-breakout techniques, the syscalls each
//! needs, and a real attempt of each from a child process.
//!
//! An attempt is a few lines of Perl (perl-base is part of every Debian
//! system) that makes the technique's syscall with real arguments and
//! prints `ready`, then `ok` or `errno=N`. The child runs unconfined (in its
//! own mount namespace), or under a seccomp profile as root, or under the
//! whole restricted profile: seccomp, non-root user, no capabilities,
//! no_new_privs — what a `restricted` pod with the learned profile gets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One technique.
#[derive(Clone, Copy, Debug)]
pub struct Technique {
    pub id: &'static str,
    pub description: &'static str,
    /// The syscalls the technique cannot do without.
    pub syscalls: &'static [&'static str],
    /// Perl that sets `$r` (negative on failure, with `$!` set); strings it
    /// passes to `syscall` are variables, as Perl wants them writable. `NR(x)` is
    /// replaced by syscall x's number, `@DIR@` by a scratch directory,
    /// `@PID@` by another process's pid, `@SOCK@` by a root-only unix socket,
    /// `@CGROUP_PROCS@` by the root cgroup's `cgroup.procs`. Files are opened
    /// with `sysopen` and no O_CREAT, and nothing is ever written.
    code: &'static str,
}

pub const CATALOG: &[Technique] = &[
    Technique {
        id: "mount-filesystem",
        description: "mount a file system (host disk, procfs, tmpfs) to reach or shadow the host's files",
        syscalls: &["mount"],
        code: r#"my ($s, $t, $f) = ("none", "@DIR@", "tmpfs"); $r = syscall(NR(mount), $s, $t, $f, 0, 0);"#,
    },
    Technique {
        id: "cgroup-release-agent",
        description: "mount a cgroup v1 hierarchy to set release_agent, run by the host on cgroup release",
        syscalls: &["mount"],
        code: r#"my ($s, $t, $f, $o) = ("cgroup", "@DIR@", "cgroup", "rdma"); $r = syscall(NR(mount), $s, $t, $f, 0, $o);"#,
    },
    Technique {
        id: "unshare-user-namespace",
        description: "unshare a user namespace to gain every capability in it (the first step of most kernel exploits)",
        syscalls: &["unshare"],
        code: r#"$r = syscall(NR(unshare), 0x10000000);"#,
    },
    Technique {
        id: "unshare-mount-namespace",
        description: "unshare a mount namespace to remount and hide files",
        syscalls: &["unshare"],
        code: r#"$r = syscall(NR(unshare), 0x00020000);"#,
    },
    Technique {
        id: "setns-host-namespace",
        description: "join another mount namespace with setns (the host's, through /proc/1/ns/mnt, where hostPID shows it); attempted on the process's own, which /proc always shows",
        syscalls: &["setns"],
        code: r#"if (open(my $f, "<", "/proc/self/ns/mnt")) { $r = syscall(NR(setns), fileno($f), 0x00020000); } else { $r = -1; }"#,
    },
    Technique {
        id: "ptrace-other-process",
        description: "attach to another process with ptrace to inject code",
        syscalls: &["ptrace"],
        code: r#"$r = syscall(NR(ptrace), 16, @PID@, 0, 0);"#,
    },
    Technique {
        id: "pidfd-steal-fd",
        description: "steal a file descriptor from another process (pidfd_open + pidfd_getfd)",
        syscalls: &["pidfd_open", "pidfd_getfd"],
        code: r#"my $p = syscall(NR(pidfd_open), @PID@, 0); $r = $p < 0 ? $p : syscall(NR(pidfd_getfd), $p, 0, 0);"#,
    },
    Technique {
        id: "kernel-module",
        description: "load a kernel module (finit_module)",
        syscalls: &["finit_module", "init_module"],
        code: r#"if (open(my $f, "<", "/dev/null")) { my $p = ""; $r = syscall(NR(finit_module), fileno($f), $p, 0); } else { $r = -1; }"#,
    },
    Technique {
        id: "bpf-program",
        description: "create BPF maps and programs (kernel attack surface, reading kernel memory)",
        syscalls: &["bpf"],
        code: r#"my $a = pack("LLLL", 2, 4, 4, 1) . ("\0" x 128); $r = syscall(NR(bpf), 0, $a, length($a));"#,
    },
    Technique {
        id: "keyctl-keyring",
        description: "reach the kernel keyring (keys are not namespaced; keyctl bugs)",
        syscalls: &["keyctl", "add_key", "request_key"],
        code: r#"$r = syscall(NR(keyctl), 0, -3, 0);"#,
    },
    Technique {
        id: "userfaultfd",
        description: "userfaultfd, which stalls kernel threads to widen race windows in exploits",
        syscalls: &["userfaultfd"],
        code: r#"$r = syscall(NR(userfaultfd), 1);"#,
    },
    Technique {
        id: "io-uring",
        description: "io_uring, a large kernel surface that bypasses syscall-level monitoring",
        syscalls: &["io_uring_setup"],
        code: r#"my $p = "\0" x 120; $r = syscall(NR(io_uring_setup), 8, $p);"#,
    },
    Technique {
        id: "perf-event-open",
        description: "perf_event_open, a frequent source of kernel privilege escalations",
        syscalls: &["perf_event_open"],
        code: r#"my $a = pack("LLQ", 1, 128, 0) . ("\0" x 112); $r = syscall(NR(perf_event_open), $a, 0, -1, -1, 0);"#,
    },
    Technique {
        id: "open-by-handle",
        description: "open_by_handle_at on the host file system (the 'shocker' breakout)",
        syscalls: &["open_by_handle_at"],
        code: r#"if (open(my $m, "<", "/")) { my $h = pack("LlQ", 8, 1, 2); $r = syscall(NR(open_by_handle_at), fileno($m), $h, 0); } else { $r = -1; }"#,
    },
    Technique {
        id: "chroot-escape",
        description: "chroot to break out of a chroot-style root",
        syscalls: &["chroot"],
        code: r#"my $d = "@DIR@"; $r = syscall(NR(chroot), $d);"#,
    },
    Technique {
        id: "pivot-root",
        description: "pivot_root to swap the container's root",
        syscalls: &["pivot_root"],
        code: r#"my ($n, $o) = ("@DIR@", "@DIR@"); $r = syscall(NR(pivot_root), $n, $o);"#,
    },
    Technique {
        id: "mknod-block-device",
        description: "create a block device node to read the host disk raw",
        syscalls: &["mknodat", "mknod"],
        code: r#"my $p = "@DIR@/sda"; $r = syscall(NR(mknodat), -100, $p, 0060600, 2048);"#,
    },
    Technique {
        id: "core-pattern-write",
        description: "open /proc/sys/kernel/core_pattern for writing: a pipe there runs as root on the host",
        syscalls: &["openat"],
        code: r#"$r = sysopen(my $f, "/proc/sys/kernel/core_pattern", 1) ? 0 : -1;"#,
    },
    Technique {
        id: "cgroup-escape",
        description: "open the root cgroup's cgroup.procs for writing, to move out of the container's cgroup and its limits",
        syscalls: &["openat"],
        code: r#"$r = sysopen(my $f, "@CGROUP_PROCS@", 1) ? 0 : -1;"#,
    },
    Technique {
        id: "container-runtime-socket",
        description: "connect to the container runtime's socket (containerd, docker, cri-o) to start a privileged container",
        syscalls: &["socket", "connect"],
        code: r#"use Socket; my $s; $r = (socket($s, PF_UNIX, SOCK_STREAM, 0) && connect($s, pack_sockaddr_un("@SOCK@"))) ? 0 : -1;"#,
    },
];

/// Syscall numbers of the catalog's syscalls on this architecture.
fn number(name: &str) -> Option<i64> {
    #[cfg(target_arch = "x86_64")]
    let table: &[(&str, i64)] = &[
        ("mount", 165),
        ("unshare", 272),
        ("setns", 308),
        ("ptrace", 101),
        ("pidfd_open", 434),
        ("pidfd_getfd", 438),
        ("finit_module", 313),
        ("bpf", 321),
        ("keyctl", 250),
        ("userfaultfd", 323),
        ("io_uring_setup", 425),
        ("perf_event_open", 298),
        ("open_by_handle_at", 304),
        ("chroot", 161),
        ("pivot_root", 155),
        ("mknodat", 259),
    ];
    #[cfg(target_arch = "aarch64")]
    let table: &[(&str, i64)] = &[
        ("mount", 40),
        ("unshare", 97),
        ("setns", 268),
        ("ptrace", 117),
        ("pidfd_open", 434),
        ("pidfd_getfd", 438),
        ("finit_module", 273),
        ("bpf", 280),
        ("keyctl", 219),
        ("userfaultfd", 282),
        ("io_uring_setup", 425),
        ("perf_event_open", 241),
        ("open_by_handle_at", 265),
        ("chroot", 51),
        ("pivot_root", 41),
        ("mknodat", 33),
    ];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let table: &[(&str, i64)] = &[];
    table.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr)
}

/// What an attempt needs from its surroundings.
#[derive(Clone, Debug)]
pub struct Scene {
    pub dir: PathBuf,
    pub victim_pid: u32,
    pub runtime_socket: PathBuf,
    pub cgroup_procs: PathBuf,
}

/// The root cgroup's `cgroup.procs`: the unified hierarchy's, else the
/// first v1 hierarchy's.
pub fn root_cgroup_procs() -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let unified = root.join("cgroup.procs");
    if unified.is_file() {
        return Some(unified);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("cgroup.procs"))
        .filter(|path| path.is_file())
        .collect();
    candidates.sort();
    candidates.into_iter().next()
}

/// The Perl program of one attempt.
pub fn program(technique: &Technique, scene: &Scene) -> String {
    let mut code = technique.code.to_owned();
    for name in technique.syscalls {
        if let Some(nr) = number(name) {
            code = code.replace(&format!("NR({name})"), &nr.to_string());
        }
    }
    let code = code
        .replace("@DIR@", &scene.dir.to_string_lossy())
        .replace("@PID@", &scene.victim_pid.to_string())
        .replace("@SOCK@", &scene.runtime_socket.to_string_lossy())
        .replace("@CGROUP_PROCS@", &scene.cgroup_procs.to_string_lossy());
    format!(
        "$| = 1; print \"ready\\n\"; my $r; {code} print((($r // -1) < 0) ? \"errno=\" . ($! + 0) . \"\\n\" : \"ok\\n\");"
    )
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Refused with EPERM or EACCES, or killed by SIGSYS.
    Blocked(String),
    /// The syscall did what it was asked.
    Succeeded,
    /// It reached the kernel and failed for another reason (bad argument,
    /// feature disabled): not blocked by the profile.
    OtherError(i32),
    /// The attempt never got to the syscall (the interpreter did not start):
    /// neither blocked nor allowed; a broken run.
    DidNotRun(String),
}

impl Outcome {
    pub fn blocked(&self) -> bool {
        matches!(self, Outcome::Blocked(_))
    }
}

const EPERM: i32 = 1;
const EACCES: i32 = 13;
const SIGSYS: i32 = 31;

/// Reads an attempt's output.
pub fn classify(output: &Output) -> Outcome {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    if lines.next() != Some("ready") {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Outcome::DidNotRun(format!(
            "status {}; stderr: {}",
            output.status,
            stderr.trim()
        ));
    }
    match lines.next() {
        Some("ok") => Outcome::Succeeded,
        Some(line) => match line
            .strip_prefix("errno=")
            .and_then(|n| n.parse::<i32>().ok())
        {
            Some(EPERM) => Outcome::Blocked("EPERM".to_owned()),
            Some(EACCES) => Outcome::Blocked("EACCES".to_owned()),
            Some(errno) => Outcome::OtherError(errno),
            None => Outcome::DidNotRun(format!("unexpected output {line:?}")),
        },
        None => match std::os::unix::process::ExitStatusExt::signal(&output.status) {
            Some(SIGSYS) => Outcome::Blocked("SIGSYS".to_owned()),
            _ => Outcome::DidNotRun(format!(
                "no result; status {}; stderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        },
    }
}

/// How the attempting child is confined.
#[derive(Clone, Debug)]
pub enum Confinement {
    /// Root with every capability, in its own mount namespace (the control).
    Unconfined,
    /// Root, under the seccomp profile at this path.
    SeccompOnly(PathBuf),
    /// Under the seccomp profile as uid/gid 65534 with no capabilities.
    Restricted(PathBuf),
}

/// The uid and gid of a restricted pod here (`nobody`).
pub const RESTRICTED_ID: u32 = 65534;

/// The command for `program` under `confinement`; `runner` is the
/// `vigil-profile` binary.
pub fn command(runner: &Path, confinement: &Confinement, program: &str) -> Command {
    let mut command = match confinement {
        Confinement::Unconfined => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--"]);
            c
        }
        Confinement::SeccompOnly(profile) => {
            let mut c = Command::new(runner);
            c.arg("exec").arg("--seccomp").arg(profile).arg("--");
            c
        }
        Confinement::Restricted(profile) => {
            let mut c = Command::new(runner);
            c.arg("exec").arg("--seccomp").arg(profile);
            c.arg("--user")
                .arg(format!("{RESTRICTED_ID}:{RESTRICTED_ID}"))
                .arg("--");
            c
        }
    };
    command.args(["perl", "-e", program]);
    command
}

/// Runs one technique under `confinement`.
pub fn attempt(
    runner: &Path,
    confinement: &Confinement,
    technique: &Technique,
    scene: &Scene,
) -> Outcome {
    match command(runner, confinement, &program(technique, scene)).output() {
        Ok(output) => classify(&output),
        Err(e) => Outcome::DidNotRun(format!("cannot start: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_technique_names_guarded_syscalls_with_numbers_here() {
        let scene = Scene {
            dir: "/tmp/x".into(),
            victim_pid: 7,
            runtime_socket: "/tmp/s".into(),
            cgroup_procs: "/sys/fs/cgroup/cgroup.procs".into(),
        };
        for technique in CATALOG {
            let program = program(technique, &scene);
            assert!(
                !program.contains("NR("),
                "{}: a syscall number is missing: {program}",
                technique.id
            );
            assert!(
                !program.contains('@'),
                "{}: a placeholder is left: {program}",
                technique.id
            );
        }
        let ids: std::collections::BTreeSet<_> = CATALOG.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), CATALOG.len());
    }
}
