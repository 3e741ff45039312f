//! The responder in-process against a real nats-server and real cgroups:
//! a finding for a pod-like sandbox freezes it and leaves an audit record;
//! repeats, dry runs, protected namespaces, vanished cgroups and findings
//! that are not ours each leave the record (or none) they should.

mod common;

use common::*;
use vigil_bus::TraceContext;
use vigil_proto::v1::{ActionKind, ActionOutcome, Priority};
use vigil_responder::Config;
use vigil_service::{Health, clock};
use vigil_testkit::{NatsServer, PodSandbox, random_container_id, require_root};

/// A sandbox with a sleeping process in it, ready to be frozen.
fn occupied_sandbox() -> (PodSandbox, std::process::Child) {
    let sandbox = PodSandbox::create().expect("create the pod sandbox");
    let child = sandbox
        .spawn("/bin/sleep", &["30"])
        .expect("start sleep in the sandbox");
    let joined = vigil_testkit::wait_until(std::time::Duration::from_secs(5), || {
        (!sandbox.pids().is_empty()).then_some(())
    });
    assert!(
        joined.is_some(),
        "the process never joined the sandbox cgroup"
    );
    (sandbox, child)
}

fn sandbox_finding(sandbox: &PodSandbox, id: &str, namespace: &str) -> vigil_proto::v1::Finding {
    finding(
        id,
        &sandbox.cgroup_path,
        &sandbox.container_id,
        &sandbox.pod_uid,
        namespace,
    )
}

fn teardown(sandbox: PodSandbox, mut child: std::process::Child) {
    drop(sandbox);
    let _ = child.wait();
}

#[tokio::test]
async fn a_finding_for_a_pod_freezes_it_once_and_records_the_action() {
    if !require_root("a_finding_for_a_pod_freezes_it_once_and_records_the_action") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(config(&server), Health::default()).await;
    let (sandbox, child) = occupied_sandbox();
    let finding = sandbox_finding(&sandbox, "f-freeze", "shop");
    let trace = TraceContext::new_root();
    publish_finding(&bus, &finding, &finding.id, &trace).await;

    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    assert!(sandbox.is_frozen(), "the sandbox cgroup must be frozen");
    assert_eq!(subject, format!("vigil.actions.{NODE}.succeeded"));
    assert_eq!(record.id, "f-freeze:freeze");
    assert_eq!(record.finding_id, "f-freeze");
    assert_eq!(record.kind(), ActionKind::Freeze);
    assert_eq!(
        record.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        record.reason
    );
    assert!(!record.dry_run);
    assert_eq!(record.node, NODE);
    assert_eq!(record.container_id, sandbox.container_id);
    assert_eq!(record.cgroup_path, sandbox.cgroup_path);
    assert_eq!(record.namespace, "shop");
    assert_eq!(record.policy, "contain-warning-and-above");
    assert_eq!(record.requested_by, "policy");
    assert_eq!(record.finding_name, "Read of /etc/shadow");
    assert_eq!(record.trace_id, trace.trace_id_hex());
    assert!(record.time_ns > 0 && record.time_ns <= clock::wall_ns());
    let t = record.timings.expect("timings");
    assert_eq!(t.event_kernel_time_ns, finding.events[0].kernel_time_ns);
    assert!(t.event_kernel_time_ns <= t.finding_received_ns, "{t:?}");
    assert!(t.finding_received_ns <= t.action_started_ns, "{t:?}");
    assert!(t.action_started_ns <= t.action_completed_ns, "{t:?}");
    assert!(t.action_completed_ns <= clock::monotonic_ns());

    // The detectors repeating it under the same id: JetStream drops it.
    assert!(publish_finding(&bus, &finding, &finding.id, &trace).await);
    // The same finding delivered again under another id: the cgroup is
    // already frozen and the record, with the same id, is discarded.
    publish_finding(&bus, &finding, "f-freeze:again", &trace).await;
    wait_settled(&bus, 2).await;
    let stored = records(&bus).await;
    assert_eq!(
        stored.len(),
        1,
        "no second record for the same finding: {stored:?}"
    );
    assert_eq!(stored[0].1.outcome(), ActionOutcome::Succeeded);

    // A different finding for the contained pod: the same attack seen
    // again, so no second containment and no second record.
    let second = sandbox_finding(&sandbox, "f-second", "shop");
    publish_finding(&bus, &second, &second.id, &trace).await;
    wait_settled(&bus, 2).await;
    assert_eq!(records(&bus).await.len(), 1);
    assert!(sandbox.is_frozen());

    service.stop().await;
    teardown(sandbox, child);
}

#[tokio::test]
async fn dry_run_records_what_it_would_do_and_freezes_nothing() {
    if !require_root("dry_run_records_what_it_would_do_and_freezes_nothing") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let config = Config {
        dry_run: true,
        ..config(&server)
    };
    let service = Running::start(config, Health::default()).await;
    let (sandbox, child) = occupied_sandbox();
    let finding = sandbox_finding(&sandbox, "f-dry", "shop");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;

    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(subject, format!("vigil.actions.{NODE}.dry_run"));
    assert_eq!(record.outcome(), ActionOutcome::DryRun);
    assert!(record.dry_run);
    assert_eq!(record.cgroup_path, sandbox.cgroup_path);
    assert!(record.reason.contains("would freeze"), "{}", record.reason);
    assert!(!record.reason.contains("not enforced"), "{}", record.reason);
    assert!(!sandbox.is_frozen(), "dry run must not freeze");
    service.stop().await;
    teardown(sandbox, child);
}

