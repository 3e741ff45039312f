//! A collector cut off from NATS: a real nats-server is killed while the
//! synthetic source produces a known number of events and started again
//! once the source is done. Every event is then either stored in JetStream
//! or counted as dropped in a stored batch, none twice, and the drop
//! finding that could not be delivered during the outage arrives afterwards
//! with the whole run's drops. A publisher shut down while NATS is still
//! away stops waiting for it.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod publish_support;

use std::{collections::HashSet, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use publish_support::{Running, Stored, config, event_count, read};
use vigil_bus::Publisher;
use vigil_bus::{
    subject,
    topology::{EVENTS, FINDINGS},
};
use vigil_collector::{
    drops::FINDING_NAME,
    publish::{self, Batcher, Bus, DropCounts},
};
use vigil_proto::v1::{Event, EventBatch, Finding};
use vigil_testkit::{NatsServer, in_process};

const NODE: &str = "outage-test";
/// Produced over `PRODUCED / RATE` = 8 s.
const PRODUCED: u64 = 40_000;
const RATE: u64 = 5_000;
/// Longer than the source runs after the first batch is stored, so it
/// finishes while NATS is away: the outage is the fault under test, not a
/// wait for something the test could poll.
const OUTAGE: Duration = Duration::from_secs(12);
const PATIENCE: Duration = Duration::from_secs(120);

fn userspace_drops(batches: &[Stored<EventBatch>]) -> u64 {
    batches.iter().map(|b| b.message.userspace_drops).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_loses_no_event_without_counting_it() {
    let mut nats = NatsServer::start();
    let mut config = config(&nats, NODE);
    config.synthetic.rate = RATE;
    config.synthetic.max_events = PRODUCED;
    // Small buffers, so the outage overflows them: what the collector
    // keeps is the channel plus its window of unconfirmed batches.
    config.channel_capacity = 1024;
    config.batch_max_events = 16;
    config.drops.threshold = 1;
    config.drops.interval_ms = 200;
    config.drops.priority = "warning".into();
    let collector = Running::start(config).await;

    let before = read::<EventBatch>(&nats, &EVENTS, subject::EVENTS_ALL, PATIENCE, |b| {
        !b.is_empty()
    })
    .await;
    assert!(!before.is_empty(), "no batch stored before the outage");
    nats.stop();
    tokio::time::sleep(OUTAGE).await;
    nats.restart();

    let batches = read::<EventBatch>(&nats, &EVENTS, subject::EVENTS_ALL, PATIENCE, |b| {
        event_count(b) as u64 + userspace_drops(b) >= PRODUCED
    })
    .await;
    let (stored, dropped) = (event_count(&batches) as u64, userspace_drops(&batches));
    assert_eq!(
        (stored + dropped, stored, dropped),
        (PRODUCED, stored, dropped),
        "every event stored or counted as dropped ({} batches)",
        batches.len()
    );
    assert!(
        dropped > 0,
        "the outage overflowed the collector's buffers ({stored} stored)"
    );
    assert!(batches.iter().all(|b| b.message.kernel_drops == 0));
    let ids: HashSet<&str> = batches.iter().map(|b| b.message_id.as_str()).collect();
    assert_eq!(ids.len(), batches.len(), "no batch stored twice");
    let mut sequences: Vec<u64> = batches.iter().map(|b| b.message.sequence).collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), batches.len(), "no sequence stored twice");

    // The drops happened while the finding could not be delivered: the
    // one that arrives later carries them all.
    let run_total =
        |f: &Finding| -> u64 { f.output_fields["run_userspace_drops"].parse().unwrap() };
    let findings = read::<Finding>(&nats, &FINDINGS, subject::FINDINGS_ALL, PATIENCE, |f| {
        f.iter().any(|f| run_total(&f.message) == dropped)
    })
    .await;
    let totals: Vec<u64> = findings.iter().map(|f| run_total(&f.message)).collect();
    assert!(
        totals.contains(&dropped),
        "a drop finding with the run's {dropped} drops; findings had {totals:?}"
    );
    assert!(findings.iter().all(|f| {
        f.message.name == FINDING_NAME
            && f.message
                .id
                .starts_with(&format!("collector-drops:{NODE}:"))
    }));
    assert!(!collector.is_finished(), "the collector kept running");
    collector.stop().await;
}

/// More batches than the publisher keeps unconfirmed (256): with NATS away
/// its window fills and stays full, and events stay queued behind it.
const QUEUED_BATCHES: usize = 512;
const BATCH_EVENTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_outage_ends_the_wait_for_nats() {
    let mut nats = NatsServer::start();
    let connection = in_process::bus(&nats, "outage-shutdown-test").await;
    nats.stop();
    let bus = Bus {
        publisher: Publisher::new(connection.jetstream.clone()),
        client: connection.client.clone(),
    };
    let (events, queued) = mpsc::channel(QUEUED_BATCHES * BATCH_EVENTS);
    let shutdown = CancellationToken::new();
    let publishing = tokio::spawn(publish::run(
        queued,
        bus,
        Batcher::new(NODE, BATCH_EVENTS, DropCounts::default()),
        Duration::from_millis(5),
        None,
        shutdown.clone(),
    ));
    for pid in 0..QUEUED_BATCHES * BATCH_EVENTS {
        let event = Event {
            pid: u32::try_from(pid).unwrap(),
            ..Event::default()
        };
        events.send(event).await.unwrap();
    }
    // As the collector shuts down: the source's sender goes, then shutdown.
    drop(events);
    shutdown.cancel();
    let ended = tokio::time::timeout(PATIENCE, publishing).await;
    assert!(
        matches!(ended, Ok(Ok(()))),
        "the publisher still waits for NATS {PATIENCE:?} after shutdown: {ended:?}"
    );
}
