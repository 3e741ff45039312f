//! What "false positive" proposes: for rule findings, a Falco rule exception
//! (appended to the rule, so the rule itself stays untouched) covering the
//! namespace and executable that matched; for anomaly findings, a baseline
//! update that teaches the workload's model these windows. The text is for
//! review in the console and in a pull request; nothing applies it here.

use std::{collections::BTreeMap, collections::BTreeSet, fmt::Write, sync::Arc};

use crate::{store::IncidentSummary, views::FindingView};

pub fn propose(
    findings: &[Arc<FindingView>],
    incident: &IncidentSummary,
    user: &str,
    reason: &str,
) -> String {
    let mut out = String::new();
    // Values are written as JSON strings, which YAML reads as plain scalars.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let _ = writeln!(
        out,
        "# Proposed by {user} for incident {}: {}",
        incident.id,
        reason.replace('\n', " ")
    );
    let mut by_rule: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    let mut anomalies: BTreeSet<&str> = BTreeSet::new();
    for f in findings {
        if f.source == "anomaly" {
            anomalies.insert(&f.id);
            continue;
        }
        let exe = f.process.as_ref().map_or("", |p| p.exe.as_str());
        by_rule
            .entry(&f.rule)
            .or_default()
            .insert((&f.namespace, exe));
    }
    for (rule, values) in &by_rule {
        let name = format!("vigil_console_{}", exception_name(&incident.id));
        let _ = writeln!(out, "- rule: {}", q(rule));
        let _ = writeln!(out, "  exceptions:");
        let _ = writeln!(out, "    - name: {name}");
        let _ = writeln!(out, "      fields: [k8s.ns.name, proc.exepath]");
        let _ = writeln!(out, "      comps: [=, =]");
        let _ = writeln!(out, "      values:");
        for (namespace, exe) in values {
            let _ = writeln!(out, "        - [{}, {}]", q(namespace), q(exe));
        }
        let _ = writeln!(out, "  override:");
        let _ = writeln!(out, "    exceptions: append");
    }
    if !anomalies.is_empty() {
        let _ = writeln!(out, "baseline_update:");
        let _ = writeln!(out, "  namespace: {}", q(&incident.namespace));
        let _ = writeln!(out, "  pod: {}", q(&incident.pod));
        let _ = writeln!(out, "  accept_findings:");
        for id in anomalies {
            let _ = writeln!(out, "    - {}", q(id));
        }
    }
    out
}

fn exception_name(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{ProcessView, StateView};

    #[test]
    fn rule_findings_become_an_appended_exception() {
        let finding = FindingView {
            id: "f1".into(),
            time_ms: 0.0,
            source: "rule",
            rule: "Read sensitive file".into(),
            priority: "warning",
            severity: 4,
            tags: vec![],
            tactics: vec![],
            techniques: vec![],
            output: String::new(),
            output_fields: Default::default(),
            namespace: "shop".into(),
            pod: "web-1".into(),
            node: "n1".into(),
            container_id: String::new(),
            incident_id: "shop.web-1".into(),
            score: 0.0,
            process: Some(ProcessView {
                pid: 3,
                comm: "tail".into(),
                exe: "/usr/bin/tail".into(),
                cmdline: vec![],
            }),
            ancestors: vec![],
            explanation: vec![],
            raw_events: vec![],
        };
        let incident = IncidentSummary {
            id: "shop.web-1".into(),
            namespace: "shop".into(),
            pod: "web-1".into(),
            first_ms: 0.0,
            last_ms: 0.0,
            findings: 1,
            max_priority: "warning",
            max_severity: 4,
            rules: BTreeSet::new(),
            latest_finding_id: "f1".into(),
            state: StateView::open(),
            containment: None,
        };
        let yaml = propose(
            &[Arc::new(finding)],
            &incident,
            "ann",
            "backup job\nreads it",
        );
        assert!(
            yaml.starts_with("# Proposed by ann for incident shop.web-1: backup job reads it\n"),
            "{yaml}"
        );
        assert!(yaml.contains("- rule: \"Read sensitive file\"\n"), "{yaml}");
        assert!(
            yaml.contains("        - [\"shop\", \"/usr/bin/tail\"]\n"),
            "{yaml}"
        );
        assert!(yaml.contains("    exceptions: append\n"), "{yaml}");
    }
}
