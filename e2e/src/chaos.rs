//! The chaos suite's driver, shared by the bounded test (`e2e/tests/chaos.rs`)
//! and the long benchmark (`bench/src/bin/chaos.rs`).
//!
//! The whole pipeline runs as processes against a three-node NATS cluster
//! (streams at replication 3): the collector with its eBPF programs, a second
//! collector generating a steady synthetic load (its own node name, so its
//! findings never compete with the attacks for the responder), the detectors,
//! the anomaly scorer and the responder in dry run. Faults are injected one
//! after another; after each, a real attack (`tail -f /etc/shadow` in a new
//! pod-like sandbox) is started and the driver waits for its action record.
//! At the end it checks, from the audit stream and the services' metrics,
//! that each attack was acted on once, and that every message the streams
//! hold was judged by its consumers (nothing left behind uncounted).

use std::{
    collections::BTreeMap,
    path::Path,
    process::Child,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
};
use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    ConnectOptions, Publisher, TraceContext,
    connect::connect,
    subject,
    topology::{self, ACTIONS, EVENTS, FINDINGS},
};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, Finding, FindingSource, Priority};
use vigil_testkit::{ClusterPipeline, PodSandbox, ServiceSpec};

use crate::scenario;

/// The node the collector with eBPF and the responder run as.
pub const NODE: &str = "chaos-node";
/// The synthetic collector's node: its findings are not this responder's.
const SYNTHETIC_NODE: &str = "chaos-synthetic";
/// How long a killed service stays down before it is restarted.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// Counters whose increase is a loss the pipeline accounted for.
const LOSS_COUNTERS: &[&str] = &[
    vigil_bus::loss::LOST_MESSAGES,
    "vigil_collector_userspace_drops_total",
    "vigil_collector_kernel_drops_total",
    "vigil_collector_events_unconfirmed_total",
];

/// How long and how hard the suite runs.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// Times the whole sequence of faults is repeated.
    pub rounds: usize,
    /// Synthetic events per second, all the time.
    pub synthetic_rate: u64,
    /// Findings published at once by the flood fault.
    pub flood_findings: usize,
    /// How long an attack may wait for its action before it counts as missed.
    pub patience: Duration,
    /// How long the consumers may take, once the faults are over, to judge
    /// every message their streams held (the detectors replay the events
    /// stream after their consumer was deleted).
    pub drain: Duration,
}

/// One fault the driver injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A NATS node SIGKILLed, restarted after [`DOWN_FOR`].
    NatsNodeKilled(usize),
    /// A service (by binary; the synthetic collector is `synthetic`)
    /// SIGKILLed, restarted after [`DOWN_FOR`].
    ServiceKilled(&'static str),
    /// The detectors' and the responder's durable consumers deleted.
    ConsumersDeleted,
    /// `flood_findings` actionable findings for other pods of the node.
    FindingFlood,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NatsNodeKilled(index) => write!(f, "nats_node_{index}_killed"),
            Self::ServiceKilled(name) => {
                write!(f, "{}_killed", name.trim_start_matches("vigil-"))
            }
            Self::ConsumersDeleted => write!(f, "consumers_deleted"),
            Self::FindingFlood => write!(f, "finding_flood"),
        }
    }
}

/// What one fault did.
#[derive(Clone, Debug)]
pub struct FaultReport {
    pub fault: Fault,
    pub round: usize,
    pub attacks: usize,
    /// Attacks with at least one action taken (dry run or succeeded).
    pub actions: usize,
    /// Actions taken beyond the first, per attack.
    pub duplicates: usize,
    /// Increase of the loss counters over the fault (every service).
    pub losses_counted: u64,
    /// From the fault to the first action on the attack started after it.
    pub recovery: Option<Duration>,
}

/// Everything the suite observed.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    pub faults: Vec<FaultReport>,
    /// Messages a durable consumer never judged once the pipeline settled,
    /// by consumer: losses nothing counted.
    pub unjudged: BTreeMap<String, u64>,
    /// Loss findings on `VIGIL_FINDINGS` (JetStream data lost, collector drops).
    pub loss_findings: usize,
    /// From the first attack, before any fault, to its action: the
    /// baseline of the recovery times.
    pub first_action: Duration,
    /// The services' logs, for a failure message.
    pub logs: String,
}

