//! Anomaly-scorer cost: windows scored per second on one core, and the
//! latency a window adds to the pipeline.
//!
//! Throughput: a synthetic web workload (accept, page reads, database and
//! cache connects, log writes, occasional failures) in 20 containers of 4
//! workloads; each workload learns 50 windows of 64 events (stride 32),
//! then 20,000 more windows are windowed, featurized and scored on one
//! thread, without NATS. Baseline, same run: decoding the same events from
//! their protobuf batches, so the ratio reads "scoring costs N decodes".
//!
//! Service throughput: the same workload through the service in-process
//! (its 16 partition lanes, on a two-worker runtime) against a private
//! nats-server: every batch is stored in the events stream first, then
//! the service starts and scores them all; windows per second of wall
//! time, and per CPU-second of this process (the scorer's work; the
//! nats-server is another process). Baseline, same run: the windows per
//! second of the one-core figure above.
//!
//! Latency: the service in-process against a private nats-server; after
//! learning, each run publishes the batch that closes a window and waits for
//! its score on `vigil.scores.>`. Baseline, same run: one JetStream hop
//! (publish to the events stream → core subscriber) on the same server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_anomaly_scorer::{
    Config, run_on,
    scorer::{Scorer, Settings},
    taint::RuleFindings,
    window::Windows,
};
use vigil_bench::{Report, quantile, results_path};
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, codec, connect::connect, subject, topology,
};
use vigil_proto::v1::{AddressFamily, Args, Event, EventBatch, EventType, PodMeta, SocketAddress};
use vigil_service::{Health, NatsConfig};
use vigil_testkit::NatsServer;

const WINDOW: u32 = 64;
const STRIDE: u32 = 32;
const LEARNING: u32 = 50;
const CONTAINERS: usize = 20;
const WORKLOADS: usize = 4;
const SCORED_WINDOWS: usize = 20_000;
const LATENCY_RUNS: usize = 200;
const NODE: &str = "bench-node";

fn main() -> Result<()> {
    let mut report = Report::default();
    let one_core = throughput(&mut report)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(service_throughput(&mut report, one_core))?;
    runtime.block_on(latency(&mut report))?;
    report.write(&results_path())?;
    Ok(())
}

// ------------------------------------------------------------ workload

struct Container {
    id: String,
    workload: usize,
    state: u64,
    /// Events generated past the last request, so the stream never skips
    /// the tail of a request (which would be new behaviour).
    pending: std::collections::VecDeque<Event>,
}

impl Container {
    fn new(i: usize) -> Self {
        Self {
            id: format!("{i:064x}"),
            workload: i % WORKLOADS,
            state: (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            pending: std::collections::VecDeque::new(),
        }
    }

    fn event(&self, syscall: &str, event_type: EventType, args: Args, ret: i64) -> Event {
        Event {
            node: NODE.into(),
            pid: 100,
            container_id: self.id.clone(),
            syscall: syscall.into(),
            r#type: event_type as i32,
            return_value: ret,
            args: Some(args),
            pod: Some(PodMeta {
                name: format!("web-{}", &self.id[60..]),
                namespace: "shop".into(),
                image: format!("shop/web{}:1", self.workload),
                owner_kind: "Deployment".into(),
                owner_name: format!("web{}", self.workload),
                ..PodMeta::default()
            }),
            ..Event::default()
        }
    }

    /// The next `count` events of a web server.
    fn next(&mut self, count: usize, wall_ns: &mut u64) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::with_capacity(count + 6);
        events.extend(self.pending.drain(..));
        while events.len() < count {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let pick = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 58;
            let peer = |ip: &str, port| Args {
                address: Some(SocketAddress {
                    family: AddressFamily::Inet as i32,
                    ip: ip.into(),
                    port,
                    ..SocketAddress::default()
                }),
                ..Args::default()
            };
            events.push(self.event("accept4", EventType::Accept, Args::default(), 7));
            events.push(self.event(
                "openat",
                EventType::Open,
                Args {
                    path: format!("/srv/page{}.html", pick % 8),
                    ..Args::default()
                },
                5,
            ));
            if pick.is_multiple_of(3) {
                events.push(self.event("connect", EventType::Connect, peer("10.0.0.5", 6379), 0));
            }
            events.push(self.event("connect", EventType::Connect, peer("10.0.0.7", 5432), 0));
            if pick.is_multiple_of(7) {
                events.push(self.event(
                    "openat",
                    EventType::Open,
                    Args {
                        path: "/srv/missing.html".into(),
                        ..Args::default()
                    },
                    -2,
                ));
            }
            events.push(self.event("write", EventType::Unspecified, Args::default(), 100));
        }
        self.pending.extend(events.drain(count..));
        for event in &mut events {
            *wall_ns += 1;
            event.wall_time_ns = *wall_ns;
        }
        events
    }
}

