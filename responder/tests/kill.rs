//! The kill actions on a real container (podman with runc, in a kubepods
//! cgroup parent): the offending process alone (through a pidfd, only if it
//! is still in the pod's cgroup), or every process of the container
//! (cgroup.kill), after which the runtime sees its container exit.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{path::PathBuf, process::Child, time::Duration};

use common::*;
use vigil_bus::TraceContext;
use vigil_proto::v1::{ActionKind, ActionOutcome, Finding};
use vigil_responder::Config;
use vigil_service::Health;
use vigil_testkit::{Container, ContainerSpec, NatsServer, require_root};

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

/// Whether host process `pid` exists (and is not a zombie) now.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Host pids of the container's processes named `comm`.
fn pids_named(container: &Container, comm: &str) -> Vec<u32> {
    vigil_cgroup::Hierarchies::detect()
        .procs_recursive(&container.cgroup_path)
        .unwrap_or_default()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == comm)
        })
        .collect()
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
    // Two processes of the container besides its heartbeat shell: one plays
    // the offending shell, the other the rest of the container.
    let spec = ContainerSpec::script("sleep 60 & sleep 60 &");
    let container = Container::start(&spec).unwrap_or_else(|e| panic!("{e}"));
    let sleeps = vigil_testkit::wait_until(Duration::from_secs(5), || {
        let pids = pids_named(&container, "sleep");
        (pids.len() == 2).then_some(pids)
    })
    .unwrap_or_else(|| panic!("two sleeps in the container; logs:\n{}", container.logs()));
    let (shell, other) = (sleeps[0], sleeps[1]);
    // Outside the pod: a forged pid must never reach it.
    let mut bystander = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let base = finding(
        "x",
        &container.cgroup_path,
        &container.id,
        &container.pod_uid,
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
        shell,
    );
    publish_finding(&bus, &shell_finding, &shell_finding.id, &trace).await;
    let (_, record) = wait_records(&bus, 2).await.remove(1);
    assert_eq!(
        record.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        record.reason
    );
    assert_eq!(record.pid, shell);
    assert!(record.reason.contains("SIGTERM"), "{}", record.reason);
    let gone =
        vigil_testkit::wait_until(Duration::from_secs(5), || (!running(shell)).then_some(()));
    assert!(gone.is_some(), "the offending process is gone");
    assert!(running(other), "the rest of the container runs on");
    assert!(
        container.runs(Duration::from_secs(2)),
        "the container's own shell runs on"
    );

    let miner = named(
        Finding {
            id: "f-miner".into(),
            ..base
        },
        "Crypto miner",
        other,
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
    assert!(
        container.wait_exited(Duration::from_secs(10)),
        "the runtime sees its container exit"
    );
    assert!(!running(other), "every process of the container is gone");
    assert!(pids_named(&container, "bash").is_empty());
    assert!(alive(&mut bystander));

    bystander.kill().unwrap();
    bystander.wait().unwrap();
    service.stop().await;
    container
        .remove()
        .expect("podman removes the killed container");
}
