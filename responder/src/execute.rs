//! Carrying out decisions: the automatic response to a finding, and the
//! manual quarantine and release that the gRPC service asks for. Both end
//! in action records and in the quarantine state.

use std::{sync::Mutex, time::Duration};

use vigil_bus::{Publisher, TraceContext};
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, Finding, QuarantineState};
use vigil_service::clock;

use crate::{
    config::Config,
    decide::{Decision, Planned, Scope, Verdict, decide},
    kube_actions::Kube,
    limits::{Admission, RateLimiter},
    metrics, node,
    policy::{Action, Policy},
    publish,
    record::{self, Acted, Context},
    state::{self, State},
};

/// Who asked, in records of automatic responses.
pub const BY_POLICY: &str = "policy";

/// The responder: policy, state, and the means to act.
pub struct Responder {
    policy: Policy,
    scope: Scope,
    hierarchies: Hierarchies,
    freeze_timeout: Duration,
    state: State,
    publisher: Publisher,
    kube: Option<Kube>,
    limiter: Mutex<RateLimiter>,
}

/// Actions that stay in force until released, and what undoes each.
fn undo_of(kind: ActionKind) -> Option<ActionKind> {
    match kind {
        ActionKind::Freeze => Some(ActionKind::Thaw),
        ActionKind::NetworkCut => Some(ActionKind::NetworkRestore),
        ActionKind::Quarantine => Some(ActionKind::Release),
        _ => None,
    }
}

impl Responder {
    pub fn new(
        config: &Config,
        policy: Policy,
        state: State,
        publisher: Publisher,
        kube: Option<Kube>,
    ) -> Self {
        let hierarchies = Hierarchies::detect_under(&config.cgroup_root);
        if hierarchies.unified.is_none() && hierarchies.freezer_v1.is_none() && !config.dry_run {
            // Not fatal: every node action will be recorded FAILED with this reason.
            tracing::warn!(message = "No freezable cgroup hierarchy found.", root = %config.cgroup_root.display());
        }
        let limiter = RateLimiter::new(policy.per_pod, policy.global);
        Self {
            scope: Scope {
                node: config.node_name.clone(),
                node_actions: config.mode.node_actions(),
                cluster_actions: config.mode.cluster_actions(),
                dry_run: config.dry_run,
            },
            policy,
            hierarchies,
            freeze_timeout: config.freeze_timeout(),
            state,
            publisher,
            kube,
            limiter: Mutex::new(limiter),
        }
    }

    /// The automatic response to one finding. An error means "retry later":
    /// everything done so far is idempotent.
    pub(crate) async fn respond(
        &self,
        finding: &Finding,
        trace: &TraceContext,
        received_ns: u64,
    ) -> Result<(), String> {
        let seen = self.state.was_handled(&finding.id).await;
        if seen.map_err(|e| self.failed("state", e))? {
            count("duplicate");
            return Ok(());
        }
        let decision = decide(&self.policy, &self.scope, finding, clock::wall_ns());
        let Decision::Act {
            rule,
            cgroup,
            mut actions,
        } = decision
        else {
            count(decision.label());
            tracing::debug!(message = "Not acting on finding.", id = %finding.id, decision = decision.label());
            return Ok(());
        };
        let key = state::finding_pod_key(finding);
        if self.already_contained(&key, &actions).await? {
            count("already_contained");
            return self.mark_handled(finding, &[]).await;
        }
        if !self.admit(&key, &mut actions) {
            count("rate_limited_suppressed");
            return self.mark_handled(finding, &[]).await;
        }
        count(
            Decision::Act {
                rule,
                cgroup: String::new(),
                actions: actions.clone(),
            }
            .label(),
        );

        let context = Context {
            node: self.scope.node.clone(),
            dry_run: self.scope.dry_run || self.policy.dry_run,
            trace_id: trace.trace_id_hex(),
            finding_received_ns: received_ns,
            policy: rule.name.clone(),
            requested_by: BY_POLICY.to_owned(),
        };
        let mut records = Vec::new();
        let mut in_force = Vec::new();
        for planned in &actions {
            let acted = self.execute(finding, &cgroup, planned).await;
            if matches!(
                acted.outcome,
                ActionOutcome::Succeeded | ActionOutcome::AlreadyDone
            ) && undo_of(acted.kind).is_some()
            {
                in_force.push(acted.kind);
            }
            records.push(record::build(finding, acted, &context, clock::wall_ns()));
        }
        self.publish_all(&records, &trace.child()).await?;
        if !in_force.is_empty() {
            let template = state::template(
                finding,
                &self.scope.node,
                &cgroup,
                BY_POLICY,
                clock::wall_ns(),
            );
            self.state
                .add_active(&key, &template, &in_force)
                .await
                .map_err(|e| self.failed("state", e))?;
        }
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        self.mark_handled(finding, &ids).await
    }

