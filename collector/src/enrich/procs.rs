//! The process table: what the collector knows about every live process,
//! so each event can carry its command line, terminal, login uid, start
//! time and ancestry without reading /proc for every event.
//!
//! Seeded from /proc at start (processes that existed before the collector
//! are known), then kept current by the event stream: an exec replaces the
//! image, a clone copies the parent, an exit reclaims the entry. A process
//! seen for the first time (its clone was missed or dropped) is read from
//! /proc once. A /proc entry that cannot be read means the process is gone,
//! which is normal for short-lived processes and never an error.

use std::{collections::HashMap, path::Path};

use vigil_proto::v1::{Ancestor, Event, EventType};

/// `CLONE_THREAD`: the clone made a thread, not a process.
const CLONE_THREAD: u32 = 0x0001_0000;
/// The audit login uid of a process that never logged in.
pub const LOGIN_UID_UNSET: u32 = u32::MAX;
/// Default ancestry depth carried in `Event.ancestors`.
pub const DEFAULT_ANCESTRY_DEPTH: usize = 4;
/// Default number of processes remembered.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// One process as the table knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub cwd: String,
    /// `tty_nr` of /proc/<pid>/stat; 0 when none.
    pub tty: u32,
    pub login_uid: u32,
    /// Start time since boot in ns (from /proc's clock ticks, or the event's
    /// kernel time for a process seen being cloned).
    pub start_ns: u64,
}

/// pid → process, bounded, with ancestry lookups.
#[derive(Debug)]
pub struct ProcessTable {
    proc_root: std::path::PathBuf,
    entries: HashMap<u32, ProcessInfo>,
    depth: usize,
    capacity: usize,
}

impl ProcessTable {
    /// An empty table reading `proc_root` (normally `/proc`).
    pub fn new(proc_root: &Path, depth: usize, capacity: usize) -> Self {
        Self {
            proc_root: proc_root.to_owned(),
            entries: HashMap::new(),
            depth,
            capacity: capacity.max(1),
        }
    }

    /// A table holding every process that exists now.
    pub fn seeded(proc_root: &Path, depth: usize, capacity: usize) -> Self {
        let mut table = Self::new(proc_root, depth, capacity);
        table.seed();
        table
    }

