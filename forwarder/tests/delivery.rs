//! The forwarder against real receivers and a real nats-server: every
//! finding kind arrives as complete Falco JSON at every output; outputs
//! that answer 500 or are down get everything once they accept, without
//! holding back the others.

mod common;

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use common::{HttpReceiver, SyslogReceiver, free_addr, output, wait_for};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use vigil_bus::{Publisher, TraceContext, codec, publish::FALCO_JSON, subject};
use vigil_forwarder::{Config, OutputKind, Transport, run};
use vigil_proto::v1::{Event, Finding, FindingSource, Priority};
use vigil_service::Health;
use vigil_testkit::{
    NatsServer,
    in_process::{InProcess, bus},
};

const EVENT_NS: u64 = 1_685_022_245_478_445_995;
const MADE_NS: u64 = 1_700_000_000_123_456_789;

fn recorder() -> PrometheusHandle {
    PrometheusBuilder::new()
        .install_recorder()
        .expect("the test process's metrics recorder")
}

/// The value of the series of `name` whose labels include all of `labels`.
fn metric(handle: &PrometheusHandle, name: &str, labels: &[&str]) -> f64 {
    handle
        .render()
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn start(
    server: &NatsServer,
    outputs: Vec<vigil_forwarder::OutputConfig>,
) -> InProcess<vigil_forwarder::Error> {
    let mut config = Config {
        node_name: "forwarder-test".to_owned(),
        outputs,
        ..Config::default()
    };
    config.nats.url = server.url();
    InProcess::start(
        "forwarder",
        Health::default(),
        Duration::from_secs(60),
        |health, shutdown| run(config, health, shutdown),
    )
    .await
}

async fn publish(publisher: &Publisher, finding: &Finding, header: Option<&str>) {
    let headers: Vec<(&'static str, &str)> = header.map(|h| (FALCO_JSON, h)).into_iter().collect();
    publisher
        .send_with_headers(
            subject::findings(finding.priority(), &finding.namespace),
            &finding.id,
            &TraceContext::new_root(),
            codec::encode(finding),
            &headers,
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
}

fn rule_finding() -> Finding {
    Finding {
        id: "rule-1".into(),
        time_ns: MADE_NS,
        source: FindingSource::Rule as i32,
        name: "Read of /etc/shadow".into(),
        priority: Priority::Warning as i32,
        tags: vec!["T1003.008".into(), "filesystem".into()],
        output: "Sensitive file opened (file=/etc/shadow pid=4242)".into(),
        output_fields: [
            ("fd.name".to_owned(), "/etc/shadow".to_owned()),
            ("proc.pid".to_owned(), "4242".to_owned()),
        ]
        .into(),
        container_id: "c0ffee".into(),
        pod: "web-1".into(),
        namespace: "shop".into(),
        node: "node-a".into(),
        events: vec![Event {
            wall_time_ns: EVENT_NS,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// What the detectors put in the header of `rule_finding`.
const RULE_HEADER: &str = r#"{"time":"2023-05-25T13:44:05.478445995Z","rule":"Read of /etc/shadow","priority":"Warning","source":"syscall","hostname":"node-a","tags":["T1003.008","filesystem"],"output":"Sensitive file opened (file=/etc/shadow pid=4242)","output_fields":{"fd.name":"/etc/shadow","proc.pid":4242,"user.name":null}}"#;

fn anomaly_finding(id: &str) -> Finding {
    Finding {
        id: id.into(),
        time_ns: MADE_NS,
        source: FindingSource::Anomaly as i32,
        name: "Anomalous container behaviour".into(),
        priority: Priority::Warning as i32,
        tags: vec!["anomaly".into()],
        output: format!("Container c0ffee behaves unlike its baseline ({id})"),
        output_fields: [("score".to_owned(), "0.9100".to_owned())].into(),
        container_id: "c0ffee".into(),
        pod: "web-1".into(),
        namespace: "shop".into(),
        node: "node-b".into(),
        ..Default::default()
    }
}

fn drop_finding() -> Finding {
    Finding {
        id: "collector-drops:node-c:run:1".into(),
        time_ns: MADE_NS,
        source: FindingSource::Internal as i32,
        name: "Collector dropped events".into(),
        priority: Priority::Error as i32,
        tags: vec!["vigil".into(), "drops".into()],
        output: "Collector on node node-c dropped 25 events".into(),
        output_fields: [("kernel_drops".to_owned(), "25".to_owned())].into(),
        node: "node-c".into(),
        ..Default::default()
    }
}

/// `alert` without its uuid, which is checked on its own.
fn without_uuid(alert: &Value) -> Value {
    let mut alert = alert.clone();
    alert.as_object_mut().expect("an object").remove("uuid");
    alert
}

#[tokio::test]
async fn every_finding_kind_reaches_every_output_as_complete_falco_json() {
    let metrics = recorder();
    let server = NatsServer::start();
    let sidekick = HttpReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), 0).await;
    let hook = HttpReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), 0).await;
    let udp = SyslogReceiver::start(Transport::Udp, SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let tcp = SyslogReceiver::start(Transport::Tcp, SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let service = start(
        &server,
        vec![
            vigil_forwarder::OutputConfig {
                url: sidekick.url(),
                ..output("sidekick", OutputKind::Falcosidekick)
            },
            vigil_forwarder::OutputConfig {
                url: format!("{}hooks/vigil", hook.url()),
                headers: [("Authorization".to_owned(), "Bearer s3cret".to_owned())].into(),
                ..output("hook", OutputKind::Webhook)
            },
            vigil_forwarder::OutputConfig {
                address: udp.addr.to_string(),
                ..output("syslog-udp", OutputKind::Syslog)
            },
            vigil_forwarder::OutputConfig {
                address: tcp.addr.to_string(),
                transport: Transport::Tcp,
                facility: 4,
                ..output("syslog-tcp", OutputKind::Syslog)
            },
        ],
    )
    .await;

    let publisher = Publisher::new(bus(&server, "test").await.jetstream);
    // Bad input first: a payload that is no Finding, and a broken header.
    publisher
        .send(
            subject::findings(Priority::Critical, "shop"),
            "garbage-1",
            &TraceContext::new_root(),
            bytes::Bytes::from_static(b"\xff\xff not a finding"),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    publish(
        &publisher,
        &anomaly_finding("broken-header"),
        Some("{not json"),
    )
    .await;
    publish(&publisher, &rule_finding(), Some(RULE_HEADER)).await;
    publish(&publisher, &anomaly_finding("anomaly-1"), None).await;
    publish(&publisher, &drop_finding(), None).await;

    let receivers = [
        &sidekick.received,
        &hook.received,
        &udp.received,
        &tcp.received,
    ];
    wait_for("four alerts at every output", || {
        receivers.iter().all(|r| r.all().len() >= 4)
    })
    .await;

    let time = "2023-05-25T13:44:05.478445995Z";
    let made = "2023-11-14T22:13:20.123456789Z";
    let rule = json!({
        "output": format!("{time}: Warning Sensitive file opened (file=/etc/shadow pid=4242)"),
        "priority": "Warning",
        "rule": "Read of /etc/shadow",
        "time": time,
        "output_fields": {"fd.name": "/etc/shadow", "proc.pid": 4242, "user.name": null,
                          "container.id": "c0ffee", "k8s.pod.name": "web-1", "k8s.ns.name": "shop"},
        "source": "syscall",
        "tags": ["T1003.008", "filesystem"],
        "hostname": "node-a",
    });
    let anomaly = json!({
        "output": format!("{made}: Warning Container c0ffee behaves unlike its baseline (anomaly-1)"),
        "priority": "Warning",
        "rule": "Anomalous container behaviour",
        "time": made,
        "output_fields": {"score": "0.9100", "container.id": "c0ffee",
                          "k8s.pod.name": "web-1", "k8s.ns.name": "shop"},
        "source": "vigil_anomaly",
        "tags": ["anomaly"],
        "hostname": "node-b",
    });
    let dropped = json!({
        "output": format!("{made}: Error Collector on node node-c dropped 25 events"),
        "priority": "Error",
        "rule": "Collector dropped events",
        "time": made,
        "output_fields": {"kernel_drops": "25"},
        "source": "vigil_internal",
        "tags": ["vigil", "drops"],
        "hostname": "node-c",
    });
    let first = sidekick.received.all();
    for received in receivers {
        let alerts = received.all();
        assert_eq!(alerts.len(), 4, "exactly the four findings: {alerts:#?}");
        let uuids = received.uuids();
        assert_eq!(uuids.len(), 4, "one uuid per finding");
        assert!(
            uuids.iter().all(|u| uuid::Uuid::parse_str(u).is_ok()),
            "{uuids:?}"
        );
        assert_eq!(
            uuids,
            sidekick.received.uuids(),
            "the same uuids at every output"
        );
        let by_output = |name: &str, id: &str| {
            alerts
                .iter()
                .find(|a| a["rule"] == name && a["output"].as_str().is_some_and(|o| o.contains(id)))
                .map(without_uuid)
                .unwrap_or_else(|| panic!("no alert for {name} ({id}) in {alerts:#?}"))
        };
        assert_eq!(by_output("Read of /etc/shadow", ""), rule);
        assert_eq!(
            by_output("Anomalous container behaviour", "(anomaly-1)"),
            anomaly
        );
        assert_eq!(by_output("Collector dropped events", ""), dropped);
        let broken = by_output("Anomalous container behaviour", "(broken-header)");
        assert_eq!(broken["output_fields"]["score"], "0.9100");
        let mut sorted: Vec<_> = alerts.iter().map(|a| a.to_string()).collect();
        let mut expected: Vec<_> = first.iter().map(|a| a.to_string()).collect();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected, "every output gets the same JSON");
    }

    let headers = hook.headers.lock().expect("headers").clone();
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["content-type"], "application/json");

    for (receiver, facility) in [(&udp, 16u16), (&tcp, 4)] {
        let messages = receiver.messages();
        let rule = messages
            .iter()
            .find(|m| m.alert["rule"] == "Read of /etc/shadow")
            .expect("the rule finding over syslog");
        // Warning is severity 4; RFC 5424 allows six fraction digits.
        assert_eq!(rule.pri, facility * 8 + 4);
        assert_eq!(rule.version, "1");
        assert_eq!(rule.timestamp, "2023-05-25T13:44:05.478445Z");
        assert_eq!(rule.hostname, "node-a");
        assert_eq!(rule.app_name, "vigil");
        assert_eq!(
            (rule.proc_id.as_str(), rule.msg_id.as_str()),
            ("-", "falco-alert")
        );
        assert_eq!(rule.structured_data, "-");
        let dropped = messages
            .iter()
            .find(|m| m.alert["rule"] == "Collector dropped events")
            .expect("the drop finding over syslog");
        assert_eq!(dropped.pri, facility * 8 + 3, "Error is severity 3");
    }

    let outputs = ["sidekick", "hook", "syslog-udp", "syslog-tcp"];
    let counted = |output: &str| {
        let label = format!("output=\"{output}\"");
        [
            metric(&metrics, "vigil_forwarder_delivered_total", &[&label]),
            metric(
                &metrics,
                "vigil_forwarder_rejected_total",
                &[&label, "reason=\"malformed_payload\""],
            ),
            metric(&metrics, "vigil_forwarder_bad_headers_total", &[&label]),
        ]
    };
    // Counted just after the receiver has the alert: wait for the counts,
    // then check they are exact.
    wait_for("deliveries, rejections and bad headers counted", || {
        outputs
            .iter()
            .all(|output| counted(output) == [4.0, 1.0, 1.0])
    })
    .await;
    for output in outputs {
        assert_eq!(counted(output), [4.0, 1.0, 1.0], "{output}");
    }
    assert!(!service.is_finished());
    service.stop(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn failing_and_down_outputs_get_everything_without_slowing_the_others() {
    const FINDINGS: usize = 30;
    const FAILURES: usize = 6;
    let metrics = recorder();
    let server = NatsServer::start();
    let steady = HttpReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), 0).await;
    let flaky = HttpReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), FAILURES).await;
    let (down_http, down_tcp) = (free_addr().await, free_addr().await);
    let service = start(
        &server,
        vec![
            vigil_forwarder::OutputConfig {
                url: steady.url(),
                ..output("steady", OutputKind::Webhook)
            },
            vigil_forwarder::OutputConfig {
                url: flaky.url(),
                ..output("flaky", OutputKind::Falcosidekick)
            },
            vigil_forwarder::OutputConfig {
                url: format!("http://{down_http}/"),
                ..output("down", OutputKind::Webhook)
            },
            vigil_forwarder::OutputConfig {
                address: down_tcp.to_string(),
                transport: Transport::Tcp,
                ..output("down-syslog", OutputKind::Syslog)
            },
        ],
    )
    .await;
    let publisher = Publisher::new(bus(&server, "test").await.jetstream);
    for n in 0..FINDINGS {
        publish(&publisher, &anomaly_finding(&format!("anomaly-{n}")), None).await;
    }

    wait_for("every finding at the steady output", || {
        steady.received.uuids().len() == FINDINGS
    })
    .await;
    wait_for(
        "every finding at the output that answered 500 first",
        || flaky.received.uuids().len() == FINDINGS,
    )
    .await;
    assert_eq!(
        flaky.requests.load(Ordering::SeqCst),
        FINDINGS + FAILURES,
        "each 500 retried once more, nothing else"
    );
    wait_for("the down outputs' failed attempts counted", || {
        metric(
            &metrics,
            "vigil_forwarder_failed_total",
            &["output=\"down\"", "reason=\"connect\""],
        ) >= 2.0
            && metric(
                &metrics,
                "vigil_forwarder_failed_total",
                &["output=\"down-syslog\"", "reason=\"connect\""],
            ) >= 2.0
    })
    .await;

    // The receivers come up: everything that waited arrives.
    let late_http = HttpReceiver::start(down_http, 0).await;
    let late_tcp = SyslogReceiver::start(Transport::Tcp, down_tcp).await;
    wait_for("every finding at the outputs that were down", || {
        late_http.received.uuids().len() == FINDINGS && late_tcp.received.uuids().len() == FINDINGS
    })
    .await;
    assert_eq!(late_http.received.uuids(), steady.received.uuids());
    assert_eq!(late_tcp.received.uuids(), steady.received.uuids());

    let flaky_label = "output=\"flaky\"";
    wait_for("the deliveries counted", || {
        metric(&metrics, "vigil_forwarder_delivered_total", &[flaky_label]) == FINDINGS as f64
            && metric(
                &metrics,
                "vigil_forwarder_delivered_total",
                &["output=\"steady\""],
            ) == FINDINGS as f64
    })
    .await;
    assert_eq!(
        metric(
            &metrics,
            "vigil_forwarder_failed_total",
            &[flaky_label, "reason=\"status_500\""]
        ),
        FAILURES as f64
    );
    assert_eq!(
        metric(&metrics, "vigil_forwarder_retries_total", &[flaky_label]),
        FAILURES as f64
    );
    assert_eq!(
        metric(&metrics, "vigil_forwarder_delivered_total", &[flaky_label]),
        FINDINGS as f64
    );
    assert_eq!(
        metric(
            &metrics,
            "vigil_forwarder_failed_total",
            &["output=\"steady\""]
        ),
        0.0
    );
    assert_eq!(
        metric(
            &metrics,
            "vigil_forwarder_delivered_total",
            &["output=\"steady\""]
        ),
        FINDINGS as f64
    );
    assert!(
        metric(
            &metrics,
            "vigil_forwarder_retries_total",
            &["output=\"down\""]
        ) >= 1.0
    );
    assert!(
        metrics.render().contains("vigil_forwarder_send_seconds"),
        "latency is measured"
    );
    service.stop(Duration::from_secs(15)).await;
}