    /// A pod whose reversible containment of this kind is all in force
    /// already needs nothing more: later findings about it are the same
    /// attack seen again (a flood), not a new one.
    async fn already_contained(&self, key: &str, actions: &[Planned]) -> Result<bool, String> {
        let wanted: Vec<i32> = actions
            .iter()
            .filter(|p| p.verdict == Verdict::Act)
            .map(|p| p.spec.action.kind())
            .filter(|kind| undo_of(*kind).is_some())
            .map(|kind| kind as i32)
            .collect();
        if wanted.is_empty() {
            return Ok(false);
        }
        let existing = self
            .state
            .quarantined(key)
            .await
            .map_err(|e| self.failed("state", e))?;
        Ok(existing.is_some_and(|s| wanted.iter().all(|kind| s.active.contains(kind))))
    }

    /// Applies the rate limits to the actions about to be taken. Returns
    /// false when the finding should leave no record (a repeated refusal).
    fn admit(&self, key: &str, actions: &mut [Planned]) -> bool {
        if !actions.iter().any(|p| p.verdict == Verdict::Act) {
            return true;
        }
        let admission = match self.limiter.lock() {
            Ok(mut limiter) => limiter.admit(key, clock::monotonic_ns()),
            // A panic elsewhere poisoned it: refuse rather than act unlimited.
            Err(_) => Admission::Limited {
                first: true,
                per_pod: false,
            },
        };
        match admission {
            Admission::Allowed => true,
            Admission::Limited { first: false, .. } => false,
            Admission::Limited {
                first: true,
                per_pod,
            } => {
                let limit = if per_pod {
                    self.policy.per_pod
                } else {
                    self.policy.global
                };
                let reason = format!(
                    "rate limited: at most {} containment(s) {} per {} s",
                    limit.max,
                    if per_pod {
                        "of this pod"
                    } else {
                        "on this node"
                    },
                    limit.per_seconds
                );
                for planned in actions.iter_mut().filter(|p| p.verdict == Verdict::Act) {
                    planned.verdict = Verdict::Refuse(reason.clone());
                }
                true
            }
        }
    }

    async fn execute(&self, finding: &Finding, cgroup: &str, planned: &Planned) -> Acted {
        let action = planned.spec.action;
        let target = if action.is_node_level() {
            format!("cgroup {cgroup}")
        } else {
            format!("pod {}/{}", finding.namespace, finding.pod)
        };
        let pid = finding.events.first().map_or(0, |e| e.pid);
        let started_ns = clock::monotonic_ns();
        let (outcome, reason) = match &planned.verdict {
            Verdict::Refuse(reason) => (ActionOutcome::Refused, reason.clone()),
            Verdict::DryRun => {
                // With no dry-run switch on, only the policy's `enforce` made
                // it one: say so, or an operator cannot tell why nothing happened.
                let why = if planned.spec.dry_run || self.scope.dry_run || self.policy.dry_run {
                    String::new()
                } else {
                    format!(
                        " (not enforced: pod {}/{} is outside the policy's enforce)",
                        finding.namespace, finding.pod
                    )
                };
                (
                    ActionOutcome::DryRun,
                    format!("dry run: would {} {target}{why}", action.label()),
                )
            }
            Verdict::Act => match action {
                Action::Freeze => {
                    node::freeze(&self.hierarchies, cgroup, self.freeze_timeout).await
                }
                Action::KillProcess => {
                    node::kill_process(&self.hierarchies, cgroup, pid, planned.spec.signal).await
                }
                Action::KillContainer => node::kill_container(&self.hierarchies, cgroup).await,
                Action::NetworkCut => node::network(&self.hierarchies, cgroup, true).await,
                Action::Quarantine | Action::Annotate | Action::Evict | Action::DeletePod => {
                    match &self.kube {
                        Some(kube) => kube.act(action, finding).await,
                        None => (
                            ActionOutcome::Failed,
                            "cluster actions need kube.enabled = true".to_owned(),
                        ),
                    }
                }
            },
        };
        let completed_ns = clock::monotonic_ns();
        observe(action.label(), outcome, finding, started_ns, completed_ns);
        Acted {
            action: action.label(),
            kind: action.kind(),
            outcome,
            reason,
            cgroup_path: if action.is_node_level() && !cgroup.is_empty() {
                cgroup.to_owned()
            } else {
                finding.cgroup_path.clone()
            },
            pid: if action == Action::KillProcess {
                pid
            } else {
                0
            },
            started_ns,
            completed_ns,
        }
    }

