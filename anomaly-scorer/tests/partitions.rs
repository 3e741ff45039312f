//! Scorer instances share the event partitions through the members bucket:
//! two instances own disjoint shares covering all 16 and each scores only
//! its own containers; when one stops, the other takes over everything and
//! scores the stopped one's containers; a crashed member's share comes
//! back once its key expires.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use tonic::Code;
use vigil_anomaly_scorer::assignment;
use vigil_bus::subject::{EVENT_PARTITIONS, event_partition};
use vigil_bus::topology::{SCORER_MEMBERS_BUCKET, ensure_bucket};
use vigil_proto::v1::GetScoreRequest;
use vigil_testkit::{NatsServer, in_process};

fn all() -> Vec<u32> {
    (0..EVENT_PARTITIONS).collect()
}

/// A container id whose events land in one of `partitions`.
fn container_in(partitions: &[u32], pod: &str) -> Container {
    let id = (0..)
        .map(|i| format!("{pod:0>8}{i:056x}"))
        .find(|id| partitions.contains(&event_partition(id)))
        .expect("some id hashes to each partition");
    Container::new(&id, pod)
}

async fn known(scorer: &Running, container: &Container) -> Result<String, Code> {
    let mut client = scorer.client().await;
    client
        .get_score(GetScoreRequest {
            container_id: container.id.clone(),
            ..Default::default()
        })
        .await
        .map(|found| found.into_inner().pod)
        .map_err(|status| status.code())
}

/// Waits until `first` and `second` own disjoint, non-empty shares that
/// together cover every partition. (With random member ids one instance
/// gets no partition with probability 2 in 65536; this test needs both.)
async fn split(first: &Running, second: &Running) -> (Vec<u32>, Vec<u32>) {
    poll("two disjoint shares covering every partition", || async {
        let (a, b) = (first.owned(), second.owned());
        let mut both: Vec<u32> = a.iter().chain(&b).copied().collect();
        both.sort_unstable();
        (both == all() && !a.is_empty() && !b.is_empty()).then_some((a, b))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_partitions_and_one_takes_over_when_the_other_stops() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let first = Running::start(config(&server)).await;
    let second = Running::start(config(&server)).await;
    let (first_share, second_share) = split(&first, &second).await;

    let mine = container_in(&first_share, "web-a");
    let theirs = container_in(&second_share, "web-b");
    publish_normal(&bus, &mine, 0, 3).await;
    publish_normal(&bus, &theirs, 0, 2).await;
    wait_scores(&bus, &mine.id, 3).await;
    wait_scores(&bus, &theirs.id, 2).await;
    // Each container was windowed and scored by its owner only.
    assert_eq!(known(&first, &mine).await, Ok("web-a".to_owned()));
    assert_eq!(known(&second, &theirs).await, Ok("web-b".to_owned()));
    assert_eq!(known(&first, &theirs).await, Err(Code::NotFound));
    assert_eq!(known(&second, &mine).await, Err(Code::NotFound));
    assert_eq!(scores(&bus).await.len(), 5);
    // Nothing moved while both ran.
    assert_eq!((first.owned(), second.owned()), (first_share, second_share));

    second.stop().await;
    poll("the survivor owns every partition", || async {
        (first.owned() == all()).then_some(())
    })
    .await;
    publish_normal(&bus, &theirs, 2, 2).await;
    wait_scores(&bus, &theirs.id, 4).await;
    assert_eq!(known(&first, &theirs).await, Ok("web-b".to_owned()));
    assert_eq!(scores(&bus).await.len(), 7);
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_members_partitions_return_when_its_key_expires() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let scorer = Running::start(config(&server)).await;
    poll("a lone instance owns every partition", || async {
        (scorer.owned() == all()).then_some(())
    })
    .await;
    let members = ensure_bucket(&bus.jetstream, &SCORER_MEMBERS_BUCKET, 1)
        .await
        .expect("members bucket");
    let keys: Vec<String> = members
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("list keys");
    let [me] = keys.as_slice() else {
        panic!("one member key expected: {keys:?}")
    };
    // A member that announces itself and then dies without deleting its key.
    let (crashed, share) = (0..)
        .map(|i| format!("crashed-pod-{i}.0000beef"))
        .map(|id| {
            let set = BTreeSet::from([me.clone(), id.clone()]);
            let share = assignment::owned(&set, &id);
            (id, share)
        })
        .find(|(_, share)| !share.is_empty())
        .expect("some id gets a share");
    members
        .put(&crashed, "crashed".into())
        .await
        .expect("announce the crashed member");
    let expected: Vec<u32> = all().into_iter().filter(|p| !share.contains(p)).collect();
    poll("the live instance hands the newcomer its share", || async {
        (scorer.owned() == expected).then_some(())
    })
    .await;
    // No delete ever comes: the key ages out after the bucket's max_age and
    // the next member listing (every max_age / 3) returns the partitions.
    let patience = SCORER_MEMBERS_BUCKET.max_age * 3 + Duration::from_secs(10);
    in_process::poll(
        "the expired member's partitions come back",
        patience,
        || async { (scorer.owned() == all()).then_some(()) },
    )
    .await;
    scorer.stop().await;
}