/// The faults of one round, in order.
pub fn faults(round: usize) -> Vec<Fault> {
    vec![
        Fault::NatsNodeKilled(round % 3),
        Fault::ServiceKilled("vigil-collector"),
        Fault::ServiceKilled("synthetic"),
        Fault::ServiceKilled("vigil-detectors"),
        Fault::ServiceKilled("vigil-anomaly-scorer"),
        Fault::ServiceKilled("vigil-responder"),
        Fault::FindingFlood,
        // Last: a recreated consumer starts from the stream's first message,
        // so the detectors replay the whole events stream, which delays
        // whatever comes after it by as long.
        Fault::ConsumersDeleted,
    ]
}

/// Runs the suite with the service binaries in `binaries`. Err when the
/// pipeline cannot be set up; the checks are the caller's, on the report.
pub async fn run(binaries: &Path, config: &ChaosConfig) -> Result<ChaosReport, String> {
    let policy = chaos_policy()?;
    let specs = services(config, &policy);
    let mut chaos = Chaos::start(binaries, &specs).await?;
    // Before any fault: the pipeline acts at all, and how fast.
    let first_action = chaos.attack_and_wait(config.patience).await?;
    let mut faults_seen = Vec::new();
    for round in 0..config.rounds {
        for fault in faults(round) {
            faults_seen.push(chaos.inject(fault, round, config).await?);
        }
    }
    chaos.settle(config.patience).await;
    chaos.count_duplicates(&mut faults_seen);
    let report = ChaosReport {
        faults: faults_seen,
        unjudged: chaos.unjudged(config.drain).await,
        loss_findings: chaos.loss_findings().await?,
        first_action,
        logs: chaos.pipeline.logs(),
    };
    Ok(report)
}

fn services(config: &ChaosConfig, policy: &Path) -> Vec<ServiceSpec> {
    vec![
        ServiceSpec::new("vigil-collector"),
        ServiceSpec::new("vigil-collector")
            .with("SOURCE", "synthetic")
            .with("SYNTHETIC__RATE", &config.synthetic_rate.to_string())
            .with("NODE_NAME", SYNTHETIC_NODE),
        ServiceSpec::new("vigil-detectors"),
        ServiceSpec::new("vigil-anomaly-scorer"),
        ServiceSpec::new("vigil-responder")
            .with("DRY_RUN", "true")
            .with("POLICY_FILE", &policy.display().to_string()),
    ]
}

