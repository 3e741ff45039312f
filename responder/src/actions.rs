//! Every action the responder can take, in one table ([`TABLE`]): its
//! policy name (also the record id suffix and the metric label), its kind
//! in records, the level it runs at, how it is carried out, and what undoes
//! it on release. Adding an action is a variant of [`Action`] and a row here
//! (plus its executor in `node` or `kube_actions`).

use std::time::Duration;

use futures::future::BoxFuture;
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::{ActionKind, ActionOutcome, Finding};

use crate::{
    kube_actions::{Kube, KubeError},
    node::{self, NodeError},
    policy::{Action, KillSignal},
};

/// What carrying out (or declining) one action came to: the record's
/// outcome and the detail that says what was done, found or refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub outcome: ActionOutcome,
    pub detail: String,
}

impl Done {
    pub fn succeeded(detail: String) -> Self {
        Self::new(ActionOutcome::Succeeded, detail)
    }

    pub fn already(detail: String) -> Self {
        Self::new(ActionOutcome::AlreadyDone, detail)
    }

    pub fn refused(detail: String) -> Self {
        Self::new(ActionOutcome::Refused, detail)
    }

    pub fn dry_run(detail: String) -> Self {
        Self::new(ActionOutcome::DryRun, detail)
    }

    pub fn failed(error: &ActionError) -> Self {
        Self::new(ActionOutcome::Failed, error.to_string())
    }

    fn new(outcome: ActionOutcome, detail: String) -> Self {
        Self { outcome, detail }
    }

    /// Whether the action is now in force (so its undo has work to do).
    pub fn in_force(&self) -> bool {
        matches!(
            self.outcome,
            ActionOutcome::Succeeded | ActionOutcome::AlreadyDone
        )
    }
}

/// Why an action could not be carried out; it becomes a FAILED record.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("{0} needs kube.enabled = true")]
    NoKube(&'static str),
}

impl ActionError {
    /// Whether carrying the action out again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            ActionError::Node(error) => error.retryable(),
            ActionError::Kube(error) => error.retryable(),
            ActionError::NoKube(_) => false,
        }
    }
}

/// Where an action is carried out: by the agent on the container's node
/// (cgroups, namespaces) or through the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Node,
    Cluster,
}

/// What every executor acts with.
pub struct Means {
    pub hierarchies: Hierarchies,
    pub freeze_timeout: Duration,
    pub kube: Option<Kube>,
}

impl Means {
    fn kube(&self, label: &'static str) -> Result<&Kube, ActionError> {
        self.kube.as_ref().ok_or(ActionError::NoKube(label))
    }
}

/// What an executor acts on.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub finding: &'a Finding,
    /// The pod container's cgroup (node-level actions).
    pub cgroup: &'a str,
    /// The offending process (kill_process).
    pub pid: u32,
    pub signal: KillSignal,
}

pub type Executor = for<'a> fn(&'a Means, Target<'a>) -> BoxFuture<'a, Result<Done, ActionError>>;

/// One row of [`TABLE`].
pub struct Entry {
    pub action: Action,
    /// Policy name, record id suffix and `kind` metric label.
    pub label: &'static str,
    pub kind: ActionKind,
    pub level: Level,
    pub run: Executor,
    /// What undoes it on release; `None` for what cannot be undone.
    pub undo: Option<Undo>,
}

/// The undo of an action that stays in force until released.
pub struct Undo {
    pub label: &'static str,
    pub kind: ActionKind,
    pub run: Executor,
}

