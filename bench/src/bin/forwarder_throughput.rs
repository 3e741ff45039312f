//! The findings forwarder (`vigil-forwarder` process) delivering findings
//! already in VIGIL_FINDINGS to a local webhook: findings/s, and the
//! latency from publishing one finding to the webhook receiving it.
//!
//! Baselines, same run and same findings: a bare JetStream pull consumer
//! that only acknowledges (throughput), and one JetStream hop from publish
//! to that consumer (latency). The ratios are what decoding, building the
//! Falco alert and one HTTP POST per finding cost over the bus alone.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use axum::{Router, extract::State, http::StatusCode};
use futures::StreamExt;
use tokio::sync::mpsc;
use vigil_bench::{Report, quantile, results_path};
use vigil_bus::{
    BusConnection, Publisher, TraceContext, codec, publish::FALCO_JSON, subject, topology::FINDINGS,
};
use vigil_proto::v1::{Event, Finding, FindingSource, Priority};
use vigil_testkit::{NatsServer, in_process::bus};

const HEADER: &str = r#"{"time":"2026-01-01T00:00:00.000000000Z","rule":"Read of /etc/shadow","priority":"Warning","source":"syscall","hostname":"bench-node","output_fields":{"fd.name":"/etc/shadow","proc.pid":4242,"proc.name":"tail"}}"#;
const LATENCY_SAMPLES: usize = 300;

/// A webhook body and when it arrived.
type Arrival = (Instant, String);

#[tokio::main]
async fn main() -> Result<()> {
    let findings: usize = std::env::var("VIGIL_BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let server = NatsServer::start();
    let connection = bus(&server, "bench").await;
    vigil_bus::topology::ensure_stream(&connection.jetstream, &FINDINGS, 1).await?;
    let publisher = Publisher::new(connection.jetstream.clone());
    publish_all(&publisher, findings).await?;

    let raw = raw_consumer(&connection, "bench-raw", DeliverPolicy::All).await?;
    let raw_rate = raw_throughput(&raw, findings).await?;

    let (webhook, mut arrivals) = webhook().await?;
    let dir = tempfile::tempdir()?;
    let mut forwarder = spawn_forwarder(&dir, &server.url(), &webhook)?;
    let forwarded_rate = forwarded_throughput(&mut arrivals, findings, &mut forwarder).await?;

    // Its own connection, as the forwarder has: the publishes and their
    // acknowledgements do not share the consumer's.
    let hop_bus = bus(&server, "bench-hop").await;
    let hop = raw_consumer(&hop_bus, "bench-hop", DeliverPolicy::New).await?;
    let mut hop_ms = raw_latency(&publisher, &hop).await?;
    let mut forward_ms = forward_latency(&publisher, &mut arrivals).await?;
    forwarder.kill().ok();
    forwarder.wait().ok();

    let mut report = Report::default();
    report.add("forwarder_throughput.findings", findings as f64, "findings");
    report.add_with_baseline(
        "forwarder_throughput.findings_per_second",
        forwarded_rate,
        "findings/s",
        raw_rate,
    );
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        report.add_with_baseline(
            &format!("forwarder_throughput.delivery_latency_{label}"),
            quantile(&mut forward_ms, q),
            "ms",
            quantile(&mut hop_ms, q),
        );
    }
    report.write(&results_path())?;
    Ok(())
}

