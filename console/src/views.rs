//! What the API and the live stream send to browsers: JSON views of the
//! wire messages. Times are milliseconds since the Unix epoch (JavaScript
//! numbers cannot hold nanoseconds exactly).

use std::collections::BTreeMap;

use prost::Message;
use serde::Serialize;
use vigil_bus::subject;
use vigil_proto::v1::{
    ActionKind, ActionRecord, AnomalyScore, Event, Finding, FindingSource, IncidentState,
    IncidentStatus, Priority,
};

pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The incident a finding belongs to: its pod (namespace + pod), or its
/// container for processes outside Kubernetes, or the node for host processes.
pub fn incident_id(namespace: &str, pod: &str, container_id: &str, node: &str) -> String {
    let pod_key = if !pod.is_empty() {
        pod.to_owned()
    } else if !container_id.is_empty() {
        format!(
            "container-{}",
            container_id.chars().take(12).collect::<String>()
        )
    } else {
        format!("host-{node}")
    };
    vigil_bus::topology::kv_key(&format!("{}.{}", subject::token(namespace), pod_key))
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessView {
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FindingView {
    pub id: String,
    pub time_ms: f64,
    pub source: &'static str,
    pub rule: String,
    pub priority: &'static str,
    /// Priority as a number, larger is more severe (for sorting and filters).
    pub severity: i32,
    pub tags: Vec<String>,
    /// MITRE ATT&CK tactics from `mitre_*` tags.
    pub tactics: Vec<String>,
    /// MITRE ATT&CK technique ids from tags such as `T1059.004`.
    pub techniques: Vec<String>,
    pub output: String,
    /// The rule's output fields by name (`proc.name`, `fd.name`, ...).
    pub output_fields: BTreeMap<String, String>,
    pub namespace: String,
    pub pod: String,
    pub node: String,
    pub container_id: String,
    pub incident_id: String,
    pub score: f64,
    /// The acting process and its ancestors, parent first.
    pub process: Option<ProcessView>,
    pub ancestors: Vec<ProcessView>,
    /// For anomaly findings: the features that contributed most, largest first.
    pub explanation: Vec<FeatureView>,
    /// The triggering events as they arrived (protobuf), shown only in the
    /// finding's detail: a few hundred bytes each, never sent in lists.
    #[serde(skip)]
    pub raw_events: Vec<Vec<u8>>,
}

/// One feature's share of an anomaly.
#[derive(Clone, Debug, Serialize)]
pub struct FeatureView {
    pub feature: String,
    pub value: f64,
    pub weight: f64,
}

impl FindingView {
    pub fn new(finding: &Finding) -> Self {
        let event = finding.events.first();
        let priority = Priority::try_from(finding.priority).unwrap_or(Priority::Unspecified);
        Self {
            id: finding.id.clone(),
            time_ms: ns_to_ms(finding.time_ns),
            source: source_label(finding.source),
            rule: finding.name.clone(),
            priority: priority.label(),
            severity: priority as i32,
            tags: finding.tags.clone(),
            tactics: tactics(&finding.tags),
            techniques: techniques(&finding.tags),
            output: finding.output.clone(),
            output_fields: finding
                .output_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            namespace: finding.namespace.clone(),
            pod: finding.pod.clone(),
            node: finding.node.clone(),
            container_id: finding.container_id.clone(),
            incident_id: incident_id(
                &finding.namespace,
                &finding.pod,
                &finding.container_id,
                &finding.node,
            ),
            score: finding.score,
            process: event.map(process_of),
            ancestors: event.map(ancestors_of).unwrap_or_default(),
            explanation: finding
                .explanation
                .iter()
                .map(|c| FeatureView {
                    feature: c.feature.clone(),
                    value: c.value,
                    weight: c.weight,
                })
                .collect(),
            raw_events: finding.events.iter().map(Message::encode_to_vec).collect(),
        }
    }

    /// The triggering events, decoded and printed field by field.
    pub fn raw_events_text(&self) -> Vec<String> {
        self.raw_events
            .iter()
            .map(|bytes| match Event::decode(bytes.as_slice()) {
                Ok(event) => format!("{event:#?}"),
                Err(error) => format!("undecodable event: {error}"),
            })
            .collect()
    }

    /// Whether `needle` (lower case) occurs in any text an analyst would
    /// search: rule, output, where, tags, process, output field values.
    pub fn contains_text(&self, needle: &str) -> bool {
        let has = |text: &str| text.to_lowercase().contains(needle);
        let process = self.process.iter().chain(&self.ancestors);
        has(&self.rule)
            || has(&self.output)
            || has(&self.id)
            || has(&self.namespace)
            || has(&self.pod)
            || has(&self.node)
            || has(&self.container_id)
            || self.tags.iter().any(|t| has(t))
            || self.output_fields.values().any(|v| has(v))
            || process
                .into_iter()
                .any(|p| has(&p.comm) || has(&p.exe) || has(&p.cmdline.join(" ")))
    }
}

fn process_of(event: &Event) -> ProcessView {
    ProcessView {
        pid: event.pid,
        comm: event.comm.clone(),
        exe: event.exe_path.clone(),
        cmdline: event.cmdline.clone(),
    }
}

fn ancestors_of(event: &Event) -> Vec<ProcessView> {
    event
        .ancestors
        .iter()
        .map(|a| ProcessView {
            pid: a.pid,
            comm: a.comm.clone(),
            exe: a.exe_path.clone(),
            cmdline: a.cmdline.clone(),
        })
        .collect()
}

fn tactics(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("mitre_"))
        .map(str::to_owned)
        .collect()
}

/// ATT&CK technique ids (`T1059`, `T1059.004`) among `tags`.
fn techniques(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| is_technique(t))
        .map(|t| t.to_ascii_uppercase())
        .collect()
}

