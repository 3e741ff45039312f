//! The ClusterRoles grant exactly what the code uses: every (group,
//! resource, verb) of `k8s/base/rbac/*.yaml` equals the crate's
//! `KUBE_PERMISSIONS`, in both directions (a missing grant breaks the
//! service, an extra one is privilege nobody needs).
#![allow(clippy::unwrap_used, reason = "test assertions")]

use k8s_openapi::api::rbac::v1::ClusterRole;
use vigil_k8s_checks::objects::parse;
use vigil_k8s_checks::rbac::{from_const, granted};
use vigil_k8s_checks::render::k8s_dir;

/// What the code uses, declared next to the code that uses it.
mod uses {
    pub use vigil_collector::KUBE_PERMISSIONS as COLLECTOR;
    pub use vigil_responder::KUBE_PERMISSIONS as RESPONDER;
}

fn role(file: &str, name: &str) -> ClusterRole {
    let text = std::fs::read_to_string(k8s_dir().join("base/rbac").join(file)).unwrap();
    let objects = parse(&text).unwrap();
    let object = objects
        .iter()
        .find(|o| o.kind == "ClusterRole" && o.name == name)
        .unwrap_or_else(|| panic!("{file} has no ClusterRole {name}"));
    serde_json::from_value(object.value.clone()).unwrap()
}

#[test]
fn collector_role_grants_exactly_what_the_collector_uses() {
    assert_eq!(
        granted(&role("collector.yaml", "vigil-collector")),
        from_const(uses::COLLECTOR)
    );
}

#[test]
fn responder_role_grants_exactly_what_the_responder_uses() {
    assert_eq!(
        granted(&role("responder.yaml", "vigil-responder")),
        from_const(uses::RESPONDER)
    );
}

#[test]
fn a_wildcard_or_extra_verb_does_not_compare_equal() {
    let mut wide = role("responder.yaml", "vigil-responder");
    wide.rules.as_mut().unwrap()[0].verbs.push("*".to_owned());
    assert_ne!(granted(&wide), from_const(uses::RESPONDER));
}
