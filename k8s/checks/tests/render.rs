//! Every overlay renders with `kubectl kustomize`, and every object in it is
//! a valid Kubernetes object that fits with the others.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use vigil_k8s_checks::render::{overlays, render};
use vigil_k8s_checks::validate::{Outcome, validate};
use vigil_k8s_checks::{Object, pss};

/// Secrets the operator creates in production instead of committing them.
const OPERATOR_SECRETS: &[&str] = &["vigil-nats-users", "vigil-console-users"];

fn rendered() -> Vec<(String, Vec<Object>)> {
    let dirs = overlays().expect("list k8s/overlays");
    let names: Vec<String> = dirs.iter().map(|d| name_of(d)).collect();
    assert_eq!(names, ["dev", "prod"], "overlays found");
    dirs.iter()
        .map(|dir| (name_of(dir), render(dir).unwrap_or_else(|e| panic!("{e}"))))
        .collect()
}

fn name_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_object_of_every_overlay_validates_against_the_api_types() {
    for (overlay, objects) in rendered() {
        let (mut valid, mut skipped, mut invalid) = (0, Vec::new(), Vec::new());
        for object in &objects {
            match validate(object) {
                Outcome::Valid => valid += 1,
                Outcome::Skipped(why) => skipped.push(format!("{}: {why}", object.id())),
                Outcome::Invalid(problems) => {
                    invalid.extend(problems.iter().map(|p| format!("{}{p}", object.id())))
                }
            }
        }
        println!(
            "{overlay}: {} objects rendered, {valid} validated, {} skipped",
            objects.len(),
            skipped.len()
        );
        for line in &skipped {
            println!("  skipped {line}");
        }
        assert!(
            invalid.is_empty(),
            "{overlay}: invalid objects:\n{}",
            invalid.join("\n")
        );
        assert!(
            skipped.is_empty(),
            "{overlay}: every kind Vigil ships has a type: {skipped:?}"
        );
        assert!(valid >= 30, "{overlay}: only {valid} objects");
    }
}

fn templates(objects: &[Object]) -> Vec<(&Object, PodTemplateSpec)> {
    objects
        .iter()
        .filter_map(|o| pss::pod_template(o).map(|t| (o, t)))
        .collect()
}

#[test]
fn every_service_runs_with_limits_probes_and_a_disruption_budget() {
    for (overlay, objects) in rendered() {
        let workloads = templates(&objects);
        let names: BTreeSet<&str> = workloads.iter().map(|(o, _)| o.name.as_str()).collect();
        let expected = [
            "vigil-anomaly-scorer",
            "vigil-collector",
            "vigil-console",
            "vigil-detectors",
            "vigil-forwarder",
            "vigil-nats",
            "vigil-responder-cluster",
            "vigil-responder-node",
        ];
        assert_eq!(names, expected.into_iter().collect(), "{overlay}");
        let budgets: Vec<&Object> = objects
            .iter()
            .filter(|o| o.kind == "PodDisruptionBudget")
            .collect();
        for (object, template) in &workloads {
            let spec = template.spec.as_ref().unwrap();
            for c in &spec.containers {
                let at = format!("{overlay} {} container {}", object.id(), c.name);
                let resources = c
                    .resources
                    .as_ref()
                    .unwrap_or_else(|| panic!("{at}: no resources"));
                for key in ["cpu", "memory"] {
                    assert!(
                        resources
                            .requests
                            .as_ref()
                            .is_some_and(|r| r.contains_key(key)),
                        "{at}: no {key} request"
                    );
                    assert!(
                        resources
                            .limits
                            .as_ref()
                            .is_some_and(|r| r.contains_key(key)),
                        "{at}: no {key} limit"
                    );
                }
                assert!(
                    c.readiness_probe.is_some() && c.liveness_probe.is_some(),
                    "{at}: probes"
                );
                assert!(
                    c.image
                        .as_deref()
                        .is_some_and(|i| i.contains(':') && !i.ends_with(":latest")),
                    "{at}: pinned image"
                );
            }
            if object.kind != "DaemonSet" {
                let labels = template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let covered = budgets.iter().any(|b| {
                    b.namespace == object.namespace
                        && b.value
                            .pointer("/spec/selector/matchLabels")
                            .and_then(|m| m.as_object())
                            .is_some_and(|m| {
                                m.iter()
                                    .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
                            })
                });
                assert!(
                    covered,
                    "{overlay}: no PodDisruptionBudget selects {}",
                    object.id()
                );
            }
        }
    }
}

