//! Drops become findings: a flood into a tiny channel (synthetic source) or
//! a tiny ring buffer (real BPF programs) is counted in the batches and
//! raises "Collector dropped events" on the findings stream, and the
//! collector keeps running.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod publish_support;

use std::{process::Command, time::Duration};

use publish_support::{Running, Stored, config, read};
use vigil_bus::{
    subject,
    topology::{EVENTS, FINDINGS},
};
use vigil_collector::{Config, Source, drops::FINDING_NAME};
use vigil_proto::v1::{EventBatch, Finding, FindingSource, Priority};
use vigil_testkit::{NatsServer, require_root};

fn flood_config(nats: &NatsServer, node: &str) -> Config {
    let mut config = config(nats, node);
    config.drops.threshold = 10;
    config.drops.interval_ms = 200;
    config.drops.priority = "warning".into();
    config
}

async fn drop_finding(nats: &NatsServer, node: &str) -> Finding {
    let findings = read::<Finding>(
        nats,
        &FINDINGS,
        subject::FINDINGS_ALL,
        Duration::from_secs(20),
        |f| !f.is_empty(),
    )
    .await;
    let Some(Stored {
        subject: on,
        message_id,
        message: finding,
    }) = findings.into_iter().next()
    else {
        panic!("no drop finding within 20 s");
    };
    assert_eq!(on, subject::findings(Priority::Warning, ""));
    assert_eq!(message_id, finding.id);
    assert_eq!(finding.name, FINDING_NAME);
    assert_eq!(finding.source(), FindingSource::Internal);
    assert_eq!(finding.priority(), Priority::Warning);
    assert_eq!(finding.node, node);
    assert!(
        finding.id.starts_with(&format!("collector-drops:{node}:")),
        "{}",
        finding.id
    );
    finding
}

fn field(finding: &Finding, name: &str) -> u64 {
    finding.output_fields[name].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_into_a_tiny_channel_raises_a_finding() {
    let nats = NatsServer::start();
    let mut config = flood_config(&nats, "flood-test");
    config.channel_capacity = 1;
    config.synthetic.rate = 2_000_000;
    let collector = Running::start(config).await;

    let finding = drop_finding(&nats, "flood-test").await;
    let dropped = field(&finding, "userspace_drops");
    assert!(dropped >= 10, "{}", finding.output);
    assert!(
        finding.output.contains(&format!("userspace={dropped}")),
        "{}",
        finding.output
    );
    let batches = read::<EventBatch>(
        &nats,
        &EVENTS,
        subject::EVENTS_ALL,
        Duration::from_secs(10),
        |b| {
            b.iter().any(|b| b.message.userspace_drops > 0)
                && b.iter().any(|b| !b.message.events.is_empty())
        },
    )
    .await;
    let summary: Vec<(usize, u64)> = batches
        .iter()
        .take(20)
        .map(|b| (b.message.events.len(), b.message.userspace_drops))
        .collect();
    assert!(
        batches.iter().any(|b| b.message.userspace_drops > 0),
        "drops are carried in batches: {} batches, {summary:?}",
        batches.len()
    );
    assert!(!collector.is_finished(), "the collector keeps running");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_into_a_tiny_ring_buffer_raises_a_finding() {
    if !require_root("a_flood_into_a_tiny_ring_buffer_raises_a_finding") {
        return;
    }
    let nats = NatsServer::start();
    let mut config = flood_config(&nats, "ringbuf-flood-test");
    config.source = Source::Ebpf;
    config.ring_buffer_bytes = 4096;
    let collector = Running::start(config).await;

    // Each redirection is an openat: thousands of them in a burst.
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do : < /etc/hostname; i=$((i+1)); done",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let finding = drop_finding(&nats, "ringbuf-flood-test").await;
    assert!(field(&finding, "kernel_drops") > 0, "{}", finding.output);
    let batches = read::<EventBatch>(
        &nats,
        &EVENTS,
        subject::EVENTS_ALL,
        Duration::from_secs(10),
        |b| b.iter().any(|b| b.message.kernel_drops > 0),
    )
    .await;
    assert!(
        batches.iter().any(|b| b.message.kernel_drops > 0),
        "drops are carried in batches"
    );
    assert!(!collector.is_finished());
    collector.stop().await;
}
