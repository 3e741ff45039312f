//! Response policy files (`vigil_responder::policy`): every problem is
//! reported as `file:line:column: what` (or `file: what` where the YAML
//! parser gives no place); a policy that loads decides on any finding.

use std::collections::HashMap;

use vigil_proto::v1::{Finding, FindingSource, Priority};
use vigil_responder::policy::Policy;

const FILE: &str = "fuzz_policy.yaml";

pub fn check(text: &str) {
    match Policy::parse(text, FILE) {
        Ok(policy) => decide(&policy),
        Err(error) => {
            let message = error.to_string();
            assert_eq!(error.source_name, FILE, "{message}");
            assert!(!error.problems.is_empty(), "no problem named: {message}");
            for problem in &error.problems {
                assert!(
                    problem.starts_with(&format!("{FILE}:")),
                    "a problem that does not say where: {problem}"
                );
                assert!(
                    problem.len() > FILE.len() + 2,
                    "a problem that does not say what: {problem}"
                );
            }
        }
    }
}

fn decide(policy: &Policy) {
    let labels = HashMap::from([("app".to_owned(), "web".to_owned())]);
    for namespace in ["shop", "kube-system", ""] {
        std::hint::black_box(policy.protection(namespace, &labels));
    }
    for finding in sample_findings() {
        std::hint::black_box(policy.select(&finding));
    }
}

fn sample_findings() -> Vec<Finding> {
    let finding = |rule: &str, priority: Priority, source: FindingSource, score: f64| Finding {
        name: rule.into(),
        priority: priority.into(),
        source: source.into(),
        score,
        pod_labels: HashMap::from([("app".to_owned(), "web".to_owned())]),
        namespace: "shop".into(),
        pod: "web-0".into(),
        tags: vec!["container".into(), "mitre_credential_access".into()],
        ..Finding::default()
    };
    vec![
        finding(
            "Read sensitive file untrusted",
            Priority::Warning,
            FindingSource::Rule,
            0.0,
        ),
        finding(
            "Terminal shell in container",
            Priority::Critical,
            FindingSource::Rule,
            0.0,
        ),
        finding(
            "anomaly",
            Priority::Warning,
            FindingSource::Anomaly,
            f64::NAN,
        ),
        finding("anomaly", Priority::Emergency, FindingSource::Anomaly, 0.99),
        finding(
            "kernel drops",
            Priority::Error,
            FindingSource::Internal,
            0.0,
        ),
        Finding::default(),
    ]
}
