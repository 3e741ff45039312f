//! Bad input: an undecodable batch is terminated and counted, an event
//! without a syscall is skipped and counted, a stored model that does not
//! load is counted and the workload learnt anew; the service goes on.
//!
//! Alone in its test binary: it installs the process-wide Prometheus
//! recorder through the admin endpoint, which can happen only once.

mod common;

use bytes::Bytes;
use common::*;
use tokio_util::sync::CancellationToken;
use vigil_anomaly_scorer::store::ModelStore;
use vigil_bus::{Publisher, TraceContext, subject, topology::EVENTS};
use vigil_proto::v1::Event;
use vigil_service::{AdminConfig, AdminServer};
use vigil_testkit::{NatsServer, http_get};

fn counted(metrics: &str, error_type: &str, stage: &str, count: u64) -> bool {
    metrics.lines().any(|line| {
        line.starts_with("vigil_anomaly_scorer_errors_total{")
            && line.contains(&format!(r#"error_type="{error_type}""#))
            && line.contains(&format!(r#"stage="{stage}""#))
            && line.ends_with(&format!(" {count}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_events_and_models_are_counted_and_the_service_goes_on() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let admin_shutdown = CancellationToken::new();
    let admin = AdminServer::start(&AdminConfig::default(), admin_shutdown.clone())
        .await
        .expect("admin endpoint");
    assert_eq!(
        http_get(admin.local_addr, "/healthz").map(|r| r.0),
        Some(503)
    );
    let scorer = Running::start_with(config(&server), admin.health.clone()).await;
    assert_eq!(
        http_get(admin.local_addr, "/healthz").map(|r| r.0),
        Some(200)
    );

    // A corrupt model for the workload, planted before the scorer sees it.
    let store = ModelStore::open(&bus.jetstream, 1).await.expect("store");
    store
        .put_raw(
            "shop/web:1|shop/Deployment/web",
            b"{\"version\": 1, \"forest\": 7}",
        )
        .await
        .expect("plant model");

    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events(NODE, 0),
            "garbage",
            &TraceContext::new_root(),
            Bytes::from_static(b"\xff\xff\xffnot a batch"),
        )
        .await
        .expect("publish garbage");
    let web = Container::new(
        "c0ffee00000000000000000000000000000000000000000000000000000000aa",
        "web-1",
    );
    // One window's worth of events plus one that names no syscall.
    let mut events = web.normal(0, EVENTS_PER_WINDOW as usize);
    events.insert(
        3,
        Event {
            container_id: web.id.clone(),
            pid: 77,
            ..Event::default()
        },
    );
    publish(&bus, &web, 1, events).await;

    // The window is still made (the bad event skipped), and since the
    // stored model did not load, the workload is learning again.
    let scores = wait_scores(&bus, &web.id, 1).await;
    assert!(scores[0].learning, "{scores:?}");
    assert_eq!(scores[0].window_events, EVENTS_PER_WINDOW);

    // The garbage went to partition 0, the window to the container's own:
    // each partition's consumer has settled what it got, nothing redelivered.
    let partitions = std::collections::BTreeSet::from([0, subject::event_partition(&web.id)]);
    poll("both messages settled", || async {
        let stream = bus.jetstream.get_stream(EVENTS.name).await.ok()?;
        let mut settled = 0;
        for &partition in &partitions {
            let name =
                vigil_bus::topology::anomaly_scorer_partition_consumer(partition).durable_name;
            let info = stream.consumer_info(name).await.ok()?;
            assert_eq!(info.num_redelivered, 0, "the garbage is not redelivered");
            if info.num_ack_pending > 0 {
                return None;
            }
            settled += info.ack_floor.consumer_sequence;
        }
        (settled == 2).then_some(())
    })
    .await;

    // Alone, the instance owns every partition, taken in one assignment.
    poll("every partition consumed", || async {
        (scorer.owned() == (0..subject::EVENT_PARTITIONS).collect::<Vec<_>>()).then_some(())
    })
    .await;
    let (_, metrics) = http_get(admin.local_addr, "/metrics").expect("metrics");
    assert!(
        counted(&metrics, "malformed_payload", "decode", 1),
        "{metrics}"
    );
    assert!(counted(&metrics, "missing_field", "window", 1), "{metrics}");
    assert!(
        counted(&metrics, "model_invalid", "load_model", 1),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            == format!(
                "vigil_anomaly_scorer_events_total {}",
                EVENTS_PER_WINDOW + 1
            )),
        "{metrics}"
    );
    for line in [
        "vigil_anomaly_scorer_partitions 16",
        "vigil_anomaly_scorer_rebalances_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
    scorer.stop().await;
    admin_shutdown.cancel();
}