    /// Quarantines a pod by hand (gRPC): the cluster-level quarantine, and
    /// the node-level freeze and network cut when this agent knows the
    /// pod's container (from an earlier finding) and it runs here.
    pub async fn quarantine(
        &self,
        namespace: &str,
        pod: &str,
        requested_by: &str,
        reason: &str,
        finding_id: &str,
        dry_run: bool,
    ) -> Result<Vec<ActionRecord>, String> {
        let now = clock::wall_ns();
        let key = state::pod_key(namespace, pod, "", "");
        let known = self
            .state
            .quarantined(&key)
            .await
            .map_err(|e| self.failed("state", e))?;
        let finding = Finding {
            id: if finding_id.is_empty() {
                format!("manual-{namespace}.{pod}-{now}")
            } else {
                finding_id.to_owned()
            },
            name: format!("manual quarantine: {reason}"),
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            node: known.as_ref().map_or_else(String::new, |s| s.node.clone()),
            container_id: known
                .as_ref()
                .map_or_else(String::new, |s| s.container_id.clone()),
            cgroup_path: known
                .as_ref()
                .map_or_else(String::new, |s| s.cgroup_path.clone()),
            ..Default::default()
        };
        let mut actions = Vec::new();
        if self.scope.cluster_actions {
            actions.push(Action::Quarantine);
        }
        let on_this_node = self.scope.node_actions
            && finding.node == self.scope.node
            && !finding.cgroup_path.is_empty();
        if on_this_node {
            actions.extend([Action::Freeze, Action::NetworkCut]);
        }
        if actions.is_empty() {
            return Err(format!(
                "this responder (mode {}) cannot quarantine {namespace}/{pod}: no Kubernetes API and no known container on node {}",
                if self.scope.cluster_actions {
                    "cluster"
                } else {
                    "node"
                },
                self.scope.node
            ));
        }
        let protection = self.policy.protection(namespace, &Default::default());
        let dry_run = dry_run || self.scope.dry_run || self.policy.dry_run;
        let planned: Vec<Planned> = actions
            .into_iter()
            .map(|action| Planned {
                spec: crate::policy::ActionSpec {
                    action,
                    dry_run,
                    signal: Default::default(),
                },
                verdict: match (&protection, dry_run) {
                    (Some(why), _) => Verdict::Refuse(why.clone()),
                    (None, true) => Verdict::DryRun,
                    (None, false) => Verdict::Act,
                },
            })
            .collect();
        // A manual request starts its own trace; the records carry its id.
        let trace = TraceContext::new_root();
        let context = self.manual_context(requested_by, dry_run, &trace);
        let mut records = Vec::new();
        let mut in_force = Vec::new();
        for plan in &planned {
            let acted = self.execute(&finding, &finding.cgroup_path, plan).await;
            if matches!(
                acted.outcome,
                ActionOutcome::Succeeded | ActionOutcome::AlreadyDone
            ) {
                in_force.push(acted.kind);
            }
            records.push(record::build(&finding, acted, &context, clock::wall_ns()));
        }
        self.publish_all(&records, &trace).await?;
        if !in_force.is_empty() {
            let template = state::template(
                &finding,
                &self.scope.node,
                &finding.cgroup_path,
                requested_by,
                now,
            );
            self.state
                .add_active(&key, &template, &in_force)
                .await
                .map_err(|e| self.failed("state", e))?;
        }
        Ok(records)
    }

    /// Undoes what is in force on a pod, as far as this process can: thaw
    /// and restore the network when the pod runs on this node, remove the
    /// quarantine label through the API when this process talks to it.
    pub async fn release(
        &self,
        key: &str,
        requested_by: &str,
        dry_run: bool,
    ) -> Result<Vec<ActionRecord>, String> {
        let Some(state) = self
            .state
            .quarantined(key)
            .await
            .map_err(|e| self.failed("state", e))?
        else {
            return Ok(Vec::new());
        };
        let target = state.target.clone().unwrap_or_default();
        let finding = Finding {
            id: format!("release-{}-{}", key, clock::wall_ns()),
            name: "manual release".to_owned(),
            namespace: target.namespace.clone(),
            pod: target.pod.clone(),
            node: state.node.clone(),
            container_id: state.container_id.clone(),
            cgroup_path: state.cgroup_path.clone(),
            ..Default::default()
        };
        let dry_run = dry_run || self.scope.dry_run || self.policy.dry_run;
        // A manual request starts its own trace; the records carry its id.
        let trace = TraceContext::new_root();
        let context = self.manual_context(requested_by, dry_run, &trace);
        let mut records = Vec::new();
        let mut undone = Vec::new();
        for kind in state.active().collect::<Vec<_>>() {
            let Some(undo) = undo_of(kind) else { continue };
            let Some(acted) = self.undo(&state, &finding, undo, dry_run).await else {
                continue;
            };
            if matches!(
                acted.outcome,
                ActionOutcome::Succeeded | ActionOutcome::AlreadyDone
            ) {
                undone.push(kind);
            }
            records.push(record::build(&finding, acted, &context, clock::wall_ns()));
        }
        self.publish_all(&records, &trace).await?;
        if !undone.is_empty() {
            self.state
                .remove_active(key, &undone)
                .await
                .map_err(|e| self.failed("state", e))?;
        }
        Ok(records)
    }