/// The default policy, enforcing everywhere (the responder's `dry_run`
/// makes every action a record only) with a global limit no flood of this
/// suite reaches: the suite measures loss and duplication, not the limiter.
fn chaos_policy() -> Result<std::path::PathBuf, String> {
    const DEFAULT_GLOBAL: &str = "global: { max: 20, per_seconds: 60 }";
    let text = vigil_responder::policy::default_policy_enforcing("{ all: true }");
    if !text.contains(DEFAULT_GLOBAL) {
        return Err(format!(
            "the default policy no longer has {DEFAULT_GLOBAL:?}; update the chaos policy"
        ));
    }
    let text = text.replacen(
        DEFAULT_GLOBAL,
        "global: { max: 1000000, per_seconds: 60 }",
        1,
    );
    let path = std::env::temp_dir().join(format!("vigil-chaos-policy-{}.yaml", std::process::id()));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// An attack: its sandbox, the reading process, when it started.
struct Attack {
    sandbox: PodSandbox,
    reader: Child,
    fault: Option<(Fault, usize)>,
}

/// An action record as it arrived.
struct Seen {
    record: ActionRecord,
    at: Instant,
}

struct Chaos {
    pipeline: ClusterPipeline,
    bus: vigil_bus::BusConnection,
    actions: Arc<Mutex<Vec<Seen>>>,
    attacks: Vec<Attack>,
    /// Loss counters of processes killed so far, so totals survive restarts.
    retired_losses: u64,
    cancel: CancellationToken,
}

impl Chaos {
    async fn start(binaries: &Path, specs: &[ServiceSpec]) -> Result<Self, String> {
        let pipeline = ClusterPipeline::start(binaries, NODE, specs)?;
        // One node's URL (see ClusterPipeline::spawn); not the first
        // node, which the first NATS fault kills.
        let options = ConnectOptions {
            url: pipeline.cluster.node_url(1),
            client_name: "chaos".into(),
        };
        let cancel = CancellationToken::new();
        let bus = connect(&options, &cancel)
            .await
            .map_err(|e| format!("cannot connect to the cluster: {e}"))?;
        let actions = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(follow_actions(
            bus.jetstream.clone(),
            actions.clone(),
            cancel.clone(),
        ));
        Ok(Self {
            pipeline,
            bus,
            actions,
            attacks: Vec::new(),
            retired_losses: 0,
            cancel,
        })
    }

    async fn inject(
        &mut self,
        fault: Fault,
        round: usize,
        config: &ChaosConfig,
    ) -> Result<FaultReport, String> {
        let losses_before = self.losses();
        let injected = Instant::now();
        match fault {
            Fault::NatsNodeKilled(index) => {
                self.pipeline.cluster.kill(index);
                let attack = self.attack(Some((fault, round)))?;
                tokio::time::sleep(DOWN_FOR).await;
                self.pipeline.cluster.restart(index)?;
                let seen = self.wait_for_action(attack, config.patience).await;
                return Ok(self.fault_report(fault, round, injected, seen, losses_before));
            }
            Fault::ServiceKilled(name) => {
                let index = self.service_index(name)?;
                self.retired_losses += loss_total(&self.pipeline.services[index].metrics());
                // The collector sees nothing while it is down (a process
                // that opened the file before it came back is not seen):
                // its attack starts once it is back.
                let attack_while_down = name != "vigil-collector";
                let early = attack_while_down
                    .then(|| self.attack(Some((fault, round))))
                    .transpose()?;
                self.pipeline.services[index].kill();
                tokio::time::sleep(DOWN_FOR).await;
                self.pipeline.kill_and_restart(index)?;
                self.pipeline.wait_healthy(Duration::from_secs(60))?;
                let attack = match early {
                    Some(attack) => attack,
                    None => self.attack(Some((fault, round)))?,
                };
                let seen = self.wait_for_action(attack, config.patience).await;
                return Ok(self.fault_report(fault, round, injected, seen, losses_before));
            }
            Fault::ConsumersDeleted => self.delete_consumers().await?,
            Fault::FindingFlood => self.flood(config.flood_findings).await?,
        }
        let attack = self.attack(Some((fault, round)))?;
        let seen = self.wait_for_action(attack, config.patience).await;
        Ok(self.fault_report(fault, round, injected, seen, losses_before))
    }

    fn fault_report(
        &self,
        fault: Fault,
        round: usize,
        injected: Instant,
        seen: Option<Instant>,
        losses_before: u64,
    ) -> FaultReport {
        FaultReport {
            fault,
            round,
            attacks: 1,
            actions: usize::from(seen.is_some()),
            duplicates: 0,
            losses_counted: self.losses().saturating_sub(losses_before),
            recovery: seen.map(|at| at.duration_since(injected)),
        }
    }

    /// The index in `services` of `name` (`synthetic`: the collector with
    /// the synthetic source).
    fn service_index(&self, name: &str) -> Result<usize, String> {
        let synthetic = |spec: &ServiceSpec| spec.settings.iter().any(|(k, _)| k == "SOURCE");
        self.pipeline
            .services
            .iter()
            .position(|service| match name {
                "synthetic" => synthetic(&service.spec),
                binary => service.name == binary && !synthetic(&service.spec),
            })
            .ok_or_else(|| format!("no service {name} in the pipeline"))
    }

    /// Starts an attack in a new sandbox; returns its index.
    fn attack(&mut self, fault: Option<(Fault, usize)>) -> Result<usize, String> {
        let sandbox =
            PodSandbox::create().map_err(|e| format!("cannot create a pod sandbox: {e}"))?;
        let reader = scenario::start_shadow_read(&sandbox)
            .map_err(|e| format!("cannot start the attack in the sandbox: {e}"))?;
        self.attacks.push(Attack {
            sandbox,
            reader,
            fault,
        });
        Ok(self.attacks.len() - 1)
    }

    async fn attack_and_wait(&mut self, patience: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let attack = self.attack(None)?;
        match self.wait_for_action(attack, patience).await {
            Some(at) => Ok(at.duration_since(started)),
            None => Err(format!(
                "the first attack, before any fault, got no action within {patience:?}:\n{}",
                self.pipeline.logs()
            )),
        }
    }

    /// When the first action taken on attack `index` arrived, if within `patience`.
    async fn wait_for_action(&self, index: usize, patience: Duration) -> Option<Instant> {
        let container = self.attacks[index].sandbox.container_id.clone();
        let deadline = Instant::now() + patience;
        loop {
            if let Some(at) = self.first_action_on(&container) {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn first_action_on(&self, container: &str) -> Option<Instant> {
        let seen = self.actions.lock().ok()?;
        seen.iter()
            .filter(|s| s.record.container_id == container && taken(&s.record))
            .map(|s| s.at)
            .min()
    }

    /// Deletes the durable consumers the detectors and the responder read.
    async fn delete_consumers(&self) -> Result<(), String> {
        let doomed = [
            (EVENTS.name, topology::detectors_consumer().durable_name),
            (
                FINDINGS.name,
                topology::responder_consumer(NODE).durable_name,
            ),
        ];
        for (stream, consumer) in doomed {
            let stream_handle = self
                .bus
                .jetstream
                .get_stream(stream)
                .await
                .map_err(|e| format!("cannot look up {stream}: {e}"))?;
            stream_handle
                .delete_consumer(&consumer)
                .await
                .map_err(|e| format!("cannot delete consumer {consumer} of {stream}: {e}"))?;
        }
        Ok(())
    }

    /// Publishes `count` warning findings for as many made-up pods of the
    /// node, each actionable by the policy.
    async fn flood(&self, count: usize) -> Result<(), String> {
        let publisher = Publisher::new(self.bus.jetstream.clone());
        let mut acks = Vec::with_capacity(count);
        for _ in 0..count {
            let finding = flood_finding();
            let subject = subject::findings(Priority::Warning, "");
            let ack = publisher
                .send(
                    subject.clone(),
                    &finding.id,
                    &TraceContext::new_root(),
                    finding.encode_to_vec().into(),
                )
                .await
                .map_err(|e| format!("flood publish failed: {e}"))?;
            acks.push((ack, subject, finding.id));
        }
        for (ack, subject, id) in acks {
            Publisher::confirm(ack, subject, &id)
                .await
                .map_err(|e| format!("flood finding not stored: {e}"))?;
        }
        Ok(())
    }

    /// Sum of the loss counters over every live service and those killed.
    fn losses(&self) -> u64 {
        self.retired_losses
            + self
                .pipeline
                .services
                .iter()
                .map(|s| loss_total(&s.metrics()))
                .sum::<u64>()
    }

    /// Waits for late actions (a redelivery acting twice shows up here).
    async fn settle(&self, patience: Duration) {
        tokio::time::sleep(patience.min(Duration::from_secs(10))).await;
    }

    fn count_duplicates(&self, faults: &mut [FaultReport]) {
        let Ok(seen) = self.actions.lock() else {
            return;
        };
        for attack in &self.attacks {
            let Some((fault, round)) = attack.fault else {
                continue;
            };
            let taken_count = seen
                .iter()
                .filter(|s| s.record.container_id == attack.sandbox.container_id)
                .filter(|s| taken(&s.record) && s.record.kind() == ActionKind::Freeze)
                .count();
            if let Some(report) = faults
                .iter_mut()
                .find(|r| r.fault == fault && r.round == round)
            {
                report.duplicates += taken_count.saturating_sub(1);
            }
        }
    }

    /// For each durable consumer, how many of the messages its stream held
    /// when the faults were over it has not judged after `patience` (zero
    /// when nothing was left behind: a message given up after `max_deliver`
    /// also moves the ack floor, and is counted as a loss by the consume
    /// loop).
    async fn unjudged(&self, patience: Duration) -> BTreeMap<String, u64> {
        let consumers = [
            (EVENTS.name, topology::detectors_consumer().durable_name),
            (
                FINDINGS.name,
                topology::responder_consumer(NODE).durable_name,
            ),
        ];
        let mut left = BTreeMap::new();
        for (stream, name) in consumers {
            let target = self.last_sequence(stream).await.unwrap_or(u64::MAX);
            let deadline = Instant::now() + patience;
            let mut behind = u64::MAX;
            while Instant::now() < deadline {
                if let Some(floor) = self.ack_floor(stream, &name).await {
                    behind = target.saturating_sub(floor);
                }
                if behind == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            left.insert(format!("{stream}/{name}"), behind);
        }
        left
    }

    async fn last_sequence(&self, stream: &str) -> Option<u64> {
        let mut stream = self.bus.jetstream.get_stream(stream).await.ok()?;
        Some(stream.info().await.ok()?.state.last_sequence)
    }

    /// The stream sequence below which a consumer has judged everything.
    async fn ack_floor(&self, stream: &str, consumer: &str) -> Option<u64> {
        let stream = self.bus.jetstream.get_stream(stream).await.ok()?;
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer(consumer).await.ok()?;
        let info = consumer.info().await.ok()?;
        Some(info.ack_floor.stream_sequence)
    }

    /// Findings that report a loss: JetStream data lost, collector drops.
    async fn loss_findings(&self) -> Result<usize, String> {
        let findings: Vec<Finding> = read_all(&self.bus.jetstream, FINDINGS.name).await?;
        Ok(findings
            .iter()
            .filter(|f| {
                f.name == vigil_bus::loss::FINDING_NAME || f.name.to_lowercase().contains("drop")
            })
            .count())
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.cancel.cancel();
        for attack in &mut self.attacks {
            let _ = attack.reader.kill();
            let _ = attack.reader.wait();
        }
    }
}

/// An action that was (or, in dry run, would have been) carried out.
fn taken(record: &ActionRecord) -> bool {
    matches!(
        record.outcome(),
        ActionOutcome::Succeeded | ActionOutcome::DryRun
    )
}

fn flood_finding() -> Finding {
    let container_id = vigil_testkit::random_container_id();
    let pod_uid = uuid_like();
    Finding {
        id: format!("chaos-flood-{container_id}"),
        time_ns: now_ns(),
        source: FindingSource::Rule as i32,
        name: "Chaos flood".to_owned(),
        priority: Priority::Warning as i32,
        output: "a finding of the chaos suite's flood".to_owned(),
        cgroup_path: format!("/kubepods.slice/pod{pod_uid}/{container_id}"),
        container_id,
        pod_uid,
        node: NODE.to_owned(),
        ..Default::default()
    }
}

fn uuid_like() -> String {
    let id = vigil_testkit::random_container_id();
    format!(
        "{}-{}-{}-{}-{}",
        &id[0..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..32]
    )
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The sum of every sample of the [`LOSS_COUNTERS`] in a Prometheus text.
fn loss_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            LOSS_COUNTERS.iter().any(|name| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// Follows `VIGIL_ACTIONS` from its start into `into`, reopening after the
/// position it reached when a NATS node going away breaks the consumer.
async fn follow_actions(
    js: jetstream::Context,
    into: Arc<Mutex<Vec<Seen>>>,
    cancel: CancellationToken,
) {
    let mut next_sequence = 1;
    while !cancel.is_cancelled() {
        let Ok(stream) = js.get_stream(ACTIONS.name).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let config = OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next_sequence,
            },
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(mut messages) = messages else {
            continue;
        };
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                next = messages.next() => next,
            };
            let Some(Ok(message)) = next else { break };
            if let Ok(info) = message.info() {
                next_sequence = info.stream_sequence + 1;
            }
            if let (Ok(record), Ok(mut seen)) =
                (ActionRecord::decode(message.payload.as_ref()), into.lock())
            {
                seen.push(Seen {
                    record,
                    at: Instant::now(),
                });
            }
        }
    }
}

/// Every message of `stream`, decoded (those that do not decode skipped).
async fn read_all<T: Message + Default>(
    js: &jetstream::Context,
    stream: &str,
) -> Result<Vec<T>, String> {
    let handle = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("cannot look up {stream}: {e}"))?;
    let last = handle.cached_info().state.last_sequence;
    let consumer = handle
        .create_consumer(OrderedConfig::default())
        .await
        .map_err(|e| format!("cannot read {stream}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read {stream}: {e}"))?;
    let mut found = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(5), messages.next()).await
    {
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(last);
        if let Ok(decoded) = T::decode(message.payload.as_ref()) {
            found.push(decoded);
        }
        if sequence >= last {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_total_sums_every_sample_of_the_loss_counters_only() {
        let text = "# TYPE vigil_bus_data_lost_messages_total counter\n\
            vigil_bus_data_lost_messages_total{stream=\"VIGIL_EVENTS\",reason=\"limit\"} 4\n\
            vigil_collector_userspace_drops_total 3\n\
            vigil_collector_kernel_drops_total{reason=\"ringbuf_full\"} 2\n\
            vigil_collector_kernel_drops_total_extra 100\n\
            vigil_bus_messages_total 50\n";
        assert_eq!(loss_total(text), 9);
    }

    #[test]
    fn each_round_kills_every_service_and_a_rotating_nats_node() {
        let first = faults(0);
        let second = faults(1);
        assert!(first.contains(&Fault::NatsNodeKilled(0)));
        assert!(second.contains(&Fault::NatsNodeKilled(1)));
        for binary in [
            "vigil-collector",
            "synthetic",
            "vigil-detectors",
            "vigil-anomaly-scorer",
            "vigil-responder",
        ] {
            assert!(first.contains(&Fault::ServiceKilled(binary)), "{binary}");
        }
        assert_eq!(
            Fault::ServiceKilled("vigil-detectors").to_string(),
            "detectors_killed"
        );
    }
}
