//! Pod Security Standards on Vigil's own pods: every pod in a namespace
//! that enforces `restricted` meets it, and the node agents in
//! vigil-system deviate exactly as k8s/README.md documents, no more.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::{BTreeMap, BTreeSet};

use vigil_k8s_checks::pss::{self, Level};
use vigil_k8s_checks::render::{overlays, render};

/// The documented exceptions: workload → the restricted controls it breaks.
fn documented_exceptions() -> BTreeMap<&'static str, BTreeSet<String>> {
    let collector = [
        "hostNamespaces: hostPID=true",
        "hostPathVolumes: volume \"host-proc\"",
        "hostPathVolumes: volume \"host-cgroup\"",
        "volumeTypes: volume \"host-proc\"",
        "volumeTypes: volume \"host-cgroup\"",
        "runAsNonRoot: container \"collector\"",
        "runAsUser: container \"collector\"",
        "capabilities: container \"collector\": capabilities.add BPF",
        "capabilities: container \"collector\": capabilities.add PERFMON",
        "capabilities: container \"collector\": capabilities.add SYS_RESOURCE",
        "capabilities: container \"collector\": capabilities.add SYS_PTRACE",
    ];
    let responder = [
        "hostNamespaces: hostPID=true",
        "hostPathVolumes: volume \"host-cgroup\"",
        "volumeTypes: volume \"host-cgroup\"",
        "runAsNonRoot: container \"responder\"",
        "runAsUser: container \"responder\"",
        "capabilities: container \"responder\": capabilities.add KILL",
        "capabilities: container \"responder\": capabilities.add SYS_PTRACE",
        "capabilities: container \"responder\": capabilities.add SYS_ADMIN",
        "capabilities: container \"responder\": capabilities.add NET_ADMIN",
    ];
    BTreeMap::from([
        (
            "vigil-collector",
            collector.iter().map(|s| s.to_string()).collect(),
        ),
        (
            "vigil-responder-node",
            responder.iter().map(|s| s.to_string()).collect(),
        ),
    ])
}

#[test]
fn vigil_pods_meet_restricted_except_the_documented_node_agents() {
    let exceptions = documented_exceptions();
    for dir in overlays().unwrap() {
        let objects = render(&dir).unwrap();
        let levels: BTreeMap<&str, Level> = objects
            .iter()
            .filter(|o| o.kind == "Namespace")
            .map(|o| {
                let label = o
                    .value
                    .pointer("/metadata/labels/pod-security.kubernetes.io~1enforce");
                let level = label.and_then(|l| l.as_str()).and_then(Level::parse);
                (
                    o.name.as_str(),
                    level.unwrap_or_else(|| panic!("{} has no enforce label", o.name)),
                )
            })
            .collect();
        assert_eq!(levels.get("vigil"), Some(&Level::Restricted));
        let mut checked = 0;
        for object in &objects {
            let Some(template) = pss::pod_template(object) else {
                continue;
            };
            let spec = template.spec.unwrap();
            let enforced = levels[object.namespace.as_str()];
            assert!(
                pss::evaluate(&spec, enforced).is_empty(),
                "{} is rejected by its namespace",
                object.id()
            );
            let broken: BTreeSet<String> = pss::evaluate(&spec, Level::Restricted)
                .into_iter()
                .map(|v| format!("{}: {}", v.rule, v.detail))
                .collect();
            let allowed = exceptions
                .get(object.name.as_str())
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                broken,
                allowed,
                "{}: restricted deviations differ from k8s/README.md",
                object.id()
            );
            let seccomp = spec
                .security_context
                .and_then(|s| s.seccomp_profile)
                .map(|p| p.type_);
            assert_eq!(
                seccomp.as_deref(),
                Some("RuntimeDefault"),
                "{}: seccomp baseline",
                object.id()
            );
            checked += 1;
        }
        println!(
            "{}: {checked} pod templates checked against restricted",
            dir.display()
        );
        assert_eq!(checked, 8);
    }
}
