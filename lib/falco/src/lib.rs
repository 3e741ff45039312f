//! Falco's JSON alert, built from a Vigil [`Finding`] of any kind (rule,
//! anomaly, collector drops), as Falcosidekick's HTTP input, Falco Talon and
//! SIEMs that read Falco's `json_output` expect it:
//!
//! ```json
//! {"uuid": "…", "output": "2023-05-25T13:44:05.478445995Z: Warning …",
//!  "priority": "Warning", "rule": "…", "time": "2023-05-25T13:44:05.478445995Z",
//!  "output_fields": {"proc.pid": 7, …}, "source": "syscall",
//!  "tags": ["T1059"], "hostname": "node-a"}
//! ```
//!
//! A rule finding's message also carries the detectors' `Vigil-Falco-Json`
//! header, which keeps what the protobuf cannot: output fields typed
//! (numbers as numbers, missing as null), the rule's event source and the
//! event's own node. [`Alert::from_finding`] takes those from the header when
//! it is given and valid, and everything else from the finding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;
use vigil_proto::v1::{Finding, FindingSource, Priority};
use vigil_rules::fields::iso8601;

/// Names every alert's `uuid` from its finding id (UUID v5): a redelivered
/// finding keeps its uuid, so a receiver can drop the repeat.
const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x5f1c_0d4e_9a1b_4c8e_b7a2_6e3d_1f0a_9c42);

/// `source` of an anomaly finding (Falco's own are `syscall`, `k8s_audit`, plugins).
pub const ANOMALY_SOURCE: &str = "vigil_anomaly";
/// `source` of a finding Vigil raises about itself, such as dropped events.
pub const INTERNAL_SOURCE: &str = "vigil_internal";
/// `source` of a rule finding whose header does not say: Falco's default.
pub const RULE_SOURCE: &str = "syscall";

/// One Falco alert; serialises to Falco's JSON, keys in Falco's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub uuid: Uuid,
    /// `<time>: <Priority> <text>`, Falco's prefix with the ISO 8601 time.
    pub output: String,
    pub priority: String,
    pub rule: String,
    /// RFC 3339 with nanoseconds, UTC: when the event happened.
    pub time: String,
    pub output_fields: Map<String, Value>,
    pub source: String,
    pub tags: Vec<String>,
    pub hostname: String,
}

/// The parts of the detectors' header the protobuf does not hold.
#[derive(Debug, Default, Deserialize)]
struct Header {
    time: Option<String>,
    source: Option<String>,
    hostname: Option<String>,
    output_fields: Option<Map<String, Value>>,
}

/// A `Vigil-Falco-Json` header that is not the JSON object it should be.
#[derive(Debug, thiserror::Error)]
#[error("the Falco JSON header of finding {finding_id} is not a Falco alert object: {source}")]
pub struct HeaderError {
    pub finding_id: String,
    #[source]
    pub source: serde_json::Error,
}

impl Alert {
    /// The alert for `finding`, with `header` (the `Vigil-Falco-Json` value,
    /// when the message had one) supplying typed output fields, source,
    /// time and hostname. A header that does not parse is reported and the
    /// alert is built from the finding alone, so nothing is lost to it.
    pub fn from_finding(finding: &Finding, header: Option<&str>) -> (Alert, Option<HeaderError>) {
        let (header, error) = match header.map(serde_json::from_str::<Header>) {
            None => (None, None),
            Some(Ok(header)) => (Some(header), None),
            Some(Err(source)) => (
                None,
                Some(HeaderError {
                    finding_id: finding.id.clone(),
                    source,
                }),
            ),
        };
        (Self::build(finding, header.unwrap_or_default()), error)
    }

    fn build(finding: &Finding, header: Header) -> Alert {
        let priority = priority_name(finding.priority());
        let time = header
            .time
            .unwrap_or_else(|| iso8601(event_time_ns(finding)));
        let mut output_fields = header
            .output_fields
            .unwrap_or_else(|| string_fields(&finding.output_fields));
        add_context(&mut output_fields, finding);
        Alert {
            uuid: Uuid::new_v5(&UUID_NAMESPACE, finding.id.as_bytes()),
            output: format!("{time}: {priority} {}", finding.output),
            priority: priority.to_owned(),
            rule: finding.name.clone(),
            time,
            output_fields,
            source: header
                .source
                .unwrap_or_else(|| default_source(finding.source()).to_owned()),
            tags: finding.tags.clone(),
            hostname: header.hostname.unwrap_or_else(|| finding.node.clone()),
        }
    }

    /// Falco's one-line JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings and JSON values always serialise")
    }
}

/// Falco's spelling of a priority. Falco has no "unspecified": it reads as
/// the lowest, so a receiver's minimum-priority filter never raises it.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Unspecified | Priority::Debug => "Debug",
        Priority::Informational => "Informational",
        Priority::Notice => "Notice",
        Priority::Warning => "Warning",
        Priority::Error => "Error",
        Priority::Critical => "Critical",
        Priority::Alert => "Alert",
        Priority::Emergency => "Emergency",
    }
}

