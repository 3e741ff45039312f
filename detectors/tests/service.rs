//! The service against a real nats-server: Falco JSON and pod namespace on
//! findings, two instances sharing the durable consumer, and rules reloaded
//! when their file changes (a broken edit keeps the running rules).

mod common;

use common::*;
use vigil_bus::{
    TraceContext,
    publish::FALCO_JSON,
    topology::{EVENTS, FINDINGS},
};
use vigil_detectors::RulesConfig;
use vigil_proto::v1::{EventBatch, Finding, PodMeta};
use vigil_service::Health;
use vigil_testkit::NatsServer;

fn decode(message: &vigil_bus::async_nats::jetstream::message::StreamMessage) -> Finding {
    vigil_bus::codec::decode(&message.payload, message.subject.as_str(), message.sequence)
        .expect("a Finding")
}

fn batch(sequence: u64, events: Vec<vigil_proto::v1::Event>) -> EventBatch {
    EventBatch {
        node: NODE.into(),
        sequence,
        events,
        run_id: "run-s".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn findings_carry_the_pod_namespace_and_falco_json() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let service = Running::start(&server, Health::default()).await;
    let mut shadow = open("/etc/shadow", 3, true);
    shadow.pod = Some(PodMeta {
        name: "web-1".into(),
        namespace: "shop".into(),
        ..Default::default()
    });
    publish_batch(
        &bus,
        &batch(1, vec![shadow]),
        "s:1",
        &TraceContext::new_root(),
    )
    .await;
    let stored = wait_stored(&bus, &FINDINGS, 1).await;
    let message = &stored[0];
    assert_eq!(message.subject.as_str(), "vigil.findings.warning.shop");
    let finding = decode(message);
    assert_eq!(
        (finding.pod.as_str(), finding.namespace.as_str()),
        ("web-1", "shop")
    );
    let json = message
        .headers
        .get(FALCO_JSON)
        .expect("the Falco JSON header")
        .as_str();
    let json: serde_json::Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(json["rule"], "Read of /etc/shadow");
    assert_eq!(json["priority"], "Warning");
    assert_eq!(json["source"], "syscall");
    assert_eq!(json["hostname"], NODE);
    assert_eq!(json["output"], finding.output.as_str());
    assert_eq!(json["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(json["output_fields"]["proc.pid"], 4242);
    assert_eq!(json["output_fields"]["k8s.ns.name"], "shop");
    assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        json["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "T1003.008"))
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_consumer_and_evaluate_each_batch_once() {
    const BATCHES: u64 = 40;
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let first = Running::start(&server, Health::default()).await;
    let second = Running::start(&server, Health::default()).await;
    let trace = TraceContext::new_root();
    for sequence in 1..=BATCHES {
        let b = mixed_batch(sequence);
        assert!(!publish_batch(&bus, &b, &format!("run-a:{sequence}"), &trace).await);
    }
    // mixed_batch raises three findings.
    let stored = wait_stored(&bus, &FINDINGS, 3 * BATCHES).await;
    let info = wait_settled(&bus, &EVENTS, "detectors", BATCHES).await;
    // Every batch was delivered once in total across both instances: none
    // was evaluated twice (JetStream's de-duplication did not have to hide
    // a second evaluation).
    assert_eq!(info.delivered.consumer_sequence, BATCHES);
    assert_eq!(info.num_redelivered, 0);
    let mut ids: Vec<_> = stored.iter().map(|m| decode(m).id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, 3 * BATCHES);
    first.stop().await;
    second.stop().await;
}

const RULE_A: &str = "- rule: Local rule A\n  desc: test\n  condition: exec_ok and proc.name = python3\n  output: A %proc.name\n  priority: WARNING\n";
const RULE_B: &str = "- rule: Local rule B\n  desc: test\n  condition: exec_ok and proc.name = python3\n  output: B %proc.name\n  priority: WARNING\n";
const BROKEN: &str = "- rule: Local rule C\n  desc: test\n  condition: exec_ok and proc.nmae = python3\n  output: C\n  priority: WARNING\n";

#[tokio::test]
async fn a_changed_rules_file_is_reloaded_and_a_broken_one_keeps_the_running_rules() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("local.yaml");
    std::fs::write(&file, RULE_A).expect("write rules");
    let rules = RulesConfig {
        default_pack: true,
        files: vec![file.clone()],
        watch_interval_ms: 20,
        ..RulesConfig::default()
    };
    let service = Running::start_with(&server, Health::default(), rules).await;
    let python = || {
        batch(
            0,
            vec![exec("/usr/bin/python3", &["python3", "app.py"], true)],
        )
    };
    let trace = TraceContext::new_root();
    let names = |stored: &[vigil_bus::async_nats::jetstream::message::StreamMessage]| {
        stored.iter().map(|m| decode(m).name).collect::<Vec<_>>()
    };

    let mut b = python();
    b.sequence = 1;
    publish_batch(&bus, &b, "r:1", &trace).await;
    assert_eq!(
        names(&wait_stored(&bus, &FINDINGS, 1).await),
        ["Local rule A"]
    );

    std::fs::write(&file, RULE_B).expect("rewrite rules");
    // Keep sending until the reloaded rule answers (the watcher polls).
    let mut sequence = 1;
    poll("the reloaded rule to fire", || {
        sequence += 1;
        let mut b = python();
        b.sequence = sequence;
        let bus = &bus;
        let trace = &trace;
        async move {
            publish_batch(bus, &b, &format!("r:{}", b.sequence), trace).await;
            let stored = stored(bus, &FINDINGS).await;
            names(&stored)
                .iter()
                .any(|n| n == "Local rule B")
                .then_some(())
        }
    })
    .await;

    std::fs::write(&file, BROKEN).expect("break rules");
    // A SIGHUP-equivalent reload of the broken file is refused...
    assert!(!vigil_detectors::reload::reload(
        &RulesConfig {
            files: vec![file.clone()],
            ..RulesConfig::default()
        },
        &vigil_detectors::engine::Engine::new(
            vigil_detectors::engine::load(&RulesConfig::default()).expect("pack")
        ),
        "test"
    ));
    // ...and the service, whose watcher (20 ms) sees the change too, keeps
    // evaluating with B. The pause only gives the watcher its chance; the
    // assertion holds whether or not it has looked yet.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sequence += 1;
    let mut b = python();
    b.sequence = sequence;
    let before = stored(&bus, &FINDINGS).await.len() as u64;
    publish_batch(&bus, &b, &format!("r:{sequence}"), &trace).await;
    let after = wait_stored(&bus, &FINDINGS, before + 1).await;
    assert_eq!(
        decode(after.last().expect("a finding")).name,
        "Local rule B"
    );
    assert!(service.health.is_ready());
    service.stop().await;
}

/// A rules directory mounted from a ConfigMap: the kubelet writes a new
/// timestamped directory and swaps the `..data` link, and each `*.yaml` is a
/// link through it. The service picks up the swap, and a file added later.
#[tokio::test]
async fn a_rules_directory_updated_like_a_mounted_config_map_is_reloaded() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mount = dir.path();
    let publish_version = |version: &str, text: &str| {
        let data = mount.join(format!("..{version}"));
        std::fs::create_dir(&data).expect("version dir");
        std::fs::write(data.join("custom.yaml"), text).expect("write rules");
        let link = mount.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..{version}"), &link).expect("link");
        std::fs::rename(&link, mount.join("..data")).expect("swap ..data");
    };
    publish_version("v1", RULE_A);
    std::os::unix::fs::symlink("..data/custom.yaml", mount.join("custom.yaml")).expect("link");
    let rules = RulesConfig {
        directories: vec![mount.to_path_buf()],
        watch_interval_ms: 20,
        ..RulesConfig::default()
    };
    let service = Running::start_with(&server, Health::default(), rules).await;
    let trace = TraceContext::new_root();
    // Batch sequences (and so message ids) never repeat across attempts.
    let sequence = std::cell::Cell::new(0);
    let fires = |wanted: &'static str| {
        let (bus, trace, sequence) = (&bus, &trace, &sequence);
        poll(wanted, move || {
            sequence.set(sequence.get() + 1);
            let b = batch(
                sequence.get(),
                vec![exec("/usr/bin/python3", &["python3", "app.py"], true)],
            );
            async move {
                publish_batch(bus, &b, &format!("d:{}", b.sequence), trace).await;
                stored(bus, &FINDINGS)
                    .await
                    .iter()
                    .any(|m| decode(m).name == wanted)
                    .then_some(())
            }
        })
    };
    fires("Local rule A").await;
    publish_version("v2", RULE_B);
    fires("Local rule B").await;
    std::fs::write(
        mount.join("extra.yaml"),
        RULE_A.replace("Local rule A", "Local rule D"),
    )
    .expect("add a file");
    fires("Local rule D").await;
    assert!(service.health.is_ready());
    service.stop().await;
}
