//! Two scorer instances split the event partitions: each sees only the
//! events of its own containers, and knows nothing of the other's.

mod common;

use common::*;
use tonic::Code;
use vigil_bus::subject::event_partition;
use vigil_proto::v1::GetScoreRequest;
use vigil_testkit::NatsServer;

/// A container id whose events land in a partition `owner` of 2 instances owns.
fn container_of(owner: u32, pod: &str) -> Container {
    let id = (0..)
        .map(|i| format!("{owner:02}{i:062x}"))
        .find(|id| event_partition(id) % 2 == owner)
        .expect("some id hashes to each instance");
    Container::new(&id, pod)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_each_see_only_their_containers() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let instances = [0, 1].map(|index| {
        let mut config = config(&server);
        config.instance_index = index;
        config.instance_count = 2;
        config
    });
    let [first, second] = instances;
    let first = Running::start(first).await;
    let second = Running::start(second).await;
    let mine = container_of(0, "web-a");
    let theirs = container_of(1, "web-b");

    publish_normal(&bus, &mine, 0, 3).await;
    publish_normal(&bus, &theirs, 0, 2).await;
    // Each container's windows are scored exactly once overall.
    wait_scores(&bus, &mine.id, 3).await;
    wait_scores(&bus, &theirs.id, 2).await;

    for (scorer, own, other) in [(&first, &mine, &theirs), (&second, &theirs, &mine)] {
        let mut client = scorer.client().await;
        let found = client
            .get_score(GetScoreRequest {
                container_id: own.id.clone(),
                ..Default::default()
            })
            .await
            .expect("own container is known")
            .into_inner();
        assert_eq!(found.pod, own.pod);
        let status = client
            .get_score(GetScoreRequest {
                container_id: other.id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("the other instance's container is unknown here");
        assert_eq!(status.code(), Code::NotFound);
    }
    // Settled: three windows of one, two of the other, no more.
    assert_eq!(scores(&bus).await.len(), 5);
    first.stop().await;
    second.stop().await;
}
