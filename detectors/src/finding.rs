//! From a rule match to a `Finding`, plus its Falco JSON form.

use sha2::{Digest, Sha256};
use vigil_proto::v1::{Event, EventBatch, Finding, FindingSource};
use vigil_rules::{
    Rule, RuleSet,
    fields::iso8601,
    output::{FieldValue, Rendered},
};

/// Hex digits kept of the SHA-256: 128 bits, far from any collision.
const ID_HEX_LEN: usize = 32;

/// A finding and its Falco-compatible JSON alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Raised {
    pub finding: Finding,
    pub falco_json: String,
}

/// Every finding `rules` raise for `batch`, stamped with `now_ns`.
pub fn evaluate(rules: &RuleSet, batch: &EventBatch, now_ns: u64) -> Vec<Raised> {
    let mut raised = Vec::new();
    for (index, event) in batch.events.iter().enumerate() {
        for rule in rules.matching(event) {
            raised.push(build(rule, batch, index, event, now_ns));
        }
    }
    raised
}

/// Deterministic id of the finding `rule` raises for event `index` of a
/// batch: a redelivered or re-published batch yields the same ids, which
/// JetStream then de-duplicates. The node is included so that collectors
/// that leave `run_id` empty cannot collide with one another.
pub fn finding_id(batch: &EventBatch, index: usize, rule: &str) -> String {
    let mut hash = Sha256::new();
    for part in [batch.node.as_bytes(), batch.run_id.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(batch.sequence.to_be_bytes());
    hash.update((index as u64).to_be_bytes());
    hash.update(rule.as_bytes());
    let mut id = hex::encode(hash.finalize());
    id.truncate(ID_HEX_LEN);
    id
}

fn build(rule: &Rule, batch: &EventBatch, index: usize, event: &Event, now_ns: u64) -> Raised {
    let rendered = rule.output.render(event);
    let pod = event.pod.as_ref();
    let node = if event.node.is_empty() {
        &batch.node
    } else {
        &event.node
    };
    // Falco's `time` is when the event happened, not when it was evaluated.
    let event_ns = if event.wall_time_ns > 0 {
        event.wall_time_ns
    } else {
        now_ns
    };
    let falco_json = falco_json(rule, &rendered, node, event_ns);
    let finding = Finding {
        id: finding_id(batch, index, &rule.name),
        time_ns: now_ns,
        source: FindingSource::Rule as i32,
        name: rule.name.clone(),
        priority: rule.priority as i32,
        tags: rule.tags.clone(),
        output_fields: rendered
            .fields
            .iter()
            .filter_map(|(name, value)| match value {
                FieldValue::Null => None,
                FieldValue::Number(n) => Some((name.clone(), n.to_string())),
                FieldValue::Text(s) => Some((name.clone(), s.clone())),
            })
            .collect(),
        output: rendered.text,
        container_id: event.container_id.clone(),
        pod: pod.map(|p| p.name.clone()).unwrap_or_default(),
        namespace: pod.map(|p| p.namespace.clone()).unwrap_or_default(),
        node: batch.node.clone(),
        events: vec![event.clone()],
        cgroup_path: event.cgroup_path.clone(),
        pod_uid: event.pod_uid.clone(),
        score: 0.0,
        explanation: Vec::new(),
        pod_labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
    };
    Raised {
        finding,
        falco_json,
    }
}

/// Falco's JSON alert: `time` (the event's, RFC 3339, ns), `rule`, `priority` (title
/// case), `source`, `hostname`, `tags`, `output`, `output_fields` (numbers
/// stay numbers, missing values are null).
pub fn falco_json(rule: &Rule, rendered: &Rendered, hostname: &str, time_ns: u64) -> String {
    let fields: serde_json::Map<String, serde_json::Value> = rendered
        .fields
        .iter()
        .map(|(name, value)| {
            let value = match value {
                FieldValue::Null => serde_json::Value::Null,
                FieldValue::Number(n) => serde_json::Value::from(*n),
                FieldValue::Text(s) => serde_json::Value::from(s.as_str()),
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::json!({
        "time": iso8601(time_ns),
        "rule": rule.name,
        "priority": title_case(rule.priority.label()),
        "source": rule.source,
        "hostname": hostname,
        "tags": rule.tags,
        "output": rendered.text,
        "output_fields": fields,
    })
    .to_string()
}

fn title_case(label: &str) -> String {
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{EventType, PodMeta};

    use super::*;

    fn batch(node: &str, run_id: &str, sequence: u64) -> EventBatch {
        EventBatch {
            node: node.into(),
            run_id: run_id.into(),
            sequence,
            ..Default::default()
        }
    }

    #[test]
    fn ids_are_stable_and_differ_in_every_component() {
        let base = finding_id(&batch("n1", "run", 1), 0, "rule");
        assert_eq!(base.len(), ID_HEX_LEN);
        assert_eq!(base, finding_id(&batch("n1", "run", 1), 0, "rule"));
        for other in [
            finding_id(&batch("n2", "run", 1), 0, "rule"),
            finding_id(&batch("n1", "run2", 1), 0, "rule"),
            finding_id(&batch("n1", "run", 2), 0, "rule"),
            finding_id(&batch("n1", "run", 1), 1, "rule"),
            finding_id(&batch("n1", "run", 1), 0, "rule2"),
            // Field boundaries matter: ("n1r", "un") is not ("n1", "run").
            finding_id(&batch("n1r", "un", 1), 0, "rule"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn findings_carry_pod_metadata_and_falco_json() {
        let rules = vigil_rules::RuleSet::load_sources(&[(
            "t.yaml",
            "- rule: Shell\n  desc: d\n  condition: evt.type = execve\n  output: shell %proc.name pid=%proc.pid file=%fd.name\n  priority: WARNING\n  tags: [T1059]\n",
        )])
        .unwrap();
        let mut input = batch("node-a", "run", 1);
        input.events.push(Event {
            r#type: EventType::Exec as i32,
            comm: "sh".into(),
            pid: 7,
            wall_time_ns: 1_685_022_245_478_445_995,
            pod: Some(PodMeta {
                name: "web-1".into(),
                namespace: "shop".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let raised = evaluate(&rules, &input, 1_700_000_000_000_000_000);
        assert_eq!(raised.len(), 1);
        let finding = &raised[0].finding;
        assert_eq!(
            (finding.pod.as_str(), finding.namespace.as_str()),
            ("web-1", "shop")
        );
        assert_eq!(finding.output, "shell sh pid=7 file=<NA>");
        let json: serde_json::Value = serde_json::from_str(&raised[0].falco_json).unwrap();
        assert_eq!(json["time"], "2023-05-25T13:44:05.478445995Z");
        assert_eq!(json["rule"], "Shell");
        assert_eq!(json["priority"], "Warning");
        assert_eq!(json["source"], "syscall");
        assert_eq!(json["hostname"], "node-a");
        assert_eq!(json["tags"], serde_json::json!(["T1059"]));
        assert_eq!(json["output_fields"]["proc.pid"], 7);
        assert_eq!(json["output_fields"]["fd.name"], serde_json::Value::Null);
        assert_eq!(json["output"], "shell sh pid=7 file=<NA>");
    }
}
