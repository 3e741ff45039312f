//! How many events per second the collector's user-space side sustains, and
//! what it costs.
//!
//! The collector binary runs as its own process with the synthetic source
//! (the realistic mix of `source::synthetic`: 20 containers with pods,
//! execs, opens, connects, clones, exits) at doubling rates. At each rate,
//! after a warm-up second, a window of a few seconds is measured from the
//! collector's own `/metrics` (events stored by JetStream, events dropped)
//! and `/proc/<pid>/stat` (user + system CPU). A rate is sustained when the
//! window has no drops and at least 97% of the offered events were stored.
//!
//! Figures: the highest sustained rate (events/s); CPU seconds per million
//! events at that rate, of the pipeline alone (the process minus the
//! `vigil-synthetic` thread that makes the events) and of the whole process; resident memory (VmRSS) idle (1 event/s) and at
//! capacity. Baseline, in the same run: the same events, batched the same
//! way and encoded beforehand, published to the same nats-server as fast as
//! JetStream acknowledges them with the collector's in-flight window — the
//! bus's own ceiling for these bytes. The ratio is capacity / baseline.
//!
//! `VIGIL_BENCH_WINDOW_SECS` (default 3) and `VIGIL_BENCH_MAX_RATE`
//! (default 3200000) adjust it.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{StreamExt, stream::FuturesUnordered};
use tokio_util::sync::CancellationToken;
use vigil_bench::{Report, results_path};
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, codec, connect::connect, subject, topology,
};
use vigil_collector::{
    publish::{Batcher, DropCounts},
    source::synthetic::{Generator, SyntheticConfig},
};
use vigil_testkit::{NatsServer, http_get};

const FIRST_RATE: u64 = 25_000;
const WARM_UP: Duration = Duration::from_secs(1);
const BATCH_EVENTS: usize = 256;
/// The collector's own window of unacknowledged batches.
const IN_FLIGHT: usize = 256;
const SUSTAINED_SHARE: f64 = 0.97;
/// Bisection steps between the last sustained and the first failed rate.
const REFINEMENTS: u32 = 2;

fn main() -> Result<()> {
    let window = Duration::from_secs(env_or("VIGIL_BENCH_WINDOW_SECS", 3));
    let max_rate = env_or("VIGIL_BENCH_MAX_RATE", 3_200_000);
    let binary = collector_binary()?;
    let nats = NatsServer::start();
    let mut report = Report::default();

    let idle = Collector::start(&binary, &nats, 1)?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = idle.rss_kib()?;
    drop(idle);

    // Doubling until a rate is not sustained, then halving the gap twice.
    let mut best: Option<Step> = None;
    let mut failed: Option<u64> = None;
    let mut rate = FIRST_RATE;
    let mut refinements = 0;
    while rate <= max_rate && refinements <= REFINEMENTS {
        let step = measure(&binary, &nats, rate, window)?;
        println!(
            "  rate {rate:>8}/s: stored {:>9.0}/s, dropped {}, cpu {:.3} s/M events ({:.3} with the source), rss {} KiB -> {}",
            step.stored_per_sec,
            step.dropped,
            step.cpu_per_million(),
            step.total_cpu_per_million(),
            step.rss_kib,
            if step.sustained() {
                "sustained"
            } else {
                "not sustained"
            }
        );
        if step.sustained() {
            best = Some(step);
        } else {
            failed = Some(rate);
        }
        let ok = best.as_ref().map_or(0, |b| b.rate);
        rate = match failed {
            None => rate * 2,
            Some(failed) => {
                refinements += 1;
                (ok + failed) / 2
            }
        };
    }
    let Some(best) = best else {
        bail!("the collector did not sustain even {FIRST_RATE} events/s without drops");
    };

    let batches = encoded_batches(800 * BATCH_EVENTS);
    let bytes: usize = batches.iter().map(|(_, payload, _)| payload.len()).sum();
    let events: usize = batches.iter().map(|(_, _, events)| events).sum();
    let baseline =
        tokio::runtime::Runtime::new()?.block_on(raw_publish(&nats, &batches, window))?;
    report.add_with_baseline(
        "collector_capacity_events_per_sec",
        best.stored_per_sec,
        "events/s",
        baseline,
    );
    report.add(
        "collector_capacity_offered_rate",
        best.rate as f64,
        "events/s",
    );
    report.add(
        "collector_cpu_per_million_events",
        best.cpu_per_million(),
        "cpu-s",
    );
    report.add(
        "collector_cpu_per_million_events_with_source",
        best.total_cpu_per_million(),
        "cpu-s",
    );
    report.add(
        "collector_batch_bytes_per_event",
        bytes as f64 / events as f64,
        "bytes",
    );
    report.add("collector_rss_idle", idle_rss as f64 / 1024.0, "MiB");
    report.add(
        "collector_rss_at_capacity",
        best.rss_kib as f64 / 1024.0,
        "MiB",
    );
    report.write(&results_path())?;
    Ok(())
}

