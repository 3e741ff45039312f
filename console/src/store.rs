//! What the gateway has seen, in memory: recent findings (bounded), the
//! incidents they form, actions and the containment they imply, anomaly
//! scores per workload, incident state from the KV bucket, unparseable
//! payloads, and counts per minute. Rebuilt at start by replaying the streams.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::views::{
    ActionView, FindingView, MalformedView, ProcessView, ScoreView, StateView, containment_effect,
};

const MAX_ACTIONS: usize = 10_000;
const MAX_SCORES_PER_WORKLOAD: usize = 500;
const MAX_MALFORMED: usize = 200;
const MINUTES_KEPT: usize = 180;

/// State and containment arrive for incidents whose findings are not (yet,
/// or any longer) in memory: the KV bucket keeps 90 days, the findings
/// stream 7. Kept for up to `max_incidents` such incidents beyond those in
/// memory; past that, only those of incidents in memory are kept.
fn trim_orphans<V>(
    map: &mut HashMap<String, V>,
    incidents: &BTreeMap<String, Incident>,
    max_incidents: usize,
) {
    if map.len() <= max_incidents.saturating_mul(2) {
        return;
    }
    let before = map.len();
    map.retain(|id, _| incidents.contains_key(id));
    let dropped = (before - map.len()) as u64;
    ::metrics::counter!(crate::metrics::EVICTED, "what" => "orphan_state").increment(dropped);
}

fn evicted(what: &'static str) {
    ::metrics::counter!(crate::metrics::EVICTED, "what" => what).increment(1);
}

#[derive(Clone, Debug, Serialize)]
pub struct IncidentSummary {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub first_ms: f64,
    pub last_ms: f64,
    pub findings: u64,
    pub max_priority: &'static str,
    pub max_severity: i32,
    pub rules: BTreeSet<String>,
    pub latest_finding_id: String,
    pub state: StateView,
    pub containment: Option<Containment>,
}

/// What the responder did to a pod. A dry-run action did nothing: it is
/// shown as what would have been done (`dry_run`), never as `contained`.
#[derive(Clone, Debug, Serialize)]
pub struct Containment {
    pub contained: bool,
    pub dry_run: bool,
    pub kind: String,
    pub outcome: &'static str,
    pub requested_by: String,
    pub time_ms: f64,
}

/// Findings and actions per minute (minute = ms / 60000).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MinuteCount {
    pub minute: u64,
    pub findings: u64,
    pub actions: u64,
    pub event_batches: u64,
}

/// One process in an incident's tree, with the rules it triggered.
#[derive(Clone, Debug, Serialize)]
pub struct TreeNode {
    pub process: ProcessView,
    pub rules: BTreeSet<String>,
    pub children: Vec<TreeNode>,
}

/// Query parameters of `GET /api/findings`; every one optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingFilter {
    /// Minimum priority (`warning` includes error, critical, ...).
    pub priority: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub rule: Option<String>,
    pub tag: Option<String>,
    pub tactic: Option<String>,
    /// An ATT&CK technique id (`T1059.004`).
    pub technique: Option<String>,
    pub incident: Option<String>,
    /// Free text, case-insensitive, anywhere an analyst would look.
    pub q: Option<String>,
    pub since_ms: Option<f64>,
    pub until_ms: Option<f64>,
    pub limit: Option<usize>,
}

/// A filter after its priority name was parsed.
pub struct Filter {
    pub min_severity: i32,
    /// `raw.q` in lower case; none when empty.
    pub needle: Option<String>,
    pub raw: FindingFilter,
}

impl Filter {
    pub fn new(min_severity: i32, raw: FindingFilter) -> Self {
        let needle = raw
            .q
            .as_deref()
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        Self {
            min_severity,
            needle,
            raw,
        }
    }

    fn matches(&self, f: &FindingView) -> bool {
        let r = &self.raw;
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        f.severity >= self.min_severity
            && eq(&r.namespace, &f.namespace)
            && eq(&r.pod, &f.pod)
            && eq(&r.rule, &f.rule)
            && eq(&r.incident, &f.incident_id)
            && r.tag.as_ref().is_none_or(|t| f.tags.contains(t))
            && r.tactic.as_ref().is_none_or(|t| f.tactics.contains(t))
            && r.technique
                .as_ref()
                .is_none_or(|t| f.techniques.contains(t))
            && r.since_ms.is_none_or(|s| f.time_ms >= s)
            && r.until_ms.is_none_or(|u| f.time_ms <= u)
            && self.needle.as_deref().is_none_or(|n| f.contains_text(n))
    }
}

