//! What the whole collector costs a real workload: redis-benchmark against a
//! redis-server of this run's own, with and without `vigil-collector` (its
//! eBPF programs, enrichment and publishing to a nats-server) running on the
//! same host, in alternating rounds whose order rotates, so a shared
//! machine's drift hits both alike. This is the shape of Falco's published
//! overhead test; redis mostly makes syscalls outside the default set, so the
//! figure is dominated by the in-kernel filter every syscall passes.
//!
//! Two figures per condition: requests/s per redis-benchmark test, and the
//! server's CPU time per request (all its threads' `schedstat`). The second
//! is the one to read on a virtual machine: the programs run in redis's own
//! syscalls and are charged to it, whereas requests/s also moves with how
//! fast an idle virtual CPU wakes up, which a running collector changes
//! (here redis served more requests/s with the collector than without).
//!
//! Then one untimed pass with `kernel.bpf_stats_enabled` gives the average
//! cost of one run of each of the collector's programs (the statistics
//! themselves add two clock reads per run, so they stay off while timing),
//! and says how the programs are attached.
//!
//! Needs root, redis-server and redis-benchmark (Debian's redis-tools).
//! `VIGIL_BENCH_ROUNDS` (default 6), `VIGIL_BENCH_REQUESTS` (200000 per
//! test and round).

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use vigil_bench::{Report, quantile, results_path};
use vigil_testkit::{Pipeline, ServiceSpec, wait_until};