    /// Reads every numeric entry of /proc; the ones that vanish meanwhile
    /// are skipped.
    pub fn seed(&mut self) {
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            tracing::warn!(message = "Cannot list /proc; the process table starts empty.", root = %self.proc_root.display());
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if self.entries.len() >= self.capacity {
                break;
            }
            if let Some(info) = read_proc(&self.proc_root, pid) {
                self.entries.insert(pid, info);
            }
        }
        tracing::debug!(
            message = "Seeded the process table.",
            processes = self.entries.len()
        );
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.entries.get(&pid)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Updates the table from `event` and fills the event's process fields
    /// (cmdline, tty, login uid, start time, ancestors, exe and cwd when
    /// the event lacks them).
    pub fn apply(&mut self, event: &mut Event) {
        match event.r#type() {
            EventType::Exec if event.return_value >= 0 => self.on_exec(event),
            EventType::Clone => self.on_clone(event),
            _ => {
                self.known(event.pid);
            }
        }
        if event.ppid != 0
            && let Some(info) = self.entries.get_mut(&event.pid)
        {
            // Reparenting (the parent exited) is only visible this way.
            info.ppid = event.ppid;
        }
        self.fill(event);
        if event.r#type() == EventType::Exit {
            self.entries.remove(&event.pid);
        }
    }

    /// The ancestors of `pid`, parent first, up to the configured depth.
    pub fn ancestors(&mut self, pid: u32) -> Vec<Ancestor> {
        let mut chain = Vec::with_capacity(self.depth);
        let mut current = self.known(pid).map(|info| info.ppid);
        while let Some(ppid) = current {
            if chain.len() >= self.depth || ppid == 0 || ppid == pid {
                break;
            }
            let Some(parent) = self.known(ppid) else {
                break;
            };
            chain.push(Ancestor {
                pid: parent.pid,
                comm: parent.comm.clone(),
                exe_path: parent.exe.clone(),
                cmdline: parent.cmdline.clone(),
            });
            current = (parent.ppid != ppid).then_some(parent.ppid);
        }
        chain
    }

    fn fill(&mut self, event: &mut Event) {
        event.ancestors = self.ancestors(event.pid);
        let Some(info) = self.entries.get(&event.pid) else {
            return;
        };
        if event.cmdline.is_empty() {
            event.cmdline.clone_from(&info.cmdline);
        }
        if event.exe_path.is_empty() {
            event.exe_path.clone_from(&info.exe);
        }
        if event.cwd.is_empty() {
            event.cwd.clone_from(&info.cwd);
        }
        if event.ppid == 0 {
            event.ppid = info.ppid;
        }
        if event.login_uid == 0 && info.login_uid != 0 {
            event.login_uid = info.login_uid;
        }
        event.tty = info.tty;
        event.process_start_ns = info.start_ns;
    }

    /// The entry for `pid`, read from /proc the first time it is seen.
    fn known(&mut self, pid: u32) -> Option<&ProcessInfo> {
        if !self.entries.contains_key(&pid) {
            let info = read_proc(&self.proc_root, pid)?;
            self.insert(info);
        }
        self.entries.get(&pid)
    }

    fn on_exec(&mut self, event: &Event) {
        let pid = event.pid;
        // The new image: comm, exe and argv change; ancestry, tty, login
        // uid and start time stay.
        let mut info = self.entries.remove(&pid).unwrap_or_else(|| {
            read_proc(&self.proc_root, pid).unwrap_or(ProcessInfo {
                pid,
                ppid: event.ppid,
                login_uid: event.login_uid,
                start_ns: event.kernel_time_ns,
                ..ProcessInfo::default()
            })
        });
        info.comm.clone_from(&event.comm);
        if let Some(args) = &event.args {
            if !args.argv.is_empty() {
                info.cmdline.clone_from(&args.argv);
            }
            if !args.path.is_empty() {
                info.exe.clone_from(&args.path);
            }
        }
        if !event.exe_path.is_empty() {
            info.exe.clone_from(&event.exe_path);
        }
        if !event.cwd.is_empty() {
            info.cwd.clone_from(&event.cwd);
        }
        if event.ppid != 0 {
            info.ppid = event.ppid;
        }
        self.insert(info);
    }

    fn on_clone(&mut self, event: &Event) {
        let flags = event.args.as_ref().map_or(0, |a| a.flags);
        let Ok(child) = u32::try_from(event.return_value) else {
            return;
        };
        if child == 0 || flags & CLONE_THREAD != 0 {
            return;
        }
        let Some(parent) = self.known(event.pid) else {
            return;
        };
        let info = ProcessInfo {
            pid: child,
            ppid: parent.pid,
            start_ns: event.kernel_time_ns,
            ..parent.clone()
        };
        self.insert(info);
    }

    fn insert(&mut self, info: ProcessInfo) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&info.pid) {
            self.reclaim_dead();
        }
        if self.entries.len() < self.capacity || self.entries.contains_key(&info.pid) {
            self.entries.insert(info.pid, info);
        }
    }

    /// Exits can be dropped under load: when full, forget the processes
    /// /proc no longer has.
    fn reclaim_dead(&mut self) {
        let root = self.proc_root.clone();
        self.entries
            .retain(|pid, _| root.join(pid.to_string()).exists());
        tracing::debug!(
            message = "Reclaimed exited processes.",
            remaining = self.entries.len()
        );
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
    })
}

/// The fields of /proc/<pid>/stat the table keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub tty: u32,
    pub start_ticks: u64,
}

/// Parses /proc/<pid>/stat. The comm may hold spaces and parentheses, so
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
