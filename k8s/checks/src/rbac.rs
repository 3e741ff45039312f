//! The permissions a ClusterRole grants, as (api group, resource, verb).

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::ClusterRole;

/// One permission: API group (`""` for core), resource, verb.
pub type Permission = (String, String, String);

/// Every (group, resource, verb) the role grants; a wildcard is kept as
/// `*`, so it never equals a specific permission and fails a comparison.
pub fn granted(role: &ClusterRole) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
        for url in rule.non_resource_urls.iter().flatten() {
            for verb in &rule.verbs {
                out.insert(("nonResourceURL".to_owned(), url.clone(), verb.clone()));
            }
        }
    }
    out
}

/// The same set from a `KUBE_PERMISSIONS`-style constant.
pub fn from_const(permissions: &[(&str, &str, &str)]) -> BTreeSet<Permission> {
    permissions
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect()
}