fn settings() -> Settings {
    Settings {
        learning_windows: LEARNING as usize,
        retrain_every: 50,
        finding_min_score: vigil_anomaly_scorer::scorer::DEFAULT_MIN_SCORE,
        explain_top: 5,
    }
}

// ---------------------------------------------------------- throughput

/// Returns the windows per second on one core.
fn throughput(report: &mut Report) -> Result<f64> {
    // One core: a current-thread runtime, and rayon (the model fit) on one thread.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    pool.install(|| runtime.block_on(throughput_on_one_core(report)))
}

async fn throughput_on_one_core(report: &mut Report) -> Result<f64> {
    let mut containers: Vec<Container> = (0..CONTAINERS).map(Container::new).collect();
    let mut windows = Windows::new(WINDOW, STRIDE);
    // No rule findings in this run: nothing is held out of learning.
    let no_findings = std::sync::Arc::new(RuleFindings::new(Duration::ZERO));
    let scorer = Scorer::new(settings(), None, no_findings);
    let mut wall_ns = 0;
    // Learning: every workload gets its windows (one container's worth each).
    let per_container = (LEARNING as usize * WORKLOADS).div_ceil(CONTAINERS) + 2;
    for container in &mut containers {
        let events = container.next(
            WINDOW as usize + STRIDE as usize * per_container,
            &mut wall_ns,
        );
        for (i, event) in events.iter().enumerate() {
            if let Some(window) = windows.push(i, event)? {
                scorer.process(window).await?;
            }
        }
    }
    let (workloads, learning) = scorer.workload_counts();
    anyhow::ensure!(
        workloads == WORKLOADS && learning == 0,
        "{learning} of {workloads} workloads still learning"
    );

    // The scored phase, as encoded batches (one per container stride).
    let mut batches = Vec::new();
    let mut planned = 0;
    while planned < SCORED_WINDOWS {
        for container in &mut containers {
            let batch = EventBatch {
                node: NODE.into(),
                events: container.next(STRIDE as usize, &mut wall_ns),
                ..EventBatch::default()
            };
            batches.push(codec::encode(&batch));
            planned += 1;
        }
    }
    let events: usize = batches.len() * STRIDE as usize;

    let started = Instant::now();
    let mut decoded = 0usize;
    for bytes in &batches {
        let batch = codec::decode::<EventBatch>(bytes, "bench", 0)?;
        decoded += std::hint::black_box(batch.events.len());
    }
    let decode_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (mut scored, mut findings) = (0usize, 0usize);
    for bytes in &batches {
        let batch = codec::decode::<EventBatch>(bytes, "bench", 0)?;
        for (i, event) in batch.events.iter().enumerate() {
            if let Some(window) = windows.push(i, event)? {
                let output = scorer.process(window).await?;
                anyhow::ensure!(!output.score.learning, "scored phase still learning");
                scored += 1;
                findings += usize::from(output.finding.is_some());
            }
        }
    }
    let score_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        decoded == events && scored == batches.len(),
        "every batch closes one window"
    );

    report.add_with_baseline(
        "scorer.windows_per_second_1core",
        scored as f64 / score_seconds,
        "windows/s",
        scored as f64 / decode_seconds,
    );
    report.add(
        "scorer.events_per_second_1core",
        events as f64 / score_seconds,
        "events/s",
    );
    report.add_with_baseline(
        "scorer.us_per_window_1core",
        score_seconds / scored as f64 * 1e6,
        "us",
        decode_seconds / scored as f64 * 1e6,
    );
    report.add(
        "scorer.synthetic_false_positive_share",
        findings as f64 / scored as f64,
        "share",
    );
    Ok(scored as f64 / score_seconds)
}

