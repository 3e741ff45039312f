//! The responder, one actor: it turns findings into actions, and carries
//! out the quarantines and releases that people ask for through gRPC.
//!
//! A finding's path, top to bottom in this file: consume
//! ([`Responder::handle`]: decode and check) → decide ([`Responder::plan`]:
//! handled before, the policy, contained already, rate limits) → act
//! ([`Responder::act`], through the table in [`crate::actions`]) → record
//! ([`Responder::carry_out`] publishes a record per action) → settle (the
//! quarantine state, the handled mark, then ack; or redeliver when
//! [`RespondError::retryable`] says a retry can help).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tracing::Instrument as _;
use vigil_bus::{Delivery, Disposition, Publisher, TraceContext, codec};
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::{ActionOutcome, ActionRecord, Finding, QuarantineState};
use vigil_service::clock;

use crate::{
    actions::{self, Done, Entry, Level, Means, Target, Undo},
    config::Config,
    decide::{self, Decision, Planned, Scope, Verdict, decide},
    kube_actions::Kube,
    limits::{Admission, RateLimiter},
    metrics,
    policy::{Action, ActionSpec, Limit, Policy, Rule},
    record::{self, ActionResult, Context, RecordError, record_id},
    state::{self, State, StateError},
};

/// Who asked, in records of automatic responses.
pub const BY_POLICY: &str = "policy";

/// Back-off before a finding whose work could not be completed is redelivered.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Bounds of the wait before a finding deferred by a rate limit comes back.
const MIN_DEFERRAL: Duration = Duration::from_millis(250);
const MAX_DEFERRAL: Duration = Duration::from_secs(15);

/// The one key of the manual rate limiter: the limit spans every caller,
/// since a caller's name is only what it says it is.
const MANUAL: &str = "manual";

/// The responder: policy, state, and the means to act.
pub struct Responder {
    policy: Policy,
    scope: Scope,
    means: Means,
    state: State,
    publisher: Publisher,
    manual_limiter: Mutex<RateLimiter>,
    /// Makes manual request ids unique within one wall-clock nanosecond.
    manual_requests: AtomicU64,
}

/// A finding the responder could act on wrongly: rejected, never guessed at.
#[derive(Debug, thiserror::Error)]
pub enum MalformedFinding {
    #[error(transparent)]
    Decode(#[from] codec::DecodeError),
    #[error("finding on {at} has no id")]
    NoId { at: String },
    #[error("finding {id} on {at} has no valid priority ({priority})")]
    Priority {
        id: String,
        at: String,
        priority: i32,
    },
    /// The subject does not vouch for the namespace the payload names
    /// (`decide::subject_vouches_for`).
    #[error("finding {id} on {at} is not believed: {reason}")]
    NotVouched {
        id: String,
        at: String,
        reason: String,
    },
}

/// Why the work on a finding or a manual request stopped before its end.
/// Everything done before is idempotent, so it can be done again.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Over a rate limit: the finding is kept and redelivered after `delay`.
    #[error("finding {id} deferred: {reason}")]
    RateLimited {
        id: String,
        reason: String,
        delay: Duration,
    },
}

impl RespondError {
    /// Whether redelivering the finding (or asking again) can help.
    pub fn retryable(&self) -> bool {
        match self {
            RespondError::State(error) => error.retryable(),
            RespondError::Record(error) => error.retryable(),
            RespondError::RateLimited { .. } => true,
        }
    }

    /// How long to wait before the finding is redelivered.
    fn retry_delay(&self) -> Duration {
        match self {
            RespondError::RateLimited { delay, .. } => *delay,
            RespondError::State(_) | RespondError::Record(_) => RETRY_DELAY,
        }
    }

    /// Counts the error in `vigil_responder_errors_total`, once, where it
    /// ends a finding's or a request's handling.
    pub(crate) fn count(&self) {
        match self {
            RespondError::State(_) => metrics::error("state_failed", "state"),
            RespondError::Record(_) => metrics::error("publish_failed", "publish"),
            RespondError::RateLimited { .. } => count("rate_limit_deferred"),
        }
    }
}

