//! What to do about a finding: a pure function of the policy, the scope of
//! this process, the finding and the time, so every branch is unit-tested
//! without a cgroup or an API server in sight.
//!
//! Checks run from cheapest and least surprising to most specific: not our
//! node, too old, no policy rule, no action of ours (all acknowledged
//! silently), then protection and "is this a pod at all" (refused, with a
//! record per action), then dry run (the policy's switch, the configuration's, the action's,
//! or a pod outside what the policy enforces), and only then a real action.

use vigil_proto::v1::Finding;

use crate::policy::{Action, ActionSpec, Policy, Rule};

/// What this process does: a node agent acts on its own node's containers,
/// a cluster actor talks to the API server, `both` does both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub node: String,
    pub node_actions: bool,
    pub cluster_actions: bool,
    /// The global dry-run switch of the configuration.
    pub dry_run: bool,
}

impl Scope {
    fn covers(&self, action: Action) -> bool {
        if action.is_node_level() {
            self.node_actions
        } else {
            self.cluster_actions
        }
    }
}

/// Why a finding is acknowledged with no action and no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    OtherNode,
    Stale,
    NoRule,
    /// The rule's actions are all for the other process kind.
    NotOurs,
}

/// What becomes of one action of the matching rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Act,
    DryRun,
    Refuse(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub spec: ActionSpec,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'p> {
    Ignore(Ignored),
    Act {
        rule: &'p Rule,
        /// The pod container's cgroup (empty when the finding names none).
        cgroup: String,
        actions: Vec<Planned>,
    },
}

impl Decision<'_> {
    /// Label for `vigil_responder_findings_total{decision}`.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Ignore(Ignored::OtherNode) => "ignored_other_node",
            Decision::Ignore(Ignored::Stale) => "ignored_stale",
            Decision::Ignore(Ignored::NoRule) => "ignored_no_rule",
            Decision::Ignore(Ignored::NotOurs) => "ignored_not_ours",
            Decision::Act { actions, .. } => acting_label(actions),
        }
    }
}

/// Label for `vigil_responder_findings_total{decision}` of a finding acted
/// on with `actions` (after the rate limits had their say).
pub fn acting_label(actions: &[Planned]) -> &'static str {
    if actions.iter().any(|a| a.verdict == Verdict::Act) {
        "act"
    } else if actions.iter().any(|a| a.verdict == Verdict::DryRun) {
        "dry_run"
    } else {
        "refused"
    }
}

/// Whether the subject a finding came on vouches for the namespace its
/// payload names. Who may publish on a findings subject is fixed by the
/// NATS users' permissions (`vigil_bus::access`): on a subject that names a
/// namespace only the detectors (any priority) and the anomaly scorer
/// (warnings) may; the namespace-less subject (`_`) carries the collector's
/// drop findings and the consume loops' loss warnings too. A payload naming
/// another namespace than its subject is believed about nothing: it was
/// forged, or published by a credential that may not raise findings about
/// pods. Checked before any decision, so such a finding never acts.
pub fn subject_vouches_for(subject: &str, finding: &Finding) -> Result<(), String> {
    let claimed = vigil_bus::subject::token(&finding.namespace);
    match vigil_bus::subject::namespace_of_finding_subject(subject) {
        Some(vouched) if vouched == claimed => Ok(()),
        Some(vouched) => Err(format!(
            "its subject {subject} is for namespace {vouched}, its payload names {claimed}: \
             only a producer's subject is believed"
        )),
        None => Err(format!("{subject} is not a findings subject")),
    }
}

