//! The kill actions on real processes: the offending process alone (through
//! a pidfd, only if it is still in the pod's cgroup), or every process of
//! the container (cgroup.kill).

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{path::PathBuf, process::Child, time::Duration};

use common::*;
use vigil_bus::TraceContext;
use vigil_proto::v1::{ActionKind, ActionOutcome, Finding};
use vigil_responder::Config;
use vigil_service::Health;
use vigil_testkit::{NatsServer, PodSandbox, require_root};

const POLICY: &str = "rate_limits:
  per_pod: { max: 10, per_seconds: 60 }
  global: { max: 50, per_seconds: 60 }
max_finding_age_seconds: 600
rules:
  - name: kill-shell
    match: { rules: [Reverse shell] }
    actions: [{ kind: kill_process, signal: TERM }]
  - name: kill-miner
    match: { rules: [Crypto miner] }
    actions: [{ kind: kill_container }]
";

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

fn exited(child: &mut Child) -> bool {
    vigil_testkit::wait_until(Duration::from_secs(5), || child.try_wait().unwrap()).is_some()
}

fn named(finding: Finding, name: &str, pid: u32) -> Finding {
    let mut finding = finding;
    finding.name = name.into();
    finding.events[0].pid = pid;
    finding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_offending_process_then_the_whole_container() {
    if !require_root("kill_the_offending_process_then_the_whole_container") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let policy: PathBuf = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = Config {
        policy_file: Some(policy),
        ..config(&server)
    };
    let service = Running::start(config, Health::default()).await;
    let sandbox = PodSandbox::create().unwrap();
    let mut shell = sandbox.spawn("/bin/sleep", &["60"]).unwrap();
    let mut other = sandbox.spawn("/bin/sleep", &["60"]).unwrap();
    // Outside the pod: a forged pid must never reach it.
    let mut bystander = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    vigil_testkit::wait_until(Duration::from_secs(5), || {
        (sandbox.pids().len() == 2).then_some(())
    })
    .unwrap();
    let base = finding(
        "x",
        &sandbox.cgroup_path,
        &sandbox.container_id,
        &sandbox.pod_uid,
        "shop",
    );
    let trace = TraceContext::new_root();

    let forged = named(
        Finding {
            id: "f-forged".into(),
            ..base.clone()
        },
        "Reverse shell",
        bystander.id(),
    );
    publish_finding(&bus, &forged, &forged.id, &trace).await;
    let (_, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(record.kind(), ActionKind::KillProcess);
    assert_eq!(record.outcome(), ActionOutcome::Failed);
    assert!(
        record.reason.contains("is not in cgroup"),
        "{}",
        record.reason
    );
    assert!(
        alive(&mut bystander),
        "a process outside the pod is never signalled"
    );

    let shell_finding = named(
        Finding {
            id: "f-shell".into(),
            ..base.clone()
        },
        "Reverse shell",
        shell.id(),
    );
    publish_finding(&bus, &shell_finding, &shell_finding.id, &trace).await;
    let (_, record) = wait_records(&bus, 2).await.remove(1);
    assert_eq!(
        record.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        record.reason
    );
    assert_eq!(record.pid, shell.id());
    assert!(record.reason.contains("SIGTERM"), "{}", record.reason);
    assert!(exited(&mut shell), "the offending process is gone");
    assert!(alive(&mut other), "the rest of the container runs on");

    let miner = named(
        Finding {
            id: "f-miner".into(),
            ..base
        },
        "Crypto miner",
        other.id(),
    );
    publish_finding(&bus, &miner, &miner.id, &trace).await;
    let (_, record) = wait_records(&bus, 3).await.remove(2);
    assert_eq!(record.kind(), ActionKind::KillContainer);
    assert_eq!(
        record.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        record.reason
    );
    assert!(exited(&mut other), "every process of the container is gone");
    assert!(sandbox.pids().is_empty());
    assert!(alive(&mut bystander));

    bystander.kill().unwrap();
    bystander.wait().unwrap();
    service.stop().await;
}