struct Incident {
    summary: IncidentSummary,
}

#[derive(Default)]
pub struct Store {
    max_findings: usize,
    max_incidents: usize,
    findings: VecDeque<Arc<FindingView>>,
    finding_ids: HashSet<String>,
    incidents: BTreeMap<String, Incident>,
    states: HashMap<String, StateView>,
    containment: HashMap<String, Containment>,
    actions: VecDeque<Arc<ActionView>>,
    scores: BTreeMap<String, VecDeque<ScoreView>>,
    malformed: VecDeque<MalformedView>,
    malformed_total: u64,
    minutes: BTreeMap<u64, MinuteCount>,
}

impl Store {
    pub fn new(max_findings: usize, max_incidents: usize) -> Self {
        Self {
            max_findings,
            max_incidents,
            ..Default::default()
        }
    }

    /// Adds a finding; false if it was already there (a replay).
    pub fn add_finding(&mut self, finding: FindingView) -> bool {
        if !self.finding_ids.insert(finding.id.clone()) {
            return false;
        }
        self.count(finding.time_ms, |m| m.findings += 1);
        self.update_incident(&finding);
        self.findings.push_back(Arc::new(finding));
        while self.findings.len() > self.max_findings {
            if let Some(old) = self.findings.pop_front() {
                self.finding_ids.remove(&old.id);
                evicted("finding");
            }
        }
        while self.incidents.len() > self.max_incidents {
            self.evict_stalest_incident();
        }
        true
    }

    /// Forgets the incident whose last finding is oldest, with its state
    /// and containment (the KV bucket and the actions stream keep them).
    fn evict_stalest_incident(&mut self) {
        let stalest = self
            .incidents
            .values()
            .min_by(|a, b| a.summary.last_ms.total_cmp(&b.summary.last_ms))
            .map(|i| i.summary.id.clone());
        if let Some(id) = stalest {
            self.incidents.remove(&id);
            self.states.remove(&id);
            self.containment.remove(&id);
            evicted("incident");
        }
    }

    fn update_incident(&mut self, f: &FindingView) {
        let state = self.states.get(&f.incident_id).cloned();
        let containment = self.containment.get(&f.incident_id).cloned();
        let incident = self
            .incidents
            .entry(f.incident_id.clone())
            .or_insert_with(|| Incident {
                summary: IncidentSummary {
                    id: f.incident_id.clone(),
                    namespace: f.namespace.clone(),
                    pod: f.pod.clone(),
                    first_ms: f.time_ms,
                    last_ms: f.time_ms,
                    findings: 0,
                    max_priority: f.priority,
                    max_severity: f.severity,
                    rules: BTreeSet::new(),
                    latest_finding_id: f.id.clone(),
                    state: state.unwrap_or_else(StateView::open),
                    containment,
                },
            });
        let s = &mut incident.summary;
        s.findings += 1;
        s.first_ms = s.first_ms.min(f.time_ms);
        if f.time_ms >= s.last_ms {
            s.last_ms = f.time_ms;
            s.latest_finding_id = f.id.clone();
        }
        if f.severity > s.max_severity {
            s.max_severity = f.severity;
            s.max_priority = f.priority;
        }
        s.rules.insert(f.rule.clone());
    }

    pub fn add_action(&mut self, action: ActionView) {
        self.count(action.time_ms, |m| m.actions += 1);
        let effect = containment_effect(&action.kind);
        let dry_run = action.dry_run || action.outcome == "dry_run";
        let took_effect = matches!(action.outcome, "succeeded" | "already_done") && !dry_run;
        // A rehearsal is shown only while nothing real was done to the pod.
        let rehearsal = dry_run
            && self
                .containment
                .get(&action.incident_id)
                .is_none_or(|c| c.dry_run);
        if let (Some(contained), true) = (effect, took_effect || rehearsal) {
            let containment = Containment {
                contained: contained && took_effect,
                dry_run,
                kind: action.kind.clone(),
                outcome: action.outcome,
                requested_by: action.requested_by.clone(),
                time_ms: action.time_ms,
            };
            if let Some(incident) = self.incidents.get_mut(&action.incident_id) {
                incident.summary.containment = Some(containment.clone());
            }
            self.containment
                .insert(action.incident_id.clone(), containment);
            trim_orphans(&mut self.containment, &self.incidents, self.max_incidents);
        }
        self.actions.push_back(Arc::new(action));
        if self.actions.len() > MAX_ACTIONS {
            self.actions.pop_front();
        }
    }