fn is_technique(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix(['T', 't']) else {
        return false;
    };
    let (id, sub) = rest.split_once('.').unwrap_or((rest, "000"));
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    digits(id, 4) && digits(sub, 3)
}

fn source_label(source: i32) -> &'static str {
    match FindingSource::try_from(source) {
        Ok(FindingSource::Rule) => "rule",
        Ok(FindingSource::Anomaly) => "anomaly",
        Ok(FindingSource::Internal) => "internal",
        _ => "unspecified",
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionView {
    pub id: String,
    pub finding_id: String,
    pub finding_name: String,
    pub kind: String,
    pub outcome: &'static str,
    pub reason: String,
    pub dry_run: bool,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub incident_id: String,
    pub policy: String,
    pub requested_by: String,
    pub time_ms: f64,
}

impl ActionView {
    pub fn new(record: &ActionRecord) -> Self {
        Self {
            id: record.id.clone(),
            finding_id: record.finding_id.clone(),
            finding_name: record.finding_name.clone(),
            kind: kind_label(record.kind),
            outcome: subject::outcome_label(record.outcome()),
            reason: record.reason.clone(),
            dry_run: record.dry_run,
            node: record.node.clone(),
            namespace: record.namespace.clone(),
            pod: record.pod.clone(),
            incident_id: incident_id(
                &record.namespace,
                &record.pod,
                &record.container_id,
                &record.node,
            ),
            policy: record.policy.clone(),
            requested_by: record.requested_by.clone(),
            time_ms: ns_to_ms(record.time_ns),
        }
    }
}

/// `ACTION_KIND_NETWORK_CUT` → `network_cut`.
fn kind_label(kind: i32) -> String {
    ActionKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("ACTION_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown_{kind}"))
}