// -------------------------------------------------- service throughput

async fn service_throughput(report: &mut Report, one_core: f64) -> Result<()> {
    let server = NatsServer::start();
    let bus = connect(
        &ConnectOptions {
            url: server.url(),
            client_name: "bench".into(),
        },
        &CancellationToken::new(),
    )
    .await?;
    topology::ensure_stream(&bus.jetstream, &topology::EVENTS, 1).await?;
    let windows = fill_events(&Publisher::new(bus.jetstream.clone())).await?;
    let mut scores = bus.client.subscribe(subject::SCORES_ALL).await?;
    let config = Config {
        node_name: "bench".into(),
        window_events: WINDOW,
        window_stride: STRIDE,
        learning_windows: LEARNING,
        retrain_every: settings().retrain_every as u32,
        nats: NatsConfig {
            url: server.url(),
            ..NatsConfig::default()
        },
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let cpu_before = process_cpu_seconds()?;
    let started = Instant::now();
    let service = tokio::spawn(run_on(
        config,
        listener,
        Health::default(),
        shutdown.clone(),
    ));
    let mut received = 0;
    while received < windows {
        tokio::time::timeout(Duration::from_secs(60), scores.next())
            .await
            .with_context(|| format!("{received} of {windows} scores within 60 s"))?
            .context("score subscription closed")?;
        received += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds()? - cpu_before;
    shutdown.cancel();
    service.await??;
    report.add(
        "scorer.service_windows_per_second",
        windows as f64 / seconds,
        "windows/s",
    );
    report.add_with_baseline(
        "scorer.service_windows_per_cpu_second",
        windows as f64 / cpu,
        "windows/s",
        one_core,
    );
    report.add("scorer.service_cpu_cores_used", cpu / seconds, "cores");
    Ok(())
}

/// Stores the workload's batches on their containers' partitions (each
/// batch of a stride closes one window once a container's first window is
/// full); returns how many windows they close.
async fn fill_events(publisher: &Publisher) -> Result<usize> {
    let mut containers: Vec<Container> = (0..CONTAINERS).map(Container::new).collect();
    let mut wall_ns = 0;
    let mut pending = Vec::new();
    let mut sequence = 0u64;
    let mut windows = 0;
    let rounds = (SCORED_WINDOWS + LEARNING as usize * WORKLOADS).div_ceil(CONTAINERS);
    for round in 0..rounds {
        for container in &mut containers {
            let count = if round == 0 { WINDOW } else { STRIDE } as usize;
            sequence += 1;
            let batch = EventBatch {
                node: NODE.into(),
                sequence,
                events: container.next(count, &mut wall_ns),
                ..EventBatch::default()
            };
            let partition = subject::event_partition(&container.id);
            let id = format!("fill:{sequence}");
            let ack = publisher
                .send(
                    subject::events(NODE, partition),
                    &id,
                    &TraceContext::new_root(),
                    codec::encode(&batch),
                )
                .await?;
            pending.push((partition, id, ack));
            windows += 1;
        }
        // Acknowledged a round at a time, so the server's pending limit holds.
        for (partition, id, ack) in pending.drain(..) {
            Publisher::confirm(ack, subject::events(NODE, partition), &id).await?;
        }
    }
    Ok(windows)
}

/// CPU time of this process (every thread, those already gone included).
fn process_cpu_seconds() -> Result<f64> {
    let time = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)?;
    Ok(time.tv_sec() as f64 + time.tv_nsec() as f64 * 1e-9)
}

// -------------------------------------------------------------- latency

async fn latency(report: &mut Report) -> Result<()> {
    let server = NatsServer::start();
    let bus = connect(
        &ConnectOptions {
            url: server.url(),
            client_name: "bench".into(),
        },
        &CancellationToken::new(),
    )
    .await?;
    let mut container = Container::new(0);
    let partition = subject::event_partition(&container.id);
    let config = Config {
        node_name: "bench".into(),
        partitions: vec![partition],
        window_events: WINDOW,
        window_stride: STRIDE,
        learning_windows: LEARNING,
        nats: NatsConfig {
            url: server.url(),
            ..NatsConfig::default()
        },
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let health = Health::default();
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(run_on(config, listener, health.clone(), shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !health.is_ready() {
        anyhow::ensure!(Instant::now() < deadline, "scorer not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let publisher = Publisher::new(bus.jetstream.clone());
    let mut scores = bus.client.subscribe(subject::SCORES_ALL).await?;
    let mut wall_ns = 0;
    let mut sequence = 0u64;
    let mut send = |events: Vec<Event>| {
        sequence += 1;
        let batch = EventBatch {
            node: NODE.into(),
            sequence,
            events,
            ..EventBatch::default()
        };
        let publisher = publisher.clone();
        async move {
            publisher
                .publish(
                    subject::events(NODE, partition),
                    &format!("bench:{sequence}"),
                    &TraceContext::new_root(),
                    codec::encode(&batch),
                )
                .await
        }
    };

    // Learning, then the timed windows: each batch closes exactly one.
    send(container.next(WINDOW as usize - STRIDE as usize, &mut wall_ns)).await?;
    for _ in 0..LEARNING {
        send(container.next(STRIDE as usize, &mut wall_ns)).await?;
        next_score(&mut scores).await?;
    }
    let mut window_ms = Vec::with_capacity(LATENCY_RUNS);
    for _ in 0..LATENCY_RUNS {
        let events = container.next(STRIDE as usize, &mut wall_ns);
        let started = Instant::now();
        send(events).await?;
        let score = next_score(&mut scores).await?;
        window_ms.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(!score.learning, "timed window was a learning one");
    }

    // Baseline: one JetStream hop on a partition the scorer does not read.
    let other = (partition + 1) % subject::EVENT_PARTITIONS;
    let mut hops = bus
        .client
        .subscribe(subject::events("baseline", other))
        .await?;
    let mut hop_ms = Vec::with_capacity(LATENCY_RUNS);
    for run in 0..LATENCY_RUNS {
        let started = Instant::now();
        publisher
            .publish(
                subject::events("baseline", other),
                &format!("baseline:{run}"),
                &TraceContext::new_root(),
                bytes_of(run),
            )
            .await?;
        tokio::time::timeout(Duration::from_secs(10), hops.next())
            .await?
            .context("baseline subscription closed")?;
        hop_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    shutdown.cancel();
    service.await??;

    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        report.add_with_baseline(
            &format!("scorer.window_latency_ms_{label}"),
            quantile(&mut window_ms, q),
            "ms",
            quantile(&mut hop_ms, q),
        );
    }
    report.add(
        "scorer.window_added_latency_ms_p50",
        quantile(&mut window_ms, 0.5) - quantile(&mut hop_ms, 0.5),
        "ms",
    );
    Ok(())
}

fn bytes_of(run: usize) -> bytes::Bytes {
    bytes::Bytes::from(run.to_le_bytes().to_vec())
}

async fn next_score(
    scores: &mut vigil_bus::async_nats::Subscriber,
) -> Result<vigil_proto::v1::AnomalyScore> {
    let message = tokio::time::timeout(Duration::from_secs(10), scores.next())
        .await
        .context("no score within 10 s")?
        .context("score subscription closed")?;
    Ok(codec::decode(&message.payload, &message.subject, 0)?)
}
