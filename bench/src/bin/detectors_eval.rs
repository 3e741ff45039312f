//! detectors_eval: how fast the detectors evaluate the whole default rule
//! pack on a realistic event mix, on one core, against a baseline that only
//! decodes the same batches (compact, as the collector publishes them), in
//! the same run; plus the memory the
//! loaded rule set takes.
//!
//! The mix is the collector's synthetic workload (opens 57 %, connects
//! 20 %, execs 10 %, clones and exits; 90 % in containers with pod metadata;
//! a few sensitive files), seed 1, batches of 256 events as the collector
//! publishes them. Figures are the median of several passes.

use anyhow::Context;
use prost::Message;
use vigil_bench::{Report, results_path};
use vigil_collector::source::synthetic::{Generator, SyntheticConfig};
use vigil_detectors::{RulesConfig, engine, finding};
use vigil_proto::{batch, v1::EventBatch};

const EVENTS: usize = 262_144;
const BATCH: usize = 256;
const PASSES: usize = 7;
/// Rule sets held at once for the memory estimate.
const COPIES: usize = 20;

fn main() -> anyhow::Result<()> {
    let rules = engine::load(&RulesConfig::default()).context("load the default pack")?;
    let batches = encoded_batches();
    let events: Vec<_> = batches
        .iter()
        .map(|b| batch::decode(b).map(|d| d.batch))
        .collect::<Result<Vec<_>, _>>()?;

    let decode = median(|| {
        let mut n = 0;
        for bytes in &batches {
            n += batch::decode(bytes).map_or(0, |d| d.batch.events.len());
        }
        n
    });
    let mut matches = 0;
    let evaluate = median(|| {
        matches = 0;
        for batch in &events {
            for event in &batch.events {
                matches += rules.matching(event).count();
            }
        }
        EVENTS
    });
    let mut findings = 0;
    let pipeline = median(|| {
        findings = 0;
        for bytes in &batches {
            if let Ok(decoded) = batch::decode(bytes) {
                findings += finding::evaluate(&rules, &decoded.batch, 0).len();
            }
        }
        EVENTS
    });
    let candidates: usize = events
        .iter()
        .flat_map(|b| &b.events)
        .map(|e| rules.candidates(e).len())
        .sum();

    let rate = |seconds: f64| EVENTS as f64 / seconds;
    let mut report = Report::default();
    report.add("detectors_eval.rules", rules.rules().len() as f64, "rules");
    report.add("detectors_eval.events", EVENTS as f64, "events");
    report.add(
        "detectors_eval.match_rate",
        matches as f64 / EVENTS as f64,
        "matches/event",
    );
    report.add(
        "detectors_eval.rules_evaluated_per_event",
        candidates as f64 / EVENTS as f64,
        "rules/event",
    );
    report.add_with_baseline(
        "detectors_eval.evaluate_events_per_second_per_core",
        rate(evaluate),
        "events/s",
        rate(decode),
    );
    report.add_with_baseline(
        "detectors_eval.decode_evaluate_findings_events_per_second_per_core",
        rate(pipeline),
        "events/s",
        rate(decode),
    );
    report.add(
        "detectors_eval.findings_per_pass",
        findings as f64,
        "findings",
    );
    report.add(
        "detectors_eval.rule_set_memory",
        rule_set_memory()? as f64,
        "bytes",
    );
    report.write(&results_path())?;
    Ok(())
}

fn encoded_batches() -> Vec<Vec<u8>> {
    let config = SyntheticConfig {
        seed: 1,
        ..SyntheticConfig::default()
    };
    let mut generator = Generator::new("bench-node", &config);
    (0..EVENTS / BATCH)
        .map(|sequence| {
            let batch = EventBatch {
                node: "bench-node".into(),
                run_id: "bench".into(),
                sequence: sequence as u64,
                events: (0..BATCH).map(|_| generator.next_event()).collect(),
                ..Default::default()
            };
            // As the collector publishes it.
            batch::compact(batch).encode_to_vec()
        })
        .collect()
}

/// CPU seconds of this thread in the median pass; `pass` returns a count
/// so the work is used. CPU time, not wall time: "per core" is per
/// CPU-second, and the figure stays meaningful on a shared machine.
fn median(mut pass: impl FnMut() -> usize) -> f64 {
    let mut seconds = Vec::with_capacity(PASSES);
    let mut sink = 0;
    for _ in 0..PASSES {
        let started = thread_cpu_seconds();
        sink += pass();
        seconds.push(thread_cpu_seconds() - started);
    }
    assert!(sink > 0, "every pass did work");
    vigil_bench::quantile(&mut seconds, 0.5)
}

/// Resident-set growth per loaded rule set, from holding several copies.
fn rule_set_memory() -> anyhow::Result<usize> {
    let before = resident_bytes()?;
    let held: Vec<_> = (0..COPIES)
        .map(|_| engine::load(&RulesConfig::default()))
        .collect::<Result<_, _>>()?;
    let after = resident_bytes()?;
    let per_copy = after.saturating_sub(before) / COPIES;
    drop(held);
    Ok(per_copy)
}

fn thread_cpu_seconds() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(f64::NAN, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

fn resident_bytes() -> anyhow::Result<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .context("statm has a resident field")?
        .parse()?;
    Ok(pages * 4096)
}
