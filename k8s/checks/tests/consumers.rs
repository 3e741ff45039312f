//! Every JetStream consumer a KEDA ScaledObject watches, in every rendered
//! overlay, is one the services really create (`vigil_bus::topology`): a
//! trigger on a consumer nobody creates reads no lag and never scales. The
//! scorer's ScaledObject watches all of its per-partition consumers.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::{BTreeMap, BTreeSet};

use vigil_bus::topology::{self, ConsumerSpec};
use vigil_k8s_checks::render::{overlays, render};
use vigil_k8s_checks::validate::ScaledObject;

/// Durable name → stream of every consumer the bus topology defines for a
/// service that KEDA may scale.
fn defined() -> BTreeMap<String, &'static str> {
    let mut specs: Vec<ConsumerSpec> = topology::anomaly_scorer_consumers();
    specs.push(topology::detectors_consumer());
    specs
        .into_iter()
        .map(|spec| (spec.durable_name, spec.stream.name))
        .collect()
}

/// (overlay, ScaledObject) for every ScaledObject of every overlay.
fn scaled_objects() -> Vec<(String, ScaledObject)> {
    let mut found = Vec::new();
    for dir in overlays().unwrap() {
        let overlay = dir.file_name().unwrap().to_string_lossy().into_owned();
        for object in render(&dir).unwrap_or_else(|e| panic!("{e}")) {
            if object.kind == "ScaledObject" {
                let parsed = serde_json::from_value(object.value.clone())
                    .unwrap_or_else(|e| panic!("{overlay}: {}: {e}", object.id()));
                found.push((overlay.clone(), parsed));
            }
        }
    }
    found
}

#[test]
fn every_scaled_object_watches_consumers_the_services_create() {
    let defined = defined();
    let objects = scaled_objects();
    assert!(
        objects.iter().any(|(overlay, _)| overlay == "prod"),
        "prod scales with KEDA, so it has ScaledObjects"
    );
    let mut problems = Vec::new();
    for (overlay, object) in &objects {
        let name = &object.metadata.name.clone().unwrap_or_default();
        for trigger in &object.spec.triggers {
            let consumer = trigger
                .metadata
                .get("consumer")
                .cloned()
                .unwrap_or_default();
            let stream = trigger.metadata.get("stream").cloned().unwrap_or_default();
            match defined.get(&consumer) {
                None => problems.push(format!(
                    "{overlay}: ScaledObject {name} watches consumer {consumer:?}, which no service creates"
                )),
                Some(&wanted) if wanted != stream => problems.push(format!(
                    "{overlay}: ScaledObject {name}: consumer {consumer:?} is on {wanted}, not {stream:?}"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scorer_scales_on_the_lag_of_all_its_partitions() {
    let all: BTreeSet<String> = topology::anomaly_scorer_consumers()
        .into_iter()
        .map(|spec| spec.durable_name)
        .collect();
    let scorers: Vec<(String, ScaledObject)> = scaled_objects()
        .into_iter()
        .filter(|(_, o)| o.spec.scale_target_ref.name == "vigil-anomaly-scorer")
        .collect();
    assert!(!scorers.is_empty(), "a ScaledObject scales the scorer");
    for (overlay, object) in scorers {
        let watched: BTreeSet<String> = object
            .spec
            .triggers
            .iter()
            .filter_map(|t| t.metadata.get("consumer").cloned())
            .collect();
        assert_eq!(watched, all, "{overlay}: one trigger per partition");
        let modifiers = object
            .spec
            .advanced
            .as_ref()
            .and_then(|a| a.scaling_modifiers.as_ref())
            .unwrap_or_else(|| panic!("{overlay}: the triggers' lags are summed"));
        let terms: BTreeSet<&str> = modifiers.formula.split('+').map(str::trim).collect();
        let names: BTreeSet<&str> = object
            .spec
            .triggers
            .iter()
            .filter_map(|t| t.name.as_deref())
            .collect();
        assert_eq!(
            terms, names,
            "{overlay}: the formula is the sum of every trigger"
        );
        // More replicas than partitions would own nothing.
        let max = object.spec.max_replica_count.unwrap_or(100);
        assert!(
            max <= vigil_bus::subject::EVENT_PARTITIONS,
            "{overlay}: maxReplicaCount {max}"
        );
    }
}
