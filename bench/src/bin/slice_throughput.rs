//! Throughput of the detection half of the slice: event batches already in
//! VIGIL_EVENTS, consumed, decoded, evaluated and acknowledged by the
//! detectors process, findings published.
//!
//! Baseline, same run and same messages: a bare JetStream pull consumer
//! that only acknowledges (no decoding, no rules). The ratio is the share
//! of raw bus throughput the detectors keep.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_bench::{Report, results_path};
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, codec, connect::connect, subject, topology::EVENTS,
};
use vigil_proto::v1::{Args, Event, EventBatch, EventType, SocketAddress};
use vigil_testkit::{Pipeline, ServiceSpec};

const NODE: &str = "bench-node";

#[tokio::main]
async fn main() -> Result<()> {
    let batches: u64 = std::env::var("VIGIL_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let batch_size: usize = 256;
    let binaries = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_owned();
    let mut pipeline = Pipeline::start(&binaries, NODE, &[]).map_err(|e| anyhow::anyhow!(e))?;
    let bus = connect(
        &ConnectOptions {
            url: pipeline.nats.url(),
            client_name: "bench".into(),
        },
        &CancellationToken::new(),
    )
    .await?;
    vigil_bus::topology::ensure_stream(&bus.jetstream, &EVENTS, 1).await?;

    publish_batches(&bus, batches, batch_size).await?;
    let events = batches as f64 * batch_size as f64;

    let raw = raw_consume(&bus, batches).await?;
    pipeline
        .spawn(&ServiceSpec::new("vigil-detectors"))
        .map_err(|e| anyhow::anyhow!(e))?;
    let started = Instant::now();
    pipeline
        .wait_healthy(Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!(e))?;
    wait_drained(&bus, "detectors", Duration::from_secs(600)).await?;
    let detectors = started.elapsed();

    let mut report = Report::default();
    report.add("slice_throughput.events", events, "events");
    report.add_with_baseline(
        "slice_throughput.detectors_events_per_second",
        events / detectors.as_secs_f64(),
        "events/s",
        events / raw.as_secs_f64(),
    );
    report.write(&results_path())?;
    Ok(())
}

/// A realistic mix: mostly file opens, some execs and connects, a quarter
/// in containers, and about one event in 500 that matches a rule.
fn batch(sequence: u64, size: usize) -> EventBatch {
    let container = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    let events = (0..size)
        .map(|i| {
            let n = sequence as usize * size + i;
            let in_container = n.is_multiple_of(4);
            let (kind, args) = match n % 1000 {
                0 | 500 => (
                    EventType::Exec,
                    Args {
                        path: "/bin/sh".into(),
                        argv: vec!["sh".into(), "-c".into(), "id".into()],
                        ..Default::default()
                    },
                ),
                1..=30 => (
                    EventType::Exec,
                    Args {
                        path: "/usr/bin/python3".into(),
                        argv: vec!["python3".into(), "app.py".into()],
                        ..Default::default()
                    },
                ),
                31..=80 => (
                    EventType::Connect,
                    Args {
                        address: Some(SocketAddress {
                            family: 1,
                            ip: "10.0.0.7".into(),
                            port: 443,
                            unix_path: String::new(),
                        }),
                        ..Default::default()
                    },
                ),
                81 | 581 => (
                    EventType::Open,
                    Args {
                        path: "/etc/shadow".into(),
                        ..Default::default()
                    },
                ),
                _ => (
                    EventType::Open,
                    Args {
                        path: format!("/var/lib/app/data-{}.db", n % 97),
                        flags: 0o2,
                        ..Default::default()
                    },
                ),
            };
            Event {
                kernel_time_ns: n as u64,
                node: NODE.into(),
                pid: 1000 + (n % 50) as u32,
                tid: 1000 + (n % 50) as u32,
                ppid: 1,
                comm: "app".into(),
                exe_path: "/usr/bin/python3".into(),
                r#type: kind as i32,
                args: Some(args),
                container_id: if in_container {
                    container.into()
                } else {
                    String::new()
                },
                cgroup_path: if in_container {
                    format!(
                        "kubepods/besteffort/pod0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f/{container}"
                    )
                } else {
                    String::new()
                },
                ..Default::default()
            }
        })
        .collect();
    EventBatch {
        node: NODE.into(),
        sequence,
        run_id: "bench".into(),
        events,
        ..Default::default()
    }
}

async fn publish_batches(bus: &vigil_bus::BusConnection, batches: u64, size: usize) -> Result<()> {
    let publisher = Publisher::new(bus.jetstream.clone());
    let trace = TraceContext::new_root();
    let mut pending = Vec::new();
    for sequence in 1..=batches {
        // In the collector's wire format (compact, format 2).
        let payload = codec::encode(&vigil_proto::batch::compact(batch(sequence, size)));
        pending.push(
            publisher
                .send(
                    subject::events(NODE, 0),
                    &format!("bench:{sequence}"),
                    &trace,
                    payload,
                )
                .await?,
        );
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

/// Pulls and acks every message with a bare consumer: the bus's own ceiling.
async fn raw_consume(bus: &vigil_bus::BusConnection, batches: u64) -> Result<Duration> {
    let stream = bus.jetstream.get_stream(EVENTS.name).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench-raw".into()),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut messages = consumer.messages().await?;
    let mut seen = 0;
    while seen < batches {
        match tokio::time::timeout(Duration::from_secs(30), messages.next()).await {
            Ok(Some(Ok(message))) => {
                message.ack().await.map_err(|e| anyhow::anyhow!(e))?;
                seen += 1;
            }
            _ => bail!("raw consumer stalled after {seen} messages"),
        }
    }
    Ok(started.elapsed())
}

async fn wait_drained(
    bus: &vigil_bus::BusConnection,
    consumer: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let stream = bus.jetstream.get_stream(EVENTS.name).await?;
    loop {
        if let Ok(mut c) = stream.get_consumer::<pull::Config>(consumer).await {
            let info = c.info().await?;
            if info.num_pending == 0
                && info.num_ack_pending == 0
                && info.delivered.stream_sequence > 0
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("consumer {consumer} not drained within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
