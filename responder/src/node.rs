//! Node-level actions, carried out by the agent on the container's node:
//! freeze and thaw the container's cgroup, kill the offending process or
//! every process of the container, cut and restore its network.
//!
//! Each returns what it did (a [`Done`]: outcome and detail for the record)
//! or a [`NodeError`] that says what failed. Cgroup and nft work blocks (the
//! kernel stops tasks, nft talks netlink in a child process), so it runs on
//! the blocking pool.

use std::time::Duration;

use vigil_cgroup::{
    FreezeError, FreezeOutcome, Freezer, Hierarchies, KillError, KillMethod, Signal,
};

use crate::{
    actions::Done,
    netns::{self, NetError, NetOutcome},
    policy::KillSignal,
};

/// Why a node action could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    #[error(transparent)]
    Kill(#[from] KillError),
    #[error(transparent)]
    Network(#[from] NetError),
    #[error("cgroup {cgroup} has no process whose network namespace to enter")]
    NoProcess { cgroup: String },
    #[error("{what} did not complete: {message}")]
    Aborted { what: &'static str, message: String },
}

impl NodeError {
    /// Whether trying again later may succeed: a slow freeze or a transient
    /// I/O error may; a cgroup or process that is gone, or a namespace that
    /// must not be cut, will not come back.
    pub fn retryable(&self) -> bool {
        match self {
            NodeError::Freeze(FreezeError::Timeout { .. } | FreezeError::Io { .. }) => true,
            NodeError::Kill(KillError::Io { .. } | KillError::Signal { .. }) => true,
            NodeError::Network(NetError::Spawn { .. } | NetError::Nft { .. }) => true,
            NodeError::Aborted { .. } => true,
            NodeError::Freeze(FreezeError::NoSuchCgroup { .. })
            | NodeError::Kill(_)
            | NodeError::Network(_)
            | NodeError::NoProcess { .. } => false,
        }
    }
}

type Result<T> = std::result::Result<T, NodeError>;

/// Runs `work` on the blocking pool; a panic in it is a failed action.
async fn blocking(
    what: &'static str,
    work: impl FnOnce() -> Result<Done> + Send + 'static,
) -> Result<Done> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(NodeError::Aborted {
                what,
                message: error.to_string(),
            })
        })
}

pub async fn freeze(hierarchies: &Hierarchies, cgroup: &str, timeout: Duration) -> Result<Done> {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("freeze", move || {
        Ok(match hierarchies.freeze(&target, timeout)? {
            FreezeOutcome::Changed(freezer) => {
                Done::succeeded(format!("froze cgroup {target} with {}", describe(freezer)))
            }
            FreezeOutcome::AlreadyInState(freezer) => Done::already(format!(
                "cgroup {target} was already frozen ({})",
                describe(freezer)
            )),
        })
    })
    .await
}

pub async fn thaw(hierarchies: &Hierarchies, cgroup: &str, timeout: Duration) -> Result<Done> {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("thaw", move || {
        Ok(match hierarchies.thaw(&target, timeout)? {
            FreezeOutcome::Changed(freezer) => {
                Done::succeeded(format!("thawed cgroup {target} with {}", describe(freezer)))
            }
            FreezeOutcome::AlreadyInState(_) => {
                Done::already(format!("cgroup {target} was not frozen"))
            }
        })
    })
    .await
}

/// Signals process `pid`, only if it is still inside `cgroup`.
pub async fn kill_process(
    hierarchies: &Hierarchies,
    cgroup: &str,
    pid: u32,
    signal: KillSignal,
) -> Result<Done> {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("kill_process", move || {
        match hierarchies.signal_in_cgroup(pid, &target, to_signal(signal)) {
            Ok(()) => Ok(Done::succeeded(format!(
                "sent SIG{} to process {pid} in cgroup {target}",
                signal.name()
            ))),
            Err(KillError::NoSuchProcess { .. }) => {
                Ok(Done::already(format!("process {pid} had already exited")))
            }
            Err(error) => Err(error.into()),
        }
    })
    .await
}

/// Kills every process of the container.
pub async fn kill_container(hierarchies: &Hierarchies, cgroup: &str) -> Result<Done> {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("kill_container", move || {
        Ok(match hierarchies.kill_all(&target)? {
            (_, 0) => Done::already(format!("cgroup {target} had no process left")),
            (method, count) => Done::succeeded(format!(
                "killed the {count} process(es) of cgroup {target} with {}",
                match method {
                    KillMethod::CgroupKill => "cgroup.kill",
                    KillMethod::EachPid => "SIGKILL to each pid",
                }
            )),
        })
    })
    .await
}

/// Cuts (`cut = true`) or restores the network of the container's namespace,
/// entered through any process of the cgroup.
pub async fn network(hierarchies: &Hierarchies, cgroup: &str, cut: bool) -> Result<Done> {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("network", move || {
        let Some(&pid) = hierarchies.procs_recursive(&target)?.first() else {
            return Err(NodeError::NoProcess { cgroup: target });
        };
        let (result, verb) = if cut {
            (netns::cut(pid), "cut")
        } else {
            (netns::restore(pid), "restored")
        };
        Ok(match result? {
            NetOutcome::Changed => Done::succeeded(format!(
                "{verb} the network of cgroup {target} (nft table {} in the namespace of process {pid})",
                netns::TABLE
            )),
            NetOutcome::AlreadyInState => {
                Done::already(format!("the network of cgroup {target} was already {verb}"))
            }
        })
    })
    .await
}

fn to_signal(signal: KillSignal) -> Signal {
    match signal {
        KillSignal::Kill => Signal::KILL,
        KillSignal::Term => Signal::TERM,
    }
}

fn describe(freezer: Freezer) -> &'static str {
    match freezer {
        Freezer::V2 => "cgroup v2 cgroup.freeze",
        Freezer::V1 => "the cgroup v1 freezer",
    }
}
