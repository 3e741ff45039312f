//! The rate limits under a burst of findings for distinct pods, real
//! nats-server and real cgroups: what a limit refuses is deferred (audited
//! once per finding) and redelivered, and acted on once the window has
//! passed; nothing is lost or marked done unacted. Dry run takes the same
//! path and only describes the actions. Two replicas share one limit
//! through the counters in NATS.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::*;
use vigil_bus::TraceContext;
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord};
use vigil_responder::Config;
use vigil_service::Health;
use vigil_testkit::{NatsServer, PodSandbox, require_root};

/// At most two containments per 4 s across pods; the per-pod limit is out
/// of the way.
const POLICY: &str = "rate_limits:
  per_pod: { max: 10, per_seconds: 60 }
  global: { max: 2, per_seconds: 4 }
max_finding_age_seconds: 600
rules:
  - name: contain
    match: { min_priority: warning }
    actions: [{ kind: freeze }]
";

const BURST: usize = 5;
const MAX: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_refused_by_the_limit_are_deferred_then_acted_on() {
    if !require_root("findings_refused_by_the_limit_are_deferred_then_acted_on") {
        return;
    }
    let sandboxes = burst(false, 1).await;
    assert!(
        sandboxes.iter().all(PodSandbox::is_frozen),
        "every pod frozen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_applies_in_dry_run_too() {
    if !require_root("the_limit_applies_in_dry_run_too") {
        return;
    }
    let sandboxes = burst(true, 1).await;
    assert!(
        sandboxes.iter().all(|s| !s.is_frozen()),
        "dry run froze nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_limit() {
    if !require_root("two_replicas_share_one_limit") {
        return;
    }
    let sandboxes = burst(false, 2).await;
    assert!(
        sandboxes.iter().all(PodSandbox::is_frozen),
        "every pod frozen"
    );
}

/// Publishes a burst of findings, one per pod, to `replicas` responders
/// sharing one consumer, and checks every finding was acted on (or
/// described, in dry run) exactly once, no window took more than the
/// limit, and each finding the limit held back has one deferral record.
async fn burst(dry_run: bool, replicas: usize) -> Vec<PodSandbox> {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let config = Config {
        policy_file: Some(policy_file(&format!("burst-{dry_run}"), POLICY)),
        dry_run,
        ..config(&server)
    };
    let mut services = Vec::new();
    for _ in 0..replicas {
        services.push(Running::start(config.clone(), Health::default()).await);
    }
    let sandboxes: Vec<PodSandbox> = (0..BURST).map(|_| PodSandbox::create().unwrap()).collect();
    let trace = TraceContext::new_root();
    for (i, sandbox) in sandboxes.iter().enumerate() {
        let mut finding = finding(
            &format!("f-burst-{i}"),
            &sandbox.cgroup_path,
            &sandbox.container_id,
            &sandbox.pod_uid,
            "shop",
        );
        finding.pod = format!("web-{i}");
        publish_finding(&bus, &finding, &finding.id, &trace).await;
    }

    // Three windows of 4 s see the burst through; the patience is generous.
    poll_within("every finding settled", Duration::from_secs(90), || async {
        let info = consumer_info(&bus).await;
        (info.ack_floor.stream_sequence >= BURST as u64 && info.num_ack_pending == 0).then_some(())
    })
    .await;
    let stored: Vec<ActionRecord> = records(&bus).await.into_iter().map(|(_, r)| r).collect();
    let ids: BTreeSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "no record twice: {stored:?}");

    let expected = if dry_run {
        ActionOutcome::DryRun
    } else {
        ActionOutcome::Succeeded
    };
    let acted: BTreeSet<&str> = stored
        .iter()
        .filter(|r| r.kind() == ActionKind::Freeze && r.outcome() == expected)
        .map(|r| r.finding_id.as_str())
        .collect();
    let all: BTreeSet<String> = (0..BURST).map(|i| format!("f-burst-{i}")).collect();
    assert_eq!(
        acted,
        all.iter().map(String::as_str).collect(),
        "every finding acted on once: {stored:?}"
    );

    let deferred: Vec<&ActionRecord> = stored
        .iter()
        .filter(|r| r.outcome() == ActionOutcome::Refused)
        .collect();
    // Five findings in at most two windows of two: at least one waits.
    assert!(
        (1..BURST).contains(&deferred.len()),
        "{} deferred: {deferred:?}",
        deferred.len()
    );
    for record in &deferred {
        assert_eq!(record.id, format!("{}:deferred:freeze", record.finding_id));
        assert!(
            record.reason.contains("deferred by rate limit") && record.reason.contains("at most 2"),
            "{}",
            record.reason
        );
        assert_eq!(record.dry_run, dry_run);
    }
    assert_eq!(
        stored.len(),
        BURST + deferred.len(),
        "only actions and deferrals: {stored:?}"
    );

    // Each finding is marked handled only after its action.
    let keys = handled_keys(&bus).await;
    for id in &all {
        assert!(keys.contains(&format!("{CONSUMER}.{id}")), "{id} handled");
    }
    assert_global_windows(&bus).await;
    for service in services {
        service.stop().await;
    }
    sandboxes
}

/// The global counters in NATS: no window over the limit, one slot per
/// finding acted on.
async fn assert_global_windows(bus: &vigil_bus::BusConnection) {
    use futures::StreamExt;
    let counters = bus
        .jetstream
        .get_key_value(vigil_bus::topology::RESPONDER_LIMITS_BUCKET.name)
        .await
        .unwrap();
    let keys: Vec<String> = counters
        .keys()
        .await
        .unwrap()
        .map(|k| k.unwrap())
        .collect()
        .await;
    let mut total = 0;
    for key in keys.iter().filter(|k| k.starts_with("global.4s.")) {
        let value = counters.get(key).await.unwrap().unwrap();
        let taken: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
        assert!(taken <= MAX, "window {key} took {taken}");
        total += taken;
    }
    assert_eq!(total, BURST as u64, "one global slot per finding: {keys:?}");
}