/// Why a manual quarantine or release was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error(
        "this responder (mode {mode}) cannot quarantine {namespace}/{pod}: no Kubernetes API and no known container on node {node}"
    )]
    NotHere {
        mode: &'static str,
        namespace: String,
        pod: String,
        node: String,
    },
    #[error(
        "rate limited: at most {} manual quarantines and releases per {} s; try again later",
        limit.max,
        limit.per_seconds
    )]
    RateLimited { limit: Limit },
    #[error(transparent)]
    Respond(#[from] RespondError),
}

impl ManualError {
    /// Whether asking again (later) can help.
    pub fn retryable(&self) -> bool {
        match self {
            ManualError::NotHere { .. } => false,
            ManualError::RateLimited { .. } => true,
            ManualError::Respond(error) => error.retryable(),
        }
    }

    /// Counts the error in `vigil_responder_errors_total`.
    pub(crate) fn count(&self) {
        match self {
            ManualError::NotHere { .. } => {}
            ManualError::RateLimited { .. } => metrics::error("manual_rate_limited", "grpc"),
            ManualError::Respond(error) => error.count(),
        }
    }
}

/// What is to be done about a finding, once the state has had its say.
struct Plan<'p> {
    rule: &'p Rule,
    /// The pod container's cgroup (empty when the finding names none).
    cgroup: String,
    actions: Vec<Planned>,
    /// The pod's key in the quarantine state.
    key: String,
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
        Self {
            scope: Scope {
                node: config.node_name.clone(),
                node_actions: config.mode.node_actions(),
                cluster_actions: config.mode.cluster_actions(),
                dry_run: config.dry_run,
            },
            means: Means {
                hierarchies,
                freeze_timeout: config.freeze_timeout(),
                kube,
            },
            manual_limiter: Mutex::new(RateLimiter::new(policy.manual, policy.manual)),
            manual_requests: AtomicU64::new(0),
            policy,
            state,
            publisher,
        }
    }

    /// Consume: one delivery of the findings consumer, settled by what
    /// came of it.
    pub(crate) async fn handle(&self, delivery: Delivery) -> Disposition {
        let received_ns = clock::monotonic_ns();
        let finding = match accept(&delivery) {
            Ok(finding) => finding,
            Err(error) => {
                let kind = match error {
                    MalformedFinding::NotVouched { .. } => "finding_not_vouched",
                    _ => "malformed_payload",
                };
                metrics::error(kind, "decode");
                return Disposition::Reject {
                    reason: error.to_string(),
                };
            }
        };
        // The action span: a child of the span that raised the finding.
        let span =
            tracing::info_span!("respond", vigil.finding = %finding.id, vigil.rule = %finding.name);
        let trace = vigil_bus::trace::continue_trace(&span, &delivery.trace);
        match self
            .respond(&finding, &trace, received_ns)
            .instrument(span)
            .await
        {
            Ok(()) => Disposition::Ack,
            Err(error) => {
                error.count();
                if error.retryable() {
                    Disposition::Retry {
                        reason: error.to_string(),
                        delay: error.retry_delay(),
                    }
                } else {
                    tracing::error!(message = "Giving up on finding.", id = %finding.id, %error);
                    Disposition::Reject {
                        reason: error.to_string(),
                    }
                }
            }
        }
    }

    /// The automatic response to one finding: decide, act, record, settle.
    async fn respond(
        &self,
        finding: &Finding,
        trace: &TraceContext,
        received_ns: u64,
    ) -> Result<(), RespondError> {
        let Some(plan) = self.plan(finding).await? else {
            return Ok(());
        };
        let mut context = Context {
            request: finding.id.clone(),
            node: self.scope.node.clone(),
            dry_run: self.scope.dry_run || self.policy.dry_run,
            trace_id: trace.trace_id_hex(),
            finding_received_ns: received_ns,
            policy: plan.rule.name.clone(),
            requested_by: BY_POLICY.to_owned(),
        };
        if let Some(deferral) = self.admit(&plan.key, &plan.actions).await? {
            context.request = record_id(&finding.id, "deferred");
            self.record_deferral(finding, &plan, &deferral.reason, &context, trace)
                .await?;
            return Err(RespondError::RateLimited {
                id: finding.id.clone(),
                reason: deferral.reason,
                delay: deferral.delay,
            });
        }
        count(decide::acting_label(&plan.actions));
        let records = self
            .carry_out(
                finding,
                &plan.cgroup,
                &plan.actions,
                &context,
                &plan.key,
                trace,
            )
            .await?;
        let ids: Vec<String> = records.into_iter().map(|r| r.id).collect();
        Ok(self.state.mark_handled(&finding.id, &ids).await?)
    }

    /// Decide: `None` when the finding needs no action and no record (seen
    /// before, ignored by the policy, or contained already); the last is
    /// remembered as handled. Rate limits come after, in `respond`.
    async fn plan(&self, finding: &Finding) -> Result<Option<Plan<'_>>, RespondError> {
        if self.state.was_handled(&finding.id).await? {
            count("duplicate");
            return Ok(None);
        }
        let decision = decide(&self.policy, &self.scope, finding, clock::wall_ns());
        let Decision::Act {
            rule,
            cgroup,
            actions,
        } = decision
        else {
            count(decision.label());
            tracing::debug!(message = "Not acting on finding.", id = %finding.id, decision = decision.label());
            return Ok(None);
        };
        let key = state::finding_pod_key(finding);
        if self.already_contained(&key, &actions).await? {
            count("already_contained");
            self.state.mark_handled(&finding.id, &[]).await?;
            return Ok(None);
        }
        Ok(Some(Plan {
            rule,
            cgroup,
            actions,
            key,
        }))
    }

    /// A pod whose reversible containment of this kind is all in force
    /// already needs nothing more: later findings about it are the same
    /// attack seen again (a flood), not a new one.
    async fn already_contained(&self, key: &str, actions: &[Planned]) -> Result<bool, StateError> {
        let wanted: Vec<i32> = actions
            .iter()
            .filter(|p| p.verdict == Verdict::Act)
            .map(|p| actions::entry(p.spec.action))
            .filter(|entry| entry.undo.is_some())
            .map(|entry| entry.kind as i32)
            .collect();
        if wanted.is_empty() {
            return Ok(false);
        }
        let existing = self.state.quarantined(key).await?;
        Ok(existing.is_some_and(|s| wanted.iter().all(|kind| s.active.contains(kind))))
    }

    /// Applies the rate limits to a planned response, in dry run as well
    /// (dry run changes only whether the action is carried out): a slot of
    /// the pod's window, then one of the global window, counted in NATS so
    /// the limits span every replica. Only refusals on record (protection)
    /// take no slot. A pod slot taken before the global limit refuses stays
    /// taken: the limits err on the side of acting less.
    async fn admit(&self, key: &str, actions: &[Planned]) -> Result<Option<Deferral>, StateError> {
        if actions
            .iter()
            .all(|p| matches!(p.verdict, Verdict::Refuse(_)))
        {
            return Ok(None);
        }
        let now_ns = clock::wall_ns();
        for (limit, scope, what) in [
            (self.policy.per_pod, format!("pod.{key}"), "of this pod"),
            (self.policy.global, "global".to_owned(), "over all pods"),
        ] {
            let window = Window::at(limit, now_ns);
            let counter = format!("{scope}.{}s.{}", limit.per_seconds, window.index);
            if !self.state.take_slot(&counter, limit.max).await? {
                return Ok(Some(Deferral {
                    reason: format!(
                        "deferred by rate limit: at most {} containment(s) {what} per {} s; retried later",
                        limit.max, limit.per_seconds
                    ),
                    delay: window.left.clamp(MIN_DEFERRAL, MAX_DEFERRAL),
                }));
            }
        }
        Ok(None)
    }

    /// Audits a deferral: a REFUSED record per action that waits. The ids
    /// are the finding's own, so its redeliveries add no records
    /// (JetStream drops them as duplicates).
    async fn record_deferral(
        &self,
        finding: &Finding,
        plan: &Plan<'_>,
        reason: &str,
        context: &Context,
        trace: &TraceContext,
    ) -> Result<(), RecordError> {
        let mut results = Vec::new();
        for planned in &plan.actions {
            if matches!(planned.verdict, Verdict::Refuse(_)) {
                continue;
            }
            let waiting = Planned {
                spec: planned.spec.clone(),
                verdict: Verdict::Refuse(reason.to_owned()),
            };
            results.push(self.act(finding, &plan.cgroup, &waiting).await);
        }
        self.publish_all(finding, results, context, trace)
            .await
            .map(drop)
    }

    /// Act, record, remember: carries out `actions` in order, publishes a
    /// record for each, then adds what is now in force to the pod's state.
    async fn carry_out(
        &self,
        finding: &Finding,
        cgroup: &str,
        actions: &[Planned],
        context: &Context,
        key: &str,
        trace: &TraceContext,
    ) -> Result<Vec<ActionRecord>, RespondError> {
        let mut results = Vec::new();
        let mut in_force = Vec::new();
        for planned in actions {
            let result = self.act(finding, cgroup, planned).await;
            if result.done.in_force() && actions::entry(planned.spec.action).undo.is_some() {
                in_force.push(result.kind);
            }
            results.push(result);
        }
        let records = self.publish_all(finding, results, context, trace).await?;
        if !in_force.is_empty() {
            let template = state::template(
                finding,
                &self.scope.node,
                cgroup,
                &context.requested_by,
                clock::wall_ns(),
            );
            self.state.add_active(key, &template, &in_force).await?;
        }
        Ok(records)
    }

    /// Act: one planned action, carried out by its executor in the table,
    /// or refused, or only described (dry run).
    async fn act(&self, finding: &Finding, cgroup: &str, planned: &Planned) -> ActionResult {
        let entry = actions::entry(planned.spec.action);
        let pid = finding.events.first().map_or(0, |e| e.pid);
        let started_ns = clock::monotonic_ns();
        let done = match &planned.verdict {
            Verdict::Refuse(reason) => Done::refused(reason.clone()),
            Verdict::DryRun => {
                Done::dry_run(self.dry_run_detail(finding, cgroup, entry, &planned.spec))
            }
            Verdict::Act => {
                let target = Target {
                    finding,
                    cgroup,
                    pid,
                    signal: planned.spec.signal,
                };
                execute(entry.label, (entry.run)(&self.means, target).await)
            }
        };
        let completed_ns = clock::monotonic_ns();
        observe(entry.label, done.outcome, finding, started_ns, completed_ns);
        let node_level = entry.level == Level::Node;
        ActionResult {
            label: entry.label,
            kind: entry.kind,
            done,
            cgroup_path: if node_level && !cgroup.is_empty() {
                cgroup.to_owned()
            } else {
                finding.cgroup_path.clone()
            },
            pid: if entry.action == Action::KillProcess {
                pid
            } else {
                0
            },
            started_ns,
            completed_ns,
        }
    }

    fn dry_run_detail(
        &self,
        finding: &Finding,
        cgroup: &str,
        entry: &Entry,
        spec: &ActionSpec,
    ) -> String {
        let target = if entry.level == Level::Node {
            format!("cgroup {cgroup}")
        } else {
            format!("pod {}/{}", finding.namespace, finding.pod)
        };
        // With no dry-run switch on, only the policy's `enforce` made it
        // one: say so, or an operator cannot tell why nothing happened.
        let why = if spec.dry_run || self.scope.dry_run || self.policy.dry_run {
            String::new()
        } else {
            format!(
                " (not enforced: pod {}/{} is outside the policy's enforce)",
                finding.namespace, finding.pod
            )
        };
        format!("dry run: would {} {target}{why}", entry.label)
    }

    /// Record: builds and publishes a record per result, in order.
    async fn publish_all(
        &self,
        finding: &Finding,
        results: Vec<ActionResult>,
        context: &Context,
        trace: &TraceContext,
    ) -> Result<Vec<ActionRecord>, RecordError> {
        let mut published = Vec::with_capacity(results.len());
        for result in results {
            let record = record::build(finding, result, context, clock::wall_ns());
            record::publish(&self.publisher, &record, trace).await?;
            published.push(record.record);
        }
        Ok(published)
    }

    /// Quarantines a pod by hand (gRPC): the cluster-level quarantine, and
    /// the node-level freeze and network cut when this agent knows the
    /// pod's container (from an earlier finding) and it runs here. The
    /// records have ids of their own and name `requested_by`.
    pub async fn quarantine(
        &self,
        namespace: &str,
        pod: &str,
        requested_by: &str,
        reason: &str,
        finding_id: &str,
        dry_run: bool,
    ) -> Result<Vec<ActionRecord>, ManualError> {
        self.admit_manual()?;
        let key = state::pod_key(namespace, pod, "", "");
        let known = self
            .state
            .quarantined(&key)
            .await
            .map_err(RespondError::from)?;
        let request = self.manual_request_id();
        let finding = Finding {
            id: if finding_id.is_empty() {
                request.clone()
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
        let planned = self.manual_plan(&finding, dry_run)?;
        // A manual request starts its own trace; the records carry its id.
        let trace = TraceContext::new_root();
        let context = self.manual_context(request, requested_by, dry_run, &trace);
        Ok(self
            .carry_out(
                &finding,
                &finding.cgroup_path,
                &planned,
                &context,
                &key,
                &trace,
            )
            .await?)
    }

    /// What a manual quarantine does here: the API's quarantine when this
    /// process talks to it, freeze and network cut when the pod's known
    /// container runs on this node; protection refuses, as for findings.
    fn manual_plan(&self, finding: &Finding, dry_run: bool) -> Result<Vec<Planned>, ManualError> {
        let mut actions = Vec::new();
        if self.scope.cluster_actions {
            actions.push(Action::Quarantine);
        }
        if self.scope.node_actions
            && finding.node == self.scope.node
            && !finding.cgroup_path.is_empty()
        {
            actions.extend([Action::Freeze, Action::NetworkCut]);
        }
        if actions.is_empty() {
            return Err(ManualError::NotHere {
                mode: if self.scope.cluster_actions {
                    "cluster"
                } else {
                    "node"
                },
                namespace: finding.namespace.clone(),
                pod: finding.pod.clone(),
                node: self.scope.node.clone(),
            });
        }
        let protection = self
            .policy
            .protection(&finding.namespace, &Default::default());
        let dry_run = self.manual_dry_run(dry_run);
        Ok(actions
            .into_iter()
            .map(|action| Planned {
                spec: ActionSpec {
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
            .collect())
    }

    /// Undoes what is in force on a pod, as far as this process can: thaw
    /// and restore the network when the pod runs on this node, remove the
    /// quarantine label through the API when this process talks to it.
    pub async fn release(
        &self,
        key: &str,
        requested_by: &str,
        dry_run: bool,
    ) -> Result<Vec<ActionRecord>, ManualError> {
        self.admit_manual()?;
        let Some(state) = self
            .state
            .quarantined(key)
            .await
            .map_err(RespondError::from)?
        else {
            return Ok(Vec::new());
        };
        let request = self.manual_request_id();
        let target = state.target.clone().unwrap_or_default();
        let finding = Finding {
            id: request.clone(),
            name: "manual release".to_owned(),
            namespace: target.namespace,
            pod: target.pod,
            node: state.node.clone(),
            container_id: state.container_id.clone(),
            cgroup_path: state.cgroup_path.clone(),
            ..Default::default()
        };
        let dry_run = self.manual_dry_run(dry_run);
        // A manual request starts its own trace; the records carry its id.
        let trace = TraceContext::new_root();
        let context = self.manual_context(request, requested_by, dry_run, &trace);
        let mut results = Vec::new();
        let mut undone = Vec::new();
        for kind in state.active() {
            let Some((entry, undo)) =
                actions::by_kind(kind).and_then(|e| e.undo.as_ref().map(|u| (e, u)))
            else {
                continue;
            };
            let result = self.undo(&state, &finding, entry, undo, dry_run).await;
            if result.done.in_force() {
                undone.push(kind);
            }
            results.push(result);
        }
        let records = self
            .publish_all(&finding, results, &context, &trace)
            .await
            .map_err(RespondError::from)?;
        if !undone.is_empty() {
            self.state
                .remove_active(key, &undone)
                .await
                .map_err(RespondError::from)?;
        }
        Ok(records)
    }

    /// One undo step. What is another process's to undo is refused on
    /// record, naming who can, and stays in the state.
    async fn undo(
        &self,
        state: &QuarantineState,
        finding: &Finding,
        entry: &Entry,
        undo: &Undo,
        dry_run: bool,
    ) -> ActionResult {
        let label = undo.label;
        let started_ns = clock::monotonic_ns();
        let done = if let Some(reason) = self.undone_elsewhere(entry.level, label, &state.node) {
            Done::refused(reason)
        } else if dry_run {
            Done::dry_run(format!("dry run: would {label}"))
        } else {
            let target = Target {
                finding,
                cgroup: &state.cgroup_path,
                pid: 0,
                signal: Default::default(),
            };
            execute(label, (undo.run)(&self.means, target).await)
        };
        ActionResult {
            label,
            kind: undo.kind,
            done,
            cgroup_path: state.cgroup_path.clone(),
            pid: 0,
            started_ns,
            completed_ns: clock::monotonic_ns(),
        }
    }

    /// Who must undo an action of `level` done on `node`, when it is not
    /// this process.
    fn undone_elsewhere(&self, level: Level, label: &str, node: &str) -> Option<String> {
        match level {
            Level::Node if !(self.scope.node_actions && node == self.scope.node) => Some(format!(
                "{label}: the container runs on node {node}; the responder agent there must undo it"
            )),
            Level::Cluster if !self.scope.cluster_actions => Some(format!(
                "{label}: needs a responder with the Kubernetes API (mode cluster or both)"
            )),
            Level::Node | Level::Cluster => None,
        }
    }

    /// Pods in quarantine, from the state in NATS.
    pub async fn list(&self) -> Result<Vec<QuarantineState>, RespondError> {
        Ok(self.state.list().await?)
    }

    fn admit_manual(&self) -> Result<(), ManualError> {
        match admit(&self.manual_limiter, MANUAL) {
            Admission::Allowed => Ok(()),
            Admission::Limited { .. } => Err(ManualError::RateLimited {
                limit: self.policy.manual,
            }),
        }
    }

    /// A manual request's own id, the start of its record ids: unique per
    /// process (the counter) and across processes and restarts (the node
    /// or pod name and the wall clock), so JetStream never drops its
    /// records as duplicates of an automatic response's or another's.
    fn manual_request_id(&self) -> String {
        let sequence = self.manual_requests.fetch_add(1, Ordering::Relaxed);
        format!("manual-{}-{}-{sequence}", self.scope.node, clock::wall_ns())
    }

    fn manual_dry_run(&self, asked: bool) -> bool {
        asked || self.scope.dry_run || self.policy.dry_run
    }

    fn manual_context(
        &self,
        request: String,
        requested_by: &str,
        dry_run: bool,
        trace: &TraceContext,
    ) -> Context {
        Context {
            request,
            node: self.scope.node.clone(),
            dry_run,
            trace_id: trace.trace_id_hex(),
            finding_received_ns: clock::monotonic_ns(),
            policy: "manual".to_owned(),
            requested_by: requested_by.to_owned(),
        }
    }
}

/// A response held back by a rate limit.
struct Deferral {
    reason: String,
    delay: Duration,
}

/// A fixed window of a rate limit on the wall clock, which all replicas
/// share: its number since the epoch and the time left in it.
struct Window {
    index: u64,
    left: Duration,
}

impl Window {
    fn at(limit: Limit, now_wall_ns: u64) -> Self {
        let length_ns = limit.per_seconds.max(1).saturating_mul(1_000_000_000);
        Self {
            index: now_wall_ns / length_ns,
            left: Duration::from_nanos(length_ns - now_wall_ns % length_ns),
        }
    }
}

/// Decodes and checks a delivered finding.
fn accept(delivery: &Delivery) -> Result<Finding, MalformedFinding> {
    let finding: Finding = codec::decode(
        &delivery.payload,
        &delivery.subject,
        delivery.stream_sequence,
    )?;
    let at = || {
        format!(
            "{} (stream sequence {})",
            delivery.subject, delivery.stream_sequence
        )
    };
    if finding.id.trim().is_empty() {
        return Err(MalformedFinding::NoId { at: at() });
    }
    if finding.priority == 0 || finding.priority > 8 {
        return Err(MalformedFinding::Priority {
            id: finding.id,
            at: at(),
            priority: finding.priority,
        });
    }
    if let Err(reason) = decide::subject_vouches_for(&delivery.subject, &finding) {
        return Err(MalformedFinding::NotVouched {
            id: finding.id,
            at: at(),
            reason,
        });
    }
    Ok(finding)
}

/// A failed executor is a FAILED record that says why.
fn execute(label: &'static str, result: Result<Done, actions::ActionError>) -> Done {
    result.unwrap_or_else(|error| {
        tracing::debug!(message = "Action failed.", action = label, retryable = error.retryable(), %error);
        Done::failed(&error)
    })
}

/// Admits one use of `limiter` for `key`; a limiter poisoned by a panic
/// elsewhere refuses rather than lets everything through.
fn admit(limiter: &Mutex<RateLimiter>, key: &str) -> Admission {
    match limiter.lock() {
        Ok(mut limiter) => limiter.admit(key, clock::monotonic_ns()),
        Err(_) => Admission::Limited { per_pod: false },
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
