//! The scorer against a real nats-server: it learns a workload, then scores
//! it, flags an injected attack with an explained finding, and a restarted
//! instance scores with the stored model at once.

mod common;

use common::*;
use tonic::Code;
use vigil_anomaly_scorer::scorer::FINDING_NAME;
use vigil_bus::{Publisher, TraceContext, codec, subject};
use vigil_proto::v1::{
    Finding, FindingSource, GetScoreRequest, Priority, StreamScoresRequest, TopAnomalousRequest,
};
use vigil_testkit::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learns_a_workload_then_flags_an_injected_attack_and_a_restart_keeps_the_model() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let scorer = Running::start(config(&server)).await;
    let web = Container::new(
        "c0ffee0000000000000000000000000000000000000000000000000000000001",
        "web-1",
    );
    let learning = u64::from(LEARNING_WINDOWS);

    // Learning: one score per window, all marked learning, no findings.
    publish_normal(&bus, &web, 0, learning).await;
    let learnt = wait_scores(&bus, &web.id, LEARNING_WINDOWS as usize).await;
    assert!(learnt.iter().all(|s| s.learning && s.score == 0.0));

    // Scoring: normal windows score low and raise nothing.
    publish_normal(&bus, &web, learning, 5).await;
    let scored = wait_scores(&bus, &web.id, LEARNING_WINDOWS as usize + 5).await;
    let normal: Vec<f64> = scored[LEARNING_WINDOWS as usize..]
        .iter()
        .map(|s| {
            assert!(!s.learning, "{s:?}");
            assert_eq!(s.workload, "shop/web:1|shop/Deployment/web");
            s.score
        })
        .collect();
    assert!(
        findings(&bus).await.is_empty(),
        "normal windows raise no finding"
    );

    // The attack window: scored far above every normal one, and a finding
    // that names what made it stand out.
    publish(&bus, &web, 1000, web.attack()).await;
    let all = wait_scores(&bus, &web.id, LEARNING_WINDOWS as usize + 6).await;
    let attack = all.last().expect("attack score");
    assert!(
        normal.iter().all(|&n| n < attack.score),
        "attack {attack:?} vs normal {normal:?}"
    );
    assert!(attack.novelty > 0.5, "{attack:?}");
    let finding = poll("the anomaly finding", || async {
        findings(&bus).await.into_iter().next()
    })
    .await;
    assert_eq!(finding.source, FindingSource::Anomaly as i32);
    assert_eq!(finding.name, FINDING_NAME);
    assert_eq!(finding.container_id, web.id);
    assert_eq!(finding.pod, "web-1");
    assert_eq!(finding.namespace, "shop");
    assert_eq!(finding.score, attack.score);
    assert!(!finding.explanation.is_empty(), "{finding:?}");
    let explained: Vec<&str> = finding
        .explanation
        .iter()
        .map(|c| c.feature.as_str())
        .collect();
    assert!(
        explained
            .iter()
            .any(|f| f.starts_with("seq.") || f.starts_with("args.")),
        "{explained:?}"
    );

    // gRPC: the container's latest score, by container and by pod; the
    // workload tops the list; unknown containers and pods are NOT_FOUND.
    let mut client = scorer.client().await;
    let latest = client
        .get_score(GetScoreRequest {
            container_id: web.id.clone(),
            ..Default::default()
        })
        .await
        .expect("GetScore")
        .into_inner();
    assert_eq!(&latest, attack);
    let by_pod = client
        .get_score(GetScoreRequest {
            namespace: "shop".into(),
            pod: "web-1".into(),
            ..Default::default()
        })
        .await
        .expect("GetScore by pod")
        .into_inner();
    assert_eq!(by_pod.container_id, web.id);
    let top = client
        .top_anomalous(TopAnomalousRequest { limit: 5 })
        .await
        .expect("TopAnomalous")
        .into_inner();
    assert_eq!(top.scores.len(), 1);
    assert_eq!(top.scores[0].workload, attack.workload);
    for request in [
        GetScoreRequest {
            container_id: "nope".into(),
            ..Default::default()
        },
        GetScoreRequest {
            namespace: "shop".into(),
            pod: "ghost".into(),
            ..Default::default()
        },
    ] {
        let status = client.get_score(request).await.expect_err("unknown");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let status = client
        .get_score(GetScoreRequest::default())
        .await
        .expect_err("empty request");
    assert_eq!(status.code(), Code::InvalidArgument);
    scorer.stop().await;

    // A new instance (a restart) scores another replica of the same
    // Deployment straight away, with the model the first one stored; and
    // streams each score to a StreamScores client.
    let restarted = Running::start(config(&server)).await;
    let mut stream = restarted
        .client()
        .await
        .stream_scores(StreamScoresRequest { min_score: 0.0 })
        .await
        .expect("StreamScores")
        .into_inner();
    let replica = Container::new(
        "c0ffee0000000000000000000000000000000000000000000000000000000002",
        "web-2",
    );
    publish_normal(&bus, &replica, 0, 2).await;
    let replica_scores = wait_scores(&bus, &replica.id, 2).await;
    assert!(
        replica_scores.iter().all(|s| !s.learning),
        "the stored model is used: {replica_scores:?}"
    );
    let streamed = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .expect("a streamed score")
        .expect("stream open")
        .expect("a score");
    assert_eq!(streamed.container_id, replica.id);
    assert_eq!(findings(&bus).await.len(), 1, "still only the attack");
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_the_rules_flagged_never_trains_the_baseline() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let scorer = Running::start(config(&server)).await;
    let web = Container::new(
        "c0ffee00000000000000000000000000000000000000000000000000000000cc",
        "web-1",
    );
    let finding = Finding {
        id: "rule-finding-1".into(),
        source: FindingSource::Rule as i32,
        name: "Read of /etc/shadow".into(),
        priority: Priority::Critical as i32,
        container_id: web.id.clone(),
        namespace: "shop".into(),
        ..Finding::default()
    };
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::findings(Priority::Critical, "shop"),
            &finding.id,
            &TraceContext::new_root(),
            codec::encode(&finding),
        )
        .await
        .expect("publish rule finding");

    // One window more than learning needs: had they counted, the last
    // would be scored.
    let learning = u64::from(LEARNING_WINDOWS);
    publish_normal(&bus, &web, 0, learning + 1).await;
    let scores = wait_scores(&bus, &web.id, LEARNING_WINDOWS as usize + 1).await;
    assert!(
        scores.iter().all(|s| s.learning),
        "a flagged container's windows do not train: {scores:?}"
    );
    scorer.stop().await;
}