const TESTS: &str = "set,get,incr,lpush,lpop";
/// The key of the server's CPU time per request among the results.
const SERVER_CPU: &str = "server_cpu_ns_per_request";
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn main() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("redis_overhead runs the collector's eBPF programs: run it as root");
    }
    let rounds = env_or("VIGIL_BENCH_ROUNDS", 6);
    let requests = env_or("VIGIL_BENCH_REQUESTS", 200_000);
    let binaries = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_owned();
    let redis = Redis::start()?;
    // requests/s per test, per condition, one sample per round.
    let mut without: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut with: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        let collector_first = round % 2 == 1;
        for collector_on in [collector_first, !collector_first] {
            let results = if collector_on {
                let collector = start_collector(&binaries)?;
                let results = redis.benchmark(requests)?;
                drop(collector);
                results
            } else {
                redis.benchmark(requests)?
            };
            let into = if collector_on {
                &mut with
            } else {
                &mut without
            };
            for (test, rps) in results {
                into.entry(test).or_default().push(rps);
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let mut report = Report::default();
    let mut slowdowns = Vec::new();
    for (test, samples) in &mut with {
        let Some(baseline) = without.get_mut(test) else {
            continue;
        };
        let loaded = quantile(samples, 0.5);
        let idle = quantile(baseline, 0.5);
        if test == SERVER_CPU {
            report.add_with_baseline(&format!("redis_overhead.{test}"), loaded, "ns", idle);
            continue;
        }
        report.add_with_baseline(
            &format!("redis_overhead.{test}_rps"),
            loaded,
            "requests/s",
            idle,
        );
        slowdowns.push(1.0 - loaded / idle);
    }
    let mean_slowdown = slowdowns.iter().sum::<f64>() / slowdowns.len().max(1) as f64;
    report.add("redis_overhead.mean_slowdown", mean_slowdown * 100.0, "%");
    program_costs(&binaries, &redis, &mut report)?;
    report.write(&results_path())?;
    Ok(())
}

/// The collector as it ships (default syscall set), publishing to its own
/// nats-server, ready when its `/healthz` says so.
fn start_collector(binaries: &Path) -> Result<Pipeline> {
    Pipeline::start(
        binaries,
        "bench-node",
        &[ServiceSpec::new("vigil-collector")],
    )
    .map_err(|e| anyhow::anyhow!("cannot start the collector: {e}"))
}

/// Average ns per run of each program the collector loaded, from the
/// kernel's own statistics during one more benchmark pass.
fn program_costs(binaries: &Path, redis: &Redis, report: &mut Report) -> Result<()> {
    // The collector's programs are the ones its start loads: bpftool does
    // not name the process holding a program on every build.
    let earlier: Vec<u64> = loaded_programs()?.iter().map(|p| p.id).collect();
    let _collector = start_collector(binaries)?;
    let collectors = |all: Vec<Program>| -> Vec<Program> {
        all.into_iter()
            .filter(|p| !earlier.contains(&p.id))
            .collect()
    };
    let before = collectors(loaded_programs()?);
    if before.is_empty() {
        bail!("starting the collector loaded no BPF program");
    }
    set_bpf_stats(true)?;
    let pass = redis.benchmark(env_or("VIGIL_BENCH_REQUESTS", 200_000));
    let after = loaded_programs();
    set_bpf_stats(false)?;
    pass?;
    let after = collectors(after?);
    let (mut runs, mut ns) = (0u64, 0u64);
    for program in &after {
        let start = before.iter().find(|p| p.id == program.id);
        let program_runs = program.run_cnt - start.map_or(0, |p| p.run_cnt);
        let program_ns = program.run_time_ns - start.map_or(0, |p| p.run_time_ns);
        if program_runs > 0 {
            println!(
                "program {} ({}): {program_runs} runs, {:.1} ns per run",
                program.name,
                program.kind,
                program_ns as f64 / program_runs as f64
            );
        }
        runs += program_runs;
        ns += program_ns;
    }
    let kinds: std::collections::BTreeSet<&str> = after.iter().map(|p| p.kind.as_str()).collect();
    println!(
        "attach: BPF program type {} (tp_btf raw tracepoints; this kernel refuses kprobes and fentry)",
        kinds.into_iter().collect::<Vec<_>>().join(", ")
    );
    if runs == 0 {
        bail!("the collector's programs did not run during the redis pass");
    }
    report.add(
        "redis_overhead.ns_per_program_run",
        ns as f64 / runs as f64,
        "ns",
    );
    Ok(())
}

/// One entry of `bpftool prog show --json`.
#[derive(Debug, Deserialize)]
struct Program {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    run_time_ns: u64,
    #[serde(default)]
    run_cnt: u64,
}

fn loaded_programs() -> Result<Vec<Program>> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool (Debian's bpftool package)")?;
    if !output.status.success() {
        bail!(
            "bpftool prog show failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing bpftool's JSON")
}

fn set_bpf_stats(on: bool) -> Result<()> {
    std::fs::write(BPF_STATS, if on { "1" } else { "0" })
        .with_context(|| format!("writing {BPF_STATS}"))
}

/// A redis-server of this run's own on a free loopback port, keeping
/// nothing on disk; killed on drop.
struct Redis {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let child = Command::new(program("redis-server")?)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let redis = Self {
            port,
            child,
            _dir: dir,
        };
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .context("redis-server did not listen within 10 s")?;
        Ok(redis)
    }

    /// requests/s per redis-benchmark test, and the server's CPU time per
    /// request over all tests under the key [`SERVER_CPU`] (ns). The CPU
    /// figure holds what the collector's programs add to each of redis's
    /// syscalls, and unlike requests/s it does not move with how busy the
    /// other core is or how fast an idle virtual CPU wakes up.
    fn benchmark(&self, requests: u64) -> Result<BTreeMap<String, f64>> {
        let cpu_before = self.cpu_ns()?;
        let output = Command::new(program("redis-benchmark")?)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-n",
                &requests.to_string(),
                "-c",
                "50",
                "-t",
                TESTS,
                "--csv",
            ])
            .output()
            .context("running redis-benchmark")?;
        if !output.status.success() {
            bail!(
                "redis-benchmark failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let cpu_ns = self.cpu_ns()? - cpu_before;
        let mut results = parse_csv(&String::from_utf8_lossy(&output.stdout))?;
        let total_requests = requests * results.len() as u64;
        results.insert(SERVER_CPU.into(), cpu_ns as f64 / total_requests as f64);
        Ok(results)
    }

    /// Time on CPU of all the server's threads (`schedstat`, ns).
    fn cpu_ns(&self) -> Result<u64> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut total = 0;
        for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
            let path = task?.path().join("schedstat");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-benchmark's `--csv`: a header line, then `"TEST","rps",…`.
fn parse_csv(text: &str) -> Result<BTreeMap<String, f64>> {
    let mut results = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with("\"test\"")) {
        let mut cells = line.split(',').map(|cell| cell.trim_matches('"'));
        let (Some(test), Some(rps)) = (cells.next(), cells.next()) else {
            continue;
        };
        let rps: f64 = rps
            .parse()
            .with_context(|| format!("redis-benchmark line {line:?}: requests/s"))?;
        results.insert(test.to_ascii_lowercase().replace(' ', "_"), rps);
    }
    if results.is_empty() {
        bail!("redis-benchmark printed no results: {text:?}");
    }
    Ok(results)
}

fn program(name: &str) -> Result<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!("{name} not found: install Debian's redis-server and redis-tools")
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