#[tokio::test]
async fn the_shipped_policy_records_a_dry_run_until_the_namespace_is_enforced() {
    if !require_root("the_shipped_policy_records_a_dry_run_until_the_namespace_is_enforced") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    // The built-in default policy, as a first install runs it.
    let shipped = Config {
        policy_file: None,
        ..config(&server)
    };
    let service = Running::start(shipped, Health::default()).await;
    let (sandbox, child) = occupied_sandbox();
    let finding = sandbox_finding(&sandbox, "f-unenforced", "shop");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;
    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(subject, format!("vigil.actions.{NODE}.dry_run"));
    assert_eq!(record.outcome(), ActionOutcome::DryRun, "{}", record.reason);
    assert!(record.dry_run);
    assert!(record.reason.contains("would freeze"), "{}", record.reason);
    assert!(
        record.reason.contains("not enforced: pod shop/"),
        "the record says why: {}",
        record.reason
    );
    assert!(
        !sandbox.is_frozen(),
        "an un-enforced namespace is not touched"
    );
    service.stop().await;
    teardown(sandbox, child);

    // The operator turns enforcement on for the namespace.
    let enforcing = policy_file(
        "enforce-shop",
        &vigil_responder::policy::default_policy_enforcing("{ namespaces: [shop] }"),
    );
    let config = Config {
        policy_file: Some(enforcing),
        ..config(&server)
    };
    let service = Running::start(config, Health::default()).await;
    let (sandbox, child) = occupied_sandbox();
    let finding = sandbox_finding(&sandbox, "f-enforced", "shop");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;
    let records = wait_records(&bus, 2).await;
    let (subject, record) = records
        .iter()
        .find(|(_, r)| r.finding_id == "f-enforced")
        .expect("a record for the enforced finding");
    assert_eq!(subject, &format!("vigil.actions.{NODE}.succeeded"));
    assert_eq!(
        record.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        record.reason
    );
    assert!(sandbox.is_frozen(), "an enforced namespace is contained");
    service.stop().await;
    teardown(sandbox, child);
}

#[tokio::test]
async fn a_pod_in_a_protected_namespace_is_refused_and_left_running() {
    if !require_root("a_pod_in_a_protected_namespace_is_refused_and_left_running") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(config(&server), Health::default()).await;
    let (sandbox, child) = occupied_sandbox();
    let finding = sandbox_finding(&sandbox, "f-protected", "kube-system");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;

    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(subject, format!("vigil.actions.{NODE}.refused"));
    assert_eq!(record.outcome(), ActionOutcome::Refused);
    assert_eq!(record.reason, "namespace kube-system is protected");
    assert_eq!(record.namespace, "kube-system");
    assert!(!sandbox.is_frozen(), "a protected pod must not be frozen");
    service.stop().await;
    teardown(sandbox, child);
}

#[tokio::test]
async fn a_vanished_cgroup_is_recorded_as_failed_with_the_reason() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(config(&server), Health::default()).await;
    let container = random_container_id();
    let pod_uid = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6";
    let cgroup = format!("kubepods/besteffort/pod{pod_uid}/{container}");
    let finding = finding("f-gone", &cgroup, &container, pod_uid, "shop");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;

    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(subject, format!("vigil.actions.{NODE}.failed"));
    assert_eq!(record.outcome(), ActionOutcome::Failed);
    assert_eq!(record.cgroup_path, cgroup);
    assert!(
        record.reason.contains("does not exist"),
        "{}",
        record.reason
    );
    wait_settled(&bus, 1).await;
    service.stop().await;
}

#[tokio::test]
async fn findings_not_for_this_agent_are_acknowledged_without_a_record() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(config(&server), Health::default()).await;
    let container = random_container_id();
    let cgroup = format!("kubepods/besteffort/pod7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6/{container}");
    let trace = TraceContext::new_root();

    let mut elsewhere = finding("f-elsewhere", &cgroup, &container, "", "shop");
    elsewhere.node = "node-2".into();
    let mut minor = finding("f-minor", &cgroup, &container, "", "shop");
    minor.priority = Priority::Notice as i32;
    let mut stale = finding("f-stale", &cgroup, &container, "", "shop");
    stale.time_ns = clock::wall_ns() - 2 * 3_600_000_000_000;
    // A host process: ours and serious, but not a pod, so refused on record.
    let host = finding(
        "f-host",
        "user.slice/user-0.slice/session-1.scope",
        "",
        "",
        "",
    );
    for f in [&elsewhere, &minor, &stale, &host] {
        publish_finding(&bus, f, &f.id, &trace).await;
    }

    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    wait_settled(&bus, 4).await;
    assert_eq!(records(&bus).await.len(), 1);
    assert_eq!(subject, format!("vigil.actions.{NODE}.refused"));
    assert_eq!(record.finding_id, "f-host");
    assert!(
        record.reason.starts_with("not a pod container"),
        "{}",
        record.reason
    );
    service.stop().await;
}

#[tokio::test]
async fn shutdown_is_prompt_even_when_nats_is_gone() {
    let mut server = NatsServer::start();
    let service = Running::start(config(&server), Health::default()).await;
    server.stop();
    // Once the client is reconnecting, a flush waits for a server that is
    // not coming back; shutdown must not.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    // Running::stop fails the test unless run returns Ok within 15 s.
    service.stop().await;
}
