//! From a rule match to a `Finding`.

use sha2::{Digest, Sha256};
use vigil_proto::v1::{Event, EventBatch, Finding, FindingSource};

use crate::engine::{Engine, Rule};

/// Hex digits kept of the SHA-256: 128 bits, far from any collision.
const ID_HEX_LEN: usize = 32;

/// Every finding the engine raises for `batch`, stamped with `now_ns`.
pub fn evaluate(engine: &Engine, batch: &EventBatch, now_ns: u64) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, event) in batch.events.iter().enumerate() {
        for rule in engine.matching(event) {
            findings.push(build(rule, batch, index, event, now_ns));
        }
    }
    findings
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

fn build(rule: &dyn Rule, batch: &EventBatch, index: usize, event: &Event, now_ns: u64) -> Finding {
    let info = rule.info();
    let rendered = info.output.render(event);
    Finding {
        id: finding_id(batch, index, &info.name),
        time_ns: now_ns,
        source: FindingSource::Rule as i32,
        name: info.name.clone(),
        priority: info.priority as i32,
        tags: info.tags.clone(),
        output: rendered.text,
        output_fields: rendered.fields,
        container_id: event.container_id.clone(),
        // Pod name and namespace need Kubernetes metadata, which no
        // service resolves yet; the subject then carries the `_` token.
        pod: String::new(),
        namespace: String::new(),
        node: batch.node.clone(),
        events: vec![event.clone()],
        cgroup_path: event.cgroup_path.clone(),
        pod_uid: event.pod_uid.clone(),
        score: 0.0,
        explanation: Vec::new(),
        pod_labels: event
            .pod
            .as_ref()
            .map(|pod| pod.labels.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
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
}