/// Decides what to do about `finding` at wall-clock time `now_ns`.
pub fn decide<'p>(
    policy: &'p Policy,
    scope: &Scope,
    finding: &Finding,
    now_ns: u64,
) -> Decision<'p> {
    // Node-level actions can only be taken on the container's own node.
    if scope.node_actions && finding.node != scope.node {
        return Decision::Ignore(Ignored::OtherNode);
    }
    // A finding without a time is of unknown age: act rather than guess.
    if finding.time_ns > 0 && now_ns.saturating_sub(finding.time_ns) > policy.max_finding_age_ns {
        return Decision::Ignore(Ignored::Stale);
    }
    let Some(rule) = policy.select(finding) else {
        return Decision::Ignore(Ignored::NoRule);
    };
    let specs: Vec<&ActionSpec> = rule
        .actions
        .iter()
        .filter(|spec| scope.covers(spec.action))
        .collect();
    if specs.is_empty() {
        return Decision::Ignore(Ignored::NotOurs);
    }
    let protection = policy.protection(&finding.namespace, &finding.pod_labels);
    let cgroup = container_cgroup(&finding.cgroup_path);
    let actions = specs
        .into_iter()
        .map(|spec| Planned {
            spec: spec.clone(),
            verdict: verdict(policy, scope, finding, spec, protection.as_ref(), &cgroup),
        })
        .collect();
    Decision::Act {
        rule,
        cgroup: cgroup.unwrap_or_default(),
        actions,
    }
}

fn verdict(
    policy: &Policy,
    scope: &Scope,
    finding: &Finding,
    spec: &ActionSpec,
    protection: Option<&String>,
    cgroup: &Result<String, NotAPodContainer>,
) -> Verdict {
    if let Some(reason) = protection {
        return Verdict::Refuse(reason.clone());
    }
    if spec.action.is_node_level() {
        if let Err(reason) = cgroup {
            return Verdict::Refuse(reason.to_string());
        }
        if spec.action == Action::KillProcess && finding.events.first().is_none_or(|e| e.pid == 0) {
            return Verdict::Refuse("kill_process: the finding names no process".to_owned());
        }
    } else if finding.namespace.is_empty() || finding.pod.is_empty() {
        return Verdict::Refuse(format!(
            "{}: the finding names no pod (namespace {:?}, pod {:?})",
            spec.action.label(),
            finding.namespace,
            finding.pod
        ));
    }
    // Outside what the policy enforces, the responder only records what it
    // would do (the shipped default enforces nowhere: detection first).
    let enforced = policy
        .enforce
        .covers(&finding.namespace, &finding.pod_labels);
    if policy.dry_run || scope.dry_run || spec.dry_run || !enforced {
        Verdict::DryRun
    } else {
        Verdict::Act
    }
}

