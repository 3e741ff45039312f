//! What the collector's kernel side costs the workloads it watches.
//!
//! Two syscall-heavy workloads run as child processes (this binary again):
//! an open/read/close loop on a small file and a fork/exec loop of
//! `/bin/true`. Each is timed without the BPF programs loaded (baseline),
//! with them loaded but only a syscall the workloads never make enabled
//! (the cost of the in-kernel filter alone), and with the default syscall
//! set, rotating the order over several rounds in the same run; the figure
//! is the median per condition and the ratio is loaded / baseline (target:
//! at most 1.03 for the default set).
//!
//! With the programs loaded, a ring-buffer thread in this process decodes
//! every record (the collector's first user-space step; enrichment and
//! publishing are not included). The CPU the kernel side spends comes from
//! the kernel's BPF statistics (`kernel.bpf_stats_enabled`, the run time
//! of this load's programs); the user side's from this process's threads
//! (`/proc/self/task/*/schedstat`). Both per million events, measured in
//! an untimed pass after the rounds: the statistics cost two clock reads
//! per program run, which would inflate the timed ratios.
//!
//! Needs root and a kernel with BTF. `VIGIL_BENCH_ROUNDS` (default 9),
//! `VIGIL_BENCH_OPENS` (50000), `VIGIL_BENCH_EXECS` (100) adjust it: many
//! short rounds, because a shared machine's load drifts.

use std::{
    collections::BTreeMap,
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
    kernel::{EnabledSet, KernelOptions, KernelSource, ProgramStats},
};

const RING_BUFFER_BYTES: u32 = 1 << 24;
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, count] = args.as_slice() {
        return workload(mode, count.parse().context("workload count")?);
    }
    let rounds = env_or("VIGIL_BENCH_ROUNDS", 9);
    let opens = env_or("VIGIL_BENCH_OPENS", 50_000);
    let execs = env_or("VIGIL_BENCH_EXECS", 100);
    if !nix_is_root() {
        bail!("collector_overhead loads BPF programs: run it as root");
    }
    let mut times: BTreeMap<Condition, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for round in 0..rounds {
        // Rotate which condition goes first, so drift hits all alike.
        let mut order = Condition::ALL;
        order.rotate_left(round as usize % Condition::ALL.len());
        for condition in order {
            let probe = condition.syscalls().map(Probe::start).transpose()?;
            let open = run_workload("open", opens)?;
            let exec = run_workload("exec", execs)?;
            drop(probe);
            let entry = times.entry(condition).or_default();
            entry.0.push(open / opens as f64);
            entry.1.push(exec / execs as f64 / 1e3);
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let cost = measure_cost(opens, execs)?;
    let mut report = Report::default();
    let baseline = times.get(&Condition::Baseline).cloned().unwrap_or_default();
    for condition in [Condition::NothingEnabled, Condition::Default] {
        let (open, exec) = times.get(&condition).cloned().unwrap_or_default();
        let name = condition.name();
        report.add_with_baseline(
            &format!("collector_overhead_open_read_close_{name}_ns"),
            median(&open),
            "ns/iteration",
            median(&baseline.0),
        );
        report.add_with_baseline(
            &format!("collector_overhead_fork_exec_{name}_us"),
            median(&exec),
            "us/iteration",
            median(&baseline.1),
        );
    }
    cost.report(&mut report);
    report.write(&results_path())?;
    Ok(())
}

/// What is loaded while a workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Condition {
    /// Nothing: the baseline.
    Baseline,
    /// The programs, with only a syscall the workloads never make enabled:
    /// the cost of the dispatch alone (one map lookup per syscall exit).
    NothingEnabled,
    /// The default syscall set, every record decoded.
    Default,
}

impl Condition {
    const ALL: [Condition; 3] = [
        Condition::Baseline,
        Condition::NothingEnabled,
        Condition::Default,
    ];

    fn syscalls(self) -> Option<EnabledSet> {
        match self {
            Condition::Baseline => None,
            Condition::NothingEnabled => EnabledSet::from_names(&["ptrace"]).ok(),
            Condition::Default => Some(EnabledSet::all()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Condition::Baseline => "baseline",
            Condition::NothingEnabled => "filtered_out",
            Condition::Default => "default_set",
        }
    }
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
    source: KernelSource,
    events: Arc<AtomicU64>,
    drops: Arc<vigil_collector::kernel::KernelDrops>,
}

impl Probe {
    fn start(syscalls: EnabledSet) -> Result<Self> {
        let events = Arc::new(AtomicU64::new(0));
        let counted = events.clone();
        let options = KernelOptions::for_this_process(RING_BUFFER_BYTES).with_syscalls(syscalls);
        let source = KernelSource::start(options, move |record| {
            if decode::decode(record).is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Ok(Self {
            drops: source.drops(),
            source,
            events,
        })
    }

    fn snapshot(&self) -> Snapshot {
        let programs = self.source.program_stats();
        Snapshot {
            events: self.events.load(Ordering::Relaxed),
            drops: self.drops.total(),
            user_ns: process_cpu_ns(),
            kernel_ns: (!programs.is_empty()).then(|| programs.iter().map(|p| p.run_time_ns).sum()),
            programs,
        }
    }
}

/// What the default set costs per event, in an untimed pass of its own:
/// the kernel's BPF statistics read the clock twice per program run, a
/// cost the timed rounds must not include.
fn measure_cost(opens: u64, execs: u64) -> Result<Cost> {
    let probe = Probe::start(EnabledSet::all())?;
    let _stats = BpfStats::enable();
    let started = probe.snapshot();
    run_workload("open", opens)?;
    run_workload("exec", execs)?;
    // Let the reader catch up before counting.
    std::thread::sleep(Duration::from_millis(200));
    let mut cost = Cost::default();
    cost.add(&probe.snapshot(), &started);
    Ok(cost)
}

/// `kernel.bpf_stats_enabled` while it lives.
struct BpfStats;

impl BpfStats {
    fn enable() -> Self {
        set_bpf_stats(true);
        Self
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        set_bpf_stats(false);
    }
}

#[derive(Clone, Debug, Default)]
struct Snapshot {
    events: u64,
    drops: u64,
    user_ns: u64,
    kernel_ns: Option<u64>,
    programs: Vec<ProgramStats>,
}

#[derive(Debug, Default)]
struct Cost {
    events: u64,
    drops: u64,
    user_ns: u64,
    kernel_ns: Option<u64>,
    /// Per program: (run time ns, runs).
    programs: BTreeMap<String, (u64, u64)>,
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
        for program in &end.programs {
            let before = start.programs.iter().find(|p| p.name == program.name);
            let (ns, runs) = self.programs.entry(program.name.clone()).or_default();
            *ns += program.run_time_ns - before.map_or(0, |p| p.run_time_ns);
            *runs += program.run_count - before.map_or(0, |p| p.run_count);
        }
    }

    fn report(&self, report: &mut Report) {
        let millions = self.events as f64 / 1e6;
        report.add("collector_overhead_events", self.events as f64, "events");
        report.add(
            "collector_overhead_kernel_drops",
            self.drops as f64,
            "events",
        );
        for (name, (ns, runs)) in &self.programs {
            if *runs > 0 {
                report.add(
                    &format!("collector_overhead_bpf_{name}_ns_per_run"),
                    *ns as f64 / *runs as f64,
                    "ns",
                );
            }
        }
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
                None => eprintln!("no BPF program statistics: BPF CPU time not measured"),
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