/// One measured rate.
struct Step {
    rate: u64,
    offered: f64,
    stored: f64,
    stored_per_sec: f64,
    dropped: f64,
    /// The whole process: generating the events plus the pipeline.
    cpu_secs: f64,
    /// The synthetic source's thread alone (generating the events).
    source_cpu_secs: f64,
    rss_kib: u64,
}

impl Step {
    fn sustained(&self) -> bool {
        self.dropped == 0.0 && self.stored >= SUSTAINED_SHARE * self.offered
    }

    /// CPU of the pipeline (channel, batching, encoding, publishing, acks)
    /// per million events: what the collector spends beyond making events.
    fn cpu_per_million(&self) -> f64 {
        self.per_million(self.cpu_secs - self.source_cpu_secs)
    }

    fn total_cpu_per_million(&self) -> f64 {
        self.per_million(self.cpu_secs)
    }

    fn per_million(&self, secs: f64) -> f64 {
        if self.stored == 0.0 {
            return f64::NAN;
        }
        secs / self.stored * 1e6
    }
}

fn measure(binary: &Path, nats: &NatsServer, rate: u64, window: Duration) -> Result<Step> {
    let collector = Collector::start(binary, nats, rate)?;
    std::thread::sleep(WARM_UP);
    let (stored_0, dropped_0, cpu_0) = collector.sample()?;
    let started = Instant::now();
    std::thread::sleep(window);
    let (stored_1, dropped_1, cpu_1) = collector.sample()?;
    let elapsed = started.elapsed().as_secs_f64();
    let rss_kib = collector.rss_kib()?;
    Ok(Step {
        rate,
        offered: rate as f64 * elapsed,
        stored: stored_1 - stored_0,
        stored_per_sec: (stored_1 - stored_0) / elapsed,
        dropped: dropped_1 - dropped_0,
        cpu_secs: cpu_1.0 - cpu_0.0,
        source_cpu_secs: cpu_1.1 - cpu_0.1,
        rss_kib,
    })
}

/// The collector process, stopped on drop.
struct Collector {
    child: Child,
    admin: std::net::SocketAddr,
}

