//! The chaos suite at length: `VIGIL_BENCH_ROUNDS` rounds (default 3) of
//! every fault against the whole pipeline on a three-node NATS cluster
//! (`vigil_e2e::chaos`). Prints, per fault and in total: attacks injected,
//! attacks acted on, duplicate actions, losses counted by the services'
//! counters, and the recovery time (fault to the first action on an attack
//! started after it). The test `e2e/tests/chaos.rs` runs one round in CI.
//! The baseline of the recovery time is the first attack's, before any
//! fault, in the same run.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use vigil_bench::{Report, quantile, results_path};
use vigil_e2e::chaos::{self, ChaosConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let rounds: usize = std::env::var("VIGIL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let binaries = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_owned();
    let config = ChaosConfig {
        rounds,
        synthetic_rate: 2_000,
        flood_findings: 2_000,
        patience: Duration::from_secs(120),
        drain: Duration::from_secs(600),
    };
    let report = chaos::run(&binaries, &config)
        .await
        .map_err(anyhow::Error::msg)?;

    let mut out = Report::default();
    let names: Vec<String> = chaos::faults(0)
        .iter()
        .map(|f| kind(&f.to_string()))
        .collect();
    for name in &names {
        let of_kind: Vec<_> = report
            .faults
            .iter()
            .filter(|f| &kind(&f.fault.to_string()) == name)
            .collect();
        let sum = |value: fn(&chaos::FaultReport) -> usize| -> f64 {
            of_kind.iter().copied().map(value).sum::<usize>() as f64
        };
        out.add(
            &format!("chaos_{name}_attacks"),
            sum(|f| f.attacks),
            "attacks",
        );
        out.add(
            &format!("chaos_{name}_actions"),
            sum(|f| f.actions),
            "attacks",
        );
        out.add(
            &format!("chaos_{name}_duplicates"),
            sum(|f| f.duplicates),
            "actions",
        );
        out.add(
            &format!("chaos_{name}_losses_counted"),
            of_kind.iter().map(|f| f.losses_counted).sum::<u64>() as f64,
            "messages",
        );
        let mut recovery: Vec<f64> = of_kind
            .iter()
            .filter_map(|f| f.recovery)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        out.add_with_baseline(
            &format!("chaos_{name}_recovery_p50"),
            quantile(&mut recovery, 0.5),
            "ms",
            report.first_action.as_secs_f64() * 1e3,
        );
        out.add(
            &format!("chaos_{name}_recovery_max"),
            quantile(&mut recovery, 1.0),
            "ms",
        );
    }
    let unjudged: u64 = report.unjudged.values().sum();
    out.add("chaos_unjudged_messages", unjudged as f64, "messages");
    out.add(
        "chaos_loss_findings",
        report.loss_findings as f64,
        "findings",
    );
    out.write(&results_path())?;

    let missed: usize = report.faults.iter().map(|f| f.attacks - f.actions).sum();
    let duplicates: usize = report.faults.iter().map(|f| f.duplicates).sum();
    if missed > 0 || duplicates > 0 || unjudged > 0 {
        bail!(
            "chaos: {missed} attacks without an action, {duplicates} duplicate actions, \
             {unjudged} messages never judged"
        );
    }
    Ok(())
}

/// A fault's name without the NATS node's index, so rounds add up.
fn kind(name: &str) -> String {
    match name.strip_prefix("nats_node_") {
        Some(_) => "nats_node_killed".to_owned(),
        None => name.to_owned(),
    }
}
