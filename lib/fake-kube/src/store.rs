//! Objects kept as JSON, validated against the k8s-openapi types on every
//! write, with a change log that watches replay from a resourceVersion.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Map, Value};

use crate::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Pod,
    NetworkPolicy,
}

impl Kind {
    pub fn group(self) -> &'static str {
        match self {
            Kind::Pod => "",
            Kind::NetworkPolicy => "networking.k8s.io",
        }
    }

    pub fn resource(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::NetworkPolicy => "networkpolicies",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Pod => "v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// Checks `object` against the real API type: it must deserialise, and
    /// every field it sets must survive a round trip (an unknown or misspelt
    /// field would be silently dropped by a real API server, or rejected with
    /// strict field validation; both are bugs in the caller).
    pub fn validate(self, object: &Value) -> Result<(), ApiError> {
        let round_trip = match self {
            Kind::Pod => round_trip::<Pod>(object),
            Kind::NetworkPolicy => round_trip::<NetworkPolicy>(object),
        }
        .map_err(|message| ApiError::invalid(self, message))?;
        let mut unknown = Vec::new();
        unknown_fields(object, &round_trip, String::new(), &mut unknown);
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                self,
                format!("unknown field(s): {}", unknown.join(", ")),
            ))
        }
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    object: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

fn unknown_fields(input: &Value, kept: &Value, path: String, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(input), Value::Object(kept)) => {
            for (key, value) in input {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(kept_value) => unknown_fields(value, kept_value, child, out),
                    None if value.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(input), Value::Array(kept)) => {
            for (index, (value, kept_value)) in input.iter().zip(kept).enumerate() {
                unknown_fields(value, kept_value, format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

/// One entry of the change log, as a watch sends it.
#[derive(Clone, Debug)]
pub struct Change {
    pub resource_version: u64,
    pub kind: Kind,
    pub change_type: &'static str,
    pub object: Value,
}

type Key = (Kind, String, String);

#[derive(Default)]
pub struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Change>,
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
    }

    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((k, ns, _), _)| *k == kind && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object.clone())
            .collect()
    }

    pub fn changes_since(&self, resource_version: u64) -> Vec<Change> {
        self.log
            .iter()
            .filter(|change| change.resource_version > resource_version)
            .cloned()
            .collect()
    }

    pub fn create(
        &mut self,
        kind: Kind,
        namespace: &str,
        mut object: Value,
    ) -> Result<Change, ApiError> {
        kind.validate(&object)?;
        let name = object_name(&object)
            .ok_or_else(|| ApiError::invalid(kind, "metadata.name: Required value".to_owned()))?;
        if self.get(kind, namespace, &name).is_some() {
            return Err(ApiError::already_exists(kind, &name));
        }
        self.stamp(kind, namespace, &mut object);
        Ok(self.record(kind, namespace, &name, "ADDED", object))
    }

    /// Stores `object` as given (test set-up), replacing any previous one.
    pub fn put(
        &mut self,
        kind: Kind,
        namespace: &str,
        mut object: Value,
    ) -> Result<Change, ApiError> {
        kind.validate(&object)?;
        let name = object_name(&object)
            .ok_or_else(|| ApiError::invalid(kind, "metadata.name: Required value".to_owned()))?;
        let change_type = if self.get(kind, namespace, &name).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.stamp(kind, namespace, &mut object);
        Ok(self.record(kind, namespace, &name, change_type, object))
    }

    /// Applies a JSON merge patch (RFC 7386). Server-side apply is treated
    /// as a merge too; `create` makes apply create a missing object.
    pub fn patch(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
        create: bool,
    ) -> Result<Change, ApiError> {
        let (mut object, change_type) = match self.get(kind, namespace, name) {
            Some(current) => (current.clone(), "MODIFIED"),
            None if create => (Value::Object(Map::new()), "ADDED"),
            None => return Err(ApiError::not_found(kind, name)),
        };
        merge(&mut object, patch);
        kind.validate(&object)?;
        self.stamp(kind, namespace, &mut object);
        Ok(self.record(kind, namespace, name, change_type, object))
    }

    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> Result<Change, ApiError> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let object = self
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        self.resource_version += 1;
        let change = Change {
            resource_version: self.resource_version,
            kind,
            change_type: "DELETED",
            object,
        };
        self.log.push(change.clone());
        Ok(change)
    }

    fn stamp(&mut self, kind: Kind, namespace: &str, object: &mut Value) {
        self.resource_version += 1;
        let Value::Object(map) = object else {
            return;
        };
        map.insert("apiVersion".into(), kind.api_version().into());
        map.insert("kind".into(), kind.kind().into());
        let metadata = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(metadata) = metadata {
            metadata.insert("namespace".into(), namespace.into());
            metadata.insert(
                "resourceVersion".into(),
                self.resource_version.to_string().into(),
            );
            metadata
                .entry("uid")
                .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
            metadata
                .entry("creationTimestamp")
                .or_insert_with(|| "2026-01-01T00:00:00Z".into());
        }
    }

    fn record(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
        change_type: &'static str,
        object: Value,
    ) -> Change {
        self.objects.insert(
            (kind, namespace.to_owned(), name.to_owned()),
            object.clone(),
        );
        let change = Change {
            resource_version: self.resource_version,
            kind,
            change_type,
            object,
        };
        self.log.push(change.clone());
        change
    }
}

