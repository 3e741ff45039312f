//! The three-node cluster fixture: a stream at replication 3 keeps taking
//! and keeping messages while one node is SIGKILLed, and the node comes
//! back current.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, connect::connect, subject, topology::EVENTS,
};
use vigil_testkit::{CLUSTER_REPLICAS, NatsCluster};

/// Publishes messages `from..from + count`. While the stream elects a new
/// leader after a node's death a publish finds no stream, and is retried as
/// a publisher would; the message id keeps a retry from storing twice.
async fn publish(publisher: &Publisher, from: u32, count: u32) {
    const ATTEMPTS: u32 = 200;
    for i in from..from + count {
        let mut attempt = 0;
        loop {
            let sent = publisher
                .publish(
                    subject::events("cluster-test", 0),
                    &format!("cluster-test:{i}"),
                    &TraceContext::new_root(),
                    format!("message {i}").into(),
                )
                .await;
            attempt += 1;
            match sent {
                Ok(_) => break,
                Err(error) if attempt >= ATTEMPTS => panic!("message {i}: {error:?}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_stream_keeps_its_messages_through_a_node_crash() {
    let mut cluster = NatsCluster::start().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.size(), 3);
    // One node's URL: the client learns the others from the cluster.
    let options = ConnectOptions {
        url: cluster.node_url(1),
        client_name: "cluster-test".into(),
    };
    let bus = connect(&options, &CancellationToken::new()).await.unwrap();
    vigil_bus::topology::ensure_stream(&bus.jetstream, &EVENTS, CLUSTER_REPLICAS)
        .await
        .unwrap();
    let publisher = Publisher::new(bus.jetstream.clone());
    publish(&publisher, 0, 10).await;

    // Two of three nodes are a quorum: the stream keeps storing.
    cluster.kill(0);
    publish(&publisher, 10, 10).await;
    cluster.restart(0).unwrap_or_else(|e| panic!("{e}"));

    let mut stream = bus.jetstream.get_stream(EVENTS.name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, CLUSTER_REPLICAS);
    assert_eq!(info.state.messages, 20);
    let cluster_info = info
        .cluster
        .as_ref()
        .expect("a clustered stream names its peers");
    assert_eq!(
        cluster_info.replicas.len() + 1,
        CLUSTER_REPLICAS,
        "a leader and two replicas"
    );

    // Served by the restarted node alone, the stream still has everything.
    let only_first = ConnectOptions {
        url: cluster.node_url(0),
        client_name: "cluster-test-n0".into(),
    };
    let bus = connect(&only_first, &CancellationToken::new())
        .await
        .unwrap();
    let mut stream = bus.jetstream.get_stream(EVENTS.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 20);
    assert_eq!(cluster.node_name(0), "n0");
}