fn finding(id: &str) -> Finding {
    Finding {
        id: id.to_owned(),
        time_ns: 1_767_225_600_000_000_000,
        source: FindingSource::Rule as i32,
        name: "Read of /etc/shadow".into(),
        priority: Priority::Warning as i32,
        tags: vec!["T1003.008".into(), "filesystem".into()],
        output: format!("Sensitive file opened for reading ({id} file=/etc/shadow)"),
        output_fields: [("fd.name".to_owned(), "/etc/shadow".to_owned())].into(),
        container_id: "3f4a1c2b9d8e".into(),
        pod: "web-1".into(),
        namespace: "shop".into(),
        node: "bench-node".into(),
        events: vec![Event {
            wall_time_ns: 1_767_225_600_000_000_000,
            comm: "tail".into(),
            pid: 4242,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn send(
    publisher: &Publisher,
    id: &str,
) -> Result<async_nats::jetstream::context::PublishAckFuture> {
    let finding = finding(id);
    Ok(publisher
        .send_with_headers(
            subject::findings(Priority::Warning, "shop"),
            id,
            &TraceContext::new_root(),
            codec::encode(&finding),
            &[(FALCO_JSON, HEADER)],
        )
        .await?)
}

async fn publish_all(publisher: &Publisher, findings: usize) -> Result<()> {
    let mut pending = Vec::new();
    for n in 0..findings {
        pending.push(send(publisher, &format!("bench-{n}")).await?);
        if pending.len() >= 500 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    Ok(())
}

async fn raw_consumer(
    bus: &BusConnection,
    name: &str,
    deliver: DeliverPolicy,
) -> Result<PullConsumer> {
    let stream = bus.jetstream.get_stream(FINDINGS.name).await?;
    Ok(stream
        .create_consumer(pull::Config {
            durable_name: Some(name.into()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: deliver,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?)
}

/// Findings/s of a consumer that only acknowledges, first to last message.
async fn raw_throughput(consumer: &PullConsumer, findings: usize) -> Result<f64> {
    let mut messages = consumer.messages().await?;
    let (mut first, mut seen) = (None, 0);
    while seen < findings {
        match tokio::time::timeout(Duration::from_secs(30), messages.next()).await {
            Ok(Some(Ok(message))) => {
                message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
                first.get_or_insert_with(Instant::now);
                seen += 1;
            }
            _ => bail!("raw consumer stalled after {seen} findings"),
        }
    }
    rate(first, findings)
}

fn rate(first: Option<Instant>, count: usize) -> Result<f64> {
    let first = first.context("nothing arrived")?;
    // From the first arrival to the last: count - 1 intervals.
    Ok((count.saturating_sub(1)) as f64 / first.elapsed().as_secs_f64())
}

/// A webhook on a free loopback port that answers 200 and passes on every body.
async fn webhook() -> Result<(String, mpsc::UnboundedReceiver<Arrival>)> {
    let (sender, arrivals) = mpsc::unbounded_channel();
    let app = Router::new()
        .fallback(
            |State(sender): State<mpsc::UnboundedSender<Arrival>>, body: String| async move {
                sender.send((Instant::now(), body)).ok();
                StatusCode::OK
            },
        )
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

fn spawn_forwarder(dir: &tempfile::TempDir, nats: &str, webhook: &str) -> Result<Child> {
    let config = dir.path().join("forwarder.toml");
    std::fs::write(
        &config,
        format!(
            "node_name = \"bench-node\"\n[nats]\nurl = \"{nats}\"\n[log]\nfilter = \"warn\"\n\
             [[outputs]]\nname = \"bench\"\nkind = \"webhook\"\nurl = \"{webhook}\"\nmax_in_flight = 64\n"
        ),
    )?;
    let binary = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .join("vigil-forwarder");
    Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))
}

async fn forwarded_throughput(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    findings: usize,
    forwarder: &mut Child,
) -> Result<f64> {
    let (mut first, mut seen) = (None, 0);
    while seen < findings {
        match tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await {
            Ok(Some((at, _))) => {
                first.get_or_insert(at);
                seen += 1;
            }
            _ => {
                let exited = forwarder.try_wait()?;
                bail!("the forwarder delivered only {seen} findings (exited: {exited:?})");
            }
        }
    }
    rate(first, findings)
}

/// Publish → the webhook has it, one finding at a time, in ms.
async fn forward_latency(
    publisher: &Publisher,
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
) -> Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for n in 0..LATENCY_SAMPLES {
        let id = format!("latency-{n}");
        let started = Instant::now();
        send(publisher, &id).await?.await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), arrivals.recv()).await {
                Ok(Some((at, body))) if body.contains(&format!("({id} ")) => {
                    samples.push(at.duration_since(started).as_secs_f64() * 1e3);
                    break;
                }
                Ok(Some(_)) => continue,
                _ => bail!("finding {id} never reached the webhook"),
            }
        }
    }
    Ok(samples)
}

/// Publish → a bare pull consumer has it, one finding at a time, in ms:
/// the arrival is timed where it happens, as the webhook times its own,
/// even when it comes before JetStream's publish acknowledgement.
async fn raw_latency(publisher: &Publisher, consumer: &PullConsumer) -> Result<Vec<f64>> {
    let mut messages = consumer.messages().await?;
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for n in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        let (stored, arrived) = tokio::join!(
            async { anyhow::Ok(send(publisher, &format!("hop-{n}")).await?.await?) },
            async {
                let next = tokio::time::timeout(Duration::from_secs(30), messages.next()).await;
                (Instant::now(), next)
            }
        );
        stored?;
        match arrived {
            (at, Ok(Some(Ok(message)))) => {
                samples.push(at.duration_since(started).as_secs_f64() * 1e3);
                message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
            }
            _ => bail!("the raw consumer never got hop-{n}"),
        }
    }
    Ok(samples)
}