pub fn object_name(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Field and label selectors as the API's list and watch calls take them:
/// `a=b`, `a==b`, `a!=b`, and for labels a bare key (exists).
pub fn selected(
    object: &Value,
    field_selector: Option<&str>,
    label_selector: Option<&str>,
) -> bool {
    let field_ok = field_selector.is_none_or(|selector| {
        terms(selector).all(|(path, op, wanted)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let actual = object
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            compare(op, Some(actual), wanted)
        })
    });
    let labels = object.pointer("/metadata/labels");
    let label_ok = label_selector.is_none_or(|selector| {
        terms(selector).all(|(key, op, wanted)| {
            let actual = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            compare(op, actual, wanted)
        })
    });
    field_ok && label_ok
}

fn terms(selector: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    selector.split(',').filter(|t| !t.is_empty()).map(|term| {
        if let Some((key, value)) = term.split_once("!=") {
            (key, "!=", value)
        } else if let Some((key, value)) = term.split_once("==") {
            (key, "=", value)
        } else if let Some((key, value)) = term.split_once('=') {
            (key, "=", value)
        } else {
            (term, "exists", "")
        }
    })
}

fn compare(op: &str, actual: Option<&str>, wanted: &str) -> bool {
    match op {
        "!=" => actual != Some(wanted),
        "exists" => actual.is_some(),
        _ => actual == Some(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named() {
        let pod =
            json!({"metadata": {"name": "a", "lables": {"x": "y"}}, "spec": {"containers": []}});
        let error = Kind::Pod.validate(&pod).expect_err("typo must be caught");
        assert!(
            error.message.contains("metadata.lables"),
            "{}",
            error.message
        );
        let good = json!({"metadata": {"name": "a", "labels": {"x": "y"}}});
        Kind::Pod.validate(&good).expect("valid pod");
    }

    #[test]
    fn wrong_types_are_rejected() {
        let policy = json!({"metadata": {"name": "p"}, "spec": {"podSelector": "everything"}});
        assert!(Kind::NetworkPolicy.validate(&policy).is_err());
    }

    #[test]
    fn merge_patch_adds_and_removes() {
        let mut store = Store::default();
        store
            .put(
                Kind::Pod,
                "ns",
                json!({"metadata": {"name": "a", "labels": {"keep": "1", "drop": "1"}}}),
            )
            .expect("put");
        let change = store
            .patch(
                Kind::Pod,
                "ns",
                "a",
                &json!({"metadata": {"labels": {"drop": null, "new": "2"}}}),
                false,
            )
            .expect("patch");
        assert_eq!(change.change_type, "MODIFIED");
        assert_eq!(
            change.object["metadata"]["labels"],
            json!({"keep": "1", "new": "2"})
        );
        assert!(
            store
                .patch(Kind::Pod, "ns", "missing", &json!({}), false)
                .is_err()
        );
    }

    #[test]
    fn selectors() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}});
        assert!(selected(&pod, Some("spec.nodeName=n1"), Some("app=web")));
        assert!(!selected(&pod, Some("spec.nodeName=n2"), None));
        assert!(selected(&pod, None, Some("app,tier!=db")));
        assert!(!selected(&pod, None, Some("app!=web")));
    }
}
