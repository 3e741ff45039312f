//! `console/web/src/types.ts` is written by hand from the gateway's views:
//! this checks that every interface there has exactly the fields the Rust
//! view serialises, so neither side can change alone.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde::Serialize;
use vigil_proto::v1::{ActionRecord, AnomalyScore, Event, Finding, IncidentComment, IncidentState};

use crate::{
    store::{Containment, MinuteCount, Store, process_tree},
    views::{ActionView, FeatureView, FindingView, MalformedView, ScoreView, StateView},
};

const TYPES_TS: &str = include_str!("../web/src/types.ts");

/// Interfaces built in `api.rs` with `json!` rather than from a view type;
/// their fields are not checked here.
const BUILT_IN_API: [&str; 3] = ["FindingDetail", "IncidentDetail", "Session"];

/// Field names of each `export interface` in `source`.
fn interfaces(source: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut found = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>)> = None;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("export interface ") {
            let name = rest.trim_end_matches('{').trim().to_owned();
            current = Some((name, BTreeSet::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                found.insert(name, fields);
            }
        } else if let Some((_, fields)) = current.as_mut()
            && let Some((field, _)) = line.split_once(':')
        {
            fields.insert(field.trim().trim_end_matches('?').to_owned());
        }
    }
    found
}

fn keys(value: &impl Serialize) -> BTreeSet<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        other => panic!("a view serialises to an object, not {other:?}"),
    }
}

/// One serialised sample per interface, every optional part present.
fn samples() -> BTreeMap<&'static str, BTreeSet<String>> {
    let finding = Finding {
        id: "f1".into(),
        namespace: "shop".into(),
        pod: "web-1".into(),
        events: vec![Event {
            pid: 7,
            comm: "sh".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let finding = FindingView::new(&finding);
    let process = finding.process.clone().expect("the sample has a process");
    let state = StateView::new(&IncidentState {
        comments: vec![IncidentComment::default()],
        ..Default::default()
    });
    let comment = state.comments.first().cloned().expect("one comment");
    let mut store = Store::new(10, 10);
    store.add_finding(finding.clone());
    let incident = store.incidents().pop().expect("the finding's incident");
    let tree = process_tree(&[Arc::new(finding.clone())]);
    let node = tree.first().expect("one process in the tree");
    let containment = Containment {
        contained: true,
        dry_run: false,
        kind: "freeze".into(),
        outcome: "succeeded",
        requested_by: String::new(),
        time_ms: 0.0,
    };
    let malformed = MalformedView {
        stream: "VIGIL_FINDINGS",
        subject: String::new(),
        sequence: 1,
        error: String::new(),
        bytes: 0,
        time_ms: 0.0,
    };
    BTreeMap::from([
        ("Process", keys(&process)),
        ("Finding", keys(&finding)),
        (
            "Feature",
            keys(&FeatureView {
                feature: "execve".into(),
                value: 1.0,
                weight: 0.5,
            }),
        ),
        ("Action", keys(&ActionView::new(&ActionRecord::default()))),
        ("Score", keys(&ScoreView::new(&AnomalyScore::default()))),
        ("Comment", keys(&comment)),
        ("IncidentState", keys(&state)),
        ("Containment", keys(&containment)),
        ("Incident", keys(&incident)),
        ("TreeNode", keys(node)),
        ("MinuteCount", keys(&MinuteCount::default())),
        ("Malformed", keys(&malformed)),
    ])
}

/// Every difference between the interfaces in `source` and the views.
fn problems(source: &str) -> Vec<String> {
    let declared = interfaces(source);
    let samples = samples();
    let mut problems = Vec::new();
    for (name, fields) in &declared {
        if BUILT_IN_API.contains(&name.as_str()) {
            continue;
        }
        let Some(rust) = samples.get(name.as_str()) else {
            problems.push(format!(
                "interface {name}: no Rust view is checked against it"
            ));
            continue;
        };
        for missing in rust.difference(fields) {
            problems.push(format!(
                "interface {name}: no field {missing} (Rust sends it)"
            ));
        }
        for extra in fields.difference(rust) {
            problems.push(format!(
                "interface {name}: field {extra} is not sent by Rust"
            ));
        }
    }
    for name in samples.keys() {
        if !declared.contains_key(*name) {
            problems.push(format!("types.ts has no interface {name}"));
        }
    }
    problems
}

#[test]
fn types_ts_has_exactly_the_fields_of_the_rust_views() {
    let problems = problems(TYPES_TS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_field_types_ts_lacks_or_invents_is_reported() {
    let edited = TYPES_TS
        .replace("  novelty: number;\n", "")
        .replace("  pid: number;\n", "  pid: number;\n  uid: number;\n");
    assert_eq!(
        problems(&edited),
        vec![
            "interface Process: field uid is not sent by Rust".to_owned(),
            "interface Score: no field novelty (Rust sends it)".to_owned(),
        ]
    );
}

#[test]
fn the_interface_reader_sees_fields_and_nothing_else() {
    let found =
        interfaces("export interface A {\n  x: number;\n  y?: B | null;\n}\nexport const Z = 1;\n");
    let fields: BTreeSet<String> = ["x", "y"].into_iter().map(String::from).collect();
    assert_eq!(found, BTreeMap::from([("A".to_owned(), fields)]));
}