#[test]
fn references_between_objects_resolve() {
    for (overlay, objects) in rendered() {
        let have: BTreeSet<(String, String, String)> = objects
            .iter()
            .map(|o| (o.kind.clone(), o.namespace.clone(), o.name.clone()))
            .collect();
        let mut missing = Vec::new();
        let mut check = |kind: &str, ns: &str, name: &str, from: &str| {
            let operator_made =
                kind == "Secret" && overlay == "prod" && OPERATOR_SECRETS.contains(&name);
            if !operator_made && !have.contains(&(kind.to_owned(), ns.to_owned(), name.to_owned()))
            {
                missing.push(format!("{from} refers to {kind} {ns}/{name}"));
            }
        };
        for (object, template) in templates(&objects) {
            let ns = object.namespace.as_str();
            let spec = template.spec.as_ref().unwrap();
            check(
                "ServiceAccount",
                ns,
                spec.service_account_name.as_deref().unwrap_or("default"),
                &object.id(),
            );
            for volume in spec.volumes.iter().flatten() {
                if let Some(cm) = &volume.config_map {
                    check("ConfigMap", ns, &cm.name, &object.id());
                }
            }
            for c in &spec.containers {
                for env in c.env.iter().flatten() {
                    if let Some(key) = env
                        .value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref())
                    {
                        check("Secret", ns, &key.name, &object.id());
                    }
                }
            }
        }
        for object in objects.iter().filter(|o| o.kind == "Service") {
            let selector = object
                .value
                .pointer("/spec/selector")
                .and_then(|s| s.as_object())
                .unwrap();
            let selected = templates(&objects).iter().any(|(w, t)| {
                let labels: BTreeMap<String, String> = t
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                w.namespace == object.namespace
                    && selector
                        .iter()
                        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
            });
            assert!(selected, "{overlay}: {} selects no pod", object.id());
        }
        for binding in objects.iter().filter(|o| o.kind == "ClusterRoleBinding") {
            let role = binding
                .value
                .pointer("/roleRef/name")
                .and_then(|v| v.as_str())
                .unwrap();
            check("ClusterRole", "", role, &binding.id());
            for subject in binding
                .value
                .pointer("/subjects")
                .and_then(|s| s.as_array())
                .unwrap()
            {
                let ns = subject["namespace"].as_str().unwrap_or_default();
                check(
                    "ServiceAccount",
                    ns,
                    subject["name"].as_str().unwrap(),
                    &binding.id(),
                );
            }
        }
        assert!(missing.is_empty(), "{overlay}:\n{}", missing.join("\n"));
    }
}

#[test]
fn prod_runs_a_three_node_jetstream_cluster_with_r3_streams() {
    let (_, objects) = rendered().into_iter().find(|(o, _)| o == "prod").unwrap();
    let nats = objects
        .iter()
        .find(|o| o.kind == "StatefulSet" && o.name == "vigil-nats")
        .unwrap();
    assert_eq!(
        nats.value
            .pointer("/spec/replicas")
            .and_then(|v| v.as_i64()),
        Some(3)
    );
    let config = objects
        .iter()
        .find(|o| o.kind == "ConfigMap" && o.name.starts_with("vigil-nats-config"))
        .unwrap();
    let conf = config
        .value
        .pointer("/data/nats.conf")
        .and_then(|v| v.as_str())
        .unwrap();
    for route in 0..3 {
        assert!(
            conf.contains(&format!("vigil-nats-{route}.vigil-nats-cluster")),
            "route {route} in {conf}"
        );
    }
    assert!(
        config.value.pointer("/data/auth.conf").is_some(),
        "users kept in prod"
    );
    for (object, template) in templates(&objects)
        .iter()
        .filter(|(o, _)| o.name != "vigil-nats")
    {
        let env = template.spec.as_ref().unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default();
        let r3 = env.iter().any(|e| {
            e.name.ends_with("__NATS__STREAM_REPLICAS") && e.value.as_deref() == Some("3")
        });
        assert!(r3, "{} does not create R3 streams", object.id());
    }
}