/// Falco's `time` is when the event happened; a finding without its event
/// (anomaly windows, drop counts) has only the time it was made.
fn event_time_ns(finding: &Finding) -> u64 {
    finding
        .events
        .first()
        .map(|event| event.wall_time_ns)
        .filter(|&ns| ns > 0)
        .unwrap_or(finding.time_ns)
}

fn default_source(source: FindingSource) -> &'static str {
    match source {
        FindingSource::Anomaly => ANOMALY_SOURCE,
        FindingSource::Internal => INTERNAL_SOURCE,
        FindingSource::Rule | FindingSource::Unspecified => RULE_SOURCE,
    }
}

/// The protobuf's fields (all strings), in a stable order.
fn string_fields(fields: &std::collections::HashMap<String, String>) -> Map<String, Value> {
    fields
        .iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
        .collect()
}

/// Falco's container and pod fields, which receivers such as Talon and
/// Falcosidekick route on, for findings whose template did not name them.
fn add_context(fields: &mut Map<String, Value>, finding: &Finding) {
    for (name, value) in [
        ("container.id", &finding.container_id),
        ("k8s.pod.name", &finding.pod),
        ("k8s.ns.name", &finding.namespace),
    ] {
        if !value.is_empty() && !fields.contains_key(name) {
            fields.insert(name.to_owned(), Value::from(value.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::Event;

    use super::*;

    fn anomaly() -> Finding {
        Finding {
            id: "finding:abc:1".into(),
            time_ns: 1_685_022_245_000_000_001,
            source: FindingSource::Anomaly as i32,
            name: "Anomalous behaviour".into(),
            priority: Priority::Warning as i32,
            tags: vec!["anomaly".into()],
            output: "Container abc behaves unlike its baseline".into(),
            output_fields: [("score".to_owned(), "0.9100".to_owned())].into(),
            container_id: "abc".into(),
            pod: "web-1".into(),
            namespace: "shop".into(),
            node: "node-a".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_anomaly_finding_becomes_a_complete_alert() {
        let (alert, error) = Alert::from_finding(&anomaly(), None);
        assert!(error.is_none());
        let json: Value = serde_json::from_str(&alert.to_json()).unwrap();
        let time = "2023-05-25T13:44:05.000000001Z";
        assert_eq!(
            json,
            serde_json::json!({
                "uuid": Uuid::new_v5(&UUID_NAMESPACE, b"finding:abc:1").to_string(),
                "output": format!("{time}: Warning Container abc behaves unlike its baseline"),
                "priority": "Warning",
                "rule": "Anomalous behaviour",
                "time": time,
                "output_fields": {"score": "0.9100", "container.id": "abc",
                                  "k8s.pod.name": "web-1", "k8s.ns.name": "shop"},
                "source": "vigil_anomaly",
                "tags": ["anomaly"],
                "hostname": "node-a",
            })
        );
    }

    #[test]
    fn a_rule_finding_takes_typed_fields_source_and_event_time_from_its_header() {
        let finding = Finding {
            source: FindingSource::Rule as i32,
            name: "Shell".into(),
            priority: Priority::Critical as i32,
            output: "shell sh".into(),
            events: vec![Event {
                wall_time_ns: 1_685_022_245_478_445_995,
                ..Default::default()
            }],
            ..anomaly()
        };
        let header = r#"{"time":"2023-05-25T13:44:05.478445995Z","rule":"Shell","source":"k8s_audit",
            "hostname":"node-b","output_fields":{"proc.pid":7,"fd.name":null}}"#;
        let (alert, error) = Alert::from_finding(&finding, Some(header));
        assert!(error.is_none());
        assert_eq!(
            alert.output,
            "2023-05-25T13:44:05.478445995Z: Critical shell sh"
        );
        assert_eq!(alert.source, "k8s_audit");
        assert_eq!(alert.hostname, "node-b");
        assert_eq!(alert.output_fields["proc.pid"], 7);
        assert_eq!(alert.output_fields["fd.name"], Value::Null);
        assert_eq!(alert.output_fields["k8s.ns.name"], "shop");

        let (without, _) = Alert::from_finding(&finding, None);
        assert_eq!(without.time, "2023-05-25T13:44:05.478445995Z");
        assert_eq!(without.source, RULE_SOURCE);
        assert_eq!(without.uuid, alert.uuid, "the uuid depends on the id only");
    }

    #[test]
    fn a_broken_header_is_reported_and_the_finding_still_forwarded() {
        let (alert, error) = Alert::from_finding(&anomaly(), Some("{not json"));
        let error = error.expect("the broken header is reported");
        assert!(error.to_string().contains("finding:abc:1"), "{error}");
        assert_eq!(alert.rule, "Anomalous behaviour");
        assert_eq!(alert.output_fields["score"], "0.9100");
    }

    #[test]
    fn drop_findings_and_unspecified_priorities() {
        let finding = Finding {
            source: FindingSource::Internal as i32,
            priority: Priority::Unspecified as i32,
            ..anomaly()
        };
        let (alert, _) = Alert::from_finding(&finding, None);
        assert_eq!(alert.source, INTERNAL_SOURCE);
        assert_eq!(alert.priority, "Debug");
        for value in 1..=8 {
            let priority = Priority::try_from(value).unwrap();
            assert_eq!(
                priority_name(priority).to_ascii_lowercase(),
                priority.label()
            );
        }
    }
}
