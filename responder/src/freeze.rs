//! The freeze action: stop every process of a container cgroup at once.
//! Reversible (thaw), and harmless to what the processes hold open, which
//! is why it is the first containment Vigil offers.

use std::time::Duration;

use vigil_cgroup::{FreezeOutcome, Freezer, Hierarchies};
use vigil_proto::v1::ActionOutcome;

/// Freezes `cgroup` and says what happened: SUCCEEDED, ALREADY_DONE (a
/// redelivered finding, or a second finding for a frozen container) or
/// FAILED with the error. Cgroup file I/O blocks while the kernel stops the
/// tasks, so it runs on the blocking pool.
pub async fn freeze(
    hierarchies: &Hierarchies,
    cgroup: &str,
    timeout: Duration,
) -> (ActionOutcome, String) {
    let (hierarchies, target) = (hierarchies.clone(), cgroup.to_owned());
    let result = tokio::task::spawn_blocking(move || hierarchies.freeze(&target, timeout)).await;
    match result {
        Ok(Ok(FreezeOutcome::Changed(freezer))) => (
            ActionOutcome::Succeeded,
            format!("froze cgroup {cgroup} with {}", describe(freezer)),
        ),
        Ok(Ok(FreezeOutcome::AlreadyInState(freezer))) => (
            ActionOutcome::AlreadyDone,
            format!("cgroup {cgroup} was already frozen ({})", describe(freezer)),
        ),
        Ok(Err(error)) => (ActionOutcome::Failed, error.to_string()),
        Err(error) => (
            ActionOutcome::Failed,
            format!("freeze of cgroup {cgroup} did not complete: {error}"),
        ),
    }
}

fn describe(freezer: Freezer) -> &'static str {
    match freezer {
        Freezer::V2 => "cgroup v2 cgroup.freeze",
        Freezer::V1 => "the cgroup v1 freezer",
    }
}
