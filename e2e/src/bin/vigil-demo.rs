//! `vigil-demo`: the whole pipeline on this host, then an attack in a real
//! container (podman with runc, in a kubepods cgroup parent as a kubelet
//! places it), its detection and its containment, printed as they happen,
//! with the syscall-to-freeze latency.
//!
//! Without podman (or its base image) the demo says what to install and
//! attacks a pod-like sandbox instead.
//!
//! Without root or BPF the collector cannot run; the demo says so and
//! replays a recorded batch of the same attack instead, with the responder
//! in dry-run (it cannot freeze cgroups either).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext, codec,
    connect::connect,
    subject,
    topology::{ACTIONS, EVENTS, FINDINGS},
};
use vigil_e2e::{Tail, scenario};
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, CompactBatch, EventBatch, Finding};
use vigil_testkit::{Container, Pipeline, PodSandbox, ServiceSpec};

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
    let live = args.replay.is_none() && can_run_live();
    let replay_file = args.replay.clone().unwrap_or_else(|| args.fallback.clone());
    let responder_grpc = free_loopback_address()?;
    let mut sandbox = None;
    let mut cluster = None;
    if live {
        let pod = Target::start()?;
        cluster = Some(DemoCluster::start(&pod, &args.node).await?);
        sandbox = Some(pod);
    }
    let mut pipeline = match start_pipeline(&binaries, &args.node, cluster.as_ref(), responder_grpc)
    {
        Ok(pipeline) => pipeline,
        Err(error) if live => {
            println!(
                "The live pipeline did not start: {error:#}\nFalling back to the recorded scenario."
            );
            (sandbox, cluster) = (None, None);
            start_pipeline(&binaries, &args.node, None, responder_grpc)?
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

    if let (Some(sandbox), Some(cluster)) = (&sandbox, &cluster) {
        println!(
            "\n== Attack: a process in pod {}/{} ({}) reads /etc/shadow",
            DemoCluster::NAMESPACE,
            DemoCluster::POD,
            sandbox.kind()
        );
        println!(
            "   pod uid   {}\n   container {}\n   cgroup    {}\n   Kubernetes API: a local fake at {} (no cluster on this host)",
            sandbox.pod_uid(),
            sandbox.container_id(),
            sandbox.cgroup_path(),
            cluster.fake.url()
        );
        sandbox.attack()?;
    } else {
        println!(
            "\n== Replaying the recorded attack from {}",
            replay_file.display()
        );
        replay(&bus, &args.node, &replay_file).await?;
    }
    if let (Some(path), Some(sandbox)) = (&args.record, &sandbox) {
        record(&bus, sandbox, path).await?;
    }

    let finding = findings
        .next_matching(Duration::from_secs(30), |f| {
            f.name.to_lowercase().contains(scenario::SHADOW_RULE_MARKER)
                && sandbox
                    .as_ref()
                    .is_none_or(|target| f.container_id == target.container_id())
        })
        .await
        .context("no finding within 30 s")?;
    println!(
        "\n== Detection ({})\n   rule     {}\n   output   {}",
        finding.priority().label(),
        finding.name,
        finding.output
    );
    // Node level first (freeze), then, where a cluster is reachable, the
    // pod's quarantine label with its deny-all NetworkPolicy and the
    // annotation: one record each.
    let wanted = if cluster.is_some() { 3 } else { 1 };
    println!("\n== Containment");
    let mut freeze_latency_ms = None;
    for _ in 0..wanted {
        let action = actions
            .next_matching(Duration::from_secs(30), |a| {
                // The same open may match several rules; the responder acts
                // on the first finding for the pod and refuses the rest
                // (rate limit), so follow the container, not one finding.
                a.container_id == finding.container_id && a.outcome() != ActionOutcome::Refused
            })
            .await;
        let Some(action) = action else {
            print_log_tail(&mut pipeline, "vigil-responder");
            anyhow::bail!("no action record within 30 s");
        };
        print_action(&action);
        if action.kind() == ActionKind::Freeze && action.outcome() == ActionOutcome::Succeeded {
            let t = action.timings.unwrap_or_default();
            freeze_latency_ms =
                Some(t.action_completed_ns.saturating_sub(t.event_kernel_time_ns) as f64 / 1e6);
        }
    }
    if let Some(sandbox) = &sandbox {
        println!("   cgroup frozen now: {}", sandbox.is_frozen());
        if let Target::Container(container) = sandbox {
            // The heartbeat of the container's shell stops when its
            // processes are really stopped, not only marked frozen.
            println!(
                "   container processes running: {}",
                container.runs(Duration::from_millis(500))
            );
        }
    }
    if let (Some(ms), Some(sandbox)) = (freeze_latency_ms, &sandbox) {
        println!(
            "   syscall-to-freeze latency: {ms:.1} ms ({})",
            sandbox.kind()
        );
    }
    if let Some(cluster) = &cluster {
        cluster.print_state();
    }

    println!("\n== Services");
    for service in &pipeline.services {
        println!(
            "   {:<20} http://{}/metrics  (log {})",
            service.name,
            service.admin,
            service.log.display()
        );
    }
    // scripts/up reads these two lines to point the console at the demo.
    println!("   Responder gRPC       http://{responder_grpc}");
    println!("   NATS                 {}", pipeline.nats.url());
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

fn start_pipeline(
    binaries: &std::path::Path,
    node: &str,
    cluster: Option<&DemoCluster>,
    responder_grpc: SocketAddr,
) -> Result<Pipeline> {
    let grpc = responder_grpc.to_string();
    let mut services = vec![
        ServiceSpec::new("vigil-detectors"),
        ServiceSpec::new("vigil-anomaly-scorer"),
    ];
    match cluster {
        Some(cluster) => {
            let api = cluster.fake.url();
            services.push(
                ServiceSpec::new("vigil-collector")
                    .with("KUBE__ENABLED", "true")
                    .with("KUBE__API_URL", &api),
            );
            // The shipped policy only records what it would do: the demo
            // turns enforcement on for its namespace.
            let policy = std::env::temp_dir().join("vigil-demo-policy.yaml");
            let enforce = format!("{{ namespaces: [{}] }}", DemoCluster::NAMESPACE);
            std::fs::write(
                &policy,
                vigil_responder::policy::default_policy_enforcing(&enforce),
            )
            .with_context(|| format!("write {}", policy.display()))?;
            services.push(
                ServiceSpec::new("vigil-responder")
                    .with("POLICY_FILE", &policy.display().to_string())
                    .with("MODE", "both")
                    .with("KUBE__ENABLED", "true")
                    .with("KUBE__API_URL", &api)
                    .with("GRPC__LISTEN", &grpc),
            );
        }
        // Nothing can be frozen without root: every action is a dry run.
        None => services.push(
            ServiceSpec::new("vigil-responder")
                .with("DRY_RUN", "true")
                .with("GRPC__LISTEN", &grpc),
        ),
    }
    println!(
        "== Starting NATS JetStream and {} services from {}",
        services.len(),
        binaries.display()
    );
    Pipeline::start(binaries, node, &services).map_err(|error| anyhow::anyhow!(error))
}

fn print_log_tail(pipeline: &mut Pipeline, binary: &str) {
    if let Some(service) = pipeline.service(binary) {
        let log = service.log_text();
        let lines: Vec<&str> = log.lines().collect();
        println!("   last lines of {binary}'s log:");
        for line in &lines[lines.len().saturating_sub(15)..] {
            println!("   | {line}");
        }
    }
}

fn free_loopback_address() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The Kubernetes side of the demo. No API server runs on this host, so the
/// pod lives in the fake API server our tests use; the collector watches it
/// for pod metadata and the responder quarantines the pod through it, over
/// real HTTP with the real client.
struct DemoCluster {
    fake: FakeKube,
}

impl DemoCluster {
    const NAMESPACE: &str = scenario::NAMESPACE;
    const POD: &str = "checkout-6f7c9d8b5-x2v4q";

    async fn start(sandbox: &Target, node: &str) -> Result<Self> {
        let fake = FakeKube::start(Rbac::allow_all()).await?;
        let pod: Pod = scenario::pod(Self::POD, sandbox.pod_uid(), sandbox.container_id(), node)?;
        fake.put_pod(&pod)?;
        Ok(DemoCluster { fake })
    }

    fn print_state(&self) {
        let labels = self
            .fake
            .pod(Self::NAMESPACE, Self::POD)
            .and_then(|pod| pod.metadata.labels)
            .unwrap_or_default();
        println!("   pod labels now:     {labels:?}");
        for policy in self.fake.network_policies(Self::NAMESPACE) {
            let spec = policy.spec.unwrap_or_default();
            println!(
                "   NetworkPolicy {:?}: selects {:?}, types {:?}, no allow rules",
                policy.metadata.name.unwrap_or_default(),
                spec.pod_selector
                    .and_then(|s| s.match_labels)
                    .unwrap_or_default(),
                spec.policy_types.unwrap_or_default(),
            );
        }
    }
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
    sandbox: &Target,
    path: &std::path::Path,
) -> Result<()> {
    // The collector publishes compact batches: the container id is among a
    // batch's strings when its events are in it.
    let mut events = Tail::<CompactBatch>::from_start(&bus.jetstream, &EVENTS).await?;
    let compact = events
        .next_matching(Duration::from_secs(20), |b| {
            b.strings.iter().any(|s| s == sandbox.container_id())
        })
        .await
        .context("no batch with the sandbox's events")?;
    let batch = vigil_proto::batch::expand(compact).batch;
    let events = batch
        .events
        .into_iter()
        .filter(|e| e.container_id == sandbox.container_id())
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

/// What the demo attacks: a real container where podman runs, else a
/// pod-like sandbox (same cgroup layout, no runtime).
enum Target {
    Container(Container),
    Sandbox(PodSandbox),
}

impl Target {
    /// A real container, started before the pipeline watches: runc's own
    /// set-up of a new container still raises findings (issue 13) that a
    /// policy acting on any finding would freeze it for; the attack starts
    /// later, when [`Target::attack`] says so.
    fn start() -> Result<Self> {
        match Container::start(&scenario::shadow_read_container()) {
            Ok(container) => Ok(Self::Container(container)),
            Err(error) => {
                let error = if error.kind() == std::io::ErrorKind::NotFound {
                    format!("podman is not installed ({error})")
                } else {
                    error.to_string()
                };
                println!(
                    "No real container: {error}\n\
                     Install podman and runc (scripts/install-deps installs both and configures runc;\n\
                     the base image comes from scripts/image-base, which needs debootstrap).\n\
                     Attacking a pod-like sandbox (kubepods cgroup, no container runtime) instead."
                );
                Ok(Self::Sandbox(
                    PodSandbox::create().context("create the pod-like sandbox")?,
                ))
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Container(_) => "a real container: podman with runc",
            Self::Sandbox(_) => "a pod-like sandbox",
        }
    }

    fn pod_uid(&self) -> &str {
        match self {
            Self::Container(c) => &c.pod_uid,
            Self::Sandbox(s) => &s.pod_uid,
        }
    }

    fn container_id(&self) -> &str {
        match self {
            Self::Container(c) => &c.id,
            Self::Sandbox(s) => &s.container_id,
        }
    }

    fn cgroup_path(&self) -> &str {
        match self {
            Self::Container(c) => &c.cgroup_path,
            Self::Sandbox(s) => &s.cgroup_path,
        }
    }

    fn is_frozen(&self) -> bool {
        match self {
            Self::Container(c) => c.is_frozen(),
            Self::Sandbox(s) => s.is_frozen(),
        }
    }

    fn attack(&self) -> Result<()> {
        match self {
            Self::Container(c) => scenario::start_attack(c).context("start the attack"),
            // The attacker is killed with the sandbox when the demo ends.
            Self::Sandbox(s) => scenario::start_shadow_read(s)
                .map(drop)
                .context("start the attack"),
        }
    }
}

fn print_action(action: &ActionRecord) {
    let timings = action.timings.unwrap_or_default();
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    println!(
        "   action   {:?} -> {}\n   reason   {}\n   syscall-to-finding {:.1} ms, syscall-to-action {:.1} ms",
        action.kind(),
        vigil_bus::subject::outcome_label(action.outcome()),
        action.reason,
        ms(timings.event_kernel_time_ns, timings.finding_received_ns),
        ms(timings.event_kernel_time_ns, timings.action_completed_ns),
    );
}