impl Collector {
    fn start(binary: &Path, nats: &NatsServer, rate: u64) -> Result<Self> {
        let admin = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(binary)
            .env("VIGIL_COLLECTOR__NODE_NAME", "capacity-bench")
            .env("VIGIL_COLLECTOR__SOURCE", "synthetic")
            .env("VIGIL_COLLECTOR__SYNTHETIC__RATE", rate.to_string())
            .env("VIGIL_COLLECTOR__NATS__URL", nats.url())
            .env("VIGIL_COLLECTOR__ADMIN__LISTEN", admin.to_string())
            .env("VIGIL_COLLECTOR__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let collector = Self { child, admin };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(collector.admin, "/healthz").is_none_or(|(status, _)| status != 200) {
            if Instant::now() > deadline {
                bail!("the collector did not become healthy");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(collector)
    }

    /// (events stored, events dropped, (CPU seconds, of which the source's)) so far.
    fn sample(&self) -> Result<(f64, f64, (f64, f64))> {
        let (_, metrics) = http_get(self.admin, "/metrics").context("read /metrics")?;
        let stored = metric(&metrics, "vigil_collector_events_published_total");
        let dropped = metric(&metrics, "vigil_collector_userspace_drops_total");
        Ok((stored, dropped, self.cpu_secs()?))
    }

    /// CPU seconds of the whole process and of its synthetic-source thread.
    fn cpu_secs(&self) -> Result<(f64, f64)> {
        let pid = self.child.id();
        let total = stat_cpu_secs(&format!("/proc/{pid}/stat"))?;
        let mut source = 0.0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == "vigil-synthetic" {
                source += stat_cpu_secs(&task.path().join("stat").to_string_lossy())?;
            }
        }
        Ok((total, source))
    }

    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS in /proc/<pid>/status")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// utime + stime of a /proc stat file, in seconds.
fn stat_cpu_secs(path: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    let after = stat.rsplit_once(')').context("stat has a comm")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    let ticks: f64 = fields
        .get(11..13)
        .context("stat has utime and stime")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    Ok(ticks / clock_ticks())
}

/// The sum of every series of `name` in Prometheus text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Events per second JetStream stores when the same batches, encoded in
/// advance, are published with the collector's in-flight window.
async fn raw_publish(
    nats: &NatsServer,
    batches: &[(String, Bytes, usize)],
    window: Duration,
) -> Result<f64> {
    let options = ConnectOptions {
        url: nats.url(),
        client_name: "capacity-baseline".into(),
    };
    let bus = connect(&options, &CancellationToken::new()).await?;
    topology::ensure_stream(&bus.jetstream, &topology::EVENTS, 1).await?;
    let publisher = Publisher::new(bus.jetstream.clone());
    // Batches for a whole window at the bus's rate would not fit in memory:
    // a fixed set (about 200 000 events) is cycled, with fresh message ids.
    if batches.is_empty() {
        bail!("no batches to publish");
    }
    let trace = TraceContext::new_root();
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let (mut stored, mut next) = (0usize, 0usize);
    while started.elapsed() < window {
        while in_flight.len() < IN_FLIGHT {
            let (subject, payload, events) = &batches[next % batches.len()];
            let ack = publisher
                .send(
                    subject.clone(),
                    &format!("baseline:{next}"),
                    &trace,
                    payload.clone(),
                )
                .await?;
            let events = *events;
            in_flight.push(async move { ack.await.map(|_| events) });
            next += 1;
        }
        if let Some(result) = in_flight.next().await {
            stored += result?;
        }
    }
    while let Some(result) = in_flight.next().await {
        stored += result?;
    }
    Ok(stored as f64 / started.elapsed().as_secs_f64())
}

/// The synthetic mix, batched by partition as the collector does, encoded.
fn encoded_batches(events: usize) -> Vec<(String, Bytes, usize)> {
    let mut generator = Generator::new("capacity-baseline", &SyntheticConfig::default());
    let mut batcher = Batcher::new("capacity-baseline", BATCH_EVENTS, DropCounts::default());
    let mut sealed = Vec::new();
    for _ in 0..events {
        sealed.extend(batcher.push(generator.next_event()));
    }
    sealed.extend(batcher.flush());
    sealed
        .into_iter()
        .map(|s| {
            let subject = subject::events(&s.batch.node, s.partition);
            (subject, codec::encode(&s.batch), s.batch.events.len())
        })
        .collect()
}

fn collector_binary() -> Result<PathBuf> {
    let here = std::env::current_exe()?;
    let binary = here
        .parent()
        .context("the bench binary has a directory")?
        .join("vigil-collector");
    if !binary.is_file() {
        bail!("{} is not built (bench/run builds it)", binary.display());
    }
    Ok(binary)
}

fn clock_ticks() -> f64 {
    // Linux has reported 100 ticks per second to user space for decades
    // (USER_HZ); /proc/<pid>/stat is in those ticks.
    100.0
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
