//! What to do about a finding: a pure function of the policy, the finding
//! and the time, so every branch is unit-tested without a cgroup in sight.
//!
//! Checks run from cheapest and least surprising to most specific: not our
//! node, too minor, too old (all acknowledged silently), then protected
//! namespace and "is this a pod at all" (refused, with a record), then dry
//! run, and only then a real freeze.

use std::collections::BTreeSet;

use vigil_proto::v1::{Finding, Priority};

/// The default, and for now only, policy.
pub const POLICY_NAME: &str = "default-freeze";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub node: String,
    pub min_priority: Priority,
    pub protected_namespaces: BTreeSet<String>,
    pub max_finding_age_ns: u64,
    pub dry_run: bool,
}

/// Why a finding is acknowledged with no action and no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    OtherNode,
    BelowMinPriority,
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Ignore(Ignored),
    /// Record REFUSED with this reason.
    Refuse(String),
    /// Record DRY_RUN: this container cgroup would have been frozen.
    DryRun {
        cgroup: String,
    },
    /// Freeze this container cgroup.
    Freeze {
        cgroup: String,
    },
}

impl Decision {
    /// Label for `vigil_responder_findings_total{decision}`.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Ignore(Ignored::OtherNode) => "ignored_other_node",
            Decision::Ignore(Ignored::BelowMinPriority) => "ignored_below_min_priority",
            Decision::Ignore(Ignored::Stale) => "ignored_stale",
            Decision::Refuse(_) => "refused",
            Decision::DryRun { .. } => "dry_run",
            Decision::Freeze { .. } => "freeze",
        }
    }
}

/// Decides what to do about `finding` at wall-clock time `now_ns`.
pub fn decide(policy: &Policy, finding: &Finding, now_ns: u64) -> Decision {
    if finding.node != policy.node {
        return Decision::Ignore(Ignored::OtherNode);
    }
    if finding.priority() < policy.min_priority {
        return Decision::Ignore(Ignored::BelowMinPriority);
    }
    // A finding without a time is of unknown age: act rather than guess.
    if finding.time_ns > 0 && now_ns.saturating_sub(finding.time_ns) > policy.max_finding_age_ns {
        return Decision::Ignore(Ignored::Stale);
    }
    if policy.protected_namespaces.contains(&finding.namespace) {
        return Decision::Refuse(format!("namespace {} is protected", finding.namespace));
    }
    let cgroup = match container_cgroup(&finding.cgroup_path) {
        Ok(cgroup) => cgroup,
        Err(reason) => return Decision::Refuse(reason),
    };
    if policy.dry_run {
        Decision::DryRun { cgroup }
    } else {
        Decision::Freeze { cgroup }
    }
}

