//! End to end, all real: nats-server, the collector's eBPF programs, the
//! detectors and the responder as processes, and a pod-like sandbox
//! (kubepods-style cgroup, own network and mount namespaces) whose process
//! reads /etc/shadow.

use std::{path::PathBuf, time::Duration};

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext,
    connect::connect,
    subject,
    topology::{ACTIONS, FINDINGS},
};
use vigil_e2e::{Tail, scenario};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, EventType, Finding};
use vigil_testkit::{Pipeline, PodSandbox, ServiceSpec, require_root, wait_until};

const NODE: &str = "e2e-node";

fn binaries() -> PathBuf {
    vigil_testkit::binary("vigil-detectors")
        .parent()
        .expect("binary directory")
        .to_owned()
}

fn slice() -> Vec<ServiceSpec> {
    vec![
        ServiceSpec::new("vigil-collector"),
        ServiceSpec::new("vigil-detectors"),
        ServiceSpec::new("vigil-responder").with("POLICY_FILE", &enforcing_policy()),
    ]
}

/// The shipped policy only records what it would do; this slice turns
/// enforcement on everywhere (its findings carry no pod namespace: there is
/// no Kubernetes API here).
fn enforcing_policy() -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("e2e-policy-{}.yaml", std::process::id()));
    let text = vigil_responder::policy::default_policy_enforcing("{ all: true }");
    std::fs::write(&path, text).expect("write the e2e policy");
    path.display().to_string()
}

async fn bus(pipeline: &Pipeline) -> vigil_bus::BusConnection {
    let options = ConnectOptions {
        url: pipeline.nats.url(),
        client_name: "e2e".into(),
    };
    connect(&options, &CancellationToken::new())
        .await
        .expect("connect to the test nats-server")
}

fn service_log(pipeline: &Pipeline, binary: &str) -> String {
    pipeline
        .services
        .iter()
        .filter(|service| service.name == binary)
        .map(|service| service.log_text())
        .collect()
}

/// Runs the shadow-read attack in a new sandbox and waits for its finding,
/// its freeze and its action record.
async fn attack_is_detected_and_contained(pipeline: &Pipeline) {
    let bus = bus(pipeline).await;
    let mut findings = Tail::<Finding>::from_start(&bus.jetstream, &FINDINGS)
        .await
        .expect("follow findings");
    let mut actions = Tail::<ActionRecord>::from_start(&bus.jetstream, &ACTIONS)
        .await
        .expect("follow actions");
    let sandbox = PodSandbox::create().expect("create the pod sandbox");
    let mut attacker = scenario::start_shadow_read(&sandbox).expect("start the attack");

    let finding = findings
        .next_matching(Duration::from_secs(20), |f| {
            f.container_id == sandbox.container_id
                && f.name.to_lowercase().contains(scenario::SHADOW_RULE_MARKER)
        })
        .await
        .expect("a finding for the shadow read in the sandbox");
    let event = finding.events.first().expect("the triggering event");
    assert_eq!(event.r#type(), EventType::Open);
    assert_eq!(
        event.args.as_ref().map(|a| a.path.as_str()),
        Some("/etc/shadow")
    );
    assert_eq!(event.cgroup_path, sandbox.cgroup_path);
    assert_eq!(finding.pod_uid, sandbox.pod_uid);
    assert_eq!(finding.node, NODE);

    let frozen = wait_until(Duration::from_secs(10), || {
        sandbox.is_frozen().then_some(())
    });
    assert!(frozen.is_some(), "the sandbox's cgroup must be frozen");

    let action = actions
        .next_matching(Duration::from_secs(10), |a| {
            a.container_id == sandbox.container_id && a.outcome() == ActionOutcome::Succeeded
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no succeeded action record for the sandbox; responder log:\n{}",
                service_log(pipeline, "vigil-responder")
            )
        });
    assert_eq!(action.kind(), ActionKind::Freeze);
    assert_eq!(action.cgroup_path, sandbox.cgroup_path);
    assert!(!action.dry_run);
    assert!(!action.trace_id.is_empty());
    let timings = action.timings.expect("timings");
    assert!(
        timings.event_kernel_time_ns > 0
            && timings.action_completed_ns > timings.event_kernel_time_ns
    );

    drop(sandbox);
    let _ = attacker.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_read_in_a_pod_is_detected_and_its_cgroup_frozen() {
    if !require_root("shadow_read_in_a_pod_is_detected_and_its_cgroup_frozen") {
        return;
    }
    let pipeline = Pipeline::start(&binaries(), NODE, &slice()).unwrap_or_else(|e| panic!("{e}"));
    attack_is_detected_and_contained(&pipeline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batch_is_rejected_counted_and_the_pipeline_keeps_working() {
    if !require_root("malformed_batch_is_rejected_counted_and_the_pipeline_keeps_working") {
        return;
    }
    let mut pipeline =
        Pipeline::start(&binaries(), NODE, &slice()).unwrap_or_else(|e| panic!("{e}"));
    let bus = bus(&pipeline).await;
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events("intruder", 0),
            "garbage-1",
            &TraceContext::new_root(),
            b"\xff\xff\xffnot protobuf"[..].into(),
        )
        .await
        .unwrap();
    let detectors = pipeline.service("vigil-detectors").unwrap();
    let counted = wait_until(Duration::from_secs(10), || {
        detectors
            .metrics()
            .lines()
            .any(|l| {
                l.starts_with("vigil_detectors_errors_total")
                    && l.contains("malformed")
                    && l.ends_with(" 1")
            })
            .then_some(())
    });
    assert!(
        counted.is_some(),
        "metric missing; metrics:\n{}",
        detectors.metrics()
    );
    assert!(
        detectors.exited().is_none(),
        "detectors must survive a malformed batch"
    );
    attack_is_detected_and_contained(&pipeline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reconnect_after_nats_restarts() {
    if !require_root("services_reconnect_after_nats_restarts") {
        return;
    }
    let mut pipeline =
        Pipeline::start(&binaries(), NODE, &slice()).unwrap_or_else(|e| panic!("{e}"));
    pipeline.nats.restart();
    attack_is_detected_and_contained(&pipeline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_wait_for_nats_with_back_off() {
    let mut pipeline = Pipeline::start(&binaries(), NODE, &[]).unwrap_or_else(|e| panic!("{e}"));
    pipeline.nats.stop();
    pipeline
        .spawn(&ServiceSpec::new("vigil-detectors"))
        .unwrap();
    let detectors = pipeline.service("vigil-detectors").unwrap();
    let retrying = wait_until(Duration::from_secs(10), || {
        detectors
            .log_text()
            .contains("NATS not reachable yet")
            .then_some(())
    });
    assert!(retrying.is_some(), "log:\n{}", detectors.log_text());
    assert!(!detectors.healthy(), "not healthy without NATS");
    assert!(detectors.exited().is_none(), "must keep retrying, not exit");
    pipeline.nats.restart();
    pipeline
        .wait_healthy(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
}
