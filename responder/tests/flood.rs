//! A flood of findings for one pod, with the responder binary killed
//! (SIGKILL) in the middle and started again: one containment, a bounded
//! number of records, no finding lost and no action repeated. Real
//! nats-server, real cgroups, the real `vigil-responder` process.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::*;
use vigil_bus::{TraceContext, topology};
use vigil_proto::v1::{ActionKind, ActionOutcome};
use vigil_testkit::{NatsServer, PodSandbox, require_root};

const FLOOD: u64 = 400;

/// The responder process, killed on drop so a failing test leaves none behind.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_responder(server: &NatsServer) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_vigil-responder"))
            .env("VIGIL_RESPONDER__NODE_NAME", NODE)
            .env("VIGIL_RESPONDER__NATS__URL", server.url())
            .env("VIGIL_RESPONDER__POLICY_FILE", enforcing_default_policy())
            .env("VIGIL_RESPONDER__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_flood_and_restarted_it_loses_nothing_and_repeats_nothing() {
    if !require_root("killed_mid_flood_and_restarted_it_loses_nothing_and_repeats_nothing") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let sandbox = PodSandbox::create().unwrap();
    let mut sleeper = sandbox.spawn("/bin/sleep", &["60"]).unwrap();
    vigil_testkit::wait_until(Duration::from_secs(5), || {
        (!sandbox.pids().is_empty()).then_some(())
    })
    .unwrap();
    // The detectors own the findings stream; stand in for them.
    topology::ensure_stream(&bus.jetstream, &topology::FINDINGS, 1)
        .await
        .unwrap();
    let trace = TraceContext::new_root();
    for i in 0..FLOOD {
        let mut finding = finding(
            &format!("f-flood-{i}"),
            &sandbox.cgroup_path,
            &sandbox.container_id,
            &sandbox.pod_uid,
            "shop",
        );
        finding.pod = "web-1".into();
        publish_finding(&bus, &finding, &finding.id, &trace).await;
    }

    let mut responder = start_responder(&server);
    // Kill it once it has started on the flood but before it is through.
    let progress = poll("the responder to be part-way through", || async {
        let info = bus
            .jetstream
            .get_stream(topology::FINDINGS.name)
            .await
            .ok()?
            .consumer_info(CONSUMER)
            .await
            .ok()?;
        (info.ack_floor.stream_sequence >= 5).then_some(info.ack_floor.stream_sequence)
    })
    .await;
    responder.0.kill().unwrap();
    responder.0.wait().unwrap();
    let at_kill = consumer_info(&bus).await.ack_floor.stream_sequence;
    assert!(
        at_kill < FLOOD,
        "killed mid-flood ({progress}..{at_kill} of {FLOOD} settled)"
    );

    let restarted = start_responder(&server);
    // What the killed process had pulled but not acknowledged comes back
    // after the consumer's ack wait (30 s), so this takes that long.
    let patience = topology::responder_consumer(NODE).ack_wait + Duration::from_secs(15);
    let info = poll_within("every finding to be settled", patience, || async {
        let info = consumer_info(&bus).await;
        (info.ack_floor.stream_sequence >= FLOOD && info.num_ack_pending == 0).then_some(info)
    })
    .await;
    assert_eq!(info.num_pending, 0, "every finding delivered");

    // One containment, one record: later findings find the pod contained.
    let stored = records(&bus).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1.kind(), ActionKind::Freeze);
    assert_eq!(stored[0].1.outcome(), ActionOutcome::Succeeded);
    assert!(sandbox.is_frozen());

    // No finding lost: each one is remembered as handled.
    let keys = handled_keys(&bus).await;
    let prefix = format!("{CONSUMER}.f-flood-");
    assert_eq!(
        keys.iter().filter(|k| k.starts_with(&prefix)).count(),
        usize::try_from(FLOOD).unwrap(),
        "every finding of the flood handled"
    );

    drop(restarted);
    drop(sandbox);
    let _ = sleeper.wait();
}
