//! The authorisation the fake server enforces: the rules of one ClusterRole,
//! read from the manifests we deploy, so a test fails when the code needs a
//! permission the manifests do not grant.

use std::path::Path;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};

/// One permission: API group ("" for core), resource (with subresource, as
/// in `pods/eviction`) and verb.
pub type Permission = (String, String, String);

#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML of Kubernetes objects: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: no ClusterRole named {name:?}")]
    NoSuchRole { path: String, name: String },
}

#[derive(Clone, Debug)]
pub struct Rbac {
    /// `None` grants everything.
    rules: Option<Vec<PolicyRule>>,
}

impl Rbac {
    pub fn allow_all() -> Self {
        Rbac { rules: None }
    }

    pub fn from_rules(rules: Vec<PolicyRule>) -> Self {
        Rbac { rules: Some(rules) }
    }

    /// Reads the ClusterRole `name` from a (multi-document) YAML manifest.
    pub fn from_manifest(path: impl AsRef<Path>, name: &str) -> Result<Self, RbacError> {
        let path_text = path.as_ref().display().to_string();
        let text = std::fs::read_to_string(path.as_ref()).map_err(|source| RbacError::Read {
            path: path_text.clone(),
            source,
        })?;
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|error| RbacError::Parse {
                path: path_text.clone(),
                message: error.to_string(),
            })?;
        let role = documents
            .into_iter()
            .filter(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some("ClusterRole"))
            .filter_map(|doc| serde_json::from_value::<ClusterRole>(doc).ok())
            .find(|role| role.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| RbacError::NoSuchRole {
                path: path_text,
                name: name.to_owned(),
            })?;
        Ok(Self::from_rules(role.rules.unwrap_or_default()))
    }

    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        rules.iter().any(|rule| {
            matches(rule.api_groups.as_deref(), group)
                && matches(rule.resources.as_deref(), resource)
                && matches(Some(&rule.verbs), verb)
        })
    }
}

fn matches(granted: Option<&[String]>, wanted: &str) -> bool {
    granted
        .unwrap_or_default()
        .iter()
        .any(|g| g == "*" || g == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(owned(groups)),
            resources: Some(owned(resources)),
            verbs: owned(verbs),
            ..Default::default()
        }
    }

    #[test]
    fn grants_only_what_the_rules_list() {
        let rbac = Rbac::from_rules(vec![
            rule(&[""], &["pods"], &["get", "patch"]),
            rule(&["networking.k8s.io"], &["*"], &["create"]),
        ]);
        assert!(rbac.allows("", "pods", "get"));
        assert!(!rbac.allows("", "pods", "delete"));
        assert!(!rbac.allows("", "pods/eviction", "create"));
        assert!(rbac.allows("networking.k8s.io", "networkpolicies", "create"));
        assert!(!rbac.allows("apps", "deployments", "create"));
        assert!(Rbac::allow_all().allows("apps", "deployments", "delete"));
    }

    #[test]
    fn reads_the_role_from_a_manifest() {
        let dir = std::env::temp_dir().join(format!("fake-kube-rbac-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("role.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n\
             rules:\n  - apiGroups: [\"\"]\n    resources: [pods]\n    verbs: [list]\n",
        )
        .expect("write manifest");
        let rbac = Rbac::from_manifest(&path, "r").expect("role");
        assert!(rbac.allows("", "pods", "list"));
        assert!(!rbac.allows("", "pods", "watch"));
        let missing = Rbac::from_manifest(&path, "other").expect_err("no such role");
        assert!(
            missing
                .to_string()
                .contains("no ClusterRole named \"other\"")
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
