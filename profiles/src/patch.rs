//! The strategic-merge patch that puts a workload's container under its
//! learned profiles (for `kubectl patch --patch-file` or a kustomize
//! `patches:` entry). JSON, which is also YAML.

use serde_json::{Value, json};

/// Which object and container the patch is for.
#[derive(Clone, Debug)]
pub struct Target {
    /// `Deployment`, `DaemonSet` or `StatefulSet`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub container: String,
}

/// Where the kubelet looks for the profile, relative to
/// `/var/lib/kubelet/seccomp`.
pub fn seccomp_path(profile: &str) -> String {
    format!("vigil/{profile}.json")
}

/// The AppArmor profile name loaded on the node.
pub fn apparmor_name(profile: &str) -> String {
    format!("vigil-{profile}")
}

/// The patch: Localhost seccomp and AppArmor profiles on the container.
pub fn render(target: &Target, profile: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": target.kind,
        "metadata": { "name": target.name, "namespace": target.namespace },
        "spec": { "template": { "spec": { "containers": [{
            "name": target.container,
            "securityContext": {
                "seccompProfile": { "type": "Localhost", "localhostProfile": seccomp_path(profile) },
                "appArmorProfile": { "type": "Localhost", "localhostProfile": apparmor_name(profile) }
            }
        }]}}}
    })
}