    pub fn add_score(&mut self, score: ScoreView) {
        let series = self.scores.entry(score.workload.clone()).or_default();
        series.push_back(score);
        if series.len() > MAX_SCORES_PER_WORKLOAD {
            series.pop_front();
        }
    }

    pub fn add_malformed(&mut self, malformed: MalformedView) {
        self.malformed_total += 1;
        self.malformed.push_back(malformed);
        if self.malformed.len() > MAX_MALFORMED {
            self.malformed.pop_front();
        }
    }

    /// Event batches counted from the events stream's sequence.
    pub fn add_event_batches(&mut self, now_ms: f64, batches: u64) {
        self.count(now_ms, |m| m.event_batches += batches);
    }

    /// Records incident state from the KV bucket; returns the summary to broadcast.
    pub fn set_state(&mut self, id: &str, state: StateView) -> Option<IncidentSummary> {
        self.states.insert(id.to_owned(), state.clone());
        trim_orphans(&mut self.states, &self.incidents, self.max_incidents);
        let incident = self.incidents.get_mut(id)?;
        incident.summary.state = state;
        Some(incident.summary.clone())
    }

    fn count(&mut self, time_ms: f64, bump: impl FnOnce(&mut MinuteCount)) {
        let minute = (time_ms / 60_000.0) as u64;
        let entry = self.minutes.entry(minute).or_insert(MinuteCount {
            minute,
            ..Default::default()
        });
        bump(entry);
        while self.minutes.len() > MINUTES_KEPT {
            self.minutes.pop_first();
        }
    }

