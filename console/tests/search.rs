//! Searching findings, one finding's detail and exporting a filtered view,
//! against a real nats-server: free text over rule, output, process and
//! output fields; ATT&CK technique filter; the raw event and an anomaly's
//! top features; CSV (quoted, formulas defused) and JSON; bad queries 400
//! naming the field; nothing without credentials.
#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed step should panic with its cause"
)]

mod common;

use common::*;
use serde_json::Value;
use vigil_proto::v1::{FeatureContribution, FindingSource, Priority};

fn ids(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn findings_are_searched_shown_in_detail_and_exported() {
    let console = start().await;
    let addr = console.addr;
    let mut shell = finding("f-shell", "shop", "web-1", Priority::Critical);
    shell.source = FindingSource::Rule as i32;
    shell.name = "Terminal shell in container".into();
    shell.tags.push("T1059.004".into());
    shell.output = "=HYPERLINK(\"x\"), shell spawned".into();
    shell
        .output_fields
        .insert("proc.cmdline".into(), "bash -i".into());
    let mut anomaly = finding("f-anomaly", "db", "pg-0", Priority::Warning);
    anomaly.source = FindingSource::Anomaly as i32;
    anomaly.name = "Anomalous syscall window".into();
    anomaly.score = 0.93;
    anomaly.explanation = vec![FeatureContribution {
        feature: "ptrace".into(),
        value: 12.0,
        weight: 0.7,
    }];
    anomaly.events[0].comm = "postgres".into();
    publish_finding(&console.js, &shell).await;
    publish_finding(&console.js, &anomaly).await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    wait_for_finding(addr, &ann, "f-shell").await;
    wait_for_finding(addr, &ann, "f-anomaly").await;

    // Free text, case-insensitive, over output fields, process and rule.
    let search = |query: &'static str| {
        let ann = &ann;
        async move { ids(&ann.get(addr, &format!("/api/findings?{query}")).await) }
    };
    assert_eq!(search("q=BASH%20-I").await, ["f-shell"]);
    assert_eq!(search("q=postgres").await, ["f-anomaly"]);
    assert_eq!(search("q=shadow").await.len(), 2, "both outputs name it");
    assert_eq!(search("q=shadow&priority=critical").await, ["f-shell"]);
    assert_eq!(search("technique=T1059.004").await, ["f-shell"]);
    assert!(search("q=nothing-like-this").await.is_empty());

    // Detail: output fields, techniques, the raw event, top features.
    let shell_detail = ann.get(addr, "/api/findings/f-shell").await.json();
    assert_eq!(
        shell_detail["finding"]["output_fields"]["proc.cmdline"],
        "bash -i"
    );
    assert_eq!(shell_detail["finding"]["techniques"][0], "T1059.004");
    let anomaly_detail = ann.get(addr, "/api/findings/f-anomaly").await.json();
    assert_eq!(
        anomaly_detail["finding"]["explanation"][0]["feature"],
        "ptrace"
    );
    let raw = anomaly_detail["raw_events"][0].as_str().unwrap();
    assert!(raw.contains("comm: \"postgres\""), "{raw}");
    assert!(raw.contains("/etc/shadow"), "{raw}");
    let unknown = ann.get(addr, "/api/findings/f-nope").await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.error().contains("no finding \"f-nope\""),
        "{}",
        unknown.body
    );

    // CSV of a filtered view: one row, quoted, the formula defused.
    let csv = ann.get(addr, "/api/export/csv?technique=T1059.004").await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"vigil-findings.csv\"")
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[0].starts_with("time,id,priority,source,rule,"));
    assert!(
        lines[1].contains(",f-shell,critical,rule,Terminal shell in container,shop,web-1,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(",\"'=HYPERLINK(\"\"x\"\"), shell spawned\""),
        "{}",
        lines[1]
    );
    let json = ann.get(addr, "/api/export/json?q=postgres").await;
    let exported: Value = json.json();
    assert_eq!(exported.as_array().map(Vec::len), Some(1));
    assert_eq!(exported[0]["id"], "f-anomaly");

    // Bad input: a clear 400 naming what is wrong.
    let long = format!("/api/findings?q={}", "x".repeat(300));
    let cases = [
        ("/api/export/xlsx", "must be csv or json"),
        (long.as_str(), "q: 300 bytes, at most 256"),
        ("/api/export/csv?since_ms=soon", "since_ms"),
        ("/api/export/csv?format=csv", "format"),
    ];
    for (path, message) in cases {
        let answer = ann.get(addr, path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert!(answer.error().contains(message), "{path}: {}", answer.body);
    }

    // Credentials as for every read: none is 401, a reader's token works.
    for path in ["/api/export/csv", "/api/findings/f-shell"] {
        let anonymous = http(addr, "GET", path, &[], None).await;
        assert_eq!(anonymous.status, 401, "{path}");
    }
    let bearer = format!("Bearer {READER_TOKEN}");
    let reader = http(
        addr,
        "GET",
        "/api/export/json?namespace=shop",
        &[("Authorization", bearer.as_str())],
        None,
    )
    .await;
    assert_eq!(reader.json()[0]["id"], "f-shell");
}
