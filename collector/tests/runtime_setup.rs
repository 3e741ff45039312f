//! A container runtime's own work is not the container's: real containers
//! (podman with runc, in a kubepods cgroup parent as a kubelet places them)
//! watched by the real collector (eBPF) and detectors as processes.
//!
//! runc's stages (`runc:[0:PARENT]`, `runc:[1:CHILD]`, `runc:[2:INIT]`)
//! mount, pivot_root, write sysctls, use keyrings and join namespaces inside
//! the container's cgroup before the entrypoint runs; the collector marks
//! them by lineage (`Event.container_runtime_setup`), the default pack's
//! `in_container` leaves them out. The same actions by the container's own
//! processes, including ones that call themselves `runc`, still raise their
//! findings.
//!
//! Needs `cargo build --bins` first (the detectors' binary; scripts/test does).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test assertions")]

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use vigil_bus::{
    BusConnection,
    topology::{EVENTS, FINDINGS, detectors_consumer},
};
use vigil_proto::v1::{Finding, Priority};
use vigil_testkit::{
    Container, ContainerSpec, NatsServer, Pipeline, ServiceSpec, in_process, require_root,
    run_to_completion,
};

const NODE: &str = "runtime-setup-node";
const PATIENCE: Duration = Duration::from_secs(60);

fn binaries() -> PathBuf {
    vigil_testkit::binary("vigil-detectors")
        .parent()
        .expect("binary directory")
        .to_owned()
}

