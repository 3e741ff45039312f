//! The anomaly scorer on our own data: the eBPF collector records a benign
//! workload in a pod-like sandbox, the scorer learns it, then scores more
//! benign windows against attack actions run in the same container.
//!
//! Benign: a shell loop that reads a file, lists a directory and writes a
//! counter (execs, library opens, clones, exits). Attack, five times,
//! between benign stretches: read /etc/shadow, `id`, `uname -a`, copy a
//! binary to /tmp and run it, and call out to 203.0.113.1:4444 with curl and
//! wget (the sandbox has no route, so the connects fail).
//!
//! Windows are labelled by time: positive when they end inside an attack
//! stretch, negative when they end inside a benign stretch at least
//! `SETTLE` after the previous attack (so no window holding attack events
//! counts as benign). Reported: ROC AUC of the forest score against STIDE
//! (the novelty) as the same-run baseline; detection and false-positive
//! rates of the service's own findings.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_anomaly_scorer::{Config, run_on};
use vigil_bench::{Report, results_path};
use vigil_bus::{ConnectOptions, codec, connect::connect, subject};
use vigil_proto::v1::{AnomalyScore, Finding};
use vigil_service::{Health, NatsConfig};
use vigil_testkit::{Pipeline, PodSandbox, ServiceSpec};

const NODE: &str = "bench-node";
const ROUNDS: usize = 5;
/// Benign loop iterations while learning, and per benign stretch after.
const LEARN_ITERATIONS: &str = "400";
const BENIGN_ITERATIONS: &str = "60";
/// Benign windows ending this soon after an attack may still hold attack events.
const SETTLE: Duration = Duration::from_millis(1500);

const BENIGN: &str = "i=0; while [ $i -lt $0 ]; do cat /etc/hostname >/dev/null; \
                      ls /usr >/dev/null; echo $i >/tmp/vigil-counter; i=$((i+1)); done";