    /// Newest first, at most `limit`.
    pub fn findings(&self, filter: &Filter) -> Vec<Arc<FindingView>> {
        let limit = filter.raw.limit.unwrap_or(self.max_findings);
        self.findings
            .iter()
            .rev()
            .filter(|f| filter.matches(f))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn finding(&self, id: &str) -> Option<Arc<FindingView>> {
        if !self.finding_ids.contains(id) {
            return None;
        }
        self.findings.iter().rev().find(|f| f.id == id).cloned()
    }

    #[cfg(test)]
    pub fn finding_count(&self) -> usize {
        self.findings.len()
    }

    /// Most severe open incidents first, then the most recent.
    pub fn incidents(&self) -> Vec<IncidentSummary> {
        let mut list: Vec<_> = self.incidents.values().map(|i| i.summary.clone()).collect();
        list.sort_by(|a, b| {
            let open =
                |s: &IncidentSummary| matches!(s.state.status.as_str(), "open" | "acknowledged");
            open(b)
                .cmp(&open(a))
                .then(b.max_severity.cmp(&a.max_severity))
                .then(b.last_ms.total_cmp(&a.last_ms))
        });
        list
    }

    pub fn incident(&self, id: &str) -> Option<IncidentSummary> {
        self.incidents.get(id).map(|i| i.summary.clone())
    }

    /// The incident's findings oldest first.
    pub fn timeline(&self, id: &str) -> Vec<Arc<FindingView>> {
        self.findings
            .iter()
            .filter(|f| f.incident_id == id)
            .cloned()
            .collect()
    }

    pub fn actions_of(&self, id: Option<&str>) -> Vec<Arc<ActionView>> {
        self.actions
            .iter()
            .rev()
            .filter(|a| id.is_none_or(|id| a.incident_id == id))
            .cloned()
            .collect()
    }

    pub fn scores(&self) -> &BTreeMap<String, VecDeque<ScoreView>> {
        &self.scores
    }

    pub fn malformed(&self) -> (u64, Vec<MalformedView>) {
        (
            self.malformed_total,
            self.malformed.iter().rev().cloned().collect(),
        )
    }

    pub fn minutes(&self) -> Vec<MinuteCount> {
        self.minutes.values().copied().collect()
    }
}

/// Merges the process chains (root … parent, process) of `findings` into
/// trees keyed by pid, each node listing the rules it triggered.
pub fn process_tree(findings: &[Arc<FindingView>]) -> Vec<TreeNode> {
    let mut roots: Vec<TreeNode> = Vec::new();
    for f in findings {
        let Some(process) = &f.process else { continue };
        let mut chain: Vec<&ProcessView> = f.ancestors.iter().rev().collect();
        chain.push(process);
        insert_chain(&mut roots, &chain, &f.rule);
    }
    roots
}

fn insert_chain(level: &mut Vec<TreeNode>, chain: &[&ProcessView], rule: &str) {
    let Some((first, rest)) = chain.split_first() else {
        return;
    };
    let index = match level.iter().position(|n| n.process.pid == first.pid) {
        Some(i) => i,
        None => {
            level.push(TreeNode {
                process: (*first).clone(),
                rules: BTreeSet::new(),
                children: Vec::new(),
            });
            level.len() - 1
        }
    };
    let node = &mut level[index];
    if rest.is_empty() {
        node.rules.insert(rule.to_owned());
    } else {
        insert_chain(&mut node.children, rest, rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, comm: &str) -> ProcessView {
        ProcessView {
            pid,
            comm: comm.into(),
            exe: format!("/bin/{comm}"),
            cmdline: vec![comm.into()],
        }
    }

    fn finding(
        id: &str,
        pod: &str,
        severity: i32,
        process: ProcessView,
        ancestors: Vec<ProcessView>,
    ) -> FindingView {
        FindingView {
            id: id.into(),
            time_ms: 1000.0 * severity as f64,
            source: "rule",
            rule: format!("rule-{id}"),
            priority: "warning",
            severity,
            tags: vec!["mitre_execution".into()],
            tactics: vec!["execution".into()],
            techniques: vec!["T1059".into()],
            output: String::new(),
            output_fields: BTreeMap::new(),
            namespace: "shop".into(),
            pod: pod.into(),
            node: "n1".into(),
            container_id: String::new(),
            incident_id: format!("shop.{pod}"),
            score: 0.0,
            process: Some(process),
            ancestors,
            explanation: Vec::new(),
            raw_events: Vec::new(),
        }
    }

    #[test]
    fn findings_group_into_incidents_and_replays_are_ignored() {
        let mut store = Store::new(2, 10);
        assert!(store.add_finding(finding("a", "web", 4, proc(3, "sh"), vec![])));
        assert!(!store.add_finding(finding("a", "web", 4, proc(3, "sh"), vec![])));
        assert!(store.add_finding(finding("b", "web", 6, proc(3, "sh"), vec![])));
        assert!(store.add_finding(finding("c", "db", 5, proc(3, "sh"), vec![])));
        assert_eq!(store.finding_count(), 2, "bounded");
        let incidents = store.incidents();
        assert_eq!(incidents[0].id, "shop.web");
        assert_eq!(incidents[0].findings, 2);
        assert_eq!(incidents[0].max_severity, 6);
        assert_eq!(incidents[0].latest_finding_id, "b");
    }

    #[test]
    fn incidents_are_bounded_and_the_stalest_goes_first() {
        let mut store = Store::new(100, 2);
        let mut at = |id: &str, pod: &str, time_ms: f64| {
            let mut f = finding(id, pod, 4, proc(3, "sh"), vec![]);
            f.time_ms = time_ms;
            store.add_finding(f);
        };
        at("a", "web", 1.0);
        at("b", "db", 2.0);
        at("c", "web", 3.0);
        at("d", "cache", 4.0);
        let ids: Vec<String> = store.incidents().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["shop.cache", "shop.web"], "db was the stalest");
    }

    #[test]
    fn states_of_incidents_not_in_memory_are_bounded() {
        let mut store = Store::new(100, 2);
        store.add_finding(finding("a", "web", 4, proc(3, "sh"), vec![]));
        for i in 0..5 {
            store.set_state(&format!("shop.gone-{i}"), StateView::open());
        }
        assert!(
            store.states.len() <= 4,
            "{} states kept",
            store.states.len()
        );
        store.set_state("shop.web", StateView::open());
        assert!(store.states.contains_key("shop.web"));
    }

    #[test]
    fn filters_combine() {
        let mut store = Store::new(10, 10);
        store.add_finding(finding("a", "web", 4, proc(3, "sh"), vec![]));
        store.add_finding(finding("b", "db", 6, proc(3, "sh"), vec![]));
        let filter = |raw: FindingFilter, min_severity| Filter::new(min_severity, raw);
        let high = store.findings(&filter(FindingFilter::default(), 5));
        assert_eq!(high.len(), 1);
        assert_eq!(high[0].id, "b");
        let by_pod = FindingFilter {
            pod: Some("web".into()),
            tactic: Some("execution".into()),
            ..Default::default()
        };
        assert_eq!(store.findings(&filter(by_pod, 0))[0].id, "a");
        let none = FindingFilter {
            tag: Some("nope".into()),
            ..Default::default()
        };
        assert!(store.findings(&filter(none, 0)).is_empty());
        let searched = |q: &str, technique: Option<&str>| {
            let raw = FindingFilter {
                q: Some(q.into()),
                technique: technique.map(Into::into),
                ..Default::default()
            };
            let ids: Vec<String> = store
                .findings(&filter(raw, 0))
                .iter()
                .map(|f| f.id.clone())
                .collect();
            ids
        };
        assert_eq!(searched("  RULE-A ", None), ["a"]);
        assert_eq!(
            searched("", Some("T1059")),
            ["b", "a"],
            "blank q: no filter"
        );
        assert!(searched("sh", Some("T1611")).is_empty());
        assert_eq!(store.finding("b").map(|f| f.pod.clone()), Some("db".into()));
        assert!(store.finding("zz").is_none());
    }

    #[test]
    fn process_chains_merge_into_one_tree() {
        let shell = finding(
            "a",
            "web",
            4,
            proc(30, "sh"),
            vec![proc(20, "bash"), proc(1, "init")],
        );
        let cat = finding(
            "b",
            "web",
            4,
            proc(31, "cat"),
            vec![proc(20, "bash"), proc(1, "init")],
        );
        let tree = process_tree(&[Arc::new(shell), Arc::new(cat)]);
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].process.comm, "init");
        let bash = &tree[0].children[0];
        assert_eq!(bash.children.len(), 2);
        assert!(bash.children[1].rules.contains("rule-b"));
    }

    #[test]
    fn containment_follows_the_latest_effective_action() {
        let mut store = Store::new(10, 10);
        store.add_finding(finding("a", "web", 4, proc(3, "sh"), vec![]));
        let action = |kind: &str, outcome: &'static str| ActionView {
            dry_run: outcome == "dry_run",
            id: kind.into(),
            finding_id: "a".into(),
            finding_name: String::new(),
            kind: kind.into(),
            outcome,
            reason: String::new(),
            node: "n1".into(),
            namespace: "shop".into(),
            pod: "web".into(),
            incident_id: "shop.web".into(),
            policy: String::new(),
            requested_by: "ann".into(),
            time_ms: 1.0,
        };
        let containment = |store: &Store| {
            store
                .incident("shop.web")
                .and_then(|i| i.containment)
                .expect("containment shown")
        };
        store.add_action(action("quarantine", "dry_run"));
        let rehearsed = containment(&store);
        assert!(rehearsed.dry_run && !rehearsed.contained, "{rehearsed:?}");
        store.add_action(action("quarantine", "succeeded"));
        assert!(!containment(&store).dry_run);
        store.add_action(action("release", "dry_run"));
        let real = containment(&store);
        assert!(
            real.contained && !real.dry_run,
            "a rehearsal hides nothing real: {real:?}"
        );
        assert!(
            store
                .incident("shop.web")
                .and_then(|i| i.containment)
                .is_some_and(|c| c.contained)
        );
        store.add_action(action("release", "failed"));
        assert!(
            store
                .incident("shop.web")
                .and_then(|i| i.containment)
                .is_some_and(|c| c.contained)
        );
        store.add_action(action("release", "succeeded"));
        assert!(
            store
                .incident("shop.web")
                .and_then(|i| i.containment)
                .is_some_and(|c| !c.contained)
        );
    }
}