/// Whether an action contains a pod (true), releases it (false), or neither.
pub fn containment_effect(kind: &str) -> Option<bool> {
    match kind {
        "freeze" | "quarantine" | "network_cut" | "kill_container" => Some(true),
        "thaw" | "release" | "network_restore" => Some(false),
        _ => None,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScoreView {
    pub workload: String,
    pub namespace: String,
    pub pod: String,
    pub container_id: String,
    pub time_ms: f64,
    pub score: f64,
    pub novelty: f64,
    pub learning: bool,
}

impl ScoreView {
    pub fn new(score: &AnomalyScore) -> Self {
        let workload = if score.workload.is_empty() {
            format!("{}/{}", score.namespace, score.pod)
        } else {
            score.workload.clone()
        };
        Self {
            workload,
            namespace: score.namespace.clone(),
            pod: score.pod.clone(),
            container_id: score.container_id.clone(),
            time_ms: ns_to_ms(score.window_end_ns),
            score: score.score,
            novelty: score.novelty,
            learning: score.learning,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CommentView {
    pub user: String,
    pub time_ms: f64,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StateView {
    pub status: String,
    pub assignee: String,
    pub comments: Vec<CommentView>,
    pub proposed_change: String,
    pub updated_by: String,
    pub updated_ms: f64,
}

impl StateView {
    pub fn new(state: &IncidentState) -> Self {
        Self {
            status: status_label(state.status()),
            assignee: state.assignee.clone(),
            comments: state
                .comments
                .iter()
                .map(|c| CommentView {
                    user: c.user.clone(),
                    time_ms: ns_to_ms(c.time_ns),
                    text: c.text.clone(),
                })
                .collect(),
            proposed_change: state.proposed_change.clone(),
            updated_by: state.updated_by.clone(),
            updated_ms: ns_to_ms(state.updated_ns),
        }
    }

    pub fn open() -> Self {
        Self::new(&IncidentState {
            status: IncidentStatus::Open as i32,
            ..Default::default()
        })
    }
}

fn status_label(status: IncidentStatus) -> String {
    match status {
        IncidentStatus::Unspecified | IncidentStatus::Open => "open",
        IncidentStatus::Acknowledged => "acknowledged",
        IncidentStatus::Resolved => "resolved",
        IncidentStatus::FalsePositive => "false_positive",
    }
    .to_owned()
}

/// A payload the gateway could not decode, shown rather than dropped.
#[derive(Clone, Debug, Serialize)]
pub struct MalformedView {
    pub stream: &'static str,
    pub subject: String,
    pub sequence: u64,
    pub error: String,
    pub bytes: usize,
    pub time_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_keyed_by_pod_container_or_node() {
        assert_eq!(incident_id("shop", "web-1", "abc", "n1"), "shop.web-1");
        assert_eq!(
            incident_id("", "", "0123456789abcdef", "n1"),
            "_.container-0123456789ab"
        );
        assert_eq!(incident_id("", "", "", "node a"), "_.host-node=20a");
    }

    #[test]
    fn tactics_come_from_mitre_tags() {
        let tags = vec!["mitre_credential_access".into(), "T1555".into()];
        assert_eq!(tactics(&tags), vec!["credential_access".to_owned()]);
        assert_eq!(kind_label(ActionKind::NetworkCut as i32), "network_cut");
    }

    #[test]
    fn techniques_are_attack_ids_among_the_tags() {
        let tags: Vec<String> = ["T1555", "t1059.004", "T15", "T1059.4", "Tools", "mitre_x"]
            .map(String::from)
            .to_vec();
        assert_eq!(techniques(&tags), ["T1555", "T1059.004"]);
    }

    #[test]
    fn free_text_search_covers_process_fields_and_output_fields() {
        let finding = Finding {
            name: "Shell in container".into(),
            output_fields: [("fd.name".to_owned(), "/etc/Shadow".to_owned())].into(),
            events: vec![Event {
                comm: "bash".into(),
                cmdline: vec!["bash".into(), "-i".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let view = FindingView::new(&finding);
        for needle in ["shell in", "/etc/shadow", "bash -i", "bash"] {
            assert!(view.contains_text(needle), "{needle}");
        }
        assert!(!view.contains_text("nginx"));
        assert!(view.raw_events_text()[0].contains("comm: \"bash\""));
    }
}
