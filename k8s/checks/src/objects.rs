//! Kubernetes objects as parsed from YAML, before any typing.

use serde_json::Value;

/// One object of a rendered manifest.
#[derive(Clone, Debug)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub value: Value,
}

impl Object {
    /// `Kind/namespace/name`, the way errors name an object.
    pub fn id(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("document {index} has no {field}")]
    Missing { index: usize, field: &'static str },
}

/// Parses a multi-document YAML stream into objects; every document must
/// carry `apiVersion`, `kind` and `metadata.name`.
pub fn parse(text: &str) -> Result<Vec<Object>, ParseError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ParseError::Yaml(e.to_string()))?;
    documents
        .into_iter()
        .enumerate()
        .map(|(index, mut value)| {
            unwrap_secret_data(&mut value);
            let text_at = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
            let required = |pointer: &str, field: &'static str| {
                text_at(pointer)
                    .map(str::to_owned)
                    .ok_or(ParseError::Missing { index, field })
            };
            Ok(Object {
                api_version: required("/apiVersion", "apiVersion")?,
                kind: required("/kind", "kind")?,
                name: required("/metadata/name", "metadata.name")?,
                namespace: text_at("/metadata/namespace")
                    .unwrap_or_default()
                    .to_owned(),
                value: value.clone(),
            })
        })
        .collect()
}

/// kustomize breaks a long Secret value's base64 over several lines (a YAML
/// block), which the API server accepts (Go's decoder skips line breaks)
/// but k8s-openapi's does not: join them, as the server reads them.
fn unwrap_secret_data(value: &mut Value) {
    if value.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    if let Some(data) = value.get_mut("data").and_then(Value::as_object_mut) {
        for encoded in data.values_mut() {
            if let Some(text) = encoded.as_str() {
                *encoded = text.split_whitespace().collect::<String>().into();
            }
        }
    }
}
