//! Validation of rendered objects against the Kubernetes API types.
//!
//! Each object is deserialised into its k8s-openapi type (which checks
//! `apiVersion`, `kind` and every field's type), serialised back and compared
//! with the input: a field the type does not know is lost on the way and
//! reported by its path, as is a value the API would read differently.
//! Custom resources Vigil uses (KEDA's ScaledObject) are typed by the minimal
//! structs below; any other kind is skipped by name with a reason.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{apps, core, networking, policy, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::objects::Object;

/// What happened to one object.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Typed and round-tripped without loss.
    Valid,
    /// Not checked, with why.
    Skipped(String),
    /// Problems, each naming the field path.
    Invalid(Vec<String>),
}

/// Validates one object.
pub fn validate(object: &Object) -> Outcome {
    let value = &object.value;
    let problems = match (object.api_version.as_str(), object.kind.as_str()) {
        ("v1", "Namespace") => round_trip::<core::v1::Namespace>(value),
        ("v1", "ConfigMap") => round_trip::<core::v1::ConfigMap>(value),
        ("v1", "Secret") => round_trip::<core::v1::Secret>(value),
        ("v1", "Service") => round_trip::<core::v1::Service>(value),
        ("v1", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(value),
        ("v1", "Pod") => round_trip::<core::v1::Pod>(value),
        ("apps/v1", "Deployment") => round_trip::<apps::v1::Deployment>(value),
        ("apps/v1", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(value),
        ("apps/v1", "StatefulSet") => round_trip::<apps::v1::StatefulSet>(value),
        ("policy/v1", "PodDisruptionBudget") => {
            round_trip::<policy::v1::PodDisruptionBudget>(value)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            round_trip::<rbac::v1::ClusterRole>(value)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(value)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<rbac::v1::Role>(value),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            round_trip::<rbac::v1::RoleBinding>(value)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            round_trip::<networking::v1::NetworkPolicy>(value)
        }
        ("keda.sh/v1alpha1", "ScaledObject") => scaled_object(value),
        (api_version, kind) => {
            return Outcome::Skipped(format!(
                "{api_version} {kind} has no type here (neither k8s-openapi nor a Vigil CRD struct)"
            ));
        }
    };
    if problems.is_empty() {
        Outcome::Valid
    } else {
        Outcome::Invalid(problems)
    }
}

/// Deserialises `value` into `T`, serialises it back and lists every
/// difference.
pub fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Vec<String> {
    let typed: T = match serde_json::from_value(value.clone()) {
        Ok(typed) => typed,
        Err(e) => return vec![format!("does not deserialise: {e}")],
    };
    match serde_json::to_value(&typed) {
        Ok(back) => {
            let mut problems = Vec::new();
            diff("", value, &back, &mut problems);
            problems
        }
        Err(e) => vec![format!("does not serialise back: {e}")],
    }
}

/// Lists paths present in `original` and missing or different in `back`.
fn diff(path: &str, original: &Value, back: &Value, problems: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => diff(&child, value, other, problems),
                    // An explicit null is the same as leaving the field out.
                    None if value.is_null() => {}
                    None => problems.push(format!("{child}: unknown field")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, problems);
            }
        }
        (a, b) if a == b => {}
        (a, b) => problems.push(format!("{path}: {a} is read as {b}")),
    }
}

/// KEDA's ScaledObject (keda.sh/v1alpha1), the fields Vigil uses.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaledObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ScaledObjectSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    pub scale_target_ref: ScaleTargetRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Advanced>,
    pub triggers: Vec<Trigger>,
}

/// `spec.advanced`: only the scaling modifiers (a formula over the named
/// triggers, compared with `target`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Advanced {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_modifiers: Option<ScalingModifiers>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalingModifiers {
    pub formula: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleTargetRef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: String,
    /// The trigger's name, by which a scaling-modifier formula refers to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Metadata keys of KEDA's `nats-jetstream` scaler.
const NATS_JETSTREAM_KEYS: &[&str] = &[
    "natsServerMonitoringEndpoint",
    "account",
    "stream",
    "consumer",
    "lagThreshold",
    "activationLagThreshold",
    "useHttps",
];
const NATS_JETSTREAM_REQUIRED: &[&str] = &[
    "natsServerMonitoringEndpoint",
    "account",
    "stream",
    "consumer",
];

fn scaled_object(value: &Value) -> Vec<String> {
    let mut problems = round_trip::<ScaledObject>(value);
    let Ok(object) = serde_json::from_value::<ScaledObject>(value.clone()) else {
        return problems;
    };
    let spec = &object.spec;
    if let (Some(min), Some(max)) = (spec.min_replica_count, spec.max_replica_count)
        && min > max
    {
        problems.push(format!(
            ".spec: minReplicaCount {min} > maxReplicaCount {max}"
        ));
    }
    if let Some(modifiers) = spec
        .advanced
        .as_ref()
        .and_then(|a| a.scaling_modifiers.as_ref())
    {
        scaling_modifiers(modifiers, &spec.triggers, &mut problems);
    }
    for (i, trigger) in spec.triggers.iter().enumerate() {
        if trigger.kind != "nats-jetstream" {
            problems.push(format!(
                ".spec.triggers[{i}].type: {:?} is not nats-jetstream",
                trigger.kind
            ));
            continue;
        }
        for key in trigger.metadata.keys() {
            if !NATS_JETSTREAM_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    ".spec.triggers[{i}].metadata.{key}: not a nats-jetstream key"
                ));
            }
        }
        for key in NATS_JETSTREAM_REQUIRED {
            if !trigger.metadata.contains_key(*key) {
                problems.push(format!(".spec.triggers[{i}].metadata.{key}: missing"));
            }
        }
    }
    problems
}

