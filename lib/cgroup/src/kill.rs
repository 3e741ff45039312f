//! Killing every process of a cgroup, and listing them.
//!
//! v2 (5.14+) has `cgroup.kill`, which SIGKILLs the whole subtree at once, so
//! a process forking in a loop cannot escape. Elsewhere the pids in
//! `cgroup.procs` are signalled one by one, through a pidfd so that a pid
//! recycled in between is never hit, until none is left.

use std::{fs, io, path::PathBuf, time::Duration};

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use crate::Hierarchies;

/// How a cgroup was emptied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillMethod {
    /// `cgroup.kill` (v2).
    CgroupKill,
    /// Every pid in `cgroup.procs`, signalled through a pidfd.
    EachPid,
}

#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error("cgroup {cgroup} does not exist in any hierarchy")]
    NoSuchCgroup { cgroup: String },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("process {pid} is not in cgroup {cgroup} (it is in {actual:?})")]
    NotInCgroup {
        pid: u32,
        cgroup: String,
        actual: Option<String>,
    },
    #[error("process {pid} does not exist")]
    NoSuchProcess { pid: u32 },
    #[error("cannot signal process {pid}: {source}")]
    Signal {
        pid: u32,
        #[source]
        source: io::Error,
    },
}

impl Hierarchies {
    /// Pids in `cgroup` itself (not its children): the unified hierarchy if
    /// the cgroup exists there, else the v1 freezer.
    pub fn procs(&self, cgroup: &str) -> Result<Vec<u32>, KillError> {
        let dir = self.existing_dir(cgroup)?;
        let path = dir.join("cgroup.procs");
        let text = fs::read_to_string(&path).map_err(|source| KillError::Io { path, source })?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Pids in `cgroup` and every cgroup below it.
    pub fn procs_recursive(&self, cgroup: &str) -> Result<Vec<u32>, KillError> {
        let root = self.existing_dir(cgroup)?;
        let mut pids = Vec::new();
        let mut pending = vec![root];
        while let Some(dir) = pending.pop() {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
            if let Ok(entries) = fs::read_dir(&dir) {
                pending.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        Ok(pids)
    }

    /// SIGKILLs every process in `cgroup` and below. Returns how, and how
    /// many processes were there when it started.
    pub fn kill_all(&self, cgroup: &str) -> Result<(KillMethod, usize), KillError> {
        let count = self.procs_recursive(cgroup)?.len();
        if let Some(dir) = self.unified_dir(cgroup) {
            let file = dir.join("cgroup.kill");
            if file.is_file() {
                fs::write(&file, "1").map_err(|source| KillError::Io { path: file, source })?;
                return Ok((KillMethod::CgroupKill, count));
            }
        }
        // Without cgroup.kill a process may fork while we walk the list, so
        // walk again until the cgroup is empty (bounded: a fork bomb that
        // outruns us is left to the freeze).
        for _ in 0..50 {
            let pids = self.procs_recursive(cgroup)?;
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                match signal_pid(pid, Signal::KILL) {
                    Ok(()) | Err(KillError::NoSuchProcess { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok((KillMethod::EachPid, count))
    }

    /// Sends `signal` to process `pid`, only if it is inside `cgroup` (or a
    /// cgroup below it). The pidfd is opened first and the membership checked
    /// after, so the check and the signal are about the same process.
    pub fn signal_in_cgroup(
        &self,
        pid: u32,
        cgroup: &str,
        signal: Signal,
    ) -> Result<(), KillError> {
        let pidfd = open_pidfd(pid)?;
        let actual = crate::unified_path_of_pid(pid).or_else(|| v1_freezer_path_of_pid(pid));
        let inside = actual.as_deref().is_some_and(|path| {
            path == cgroup
                || path
                    .strip_prefix(cgroup)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !inside {
            return Err(KillError::NotInCgroup {
                pid,
                cgroup: cgroup.to_owned(),
                actual,
            });
        }
        pidfd_send_signal(&pidfd, signal).map_err(|errno| map_signal_error(pid, errno))
    }

    fn existing_dir(&self, cgroup: &str) -> Result<PathBuf, KillError> {
        [self.unified_dir(cgroup), self.freezer_dir(cgroup)]
            .into_iter()
            .flatten()
            .find(|dir| dir.join("cgroup.procs").is_file())
            .ok_or_else(|| KillError::NoSuchCgroup {
                cgroup: cgroup.to_owned(),
            })
    }
}

fn open_pidfd(pid: u32) -> Result<rustix::fd::OwnedFd, KillError> {
    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Err(KillError::NoSuchProcess { pid });
    };
    pidfd_open(raw, PidfdFlags::empty()).map_err(|errno| map_signal_error(pid, errno))
}

fn signal_pid(pid: u32, signal: Signal) -> Result<(), KillError> {
    let pidfd = open_pidfd(pid)?;
    pidfd_send_signal(&pidfd, signal).map_err(|errno| map_signal_error(pid, errno))
}

fn map_signal_error(pid: u32, errno: rustix::io::Errno) -> KillError {
    if errno == rustix::io::Errno::SRCH {
        KillError::NoSuchProcess { pid }
    } else {
        KillError::Signal {
            pid,
            source: errno.into(),
        }
    }
}

/// The process's cgroup in the v1 freezer hierarchy (hybrid or v1 hosts).
fn v1_freezer_path_of_pid(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "freezer")
            .then(|| path.trim_start_matches('/').to_owned())
    })
}