/// The cgroup of the pod container that `path` lies in: the path cut after
/// the container's own component, so a process in a sub-cgroup of the
/// container still gets the whole container frozen. Refuses, with the
/// reason, anything that is not plainly inside a pod container: host
/// cgroups, containers outside Kubernetes, and paths with `.` or `..`,
/// which a forged finding could use to reach any cgroup on the node.
pub fn container_cgroup(path: &str) -> Result<String, NotAPodContainer> {
    if path.trim().is_empty() {
        return Err(NotAPodContainer::NoCgroup);
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if components.iter().any(|c| *c == "." || *c == "..") {
        return Err(NotAPodContainer::NotPlain(path.to_owned()));
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
    Err(NotAPodContainer::NoPod(path.to_owned()))
}

/// Why a finding's cgroup is not one the responder may act on. Final: the
/// same finding will never name another cgroup.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAPodContainer {
    #[error("not a pod container: the finding names no cgroup")]
    NoCgroup,
    #[error("cgroup path {0:?} is not a plain path")]
    NotPlain(String),
    #[error("not a pod container: cgroup {0} has no pod UID and container id")]
    NoPod(String),
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{Event, FindingSource, Priority};

    use super::*;
    use crate::policy::KillSignal;

    const ID: &str = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

    #[test]
    fn only_the_subjects_namespace_is_believed() {
        let mut shop = Finding {
            namespace: "shop".to_owned(),
            ..Finding::default()
        };
        assert_eq!(
            subject_vouches_for("vigil.findings.critical.shop", &shop),
            Ok(())
        );
        // A credential that may publish only namespace-less findings (the
        // collector's drops, the loss warnings) cannot name a pod's namespace.
        let forged = subject_vouches_for("vigil.findings.critical._", &shop).unwrap_err();
        assert!(
            forged.contains("namespace _") && forged.contains("shop"),
            "{forged}"
        );
        assert!(subject_vouches_for("vigil.findings.critical.other", &shop).is_err());
        assert!(subject_vouches_for("vigil.actions.n1.failed", &shop).is_err());
        shop.namespace.clear();
        assert_eq!(
            subject_vouches_for("vigil.findings.warning._", &shop),
            Ok(())
        );
    }
    const UID: &str = "0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    const NOW: u64 = 1_000_000_000_000;

    fn policy() -> Policy {
        Policy::parse(
            "rate_limits:\n  per_pod: { max: 1, per_seconds: 60 }\n  global: { max: 5, per_seconds: 60 }\nmax_finding_age_seconds: 60\nrules:\n  - name: contain\n    match: { min_priority: warning }\n    actions:\n      - kind: freeze\n      - kind: kill_process\n        dry_run: true\n      - kind: quarantine\n",
            "test.yaml",
        )
        .unwrap()
    }

    fn node_scope() -> Scope {
        Scope {
            node: "n1".into(),
            node_actions: true,
            cluster_actions: false,
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
            source: FindingSource::Rule as i32,
            namespace: "shop".into(),
            pod: "web-1".into(),
            cgroup_path: pod_path(),
            time_ns: NOW - 1_000,
            events: vec![Event {
                pid: 42,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn verdicts(decision: &Decision<'_>) -> Vec<(Action, Verdict)> {
        match decision {
            Decision::Act { actions, .. } => actions
                .iter()
                .map(|p| (p.spec.action, p.verdict.clone()))
                .collect(),
            Decision::Ignore(why) => panic!("ignored: {why:?}"),
        }
    }

    #[test]
    fn a_node_agent_takes_the_node_actions_of_the_matching_rule() {
        let policy = policy();
        let decision = decide(&policy, &node_scope(), &finding(), NOW);
        let Decision::Act { rule, cgroup, .. } = &decision else {
            panic!("{decision:?}")
        };
        assert_eq!(rule.name, "contain");
        assert_eq!(cgroup, &pod_path());
        assert_eq!(
            verdicts(&decision),
            vec![
                (Action::Freeze, Verdict::Act),
                (Action::KillProcess, Verdict::DryRun)
            ]
        );
        assert_eq!(decision.label(), "act");
        assert_eq!(policy.rules[0].actions[1].signal, KillSignal::Kill);
    }

    #[test]
    fn the_default_policy_records_a_dry_run_until_the_namespace_is_enforced() {
        let shipped = Policy::default_policy().unwrap();
        let decision = decide(&shipped, &node_scope(), &finding(), NOW);
        assert_eq!(
            verdicts(&decision),
            vec![(Action::Freeze, Verdict::DryRun)],
            "namespace shop is not enforced by the shipped default"
        );
        assert_eq!(decision.label(), "dry_run");

        let text = crate::policy::default_policy_enforcing("{ namespaces: [shop] }");
        let enforcing = Policy::parse(&text, "enforcing.yaml").unwrap();
        let decision = decide(&enforcing, &node_scope(), &finding(), NOW);
        assert_eq!(verdicts(&decision), vec![(Action::Freeze, Verdict::Act)]);
        let elsewhere = Finding {
            namespace: "payments".into(),
            ..finding()
        };
        assert_eq!(
            verdicts(&decide(&enforcing, &node_scope(), &elsewhere, NOW)),
            vec![(Action::Freeze, Verdict::DryRun)]
        );
    }

    #[test]
    fn enforcement_by_pod_label_acts_on_labelled_pods_only() {
        let text = crate::policy::default_policy_enforcing(
            "{ pod_labels: { vigil.dev/enforce: \"true\" } }",
        );
        let policy = Policy::parse(&text, "labels.yaml").unwrap();
        assert_eq!(
            verdicts(&decide(&policy, &node_scope(), &finding(), NOW)),
            vec![(Action::Freeze, Verdict::DryRun)]
        );
        let labelled = Finding {
            pod_labels: [("vigil.dev/enforce".to_owned(), "true".to_owned())].into(),
            ..finding()
        };
        assert_eq!(
            verdicts(&decide(&policy, &node_scope(), &labelled, NOW)),
            vec![(Action::Freeze, Verdict::Act)]
        );
    }

    #[test]
    fn a_cluster_actor_takes_the_cluster_actions_of_any_node() {
        let policy = policy();
        let scope = Scope {
            node: "cluster".into(),
            node_actions: false,
            cluster_actions: true,
            dry_run: false,
        };
        let finding = Finding {
            node: "elsewhere".into(),
            ..finding()
        };
        assert_eq!(
            verdicts(&decide(&policy, &scope, &finding, NOW)),
            vec![(Action::Quarantine, Verdict::Act)]
        );
        let podless = Finding {
            pod: String::new(),
            ..finding
        };
        let verdicts = verdicts(&decide(&policy, &scope, &podless, NOW));
        assert!(
            matches!(&verdicts[0].1, Verdict::Refuse(r) if r.contains("names no pod")),
            "{verdicts:?}"
        );
    }

    #[test]
    fn other_nodes_stale_and_unmatched_findings_are_ignored() {
        let policy = policy();
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
                    priority: Priority::Notice as i32,
                    ..finding()
                },
                Ignored::NoRule,
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
                decide(&policy, &node_scope(), &finding, NOW),
                Decision::Ignore(why),
                "{finding:?}"
            );
        }
        let undated = Finding {
            time_ns: 0,
            ..finding()
        };
        assert_eq!(decide(&policy, &node_scope(), &undated, NOW).label(), "act");
        let cluster_only = Policy::parse(
            "rate_limits:\n  per_pod: { max: 1, per_seconds: 60 }\n  global: { max: 5, per_seconds: 60 }\nmax_finding_age_seconds: 60\nrules:\n  - name: label\n    actions: [{ kind: quarantine }]\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(
            decide(&cluster_only, &node_scope(), &finding(), NOW),
            Decision::Ignore(Ignored::NotOurs)
        );
    }

    #[test]
    fn protected_pods_and_non_pods_are_refused_whatever_the_finding() {
        let policy = policy();
        let protected = Finding {
            namespace: "kube-system".into(),
            ..finding()
        };
        for (_, verdict) in verdicts(&decide(&policy, &node_scope(), &protected, NOW)) {
            assert_eq!(
                verdict,
                Verdict::Refuse("namespace kube-system is protected".into())
            );
        }
        let host = Finding {
            cgroup_path: "system.slice/sshd.service".into(),
            ..finding()
        };
        let decision = decide(&policy, &node_scope(), &host, NOW);
        assert_eq!(decision.label(), "refused");
        for (_, verdict) in verdicts(&decision) {
            assert!(matches!(verdict, Verdict::Refuse(r) if r.contains("not a pod container")));
        }
        let no_pid = Finding {
            events: Vec::new(),
            ..finding()
        };
        let verdicts = verdicts(&decide(&policy, &node_scope(), &no_pid, NOW));
        assert!(matches!(&verdicts[1].1, Verdict::Refuse(r) if r.contains("names no process")));
    }

    #[test]
    fn global_dry_run_applies_to_every_action() {
        let policy = policy();
        let scope = Scope {
            dry_run: true,
            ..node_scope()
        };
        let decision = decide(&policy, &scope, &finding(), NOW);
        assert_eq!(decision.label(), "dry_run");
        assert!(
            verdicts(&decision)
                .iter()
                .all(|(_, v)| *v == Verdict::DryRun)
        );
    }

    #[test]
    fn the_container_cgroup_is_found_and_forged_paths_are_refused() {
        assert_eq!(container_cgroup(&pod_path()), Ok(pod_path()));
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
            assert_eq!(reason, NotAPodContainer::NotPlain(forged.clone()));
            assert!(reason.to_string().contains("not a plain path"), "{reason}");
        }
        assert_eq!(container_cgroup(""), Err(NotAPodContainer::NoCgroup));
        assert!(matches!(
            container_cgroup(&format!("docker/{ID}")),
            Err(NotAPodContainer::NoPod(_))
        ));
    }
}
