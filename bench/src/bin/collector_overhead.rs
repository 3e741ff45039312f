//! What the collector's kernel side costs the workloads it watches.
//!
//! Two syscall-heavy workloads run as child processes (this binary again):
//! an open/read/close loop on a small file and a fork/exec loop of
//! `/bin/true`. Each is timed without the BPF programs loaded (baseline)
//! and with them loaded on the default syscall set, alternating over
//! several rounds in the same run; the figure is the median per condition
//! and the ratio is loaded / baseline (target: at most 1.03).
//!
//! With the programs loaded, a ring-buffer thread in this process decodes
//! every record (the collector's first user-space step; enrichment and
//! publishing are not included). The CPU the kernel side spends comes from
//! the kernel's BPF statistics (`kernel.bpf_stats_enabled`, read with
//! `bpftool prog show`); the user side's from this process's threads
//! (`/proc/self/task/*/schedstat`). Both per million events.
//!
//! Needs root and a kernel with BTF. `VIGIL_BENCH_ROUNDS` (default 5),
//! `VIGIL_BENCH_OPENS` (200000), `VIGIL_BENCH_EXECS` (300) adjust it.

use std::{
    io::Read as _,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use vigil_bench::{Report, results_path};
use vigil_collector::{
    decode,
    kernel::{KernelOptions, KernelSource},
};

const RING_BUFFER_BYTES: u32 = 1 << 24;
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, count] = args.as_slice() {
        return workload(mode, count.parse().context("workload count")?);
    }
    let rounds = env_or("VIGIL_BENCH_ROUNDS", 5);
    let opens = env_or("VIGIL_BENCH_OPENS", 200_000);
    let execs = env_or("VIGIL_BENCH_EXECS", 300);
    if !nix_is_root() {
        bail!("collector_overhead loads BPF programs: run it as root");
    }
    let mut open_times = (Vec::new(), Vec::new());
    let mut exec_times = (Vec::new(), Vec::new());
    let mut cost = Cost::default();
    for round in 0..rounds {
        // Alternate which condition goes first, so drift hits both alike.
        for loaded in if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            let probe = loaded.then(Probe::start).transpose()?;
            let started = probe.as_ref().map(Probe::snapshot);
            let open = run_workload("open", opens)?;
            let exec = run_workload("exec", execs)?;
            if let (Some(probe), Some(started)) = (probe, started) {
                std::thread::sleep(Duration::from_millis(200));
                cost.add(&probe.snapshot(), &started);
                open_times.1.push(open);
                exec_times.1.push(exec);
            } else {
                open_times.0.push(open);
                exec_times.0.push(exec);
            }
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let mut report = Report::default();
    let per_open = |times: &Vec<f64>| median(times) / opens as f64;
    let per_exec = |times: &Vec<f64>| median(times) / execs as f64;
    report.add_with_baseline(
        "collector_overhead_open_read_close_ns",
        per_open(&open_times.1),
        "ns/iteration",
        per_open(&open_times.0),
    );
    report.add_with_baseline(
        "collector_overhead_fork_exec_us",
        per_exec(&exec_times.1) / 1e3,
        "us/iteration",
        per_exec(&exec_times.0) / 1e3,
    );
    cost.report(&mut report);
    report.write(&results_path())?;
    Ok(())
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs this binary as `mode count` and returns the nanoseconds it reports.
fn run_workload(mode: &str, count: u64) -> Result<f64> {
    let output = Command::new(std::env::current_exe()?)
        .args([mode, &count.to_string()])
        .output()
        .context("run the workload")?;
    if !output.status.success() {
        bail!(
            "workload {mode} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("workload {mode} printed {text:?}"))
}

/// The child side: the loop itself, timed from inside, nanoseconds printed.
fn workload(mode: &str, count: u64) -> Result<()> {
    let started = Instant::now();
    match mode {
        "open" => {
            let mut buffer = [0u8; 256];
            for _ in 0..count {
                let mut file = std::fs::File::open("/etc/hostname")?;
                let _read = file.read(&mut buffer)?;
            }
        }
        "exec" => {
            for _ in 0..count {
                let status = Command::new("/bin/true").status()?;
                if !status.success() {
                    bail!("/bin/true failed: {status}");
                }
            }
        }
        other => bail!("unknown workload {other:?}"),
    }
    println!("{}", started.elapsed().as_nanos());
    Ok(())
}

/// The kernel side loaded with the default syscall set, its records decoded.
struct Probe {
    _source: KernelSource,
    events: Arc<AtomicU64>,
    drops: Arc<vigil_collector::kernel::KernelDrops>,
}

impl Probe {
    fn start() -> Result<Self> {
        let events = Arc::new(AtomicU64::new(0));
        let counted = events.clone();
        let options = KernelOptions::for_this_process(RING_BUFFER_BYTES);
        let source = KernelSource::start(options, move |record| {
            if decode::decode(record).is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        set_bpf_stats(true);
        Ok(Self {
            drops: source.drops(),
            _source: source,
            events,
        })
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            events: self.events.load(Ordering::Relaxed),
            drops: self.drops.total(),
            user_ns: process_cpu_ns(),
            kernel_ns: bpf_run_time_ns(),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        set_bpf_stats(false);
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Snapshot {
    events: u64,
    drops: u64,
    user_ns: u64,
    kernel_ns: Option<u64>,
}

#[derive(Debug, Default)]
struct Cost {
    events: u64,
    drops: u64,
    user_ns: u64,
    kernel_ns: Option<u64>,
}

impl Cost {
    fn add(&mut self, end: &Snapshot, start: &Snapshot) {
        self.events += end.events - start.events;
        self.drops += end.drops - start.drops;
        self.user_ns += end.user_ns.saturating_sub(start.user_ns);
        self.kernel_ns = match (end.kernel_ns, start.kernel_ns) {
            (Some(e), Some(s)) => Some(self.kernel_ns.unwrap_or(0) + e.saturating_sub(s)),
            _ => None,
        };
    }

    fn report(&self, report: &mut Report) {
        let millions = self.events as f64 / 1e6;
        report.add("collector_overhead_events", self.events as f64, "events");
        report.add(
            "collector_overhead_kernel_drops",
            self.drops as f64,
            "events",
        );
        if millions > 0.0 {
            report.add(
                "collector_overhead_user_cpu_per_million_events",
                self.user_ns as f64 / 1e9 / millions,
                "cpu-s",
            );
            match self.kernel_ns {
                Some(ns) => report.add(
                    "collector_overhead_bpf_cpu_per_million_events",
                    ns as f64 / 1e9 / millions,
                    "cpu-s",
                ),
                None => eprintln!("bpftool gave no run_time_ns: BPF CPU time not measured"),
            }
        }
    }
}

/// CPU time of every thread of this process (the ring-buffer thread's
/// decoding; the main thread only waits), in nanoseconds.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn set_bpf_stats(on: bool) {
    if let Err(error) = std::fs::write(BPF_STATS, if on { "1" } else { "0" }) {
        eprintln!("cannot write {BPF_STATS}: {error}");
    }
}

/// Total run_time_ns of the BPF programs this process loaded, from bpftool.
fn bpf_run_time_ns() -> Option<u64> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .ok()?;
    let programs: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let me = u64::from(std::process::id());
    let total = programs
        .as_array()?
        .iter()
        .filter(|p| {
            p["pids"]
                .as_array()
                .is_some_and(|pids| pids.iter().any(|o| o["pid"].as_u64() == Some(me)))
        })
        .filter_map(|p| p["run_time_ns"].as_u64())
        .sum();
    Some(total)
}
