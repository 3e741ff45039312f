//! `vigil-demo`: the whole pipeline on this host, then an attack in a pod-like
//! sandbox, its detection and its containment, printed as they happen.
//!
//! Without root or BPF the collector cannot run; the demo says so and
//! replays a recorded batch of the same attack instead, with the responder
//! in dry-run (it cannot freeze cgroups either).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, codec,
    connect::connect,
    subject,
    topology::{ACTIONS, EVENTS, FINDINGS},
};
use vigil_e2e::{Tail, scenario};
use vigil_proto::v1::{ActionRecord, EventBatch, Finding};
use vigil_testkit::{Pipeline, PodSandbox, ServiceSpec};

#[derive(Parser)]
#[command(about = "Run Vigil locally with a detection-and-containment demo")]
struct Args {
    /// Directory holding the service binaries (default: this binary's own).
    #[arg(long)]
    binaries: Option<PathBuf>,
    /// Exit after the demo instead of keeping the pipeline running.
    #[arg(long)]
    exit_after_demo: bool,
    /// Replay this recorded event batch instead of running the live attack.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Recorded batch used when the live collector cannot run.
    #[arg(long, default_value = "e2e/scenarios/shadow-read.batch")]
    fallback: PathBuf,
    /// Save the event batch that carried the attack here (to refresh the fallback).
    #[arg(long)]
    record: Option<PathBuf>,
    #[arg(long, default_value = "demo-node")]
    node: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let binaries = match &args.binaries {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .to_owned(),
    };
    let mut live = args.replay.is_none() && can_run_live();
    let replay_file = args.replay.clone().unwrap_or_else(|| args.fallback.clone());
    let pipeline = match start_pipeline(&binaries, &args.node, live) {
        Ok(pipeline) => pipeline,
        Err(error) if live => {
            println!(
                "The live pipeline did not start: {error:#}\nFalling back to the recorded scenario."
            );
            live = false;
            start_pipeline(&binaries, &args.node, false)?
        }
        Err(error) => return Err(error),
    };
    let bus = connect(
        &ConnectOptions {
            url: pipeline.nats.url(),
            client_name: "vigil-demo".into(),
        },
        &CancellationToken::new(),
    )
    .await?;
    let mut findings = Tail::<Finding>::from_now(&bus.jetstream, &FINDINGS).await?;
    let mut actions = Tail::<ActionRecord>::from_now(&bus.jetstream, &ACTIONS).await?;

    let sandbox = if live {
        let sandbox = PodSandbox::create().context("create the pod-like sandbox")?;
        println!(
            "\n== Attack: a process in pod {} reads /etc/shadow",
            sandbox.pod_uid
        );
        println!(
            "   container {}\n   cgroup    {}",
            sandbox.container_id, sandbox.cgroup_path
        );
        scenario::start_shadow_read(&sandbox)?;
        Some(sandbox)
    } else {
        println!(
            "\n== Replaying the recorded attack from {}",
            replay_file.display()
        );
        replay(&bus, &args.node, &replay_file).await?;
        None
    };
    if let (Some(path), Some(sandbox)) = (&args.record, &sandbox) {
        record(&bus, sandbox, path).await?;
    }

    let finding = findings
        .next_matching(Duration::from_secs(30), |f| {
            f.name.to_lowercase().contains(scenario::SHADOW_RULE_MARKER)
        })
        .await
        .context("no finding within 30 s")?;
    println!(
        "\n== Detection ({})\n   rule     {}\n   output   {}",
        finding.priority().label(),
        finding.name,
        finding.output
    );
    let action = actions
        .next_matching(Duration::from_secs(30), |a| a.finding_id == finding.id)
        .await
        .context("no action record within 30 s")?;
    print_action(&action);
    if let Some(sandbox) = &sandbox {
        println!("   cgroup frozen now: {}", sandbox.is_frozen());
    }

    println!("\n== Services");
    for service in &pipeline.services {
        println!(
            "   {:<16} http://{}/metrics  (log {})",
            service.name,
            service.admin,
            service.log.display()
        );
    }
    println!("   NATS             {}", pipeline.nats.url());
    if args.exit_after_demo {
        return Ok(());
    }
    println!("\nVigil is running. Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn can_run_live() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        println!(
            "Not running as root: the collector cannot load its eBPF programs and nothing can be frozen."
        );
        return false;
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        println!(
            "This kernel has no BTF (/sys/kernel/btf/vmlinux): the collector's CO-RE programs cannot load."
        );
        return false;
    }
    true
}

fn start_pipeline(binaries: &std::path::Path, node: &str, live: bool) -> Result<Pipeline> {
    let mut services = vec![ServiceSpec::new("vigil-detectors")];
    if live {
        services.push(ServiceSpec::new("vigil-collector"));
        services.push(ServiceSpec::new("vigil-responder"));
    } else {
        services.push(ServiceSpec::new("vigil-responder").with("DRY_RUN", "true"));
    }
    println!(
        "== Starting NATS JetStream and {} services from {}",
        services.len(),
        binaries.display()
    );
    Pipeline::start(binaries, node, &services).map_err(|error| anyhow::anyhow!(error))
}

async fn replay(bus: &vigil_bus::BusConnection, node: &str, file: &std::path::Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let mut batch: EventBatch = codec::decode(&bytes, &file.display().to_string(), 0)?;
    batch.node = node.to_owned();
    batch.run_id = format!("replay-{}", std::process::id());
    // Rebase the recorded kernel timestamps onto this host's clock, as if
    // the attack happened now, so latencies and finding ages make sense.
    let last = batch
        .events
        .iter()
        .map(|e| e.kernel_time_ns)
        .max()
        .unwrap_or(0);
    let now = vigil_service::clock::monotonic_ns();
    for event in &mut batch.events {
        event.node = node.to_owned();
        event.kernel_time_ns = now.saturating_sub(last - event.kernel_time_ns);
        event.wall_time_ns = vigil_service::clock::monotonic_to_wall_ns(event.kernel_time_ns);
    }
    let id = format!("{}:{}", batch.run_id, batch.sequence);
    Publisher::new(bus.jetstream.clone())
        .publish(
            subject::events(node, 0),
            &id,
            &TraceContext::new_root(),
            codec::encode(&batch),
        )
        .await?;
    Ok(())
}

async fn record(
    bus: &vigil_bus::BusConnection,
    sandbox: &PodSandbox,
    path: &std::path::Path,
) -> Result<()> {
    let mut events = Tail::<EventBatch>::from_start(&bus.jetstream, &EVENTS).await?;
    let batch = events
        .next_matching(Duration::from_secs(20), |b| {
            b.events
                .iter()
                .any(|e| e.container_id == sandbox.container_id)
        })
        .await
        .context("no batch with the sandbox's events")?;
    let events = batch
        .events
        .into_iter()
        .filter(|e| e.container_id == sandbox.container_id)
        .collect();
    let recorded = EventBatch { events, ..batch };
    std::fs::write(path, codec::encode(&recorded))?;
    println!(
        "   recorded {} events to {}",
        recorded.events.len(),
        path.display()
    );
    Ok(())
}

fn print_action(action: &ActionRecord) {
    let timings = action.timings.unwrap_or_default();
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    println!(
        "\n== Containment\n   action   {:?} -> {}\n   reason   {}\n   syscall-to-finding {:.1} ms, syscall-to-action {:.1} ms",
        action.kind(),
        vigil_bus::subject::outcome_label(action.outcome()),
        action.reason,
        ms(timings.event_kernel_time_ns, timings.finding_received_ns),
        ms(timings.event_kernel_time_ns, timings.action_completed_ns),
    );
}
