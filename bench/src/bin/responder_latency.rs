//! Responder latency: from the syscall's kernel timestamp to the finding,
//! to the completed node-level action (cgroup freeze) and to the completed
//! cluster-level action (quarantine label and deny-all NetworkPolicy, on the
//! fake Kubernetes API server of `vigil-fake-kube`, over HTTP).
//!
//! The whole pipeline runs as processes: collector (eBPF, pod metadata from
//! the fake API server), detectors, responder in mode "both". Each run
//! registers a pod for a fresh pod-like sandbox and has its process open
//! /etc/shadow; the action records carry the kernel timestamp of the
//! syscall and the CLOCK_MONOTONIC times the finding arrived and each
//! action completed, so no clock sync is involved. The cluster action runs
//! after the freeze, so its latency includes it.
//!
//! Baseline, same run: one JetStream hop (publish, then receive on an
//! ordered consumer) on the same server. Targets: node p99 <= 50 ms,
//! cluster p99 <= 200 ms.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;
use vigil_bench::{Report, quantile, results_path};
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, codec, connect::connect, subject, topology,
};
use vigil_e2e::{Tail, scenario};
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, EventBatch};
use vigil_testkit::{Pipeline, PodSandbox, ServiceSpec};

const NODE: &str = "bench-node";
const NAMESPACE: &str = "bench";
/// Freeze on the node, quarantine through the API; limits high enough
/// that the runs never hit them.
const POLICY: &str = "rate_limits:
  per_pod: { max: 1, per_seconds: 60 }
  global: { max: 100000, per_seconds: 60 }
max_finding_age_seconds: 600
rules:
  - name: bench-contain
    match: { min_priority: notice }
    actions: [{ kind: freeze }, { kind: quarantine }]
";

#[tokio::main]
async fn main() -> Result<()> {
    let runs: usize = std::env::var("VIGIL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let binaries = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_owned();
    let fake = FakeKube::start(Rbac::allow_all()).await?;
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY)?;
    let url = fake.url();
    let pipeline = Pipeline::start(
        &binaries,
        NODE,
        &[
            ServiceSpec::new("vigil-collector")
                .with("KUBE__ENABLED", "true")
                .with("KUBE__API_URL", &url),
            ServiceSpec::new("vigil-detectors"),
            ServiceSpec::new("vigil-responder")
                .with("MODE", "both")
                .with("POLICY_FILE", policy.to_str().context("policy path")?)
                .with("KUBE__ENABLED", "true")
                .with("KUBE__API_URL", &url),
        ],
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let bus = connect(
        &ConnectOptions {
            url: pipeline.nats.url(),
            client_name: "bench".into(),
        },
        &CancellationToken::new(),
    )
    .await?;

    let mut actions = Tail::<ActionRecord>::from_now(&bus.jetstream, &topology::ACTIONS).await?;
    let mut to_finding = Vec::with_capacity(runs);
    let mut to_freeze = Vec::with_capacity(runs);
    let mut to_quarantine = Vec::with_capacity(runs);
    let started = Instant::now();
    for run in 0..runs {
        let sandbox = PodSandbox::create()?;
        let name = format!("victim-{run}");
        fake.put_pod(&pod(&name, &sandbox)?)?;
        // Let the collector's watch see the pod before the attack.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut attacker = scenario::start_shadow_read(&sandbox)?;
        let (mut freeze, mut quarantine) = (None, None);
        while freeze.is_none() || quarantine.is_none() {
            let record = actions
                .next_matching(Duration::from_secs(10), |a| {
                    a.container_id == sandbox.container_id
                })
                .await
                .with_context(|| format!("run {run}: no action within 10 s"))?;
            if record.outcome() != ActionOutcome::Succeeded {
                bail!(
                    "run {run}: {:?} {:?}: {}",
                    record.kind(),
                    record.outcome(),
                    record.reason
                );
            }
            match record.kind() {
                ActionKind::Freeze => freeze = record.timings,
                ActionKind::Quarantine => quarantine = record.timings,
                _ => {}
            }
        }
        let (node, cluster) = (freeze.unwrap_or_default(), quarantine.unwrap_or_default());
        let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
        to_finding.push(ms(node.event_kernel_time_ns, node.finding_received_ns));
        to_freeze.push(ms(node.event_kernel_time_ns, node.action_completed_ns));
        to_quarantine.push(ms(
            cluster.event_kernel_time_ns,
            cluster.action_completed_ns,
        ));
        drop(sandbox);
        fake.remove_pod(NAMESPACE, &name);
        let _ = attacker.wait();
    }
    let elapsed = started.elapsed();

    let mut hop = bus_hop(&bus, 1000).await?;
    let (hop_p50, hop_p99) = (quantile(&mut hop, 0.5), quantile(&mut hop, 0.99));
    let mut report = Report::default();
    report.add("responder_latency.runs", runs as f64, "runs");
    report.add("responder_latency.wall_time", elapsed.as_secs_f64(), "s");
    for (name, samples) in [
        ("syscall_to_finding", &mut to_finding),
        ("syscall_to_freeze", &mut to_freeze),
        ("syscall_to_quarantine", &mut to_quarantine),
    ] {
        let p50 = quantile(samples, 0.5);
        let p99 = quantile(samples, 0.99);
        report.add_with_baseline(&format!("responder_latency.{name}_p50"), p50, "ms", hop_p50);
        report.add_with_baseline(&format!("responder_latency.{name}_p99"), p99, "ms", hop_p99);
    }
    report.add("responder_latency.jetstream_hop_p50", hop_p50, "ms");
    report.add("responder_latency.jetstream_hop_p99", hop_p99, "ms");
    report.write(&results_path())?;
    Ok(())
}

/// A pod as the API server would show it for `sandbox`'s container.
fn pod(name: &str, sandbox: &PodSandbox) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": sandbox.pod_uid, "labels": {"app": "victim"}},
        "spec": {"nodeName": NODE, "containers": [{"name": "victim", "image": "debian"}]},
        "status": {"containerStatuses": [{
            "name": "victim", "image": "debian", "imageID": "debian", "ready": true, "restartCount": 0,
            "containerID": format!("containerd://{}", sandbox.container_id)
        }]}
    }))?)
}

/// One JetStream hop, `samples` times one at a time: publish a small
/// message and receive it on an ordered consumer.
async fn bus_hop(bus: &vigil_bus::BusConnection, samples: usize) -> Result<Vec<f64>> {
    let publisher = Publisher::new(bus.jetstream.clone());
    let stream = bus.jetstream.get_stream(topology::EVENTS.name).await?;
    let target = subject::events("responder-baseline", 0);
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
            filter_subject: target.clone(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let payload = codec::encode(&EventBatch::default());
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = Instant::now();
        publisher
            .publish(
                target.clone(),
                &format!("responder-hop-{i}"),
                &TraceContext::new_root(),
                payload.clone(),
            )
            .await?;
        match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(_))) => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
            _ => bail!("baseline message {i} not delivered"),
        }
    }
    Ok(latencies)
}