const ATTACK: &str = "cat /etc/shadow >/dev/null; id >/dev/null; uname -a >/dev/null; \
                      cp /usr/bin/id /tmp/.vigil-x && /tmp/.vigil-x >/dev/null; \
                      curl -s -m 1 http://203.0.113.1:4444/ >/dev/null; \
                      wget -q -T 1 -O /dev/null http://203.0.113.1:4444/; rm -f /tmp/.vigil-x";

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn run_in(sandbox: &PodSandbox, script: &str, arg: &str) -> Result<()> {
    let status = sandbox
        .command("sh", &["-c", script, arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    // The attack's callouts fail by design; only a shell that cannot start is an error.
    ensure!(status.code().is_some(), "sandboxed shell killed: {status}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let binaries = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_owned();
    let pipeline = Pipeline::start(&binaries, NODE, &[ServiceSpec::new("vigil-collector")])
        .map_err(|e| anyhow::anyhow!(e))?;
    let bus = connect(
        &ConnectOptions {
            url: pipeline.nats.url(),
            client_name: "bench".into(),
        },
        &CancellationToken::new(),
    )
    .await?;
    let config = Config {
        node_name: "bench".into(),
        nats: NatsConfig {
            url: pipeline.nats.url(),
            ..NatsConfig::default()
        },
        ..Config::default()
    };
    let health = Health::default();
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let scorer = tokio::spawn(run_on(config, listener, health.clone(), shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health.is_ready() {
        ensure!(Instant::now() < deadline, "scorer not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut scores = bus.client.subscribe(subject::SCORES_ALL).await?;

    let sandbox = PodSandbox::create()?;
    let container = sandbox.container_id.clone();
    // Phases as (start, end, is_attack) in wall-clock ns.
    let mut phases = Vec::new();
    let learn = (sandbox, container.clone());
    let sandbox = tokio::task::spawn_blocking(move || -> Result<PodSandbox> {
        run_in(&learn.0, BENIGN, LEARN_ITERATIONS)?;
        Ok(learn.0)
    })
    .await??;
    let sandbox = std::sync::Arc::new(sandbox);
    for _ in 0..ROUNDS {
        for (script, arg, attack) in [(BENIGN, BENIGN_ITERATIONS, false), (ATTACK, "", true)] {
            let start = wall_ns();
            let sandbox = sandbox.clone();
            tokio::task::spawn_blocking(move || run_in(&sandbox, script, arg)).await??;
            phases.push((start, wall_ns(), attack));
        }
    }
    // The last attack's windows close with the benign stretch after it.
    let start = wall_ns();
    let tail_sandbox = sandbox.clone();
    tokio::task::spawn_blocking(move || run_in(&tail_sandbox, BENIGN, BENIGN_ITERATIONS)).await??;
    phases.push((start, wall_ns(), false));

    // Collect every score of the container until the stream goes quiet.
    let mut windows: Vec<AnomalyScore> = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(3), scores.next()).await
    {
        let score: AnomalyScore = codec::decode(&message.payload, &message.subject, 0)?;
        if score.container_id == container {
            windows.push(score);
        }
    }
    // The service's own decision: which windows raised a finding.
    let flagged = flagged_windows(&bus, &container).await?;
    shutdown.cancel();
    scorer.await??;
    drop(pipeline);

    let learning = windows.iter().filter(|s| s.learning).count();
    let scored: Vec<&AnomalyScore> = windows.iter().filter(|s| !s.learning).collect();
    let label = |s: &AnomalyScore| -> Option<bool> {
        let mut previous_attack_end = 0;
        for &(start, end, attack) in &phases {
            if (start..=end).contains(&s.window_end_ns) {
                if attack {
                    return Some(true);
                }
                let settled = s.window_end_ns
                    > previous_attack_end + u64::try_from(SETTLE.as_nanos()).unwrap_or(0);
                return settled.then_some(false);
            }
            if attack {
                previous_attack_end = end;
            }
        }
        None
    };
    let labelled: Vec<(&AnomalyScore, bool)> = scored
        .iter()
        .filter_map(|s| label(s).map(|l| (*s, l)))
        .collect();
    let positives = labelled.iter().filter(|(_, l)| *l).count();
    let negatives = labelled.len() - positives;
    ensure!(
        positives > 0 && negatives > 0,
        "{learning} learning windows, {} scored, {positives} attack and {negatives} benign labelled",
        scored.len()
    );
    let split = |pick: &dyn Fn(&AnomalyScore) -> f64| {
        let (mut normal, mut attack) = (Vec::new(), Vec::new());
        for (s, l) in &labelled {
            if *l {
                attack.push(pick(s));
            } else {
                normal.push(pick(s));
            }
        }
        (normal, attack)
    };
    let (n_score, a_score) = split(&|s| s.score);
    let (n_novelty, a_novelty) = split(&|s| s.novelty);
    let mut report = Report::default();
    report.add(
        "scorer_sandbox.learning_windows",
        learning as f64,
        "windows",
    );
    report.add("scorer_sandbox.benign_windows", negatives as f64, "windows");
    report.add("scorer_sandbox.attack_windows", positives as f64, "windows");
    report.add_with_baseline(
        "scorer_sandbox.if_score_auc",
        auc(&n_score, &a_score),
        "auc",
        auc(&n_novelty, &a_novelty),
    );
    let rate = |attack: bool| {
        let windows: Vec<&&AnomalyScore> = labelled
            .iter()
            .filter(|(_, l)| *l == attack)
            .map(|(s, _)| s)
            .collect();
        let hits = windows
            .iter()
            .filter(|s| flagged.contains(&s.window_end_ns))
            .count();
        hits as f64 / windows.len() as f64
    };
    report.add("scorer_sandbox.detection_rate", rate(true), "share");
    report.add("scorer_sandbox.false_positive_rate", rate(false), "share");
    eprintln!(
        "{learning} learning windows; {positives} attack and {negatives} benign windows scored; \
         AUC score {:.3}, novelty {:.3}; at the service's thresholds DR {:.3}, FPR {:.3}",
        auc(&n_score, &a_score),
        auc(&n_novelty, &a_novelty),
        rate(true),
        rate(false)
    );
    let spread = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        format!(
            "min {:.3} median {:.3} max {:.3}",
            at(0.0),
            at(0.5),
            at(1.0)
        )
    };
    eprintln!(
        "score benign {} / attack {}; novelty benign {} / attack {}; {} findings",
        spread(&n_score),
        spread(&a_score),
        spread(&n_novelty),
        spread(&a_novelty),
        flagged.len()
    );
    report.write(&results_path())?;
    Ok(())
}

/// Window ends of the container's anomaly findings.
async fn flagged_windows(
    bus: &vigil_bus::BusConnection,
    container: &str,
) -> Result<std::collections::HashSet<u64>> {
    let mut stream = bus
        .jetstream
        .get_stream(vigil_bus::topology::FINDINGS.name)
        .await?;
    let state = stream.info().await?.state.clone();
    let mut flagged = std::collections::HashSet::new();
    if state.messages == 0 {
        return Ok(flagged);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await?;
        let finding: Finding = codec::decode(&message.payload, "findings", sequence)?;
        if finding.container_id == container {
            let end = finding
                .output_fields
                .get("window_end_ns")
                .context("finding without window_end_ns")?;
            flagged.insert(end.parse()?);
        }
    }
    Ok(flagged)
}

/// ROC AUC (Mann–Whitney, ties counted half).
fn auc(normal: &[f64], attack: &[f64]) -> f64 {
    let mut wins = 0.0;
    for a in attack {
        for n in normal {
            wins += if a > n {
                1.0
            } else if a == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (attack.len() * normal.len()) as f64
}