/// KEDA's rules for a composite metric: every trigger named (uniquely),
/// the formula uses only those names, every trigger counts, a numeric
/// target, and a metric type the HPA can average or take as is.
fn scaling_modifiers(
    modifiers: &ScalingModifiers,
    triggers: &[Trigger],
    problems: &mut Vec<String>,
) {
    let path = ".spec.advanced.scalingModifiers";
    let mut names = BTreeSet::new();
    for (i, trigger) in triggers.iter().enumerate() {
        match &trigger.name {
            Some(name) if !names.insert(name.as_str()) => {
                problems.push(format!(".spec.triggers[{i}].name: {name:?} used twice"));
            }
            Some(_) => {}
            None => problems.push(format!(
                ".spec.triggers[{i}].name: missing (the formula needs it)"
            )),
        }
    }
    let used = identifiers(&modifiers.formula);
    for name in used.iter().filter(|n| !names.contains(n.as_str())) {
        problems.push(format!("{path}.formula: {name:?} is no trigger's name"));
    }
    for name in names.iter().filter(|n| !used.contains(**n)) {
        problems.push(format!("{path}.formula: trigger {name:?} is not used"));
    }
    if !modifiers.target.parse::<f64>().is_ok_and(|t| t > 0.0) {
        problems.push(format!(
            "{path}.target: {:?} is not a positive number",
            modifiers.target
        ));
    }
    if let Some(kind) = &modifiers.metric_type
        && kind != "AverageValue"
        && kind != "Value"
    {
        problems.push(format!(
            "{path}.metricType: {kind:?} is not AverageValue or Value"
        ));
    }
}

/// Names in an expr-lang formula (function calls excluded).
fn identifiers(formula: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = formula;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let preceded_by_digit = rest[..start].ends_with(|c: char| c.is_ascii_digit() || c == '.');
        if !tail[end..].trim_start().starts_with('(') && !preceded_by_digit {
            found.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::parse;

    fn outcome(yaml: &str) -> Outcome {
        let objects = parse(yaml).expect("parse");
        validate(&objects[0])
    }

    #[test]
    fn a_misspelt_field_is_reported_with_its_path() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {app: a}\n  ports:\n    - {port: 80, targetport: 8080}\n";
        assert_eq!(
            outcome(yaml),
            Outcome::Invalid(vec![".spec.ports[0].targetport: unknown field".to_owned()])
        );
    }

    #[test]
    fn a_wrong_type_is_reported() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: two\n  selector: {}\n  template: {}\n";
        assert!(
            matches!(outcome(yaml), Outcome::Invalid(p) if p[0].contains("replicas") || p[0].contains("invalid type"))
        );
    }

    #[test]
    fn a_correct_object_is_valid_and_an_unknown_kind_skipped() {
        let yaml =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\ndata: {k: v}\n";
        assert_eq!(outcome(yaml), Outcome::Valid);
        let yaml = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n";
        assert!(matches!(outcome(yaml), Outcome::Skipped(_)));
    }

    #[test]
    fn scaled_object_keys_are_checked() {
        let yaml = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a}\nspec:\n  scaleTargetRef: {name: a}\n  triggers:\n    - type: nats-jetstream\n      metadata: {stream: S, consumer: c, account: $G, lagTreshold: '5'}\n";
        let Outcome::Invalid(problems) = outcome(yaml) else {
            panic!("expected problems");
        };
        assert!(
            problems
                .iter()
                .any(|p| p.contains("lagTreshold: not a nats-jetstream key")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("natsServerMonitoringEndpoint: missing")),
            "{problems:?}"
        );
    }

    #[test]
    fn scaling_modifiers_must_name_every_trigger_they_sum() {
        let trigger = |name: &str| {
            format!(
                "    - {{type: nats-jetstream, {name}metadata: {{natsServerMonitoringEndpoint: n:8222, stream: S, consumer: c, account: $G}}}}\n"
            )
        };
        let object = |formula: &str, target: &str, triggers: &[String]| {
            format!(
                "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: a}}\nspec:\n  scaleTargetRef: {{name: a}}\n  advanced:\n    scalingModifiers: {{formula: \"{formula}\", target: \"{target}\"}}\n  triggers:\n{}",
                triggers.concat()
            )
        };
        let good = object(
            "p0 + max(p1, 0)",
            "2000",
            &[trigger("name: p0, "), trigger("name: p1, ")],
        );
        assert_eq!(outcome(&good), Outcome::Valid);
        let bad = object(
            "p0 + p2",
            "x",
            &[trigger("name: p0, "), trigger("name: p1, "), trigger("")],
        );
        let Outcome::Invalid(problems) = outcome(&bad) else {
            panic!("expected problems");
        };
        for wanted in [
            ".spec.triggers[2].name: missing",
            "\"p2\" is no trigger's name",
            "trigger \"p1\" is not used",
            ".target: \"x\" is not a positive number",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(wanted)),
                "{wanted}: {problems:?}"
            );
        }
        assert_eq!(
            identifiers("a1 + 2.5e3 * b_2 - min(c, 1)"),
            BTreeSet::from(["a1".into(), "b_2".into(), "c".into()])
        );
    }
}
