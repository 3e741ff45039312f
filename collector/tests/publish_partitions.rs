//! Partitioned batching through a real nats-server: each batch holds the
//! events of one partition and is published on that partition's subject, so
//! a consumer filtered on one partition gets exactly its containers' events.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod publish_support;

use std::{collections::BTreeSet, time::Duration};

use publish_support::{Running, config, event_count, read};
use vigil_bus::{subject, topology::EVENTS};
use vigil_collector::source::synthetic::Generator;
use vigil_proto::v1::EventBatch;
use vigil_testkit::NatsServer;

const TOTAL: usize = 3000;
const NODE: &str = "partition-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_of_one_partition_gets_exactly_its_containers_events() {
    let nats = NatsServer::start();
    let mut config = config(&nats, NODE);
    config.synthetic.max_events = TOTAL as u64;
    config.synthetic.rate = 200_000;
    config.synthetic.containers = 12;
    config.batch_max_events = 64;
    let containers = Generator::new(NODE, &config.synthetic).container_ids();
    let collector = Running::start(config).await;

    let wait = Duration::from_secs(20);
    let all = read::<EventBatch>(&nats, &EVENTS, subject::EVENTS_ALL, wait, |b| {
        event_count(b) >= TOTAL
    })
    .await;
    assert_eq!(event_count(&all), TOTAL, "every event published once");
    let ids: BTreeSet<&str> = all.iter().map(|b| b.message_id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "message ids are unique");
    for stored in &all {
        let batch = &stored.message;
        assert!(batch.events.len() <= 64, "batches are bounded");
        assert_eq!(
            stored.message_id,
            format!("{}:{}", batch.run_id, batch.sequence)
        );
        let partition: u32 = stored.subject.rsplit('.').next().unwrap().parse().unwrap();
        assert_eq!(stored.subject, subject::events(NODE, partition));
        for event in &batch.events {
            assert_eq!(
                subject::event_partition(&event.container_id),
                partition,
                "{}",
                stored.subject
            );
        }
    }

    let used: BTreeSet<u32> = containers
        .iter()
        .map(|c| subject::event_partition(c))
        .collect();
    assert!(
        used.len() >= 3,
        "the containers spread over partitions: {used:?}"
    );
    for partition in used.iter().copied().chain([0]) {
        let expected: Vec<u64> = all
            .iter()
            .flat_map(|b| &b.message.events)
            .filter(|e| subject::event_partition(&e.container_id) == partition)
            .map(|e| e.kernel_time_ns)
            .collect();
        assert!(!expected.is_empty(), "partition {partition} has events");
        let filtered = read::<EventBatch>(
            &nats,
            &EVENTS,
            &subject::events_of_partition(partition),
            wait,
            |b| event_count(b) >= expected.len(),
        )
        .await;
        let mut got: Vec<u64> = filtered
            .iter()
            .flat_map(|b| &b.message.events)
            .map(|e| e.kernel_time_ns)
            .collect();
        got.sort_unstable();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(got, expected, "partition {partition}");
        let sequences: Vec<u64> = filtered.iter().map(|b| b.message.sequence).collect();
        assert!(
            sequences.is_sorted(),
            "increasing within a partition: {sequences:?}"
        );
    }
    collector.stop().await;
}
