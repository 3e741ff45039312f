//! Node-level actions, carried out by the agent on the container's node:
//! freeze and thaw the container's cgroup, kill the offending process or
//! every process of the container, cut and restore its network.
//!
//! Each returns the outcome and a reason that says what was done, found or
//! failed. Cgroup and nft work blocks (the kernel stops tasks, nft talks
//! netlink in a child process), so it runs on the blocking pool.

use std::time::Duration;

use vigil_cgroup::{FreezeOutcome, Freezer, Hierarchies, KillError, KillMethod, Signal};
use vigil_proto::v1::ActionOutcome;

use crate::{
    netns::{self, NetOutcome},
    policy::KillSignal,
};

/// What a node action did: outcome and the reason for the record.
pub type Done = (ActionOutcome, String);

/// Runs `work` on the blocking pool; a panic in it is a failed action.
async fn blocking(what: &str, work: impl FnOnce() -> Done + Send + 'static) -> Done {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            (
                ActionOutcome::Failed,
                format!("{what} did not complete: {error}"),
            )
        })
}

pub async fn freeze(hierarchies: &Hierarchies, cgroup: &str, timeout: Duration) -> Done {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("freeze", move || {
        match hierarchies.freeze(&target, timeout) {
            Ok(FreezeOutcome::Changed(freezer)) => (
                ActionOutcome::Succeeded,
                format!("froze cgroup {target} with {}", describe(freezer)),
            ),
            Ok(FreezeOutcome::AlreadyInState(freezer)) => (
                ActionOutcome::AlreadyDone,
                format!("cgroup {target} was already frozen ({})", describe(freezer)),
            ),
            Err(error) => (ActionOutcome::Failed, error.to_string()),
        }
    })
    .await
}

pub async fn thaw(hierarchies: &Hierarchies, cgroup: &str, timeout: Duration) -> Done {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("thaw", move || match hierarchies.thaw(&target, timeout) {
        Ok(FreezeOutcome::Changed(freezer)) => (
            ActionOutcome::Succeeded,
            format!("thawed cgroup {target} with {}", describe(freezer)),
        ),
        Ok(FreezeOutcome::AlreadyInState(_)) => (
            ActionOutcome::AlreadyDone,
            format!("cgroup {target} was not frozen"),
        ),
        Err(error) => (ActionOutcome::Failed, error.to_string()),
    })
    .await
}

/// Signals process `pid`, only if it is still inside `cgroup`.
pub async fn kill_process(
    hierarchies: &Hierarchies,
    cgroup: &str,
    pid: u32,
    signal: KillSignal,
) -> Done {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("kill_process", move || {
        match hierarchies.signal_in_cgroup(pid, &target, to_signal(signal)) {
            Ok(()) => (
                ActionOutcome::Succeeded,
                format!(
                    "sent SIG{} to process {pid} in cgroup {target}",
                    signal.name()
                ),
            ),
            Err(KillError::NoSuchProcess { .. }) => (
                ActionOutcome::AlreadyDone,
                format!("process {pid} had already exited"),
            ),
            Err(error) => (ActionOutcome::Failed, error.to_string()),
        }
    })
    .await
}

/// Kills every process of the container.
pub async fn kill_container(hierarchies: &Hierarchies, cgroup: &str) -> Done {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("kill_container", move || {
        match hierarchies.kill_all(&target) {
            Ok((_, 0)) => (
                ActionOutcome::AlreadyDone,
                format!("cgroup {target} had no process left"),
            ),
            Ok((method, count)) => (
                ActionOutcome::Succeeded,
                format!(
                    "killed the {count} process(es) of cgroup {target} with {}",
                    match method {
                        KillMethod::CgroupKill => "cgroup.kill",
                        KillMethod::EachPid => "SIGKILL to each pid",
                    }
                ),
            ),
            Err(error) => (ActionOutcome::Failed, error.to_string()),
        }
    })
    .await
}

/// Cuts (`cut = true`) or restores the network of the container's namespace,
/// entered through any process of the cgroup.
pub async fn network(hierarchies: &Hierarchies, cgroup: &str, cut: bool) -> Done {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    blocking("network", move || {
        let pid = match hierarchies.procs_recursive(&target) {
            Ok(pids) => match pids.first() {
                Some(pid) => *pid,
                None => {
                    return (
                        ActionOutcome::Failed,
                        format!("cgroup {target} has no process whose network namespace to enter"),
                    );
                }
            },
            Err(error) => return (ActionOutcome::Failed, error.to_string()),
        };
        let (result, verb) = if cut {
            (netns::cut(pid), "cut")
        } else {
            (netns::restore(pid), "restored")
        };
        match result {
            Ok(NetOutcome::Changed) => (
                ActionOutcome::Succeeded,
                format!(
                    "{verb} the network of cgroup {target} (nft table {} in the namespace of process {pid})",
                    netns::TABLE
                ),
            ),
            Ok(NetOutcome::AlreadyInState) => (
                ActionOutcome::AlreadyDone,
                format!("the network of cgroup {target} was already {verb}"),
            ),
            Err(error) => (ActionOutcome::Failed, error.to_string()),
        }
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