    /// One undo step. What is another process's to undo is refused on
    /// record, naming who can, and stays in the state.
    async fn undo(
        &self,
        state: &QuarantineState,
        finding: &Finding,
        undo: ActionKind,
        dry_run: bool,
    ) -> Option<Acted> {
        let label = match undo {
            ActionKind::Thaw => "thaw",
            ActionKind::NetworkRestore => "network_restore",
            _ => "release",
        };
        let node_level = matches!(undo, ActionKind::Thaw | ActionKind::NetworkRestore);
        let elsewhere = if node_level && !(self.scope.node_actions && state.node == self.scope.node)
        {
            Some(format!(
                "{label}: the container runs on node {}; the responder agent there must undo it",
                state.node
            ))
        } else if !node_level && !self.scope.cluster_actions {
            Some(format!(
                "{label}: needs a responder with the Kubernetes API (mode cluster or both)"
            ))
        } else {
            None
        };
        let started_ns = clock::monotonic_ns();
        let (outcome, reason) = if let Some(reason) = elsewhere {
            (ActionOutcome::Refused, reason)
        } else if dry_run {
            (ActionOutcome::DryRun, format!("dry run: would {label}"))
        } else {
            match undo {
                ActionKind::Thaw => {
                    node::thaw(&self.hierarchies, &state.cgroup_path, self.freeze_timeout).await
                }
                ActionKind::NetworkRestore => {
                    node::network(&self.hierarchies, &state.cgroup_path, false).await
                }
                _ => match &self.kube {
                    Some(kube) => kube.release(&finding.namespace, &finding.pod).await,
                    None => (
                        ActionOutcome::Failed,
                        "release needs kube.enabled = true".to_owned(),
                    ),
                },
            }
        };
        Some(Acted {
            action: label,
            kind: undo,
            outcome,
            reason,
            cgroup_path: state.cgroup_path.clone(),
            pid: 0,
            started_ns,
            completed_ns: clock::monotonic_ns(),
        })
    }

    /// Pods in quarantine, from the state in NATS.
    pub async fn list(&self) -> Result<Vec<QuarantineState>, String> {
        self.state.list().await.map_err(|e| self.failed("state", e))
    }

    fn manual_context(&self, requested_by: &str, dry_run: bool, trace: &TraceContext) -> Context {
        Context {
            node: self.scope.node.clone(),
            dry_run,
            trace_id: trace.trace_id_hex(),
            finding_received_ns: clock::monotonic_ns(),
            policy: "manual".to_owned(),
            requested_by: requested_by.to_owned(),
        }
    }

    async fn publish_all(
        &self,
        records: &[ActionRecord],
        trace: &TraceContext,
    ) -> Result<(), String> {
        for record in records {
            publish(&self.publisher, record, trace)
                .await
                .map_err(|e| self.failed("publish", e))?;
        }
        Ok(())
    }

    async fn mark_handled(&self, finding: &Finding, ids: &[String]) -> Result<(), String> {
        self.state
            .mark_handled(&finding.id, ids)
            .await
            .map_err(|e| self.failed("state", e))
    }

    fn failed(&self, stage: &'static str, error: impl std::fmt::Display) -> String {
        metrics::error(
            if stage == "publish" {
                "publish_failed"
            } else {
                "state_failed"
            },
            stage,
        );
        error.to_string()
    }
}

fn count(decision: &'static str) {
    ::metrics::counter!(metrics::FINDINGS, "decision" => decision).increment(1);
}

fn observe(
    kind: &'static str,
    outcome: ActionOutcome,
    finding: &Finding,
    started_ns: u64,
    completed_ns: u64,
) {
    ::metrics::histogram!(metrics::ACTION_SECONDS, "kind" => kind)
        .record(metrics::nanos_to_seconds(started_ns, completed_ns));
    let event_ns = finding.events.first().map_or(0, |e| e.kernel_time_ns);
    if outcome == ActionOutcome::Succeeded && event_ns > 0 {
        ::metrics::histogram!(metrics::EVENT_TO_ACTION_SECONDS, "kind" => kind)
            .record(metrics::nanos_to_seconds(event_ns, completed_ns));
    }
    if outcome == ActionOutcome::Failed {
        metrics::error("action_failed", "act");
    }
}
