//! The cluster actor (mode "cluster") against the fake Kubernetes API server
//! of `vigil-fake-kube`: no real API server can run here, so these tests
//! talk to a real HTTP server that deserialises every request body into the
//! k8s-openapi type (unknown fields rejected) and answers 403 to anything
//! the ClusterRole `vigil-responder` (k8s/base/rbac/responder.yaml) does not
//! grant. Injected 409, 403 and slow answers show the retry policy.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::*;
use k8s_openapi::api::{core::v1::Pod, networking::v1::NetworkPolicy};
use vigil_bus::TraceContext;
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, Finding};
use vigil_responder::{
    Config, KubeConfig, Mode,
    kube_actions::{self, KUBE_PERMISSIONS},
};
use vigil_service::Health;
use vigil_testkit::NatsServer;

const POLICY: &str = "rate_limits:
  per_pod: { max: 5, per_seconds: 60 }
  global: { max: 50, per_seconds: 60 }
max_finding_age_seconds: 600
rules:
  - name: evict
    match: { rules: [evict-me] }
    actions: [{ kind: evict }]
  - name: delete
    match: { rules: [delete-me] }
    actions: [{ kind: delete_pod }]
  - name: contain
    match: { min_priority: warning }
    actions: [{ kind: freeze }, { kind: quarantine }, { kind: annotate }]
";

fn rbac() -> Rbac {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../k8s/base/rbac/responder.yaml"
    );
    Rbac::from_manifest(manifest, "vigil-responder").unwrap()
}

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-7", "containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap()
}

struct Cluster {
    server: NatsServer,
    fake: FakeKube,
    _dir: tempfile::TempDir,
    config: Config,
}

impl Cluster {
    /// Configures the control API on a free loopback port; returns it.
    fn serve_grpc(&mut self) -> std::net::SocketAddr {
        let grpc = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        self.config.grpc.listen = Some(grpc);
        grpc
    }
}