fn pipeline() -> Pipeline {
    Pipeline::start(
        &binaries(),
        NODE,
        &[
            // A record the kernel drops leaves a lineage unknown, judged not
            // runtime set-up on purpose; a larger ring than the default keeps
            // a busy shared test machine's bursts from dropping runc's.
            ServiceSpec::new("vigil-collector")
                .with("RING_BUFFER_BYTES", "67108864")
                .with("LOG__FILTER", "info,vigil_collector::enrich=debug"),
            ServiceSpec::new("vigil-detectors"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime")
}

async fn bus(nats: &NatsServer) -> BusConnection {
    in_process::bus(nats, "runtime-setup-test").await
}

/// Every finding stored so far.
async fn stored_findings(bus: &BusConnection) -> Vec<Finding> {
    let Ok(mut stream) = bus.jetstream.get_stream(FINDINGS.name).await else {
        return Vec::new();
    };
    let state = stream
        .info()
        .await
        .expect("findings stream info")
        .state
        .clone();
    let mut findings = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            let finding =
                vigil_bus::codec::decode::<Finding>(&message.payload, &message.subject, sequence)
                    .expect("a valid finding");
            findings.push(finding);
        }
    }
    findings
}

/// The findings once the detectors have evaluated every event the collector
/// published until now (the containers are gone by then; the collector
/// publishes a partly filled batch within milliseconds, given a second).
async fn findings_after_everything_evaluated(nats: &NatsServer) -> Vec<Finding> {
    let bus = bus(nats).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = bus
        .jetstream
        .get_stream(EVENTS.name)
        .await
        .expect("events stream")
        .info()
        .await
        .expect("events stream info")
        .state
        .last_sequence;
    assert!(last > 0, "the collector published nothing");
    let consumer = detectors_consumer().durable_name;
    in_process::poll(
        "the detectors to evaluate every event published",
        PATIENCE,
        || async {
            let stream = bus.jetstream.get_stream(EVENTS.name).await.ok()?;
            let info = stream.consumer_info(&consumer).await.ok()?;
            (info.ack_floor.stream_sequence >= last).then_some(())
        },
    )
    .await;
    stored_findings(&bus).await
}

/// `(priority, rule) → count`, for the report.
fn tally(findings: &[&Finding]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for finding in findings {
        let priority = finding.priority().as_str_name().to_owned();
        *counts.entry((priority, finding.name.clone())).or_insert(0) += 1;
    }
    counts
}

fn at_least_warning(finding: &Finding) -> bool {
    // Priorities are numbered from DEBUG up to EMERGENCY.
    finding.priority() as i32 >= Priority::Warning as i32
}

fn describe(finding: &Finding) -> String {
    let event = finding.events.first();
    format!(
        "{:?} {} (comm {:?}, runtime set-up {:?}): {}",
        finding.priority(),
        finding.name,
        event.map(|e| e.comm.as_str()).unwrap_or_default(),
        event.map(|e| e.container_runtime_setup),
        finding.output
    )
}

/// Rounds tried before the test gives up on a round without kernel drops.
const ROUNDS: usize = 3;

/// What one round of container starts raised.
struct Round {
    /// Findings at WARNING or above for the round's containers, described.
    serious: Vec<String>,
    /// Records the collector counted as dropped in the kernel.
    kernel_drops: u64,
    /// Whether the command run by `podman exec` was seen as the container's.
    exec_command_seen: bool,
    /// Every finding of the round's containers, described, for a failure.
    all: Vec<String>,
}

/// Ten container starts and one `podman exec`, watched by a new pipeline.
fn one_round(rt: &tokio::runtime::Runtime) -> Round {
    let pipeline = pipeline();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (id, output) = run_to_completion(&ContainerSpec::new(["sleep", "1"])).unwrap();
        assert!(
            output.status.success(),
            "podman run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        ids.push(id);
    }
    // `kubectl exec`'s path: runc exec's own set-up, then the command, which
    // is the container's (a mount utility: a NOTICE, proof that the
    // container's own processes are still seen).
    let container = Container::start(&ContainerSpec::script("")).unwrap();
    let output = container.exec(&["mount", "-l"]).unwrap();
    assert!(
        output.status.success(),
        "podman exec: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ids.push(container.id.clone());
    let exec_container = container.id.clone();
    container.remove().unwrap();

    let findings = rt.block_on(findings_after_everything_evaluated(&pipeline.nats));
    let ours: Vec<&Finding> = findings
        .iter()
        .filter(|f| ids.contains(&f.container_id))
        .collect();
    eprintln!(
        "findings for {} container starts and one exec: {} in all; by priority and rule: {:?}",
        ids.len(),
        ours.len(),
        tally(&ours)
    );
    let collector = pipeline
        .services
        .iter()
        .find(|s| s.name.contains("collector"))
        .expect("the collector runs");
    let kernel_drops: u64 = collector
        .metrics()
        .lines()
        .filter(|l| l.starts_with(vigil_collector::metrics::KERNEL_DROPS))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum();
    let serious: Vec<String> = ours
        .iter()
        .filter(|f| at_least_warning(f))
        .map(|f| describe(f))
        .collect();
    if !serious.is_empty() {
        let log = collector.log_text();
        let lineage: Vec<&str> = log.lines().filter(|l| l.contains("lineage")).collect();
        eprintln!(
            "kernel drops {kernel_drops}; the collector on lineage:\n{}",
            lineage.join("\n")
        );
    }
    Round {
        serious,
        kernel_drops,
        exec_command_seen: ours.iter().any(|f| {
            f.container_id == exec_container
                && f.name == "Mount utility run in container"
                && f.events.first().is_some_and(|e| !e.container_runtime_setup)
        }),
        all: ours.iter().map(|f| describe(f)).collect(),
    }
}

#[test]
fn container_starts_raise_no_findings_from_the_runtime() {
    if !require_root("real containers watched by the eBPF collector") {
        return;
    }
    let rt = runtime();
    let mut lossy_rounds = Vec::new();
    for _ in 0..ROUNDS {
        let round = one_round(&rt);
        // A record the kernel dropped (the ring full while the collector was
        // starved of CPU) leaves a lineage unknown, which is judged not
        // runtime set-up on purpose: findings then are the design failing
        // closed, not the runtime being seen. Such a round proves nothing
        // either way, so another is run; a round without drops must be clean.
        if round.kernel_drops > 0 && !round.serious.is_empty() {
            lossy_rounds.push(round.kernel_drops);
            continue;
        }
        assert!(
            round.serious.is_empty(),
            "the runtime's own work raised {} findings at WARNING or above:\n{}",
            round.serious.len(),
            round.serious.join("\n")
        );
        assert!(
            round.exec_command_seen,
            "the command run by podman exec is the container's own and still seen: {:#?}",
            round.all
        );
        return;
    }
    panic!(
        "every one of {ROUNDS} rounds lost records in the kernel (drops per round: {lossy_rounds:?}), \
         so none could show whether the runtime's work stays quiet"
    );
}

/// One attack step: the rule it must raise and how its event is told apart.
struct Expected {
    rule: &'static str,
    comm: &'static str,
    /// A word of the command line (which mount point), "" for any.
    cmdline: &'static str,
}

const fn expected(rule: &'static str, comm: &'static str, cmdline: &'static str) -> Expected {
    Expected {
        rule,
        comm,
        cmdline,
    }
}

#[test]
fn the_same_actions_by_the_container_s_own_processes_still_raise_findings() {
    if !require_root("real containers watched by the eBPF collector") {
        return;
    }
    let rt = runtime();
    let pipeline = pipeline();

    // A privileged container's entrypoint does what runc's stages do, by
    // hand and under runc's names: a binary named `runc` and one named
    // `runc:[2:INIT]` (the comm runc's init stage has), and a subshell that
    // renames itself `runc:[2:INIT]` through /proc/self/comm (prctl's
    // PR_SET_NAME) before writing a sysctl.
    let script = r#"
mkdir -p /m1 /m2 /m3 /m4 /m5
mount -t tmpfs none /m1
cp /usr/bin/mount /tmp/runc && /tmp/runc -t tmpfs none /m2
cp /usr/bin/mount '/tmp/runc:[2:INIT]' && '/tmp/runc:[2:INIT]' -t tmpfs none /m3
( printf 'runc:[2:INIT]' > /proc/self/comm; echo 1 > /proc/sys/net/ipv4/ip_forward )
unshare -U true
nsenter -t 1 -m true
chroot / true
unshare -m bash -c 'mount -t tmpfs none /m5 && mkdir /m5/old && cd /m5 && pivot_root . old'
echo done > /tmp/attacked
"#;
    let container = Container::start(
        &ContainerSpec::script(script)
            .run_arg("--privileged")
            .run_arg("--network=none"),
    )
    .unwrap();
    // The same through `kubectl exec`'s path.
    let output = container
        .exec(&["mount", "-t", "tmpfs", "none", "/m4"])
        .unwrap();
    assert!(
        output.status.success(),
        "podman exec mount: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        vigil_testkit::wait_until(Duration::from_secs(30), || container
            .path("/tmp/attacked")
            .exists()
            .then_some(()))
        .is_some(),
        "the entrypoint did not finish its steps; logs:\n{}",
        container.logs()
    );

    let wanted = [
        expected("Mount in container", "mount", "/m1"),
        expected("Mount in container", "runc", "/m2"),
        expected("Mount in container", "runc:[2:INIT]", "/m3"),
        expected("Mount in container", "mount", "/m4"),
        expected(
            "Kernel parameter changed from container",
            "runc:[2:INIT]",
            "",
        ),
        expected("User namespace created in container", "unshare", ""),
        expected("Namespace entered", "nsenter", ""),
        expected("Chroot in container", "chroot", ""),
        expected("Pivot root outside container runtime", "pivot_root", ""),
    ];
    let id = container.id.clone();
    let matches = |finding: &Finding, want: &Expected| {
        let Some(event) = finding.events.first() else {
            return false;
        };
        finding.container_id == id
            && finding.name == want.rule
            && event.comm == want.comm
            && (want.cmdline.is_empty() || event.cmdline.iter().any(|a| a == want.cmdline))
    };
    let findings = rt.block_on(async {
        let bus = bus(&pipeline.nats).await;
        let result = tokio::time::timeout(PATIENCE, async {
            loop {
                let findings = stored_findings(&bus).await;
                if wanted
                    .iter()
                    .all(|want| findings.iter().any(|f| matches(f, want)))
                {
                    return findings;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        match result {
            Ok(findings) => findings,
            Err(_) => stored_findings(&bus).await,
        }
    });
    container.remove().unwrap();

    let ours: Vec<&Finding> = findings.iter().filter(|f| f.container_id == id).collect();
    eprintln!("the attack container's findings: {:?}", tally(&ours));
    let missing: Vec<String> = wanted
        .iter()
        .filter(|want| !findings.iter().any(|f| matches(f, want)))
        .map(|want| format!("{} by {:?} {}", want.rule, want.comm, want.cmdline))
        .collect();
    assert!(
        missing.is_empty(),
        "attack steps that raised nothing: {missing:#?}\nthe container's findings:\n{}",
        ours.iter()
            .map(|f| describe(f))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        ours.iter()
            .all(|f| f.events.iter().all(|e| !e.container_runtime_setup)),
        "a finding on an event marked as runtime set-up"
    );
}