/// The cgroup of the pod container that `path` lies in: the path cut after
/// the container's own component, so a process in a sub-cgroup of the
/// container still gets the whole container frozen. Refuses, with the
/// reason, anything that is not plainly inside a pod container: host
/// cgroups, containers outside Kubernetes, and paths with `.` or `..`,
/// which a forged finding could use to reach any cgroup on the node.
pub fn container_cgroup(path: &str) -> Result<String, String> {
    if path.trim().is_empty() {
        return Err("not a pod container: the finding names no cgroup".to_owned());
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if components.iter().any(|c| *c == "." || *c == "..") {
        return Err(format!("cgroup path {path:?} is not a plain path"));
    }
    for end in 1..=components.len() {
        let prefix = components[..end].join("/");
        match vigil_cgroup::identify(&prefix) {
            Some(identity) if !identity.pod_uid.is_empty() => return Ok(prefix),
            // A container outside any pod: never ours to contain.
            Some(_) => break,
            None => {}
        }
    }
    Err(format!(
        "not a pod container: cgroup {path} has no pod UID and container id"
    ))
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::Priority;

    use super::*;

    const ID: &str = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const UID: &str = "0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    const NOW: u64 = 1_000_000_000_000;

    fn policy() -> Policy {
        Policy {
            node: "n1".into(),
            min_priority: Priority::Warning,
            protected_namespaces: ["kube-system".to_owned()].into(),
            max_finding_age_ns: 60_000_000_000,
            dry_run: false,
        }
    }

    fn pod_path() -> String {
        format!("kubepods/besteffort/pod{UID}/{ID}")
    }

    fn finding() -> Finding {
        Finding {
            id: "f1".into(),
            node: "n1".into(),
            priority: Priority::Critical as i32,
            namespace: "shop".into(),
            cgroup_path: pod_path(),
            time_ns: NOW - 1_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_finding_on_this_node_is_frozen() {
        assert_eq!(
            decide(&policy(), &finding(), NOW),
            Decision::Freeze { cgroup: pod_path() }
        );
        let at_threshold = Finding {
            priority: Priority::Warning as i32,
            ..finding()
        };
        assert!(matches!(
            decide(&policy(), &at_threshold, NOW),
            Decision::Freeze { .. }
        ));
    }

    #[test]
    fn other_nodes_minor_and_stale_findings_are_ignored() {
        let cases = [
            (
                Finding {
                    node: "n2".into(),
                    ..finding()
                },
                Ignored::OtherNode,
            ),
            (
                Finding {
                    node: String::new(),
                    ..finding()
                },
                Ignored::OtherNode,
            ),
            (
                Finding {
                    priority: Priority::Notice as i32,
                    ..finding()
                },
                Ignored::BelowMinPriority,
            ),
            (
                Finding {
                    priority: 0,
                    ..finding()
                },
                Ignored::BelowMinPriority,
            ),
            (
                Finding {
                    time_ns: NOW - 61_000_000_000,
                    ..finding()
                },
                Ignored::Stale,
            ),
        ];
        for (finding, why) in cases {
            assert_eq!(
                decide(&policy(), &finding, NOW),
                Decision::Ignore(why),
                "{finding:?}"
            );
        }
        let undated = Finding {
            time_ns: 0,
            ..finding()
        };
        assert!(matches!(
            decide(&policy(), &undated, NOW),
            Decision::Freeze { .. }
        ));
    }

    #[test]
    fn protected_namespaces_and_non_pods_are_refused_with_a_reason() {
        let protected = Finding {
            namespace: "kube-system".into(),
            ..finding()
        };
        assert_eq!(
            decide(&policy(), &protected, NOW),
            Decision::Refuse("namespace kube-system is protected".into())
        );
        for path in [
            String::new(),
            "user.slice/user-0.slice/session-1.scope".to_owned(),
            format!("system.slice/docker-{ID}.scope"),
            format!("kubepods/besteffort/pod{UID}"),
        ] {
            let host = Finding {
                cgroup_path: path.clone(),
                ..finding()
            };
            match decide(&policy(), &host, NOW) {
                Decision::Refuse(reason) => {
                    assert!(reason.starts_with("not a pod container"), "{reason}")
                }
                other => panic!("{path:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn dry_run_decides_the_same_target_without_freezing() {
        let policy = Policy {
            dry_run: true,
            ..policy()
        };
        assert_eq!(
            decide(&policy, &finding(), NOW),
            Decision::DryRun { cgroup: pod_path() }
        );
        let protected = Finding {
            namespace: "kube-system".into(),
            ..finding()
        };
        assert!(matches!(
            decide(&policy, &protected, NOW),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn the_target_is_the_container_cgroup_and_never_escapes_it() {
        assert_eq!(
            container_cgroup(&format!("/{}/", pod_path())),
            Ok(pod_path())
        );
        assert_eq!(
            container_cgroup(&format!("{}/init.scope", pod_path())),
            Ok(pod_path())
        );
        let systemd = format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        assert_eq!(container_cgroup(&systemd), Ok(systemd.clone()));
        for forged in [
            format!("{}/../../../../system.slice/sshd.service", pod_path()),
            format!("kubepods/./besteffort/pod{UID}/{ID}"),
        ] {
            let reason = container_cgroup(&forged).unwrap_err();
            assert!(reason.contains("not a plain path"), "{reason}");
        }
    }
}
