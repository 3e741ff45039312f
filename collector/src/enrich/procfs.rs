//! What /proc tells about a process: its entry for the process table, its
//! executable, working directory and descriptors' paths. Best effort, since
//! a short-lived process may be gone by the time its record is read.

use std::path::Path;

use super::process_table::{LOGIN_UID_UNSET, ProcessInfo};
use crate::kernel::abi;

/// The process's executable (`/proc/<pid>/exe`).
pub fn exe_path(pid: u32) -> Option<String> {
    link(format!("/proc/{pid}/exe"))
}

/// The thread's working directory. Threads may differ (unshare(CLONE_FS)),
/// so the thread's own entry is read.
pub fn cwd(pid: u32, tid: u32) -> Option<String> {
    link(format!("/proc/{pid}/task/{tid}/cwd")).or_else(|| link(format!("/proc/{pid}/cwd")))
}

/// The path behind descriptor `fd` of the process.
pub fn fd_path(pid: u32, fd: i32) -> Option<String> {
    link(format!("/proc/{pid}/fd/{fd}"))
}

fn link(path: String) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// The directory a relative path given with `dirfd` is relative to.
pub fn base_dir(pid: u32, tid: u32, dirfd: i32) -> Option<String> {
    if dirfd == abi::AT_FDCWD {
        cwd(pid, tid)
    } else {
        fd_path(pid, dirfd)
    }
}

/// One process from /proc, or `None` when it is gone (or was never there).
pub fn read_proc(root: &Path, pid: u32) -> Option<ProcessInfo> {
    let dir = root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let stat = parse_stat(&stat)?;
    let cmdline = std::fs::read(dir.join("cmdline"))
        .map(|bytes| split_cmdline(&bytes))
        .unwrap_or_default();
    let link = |name: &str| {
        std::fs::read_link(dir.join(name))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let login_uid = std::fs::read_to_string(dir.join("loginuid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(LOGIN_UID_UNSET);
    Some(ProcessInfo {
        pid,
        ppid: stat.ppid,
        comm: stat.comm,
        exe: link("exe"),
        cmdline,
        cwd: link("cwd"),
        tty: stat.tty,
        login_uid,
        start_ns: stat.start_ticks.saturating_mul(ns_per_tick()),
        // Whatever it did before is not known.
        ..ProcessInfo::default()
    })
}

/// The fields of `/proc/<pid>/stat` the table keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub tty: u32,
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The comm may hold spaces and parentheses, so
/// the fields after it are found from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // After ")": state(3) ppid(4) pgrp(5) session(6) tty_nr(7) ... starttime(22).
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        ppid: field(4)?.parse().ok()?,
        tty: field(7)?.parse::<i64>().ok()? as u32,
        start_ticks: field(22)?.parse().ok()?,
    })
}

fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

fn ns_per_tick() -> u64 {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100);
    1_000_000_000 / ticks as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_inspected() {
        let pid = std::process::id();
        let exe = exe_path(pid).unwrap();
        assert_eq!(exe, std::env::current_exe().unwrap().to_string_lossy());
        let here = std::env::current_dir().unwrap();
        assert_eq!(cwd(pid, pid).unwrap(), here.to_string_lossy());
        assert_eq!(
            base_dir(pid, pid, abi::AT_FDCWD).unwrap(),
            here.to_string_lossy()
        );
        assert_eq!(exe_path(u32::MAX), None);
    }

    #[test]
    fn stat_fields_are_found_after_the_last_parenthesis() {
        let line = "4242 (my (odd) cmd) S 17 4242 4242 34816 4242 4194560 \
                    1 2 3 4 5 6 7 8 20 0 1 0 987654 1000 100 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                comm: "my (odd) cmd".into(),
                ppid: 17,
                tty: 34816,
                start_ticks: 987654,
            }
        );
        assert_eq!(parse_stat("12 (x) S 1"), None, "short stat");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdline_is_split_on_nul() {
        assert_eq!(split_cmdline(b"sh\0-c\0echo hi\0"), ["sh", "-c", "echo hi"]);
        assert!(split_cmdline(b"").is_empty());
    }
}
