//! End to end, all real: nats-server, the collector's eBPF programs, the
//! detectors and the responder as processes, and a real container (podman
//! with runc, in a kubepods cgroup parent as a kubelet would place it) whose
//! process reads /etc/shadow.

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
use vigil_testkit::{Container, Pipeline, ServiceSpec, require_root, wait_until};

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

/// The attacked pod: a real container, started before the pipeline
/// watches. runc's own set-up of a new container still raises findings
/// (issue 13) and the slice's policy acts on any finding, so a container
/// started under a running pipeline would be frozen for runc's mounts
/// before the attack. The attack itself starts when the test says so.
fn target() -> Container {
    Container::start(&scenario::shadow_read_container()).unwrap_or_else(|e| panic!("{e}"))
}

fn is_runtime_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Starts the shadow-read attack in `container` and waits for its finding
/// (the attack's rule, raised by the container's own process) and its freeze;
/// returns the finding.
async fn attack_is_detected_and_frozen(pipeline: &Pipeline, container: &Container) -> Finding {
    let bus = bus(pipeline).await;
    let mut findings = Tail::<Finding>::from_start(&bus.jetstream, &FINDINGS)
        .await
        .expect("follow findings");
    let mut actions = Tail::<ActionRecord>::from_start(&bus.jetstream, &ACTIONS)
        .await
        .expect("follow actions");
    assert!(container.runs(Duration::from_secs(5)), "the container runs");
    scenario::start_attack(container).expect("start the attack");

    let finding = findings
        .next_matching(Duration::from_secs(20), |f| {
            f.container_id == container.id
                && f.name == scenario::SHADOW_RULE
                && f.events
                    .first()
                    .is_some_and(|e| e.comm == scenario::ATTACKER_COMM)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no {:?} finding by {} in container {}; detectors log:\n{}",
                scenario::SHADOW_RULE,
                scenario::ATTACKER_COMM,
                container.id,
                service_log(pipeline, "vigil-detectors")
            )
        });
    // The runtime's own id (podman's 64 hex digits), from the cgroup path.
    assert!(
        is_runtime_id(&finding.container_id),
        "{}",
        finding.container_id
    );
    let event = finding.events.first().expect("the triggering event");
    assert_eq!(event.r#type(), EventType::Open);
    assert_eq!(
        event.args.as_ref().map(|a| a.path.as_str()),
        Some("/etc/shadow")
    );
    assert_eq!(event.cgroup_path, container.cgroup_path);
    assert_eq!(event.container_id, container.id);
    assert_eq!(finding.pod_uid, container.pod_uid);
    assert_eq!(finding.node, NODE);

    let frozen = wait_until(Duration::from_secs(10), || {
        container.is_frozen().then_some(())
    });
    assert!(
        frozen.is_some(),
        "the container's cgroup must be frozen; responder log:\n{}",
        service_log(pipeline, "vigil-responder")
    );
    assert!(
        !container.runs(Duration::from_millis(500)),
        "the container's processes must really be stopped"
    );

    let action = actions
        .next_matching(Duration::from_secs(10), |a| {
            a.container_id == container.id
                && a.kind() == ActionKind::Freeze
                && a.outcome() == ActionOutcome::Succeeded
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no succeeded freeze record for the container; responder log:\n{}",
                service_log(pipeline, "vigil-responder")
            )
        });
    assert_eq!(action.cgroup_path, container.cgroup_path);
    assert!(!action.dry_run);
    assert!(!action.trace_id.is_empty());
    let timings = action.timings.expect("timings");
    assert!(
        timings.event_kernel_time_ns > 0
            && timings.action_completed_ns > timings.event_kernel_time_ns
    );
    finding
}

/// The attack, its detection and freeze; then the container is thawed as a
/// release would and removed by the runtime.
async fn attack_is_detected_and_contained(pipeline: &Pipeline, container: Container) {
    attack_is_detected_and_frozen(pipeline, &container).await;
    vigil_cgroup::Hierarchies::detect()
        .thaw(&container.cgroup_path, Duration::from_secs(2))
        .expect("thaw the container");
    assert!(container.runs(Duration::from_secs(2)), "thawed, it runs");
    container
        .remove()
        .expect("podman removes the container Vigil froze");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_read_in_a_real_container_is_detected_and_frozen() {
    if !require_root("shadow_read_in_a_real_container_is_detected_and_frozen") {
        return;
    }
    let container = target();
    let pipeline = Pipeline::start(&binaries(), NODE, &slice()).unwrap_or_else(|e| panic!("{e}"));
    attack_is_detected_and_contained(&pipeline, container).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batch_is_rejected_counted_and_the_pipeline_keeps_working() {
    if !require_root("malformed_batch_is_rejected_counted_and_the_pipeline_keeps_working") {
        return;
    }
    let container = target();
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
    attack_is_detected_and_contained(&pipeline, container).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reconnect_after_nats_restarts() {
    if !require_root("services_reconnect_after_nats_restarts") {
        return;
    }
    let container = target();
    let mut pipeline =
        Pipeline::start(&binaries(), NODE, &slice()).unwrap_or_else(|e| panic!("{e}"));
    pipeline.nats.restart();
    attack_is_detected_and_contained(&pipeline, container).await;
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