async fn cluster(timeout_ms: u64) -> Cluster {
    let server = NatsServer::start();
    let fake = FakeKube::start(rbac()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = Config {
        node_name: "cluster-actor-0".into(),
        mode: Mode::Cluster,
        policy_file: Some(policy),
        kube: KubeConfig {
            enabled: true,
            api_url: Some(fake.url()),
            timeout_ms,
        },
        ..config(&server)
    };
    Cluster {
        server,
        fake,
        _dir: dir,
        config,
    }
}

/// A finding from another node's collector about `namespace/pod`.
fn pod_finding(id: &str, name: &str, namespace: &str, pod: &str) -> Finding {
    let mut finding = finding(id, "", "", "", namespace);
    finding.node = "node-7".into();
    finding.pod = pod.into();
    finding.name = name.into();
    finding
}

fn permissions() -> BTreeSet<(String, String, String)> {
    KUBE_PERMISSIONS
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect()
}

fn by_kind(records: &[(String, ActionRecord)], kind: ActionKind) -> ActionRecord {
    records
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.kind() == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind:?} record in {records:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_actor_isolates_one_pod_and_retries_conflicts() {
    let cluster = cluster(2_000).await;
    cluster.fake.put_pod(&pod("shop", "web-1")).unwrap();
    cluster.fake.put_pod(&pod("shop", "web-2")).unwrap();
    cluster.fake.fail_next("patch", "pods", 409, 2);
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;
    let finding = pod_finding("f-web-1", "Reverse shell", "shop", "web-1");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;

    // Freeze is a node action: the cluster actor leaves it to the node agent.
    let records = wait_records(&bus, 2).await;
    let quarantine = by_kind(&records, ActionKind::Quarantine);
    assert_eq!(
        quarantine.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        quarantine.reason
    );
    assert_eq!(quarantine.node, "cluster-actor-0");
    assert_eq!(quarantine.policy, "contain");
    let annotate = by_kind(&records, ActionKind::Annotate);
    assert_eq!(
        annotate.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        annotate.reason
    );

    let labelled = |name: &str| {
        cluster
            .fake
            .pod("shop", name)
            .and_then(|p| p.metadata.labels)
            .and_then(|l| l.get(kube_actions::QUARANTINE_LABEL).cloned())
    };
    assert_eq!(labelled("web-1").as_deref(), Some("true"));
    assert_eq!(
        labelled("web-2"),
        None,
        "only the one pod, not its siblings"
    );
    let policy: NetworkPolicy = cluster
        .fake
        .network_policy("shop", kube_actions::QUARANTINE_POLICY)
        .unwrap();
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
        "ingress and egress both isolated"
    );
    assert_eq!(spec.ingress, None, "no ingress rule: nothing allowed in");
    assert_eq!(spec.egress, None, "no egress rule: nothing allowed out");
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    assert_eq!(
        selector
            .get(kube_actions::QUARANTINE_LABEL)
            .map(String::as_str),
        Some("true")
    );

    let patches: Vec<u16> = cluster
        .fake
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "pods" && r.name == "web-1")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        &patches[..3],
        &[409, 409, 200],
        "conflicts retried: {patches:?}"
    );
    assert!(cluster.fake.used_permissions().is_subset(&permissions()));

    // The same finding again: handled once.
    publish_finding(&bus, &finding, "again", &TraceContext::new_root()).await;
    wait_settled_on(&bus, "responder-CLUSTER", 2).await;
    assert_eq!(common::records(&bus).await.len(), 2);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_missing_and_slow_are_recorded_as_failed_with_the_reason() {
    let cluster = cluster(200).await;
    cluster.fake.put_pod(&pod("shop", "web-1")).unwrap();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;

    // 403 is not retried: asking again will not change the answer.
    cluster.fake.fail_next("get", "pods", 403, 1);
    let forbidden = pod_finding("f-forbidden", "Reverse shell", "shop", "web-1");
    publish_finding(&bus, &forbidden, &forbidden.id, &TraceContext::new_root()).await;
    let records = wait_records(&bus, 2).await;
    let quarantine = by_kind(&records, ActionKind::Quarantine);
    assert_eq!(quarantine.outcome(), ActionOutcome::Failed);
    assert!(quarantine.reason.contains("(403)"), "{}", quarantine.reason);
    assert!(
        quarantine.reason.contains("attempt 1 of"),
        "{}",
        quarantine.reason
    );

    // A pod that no longer exists: a failed record with the reason, and
    // nothing else happens in its namespace.
    let ghost = pod_finding("f-ghost", "Reverse shell", "ghosts", "gone-1");
    publish_finding(&bus, &ghost, &ghost.id, &TraceContext::new_root()).await;
    let records = wait_records(&bus, 4).await;
    let failed: Vec<&ActionRecord> = records[2..].iter().map(|(_, r)| r).collect();
    for record in &failed {
        assert_eq!(record.outcome(), ActionOutcome::Failed, "{record:?}");
        assert!(
            record.reason.contains("does not exist"),
            "{}",
            record.reason
        );
    }
    assert!(cluster.fake.network_policies("ghosts").is_empty());
    let writes = cluster
        .fake
        .requests()
        .iter()
        .filter(|r| r.namespace == "ghosts" && r.verb != "get" && r.status < 300)
        .count();
    assert_eq!(writes, 0, "nothing written for a pod that does not exist");

    // An API server slower than the timeout: retried, then recorded.
    cluster.fake.delay(Duration::from_millis(600));
    let slow = pod_finding("f-slow", "Reverse shell", "shop", "web-1");
    publish_finding(&bus, &slow, &slow.id, &TraceContext::new_root()).await;
    let records = wait_records(&bus, 6).await;
    let timed_out = by_kind(&records[4..], ActionKind::Quarantine);
    assert_eq!(timed_out.outcome(), ActionOutcome::Failed);
    assert!(
        timed_out.reason.contains("timed out"),
        "{}",
        timed_out.reason
    );
    assert!(
        timed_out.reason.contains("attempt 5 of 5"),
        "{}",
        timed_out.reason
    );
    cluster.fake.delay(Duration::ZERO);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_delete_and_policy_repair_use_exactly_the_granted_permissions() {
    let cluster = cluster(2_000).await;
    for name in ["web-1", "web-2", "web-3"] {
        cluster.fake.put_pod(&pod("shop", name)).unwrap();
    }
    // Someone loosened Vigil's policy: the responder puts it back.
    let mut loosened = kube_actions::deny_all_policy("shop");
    if let Some(spec) = loosened.spec.as_mut() {
        spec.policy_types = Some(vec!["Ingress".to_owned()]);
    }
    cluster.fake.put_network_policy(&loosened).unwrap();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;
    for finding in [
        pod_finding("f-evict", "evict-me", "shop", "web-1"),
        pod_finding("f-delete", "delete-me", "shop", "web-2"),
        pod_finding("f-contain", "Reverse shell", "shop", "web-3"),
    ] {
        publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;
    }
    let records = wait_records(&bus, 4).await;
    for (_, record) in &records {
        assert_eq!(record.outcome(), ActionOutcome::Succeeded, "{record:?}");
    }
    assert!(cluster.fake.pod("shop", "web-1").is_none(), "evicted");
    assert!(cluster.fake.pod("shop", "web-2").is_none(), "deleted");
    let repaired = cluster
        .fake
        .network_policy("shop", kube_actions::QUARANTINE_POLICY)
        .unwrap();
    assert_eq!(repaired.spec, kube_actions::deny_all_policy("shop").spec);

    // A fresh namespace needs the policy created.
    cluster.fake.put_pod(&pod("bank", "api-1")).unwrap();
    let fresh = pod_finding("f-fresh", "Reverse shell", "bank", "api-1");
    publish_finding(&bus, &fresh, &fresh.id, &TraceContext::new_root()).await;
    wait_records(&bus, 6).await;
    assert!(
        cluster
            .fake
            .network_policy("bank", kube_actions::QUARANTINE_POLICY)
            .is_some()
    );
    assert_eq!(
        cluster.fake.used_permissions(),
        permissions(),
        "every permission used, and no other"
    );
    service.stop().await;
}

/// Runs the CLI against `grpc`; returns (success, stdout, stderr).
async fn cli(grpc: std::net::SocketAddr, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-responder-cli"));
    command
        .arg("--server")
        .arg(format!("http://{grpc}"))
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_quarantines_lists_and_releases_through_grpc() {
    let mut cluster = cluster(2_000).await;
    cluster.fake.put_pod(&pod("shop", "web-1")).unwrap();
    let grpc = cluster.serve_grpc();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;
    let labelled = || {
        cluster
            .fake
            .pod("shop", "web-1")
            .and_then(|p| p.metadata.labels)
            .and_then(|l| l.get(kube_actions::QUARANTINE_LABEL).cloned())
    };

    let (ok, out, err) = cli(
        grpc,
        &[
            "quarantine",
            "shop/web-1",
            "--by",
            "bob",
            "--reason",
            "shell",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("QUARANTINE") && out.contains("SUCCEEDED"),
        "{out}"
    );
    assert_eq!(labelled().as_deref(), Some("true"));
    let (ok, out, err) = cli(grpc, &["list"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("shop/web-1") && out.contains("by=bob"),
        "{out}"
    );

    let (ok, out, err) = cli(grpc, &["release", "shop/web-1", "--by", "bob"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("RELEASE") && out.contains("SUCCEEDED"),
        "{out}"
    );
    assert_eq!(labelled(), None);
    let (ok, out, _) = cli(grpc, &["list"]).await;
    assert!(ok && out.trim().is_empty(), "{out}");

    // Both steps are on the audit stream, with who asked.
    let records = wait_records(&bus, 2).await;
    assert!(
        records
            .iter()
            .all(|(_, r)| r.requested_by == "bob" && r.trace_id.len() == 32),
        "{records:?}"
    );
    assert_eq!(records[1].1.kind(), ActionKind::Release);

    let (ok, _, err) = cli(grpc, &["release", "web-1", "--by", "bob"]).await;
    assert!(!ok);
    assert!(err.contains("expected <namespace>/<pod>"), "{err}");
    let (ok, _, err) = cli(grpc, &["release", "shop/web-9", "--by", "bob"]).await;
    assert!(!ok);
    assert!(err.contains("not quarantined"), "{err}");

    // A pod frozen by the agent of another node: this cluster actor lifts
    // the label, and refuses on record to thaw what it cannot reach.
    cluster.fake.put_pod(&pod("shop", "web-3")).unwrap();
    let elsewhere = vigil_proto::v1::QuarantineState {
        target: Some(vigil_proto::v1::PodRef {
            namespace: "shop".into(),
            pod: "web-3".into(),
        }),
        node: "node-9".into(),
        active: vec![ActionKind::Freeze as i32, ActionKind::Quarantine as i32],
        ..Default::default()
    };
    bus.jetstream
        .get_key_value(vigil_bus::topology::QUARANTINE_BUCKET.name)
        .await
        .unwrap()
        .put("shop.web-3", vigil_bus::codec::encode(&elsewhere))
        .await
        .unwrap();
    let (ok, out, err) = cli(grpc, &["release", "shop/web-3", "--by", "bob"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("THAW") && out.contains("REFUSED") && out.contains("node-9"),
        "{out}"
    );
    assert!(
        out.contains("RELEASE") && out.contains("SUCCEEDED"),
        "{out}"
    );
    let (_, out, _) = cli(grpc, &["list"]).await;
    assert!(
        out.contains("shop/web-3") && out.contains("active=FREEZE"),
        "{out}"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_pods_are_never_touched_whatever_the_finding() {
    let cluster = cluster(2_000).await;
    // Protected by the label the API server shows, though the finding
    // carries no labels at all.
    let mut guarded = pod("shop", "vault-0");
    guarded
        .metadata
        .labels
        .get_or_insert_default()
        .insert("vigil.dev/protected".into(), "true".into());
    cluster.fake.put_pod(&guarded).unwrap();
    cluster
        .fake
        .put_pod(&pod("kube-system", "coredns-1"))
        .unwrap();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;
    for finding in [
        pod_finding("f-vault", "delete-me", "shop", "vault-0"),
        pod_finding("f-vault-2", "Reverse shell", "shop", "vault-0"),
        pod_finding("f-dns", "delete-me", "kube-system", "coredns-1"),
        pod_finding("f-dns-2", "Reverse shell", "kube-system", "coredns-1"),
    ] {
        publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;
    }
    // delete (1) + quarantine, annotate (2), for each pod.
    let records = wait_records(&bus, 6).await;
    for (subject, record) in &records {
        assert_eq!(record.outcome(), ActionOutcome::Refused, "{record:?}");
        assert!(subject.ends_with(".refused"), "{subject}");
        assert!(record.reason.contains("protected"), "{}", record.reason);
    }
    let writes: Vec<_> = cluster
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.verb != "get")
        .collect();
    assert!(writes.is_empty(), "nothing written: {writes:?}");
    assert!(cluster.fake.pod("shop", "vault-0").is_some());
    assert!(cluster.fake.pod("kube-system", "coredns-1").is_some());
    service.stop().await;
}

/// A finding's records, in the order they were stored.
fn records_of<'r>(
    records: &'r [(String, ActionRecord)],
    finding_id: &str,
) -> Vec<&'r ActionRecord> {
    records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.finding_id == finding_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigils_own_namespace_is_protected_though_the_policy_forgets_it() {
    let mut cluster = cluster(2_000).await;
    // This policy protects kube-system only: not where Vigil runs.
    let forgetful = format!("protected:\n  namespaces: [kube-system]\n{POLICY}");
    cluster.config.policy_file = Some(policy_file("forgets-vigil", &forgetful));
    cluster.config.own_namespace = Some("vigil".into());
    let grpc = cluster.serve_grpc();
    cluster.fake.put_pod(&pod("vigil", "vigil-nats-0")).unwrap();
    cluster.fake.put_pod(&pod("shop", "web-1")).unwrap();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;

    let nats = pod_finding("f-nats", "Reverse shell", "vigil", "vigil-nats-0");
    // The same policy acts on a pod elsewhere: the refusal is the namespace's.
    let web = pod_finding("f-web", "Reverse shell", "shop", "web-1");
    for finding in [&nats, &web] {
        publish_finding(&bus, finding, &finding.id, &TraceContext::new_root()).await;
    }
    let records = wait_records(&bus, 4).await;
    let refused = records_of(&records, "f-nats");
    assert_eq!(refused.len(), 2, "quarantine and annotate: {records:?}");
    for record in &refused {
        assert_eq!(record.outcome(), ActionOutcome::Refused, "{record:?}");
        assert!(
            record.reason.contains("Vigil runs there"),
            "{}",
            record.reason
        );
    }
    for record in records_of(&records, "f-web") {
        assert_eq!(record.outcome(), ActionOutcome::Succeeded, "{record:?}");
    }

    // Asked by hand, it is refused on record too, naming who asked.
    let (ok, out, err) = cli(grpc, &["quarantine", "vigil/vigil-nats-0", "--by", "alice"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("QUARANTINE") && out.contains("REFUSED"),
        "{out}"
    );
    let records = wait_records(&bus, 5).await;
    let manual = &records[4].1;
    assert_eq!(manual.outcome(), ActionOutcome::Refused, "{manual:?}");
    assert_eq!(manual.requested_by, "alice");
    assert!(
        manual.reason.contains("Vigil runs there"),
        "{}",
        manual.reason
    );

    let writes: Vec<_> = cluster
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.namespace == "vigil" && r.verb != "get")
        .collect();
    assert!(writes.is_empty(), "nothing written in vigil: {writes:?}");
    let labels = cluster
        .fake
        .pod("vigil", "vigil-nats-0")
        .and_then(|p| p.metadata.labels)
        .unwrap_or_default();
    assert_eq!(labels.get(kube_actions::QUARANTINE_LABEL), None);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_quarantine_after_an_automatic_one_has_its_own_record_and_a_rate_limit() {
    let mut cluster = cluster(2_000).await;
    let limited = POLICY.replacen(
        "rate_limits:\n",
        "rate_limits:\n  manual: { max: 2, per_seconds: 3600 }\n",
        1,
    );
    cluster.config.policy_file = Some(policy_file("manual-limit", &limited));
    let grpc = cluster.serve_grpc();
    cluster.fake.put_pod(&pod("shop", "web-1")).unwrap();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;

    let finding = pod_finding("f-web-1", "Reverse shell", "shop", "web-1");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;
    let automatic = by_kind(&wait_records(&bus, 2).await, ActionKind::Quarantine);
    assert_eq!(automatic.id, "f-web-1:quarantine");
    assert_eq!(automatic.requested_by, "policy");

    // The console names the finding that prompted it: the record is still
    // the person's own, stored beside the automatic one.
    for (number, who) in [(3, "alice"), (4, "bob")] {
        let (ok, out, err) = cli(
            grpc,
            &[
                "quarantine",
                "shop/web-1",
                "--by",
                who,
                "--finding",
                "f-web-1",
            ],
        )
        .await;
        assert!(ok, "{err}");
        assert!(
            out.contains("QUARANTINE") && out.contains("ALREADY_DONE"),
            "{out}"
        );
        let records = wait_records(&bus, number).await;
        let manual = &records[number - 1].1;
        assert_eq!(manual.kind(), ActionKind::Quarantine);
        assert_eq!(manual.requested_by, who);
        assert_eq!(manual.finding_id, "f-web-1");
        assert_eq!(manual.policy, "manual");
        assert!(manual.id.ends_with(":quarantine"), "{}", manual.id);
        let ids: BTreeSet<&str> = records.iter().map(|(_, r)| r.id.as_str()).collect();
        assert_eq!(ids.len(), number, "every record has its own id: {ids:?}");
    }

    // A third manual request within the hour is refused before it acts.
    let (ok, _, err) = cli(grpc, &["quarantine", "shop/web-1", "--by", "mallory"]).await;
    assert!(!ok, "the third manual quarantine went through");
    assert!(
        err.contains("rate limited") && err.contains("at most 2"),
        "{err}"
    );
    let (ok, _, err) = cli(grpc, &["release", "shop/web-1", "--by", "mallory"]).await;
    assert!(!ok && err.contains("rate limited"), "{err}");
    assert_eq!(
        common::records(&bus).await.len(),
        4,
        "no record for refused requests"
    );
    assert_eq!(
        cluster
            .fake
            .pod("shop", "web-1")
            .and_then(|p| p.metadata.labels)
            .and_then(|l| l.get(kube_actions::QUARANTINE_LABEL).cloned())
            .as_deref(),
        Some("true"),
        "the rate-limited release released nothing"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_a_retry_cannot_help_is_terminated_and_the_next_one_handled() {
    let cluster = cluster(2_000).await;
    cluster.fake.put_pod(&pod("shop", "web-1")).unwrap();
    cluster.fake.put_pod(&pod("shop", "web-2")).unwrap();
    let bus = bus(&cluster.server).await;
    let service = Running::start(cluster.config.clone(), Health::default()).await;
    // web-1's quarantine state does not decode: asking again cannot change it.
    bus.jetstream
        .get_key_value(vigil_bus::topology::QUARANTINE_BUCKET.name)
        .await
        .unwrap()
        .put(
            "shop.web-1",
            bytes::Bytes::from_static(b"\xff\xff\xffnot a state"),
        )
        .await
        .unwrap();
    let stuck = pod_finding("f-corrupt", "Reverse shell", "shop", "web-1");
    let next = pod_finding("f-next", "Reverse shell", "shop", "web-2");
    for finding in [&stuck, &next] {
        publish_finding(&bus, finding, &finding.id, &TraceContext::new_root()).await;
    }
    // A retried finding would hold the ack floor below 2 for ever.
    let info = wait_settled_on(&bus, "responder-CLUSTER", 2).await;
    assert_eq!(info.num_redelivered, 0, "terminated, not redelivered");
    let records = wait_records(&bus, 2).await;
    assert_eq!(records_of(&records, "f-next").len(), 2, "{records:?}");
    assert!(records_of(&records, "f-corrupt").is_empty(), "{records:?}");
    service.stop().await;
}