pub static TABLE: [Entry; 8] = [
    Entry {
        action: Action::Freeze,
        label: "freeze",
        kind: ActionKind::Freeze,
        level: Level::Node,
        run: |m, t| {
            Box::pin(
                async move { Ok(node::freeze(&m.hierarchies, t.cgroup, m.freeze_timeout).await?) },
            )
        },
        undo: Some(Undo {
            label: "thaw",
            kind: ActionKind::Thaw,
            run: |m, t| {
                Box::pin(async move {
                    Ok(node::thaw(&m.hierarchies, t.cgroup, m.freeze_timeout).await?)
                })
            },
        }),
    },
    Entry {
        action: Action::KillProcess,
        label: "kill_process",
        kind: ActionKind::KillProcess,
        level: Level::Node,
        run: |m, t| {
            Box::pin(async move {
                Ok(node::kill_process(&m.hierarchies, t.cgroup, t.pid, t.signal).await?)
            })
        },
        undo: None,
    },
    Entry {
        action: Action::KillContainer,
        label: "kill_container",
        kind: ActionKind::KillContainer,
        level: Level::Node,
        run: |m, t| {
            Box::pin(async move { Ok(node::kill_container(&m.hierarchies, t.cgroup).await?) })
        },
        undo: None,
    },
    Entry {
        action: Action::NetworkCut,
        label: "network_cut",
        kind: ActionKind::NetworkCut,
        level: Level::Node,
        run: |m, t| {
            Box::pin(async move { Ok(node::network(&m.hierarchies, t.cgroup, true).await?) })
        },
        undo: Some(Undo {
            label: "network_restore",
            kind: ActionKind::NetworkRestore,
            run: |m, t| {
                Box::pin(async move { Ok(node::network(&m.hierarchies, t.cgroup, false).await?) })
            },
        }),
    },
    Entry {
        action: Action::Quarantine,
        label: "quarantine",
        kind: ActionKind::Quarantine,
        level: Level::Cluster,
        run: |m, t| Box::pin(async move { Ok(m.kube("quarantine")?.quarantine(t.finding).await?) }),
        undo: Some(Undo {
            label: "release",
            kind: ActionKind::Release,
            run: |m, t| {
                Box::pin(async move {
                    Ok(m.kube("release")?
                        .release(&t.finding.namespace, &t.finding.pod)
                        .await?)
                })
            },
        }),
    },
    Entry {
        action: Action::Annotate,
        label: "annotate",
        kind: ActionKind::Annotate,
        level: Level::Cluster,
        run: |m, t| Box::pin(async move { Ok(m.kube("annotate")?.annotate(t.finding).await?) }),
        undo: None,
    },
    Entry {
        action: Action::Evict,
        label: "evict",
        kind: ActionKind::Evict,
        level: Level::Cluster,
        run: |m, t| Box::pin(async move { Ok(m.kube("evict")?.evict(t.finding).await?) }),
        undo: None,
    },
    Entry {
        action: Action::DeletePod,
        label: "delete_pod",
        kind: ActionKind::DeletePod,
        level: Level::Cluster,
        run: |m, t| Box::pin(async move { Ok(m.kube("delete_pod")?.delete(t.finding).await?) }),
        undo: None,
    },
];

/// The row of `action`. The match is exhaustive, so an action without a
/// row does not compile; that each row is its action's is tested.
pub fn entry(action: Action) -> &'static Entry {
    match action {
        Action::Freeze => &TABLE[0],
        Action::KillProcess => &TABLE[1],
        Action::KillContainer => &TABLE[2],
        Action::NetworkCut => &TABLE[3],
        Action::Quarantine => &TABLE[4],
        Action::Annotate => &TABLE[5],
        Action::Evict => &TABLE[6],
        Action::DeletePod => &TABLE[7],
    }
}

/// The row of the action recorded as `kind`, if it is one the policy names.
pub fn by_kind(kind: ActionKind) -> Option<&'static Entry> {
    TABLE.iter().find(|entry| entry.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_row_with_distinct_names() {
        let actions: Vec<Action> = TABLE.iter().map(|e| e.action).collect();
        let all = [
            Action::Freeze,
            Action::KillProcess,
            Action::KillContainer,
            Action::NetworkCut,
            Action::Quarantine,
            Action::Annotate,
            Action::Evict,
            Action::DeletePod,
        ];
        for action in all {
            assert_eq!(
                actions.iter().filter(|a| **a == action).count(),
                1,
                "{action:?}"
            );
            assert_eq!(entry(action).action, action, "the row of {action:?}");
        }
        let mut labels: Vec<&str> = TABLE
            .iter()
            .flat_map(|e| std::iter::once(e.label).chain(e.undo.as_ref().map(|u| u.label)))
            .collect();
        let count = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(
            labels.len(),
            count,
            "labels are record id suffixes: {labels:?}"
        );
        for entry in &TABLE {
            assert_eq!(by_kind(entry.kind).map(|e| e.action), Some(entry.action));
        }
    }

    #[test]
    fn the_crate_docs_table_is_this_table() {
        let documented: Vec<(String, String, String)> = include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .map(|row| {
                let cells: Vec<&str> = row
                    .trim_end_matches('|')
                    .split(" | ")
                    .map(str::trim)
                    .collect();
                let name = |cell: &str| cell.trim_matches('`').to_owned();
                (name(cells[0]), cells[1].to_owned(), name(cells[3]))
            })
            .collect();
        let actual: Vec<(String, String, String)> = TABLE
            .iter()
            .map(|e| {
                let level = match e.level {
                    Level::Node => "node",
                    Level::Cluster => "cluster",
                };
                let undo = e.undo.as_ref().map_or("—", |u| u.label);
                (e.label.to_owned(), level.to_owned(), undo.to_owned())
            })
            .collect();
        assert_eq!(documented, actual);
    }
}
