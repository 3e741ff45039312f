//! Node-level containment of a real container, and release over gRPC.
//!
//! A real container (podman with runc, in a kubepods cgroup parent, with
//! `--network=none`: its own network namespace with only loopback) holds an
//! ESTABLISHED TCP connection to a listener the test opens inside that
//! namespace, and echoes what it receives. The responder, in-process against
//! a real nats-server, cuts the network with nft inside the container's
//! namespace (entered through the container's pid): the open connection
//! stops carrying data. Releasing the pod over gRPC restores it, and the
//! same connection works again. Cluster-level actions go to the fake API
//! server of `vigil-fake-kube` (no real API server can run here), which
//! checks every request against the k8s-openapi types and the ClusterRole
//! `vigil-responder` of k8s/base/rbac/responder.yaml.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    time::Duration,
};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use vigil_bus::TraceContext;
use vigil_proto::v1::{
    ActionKind, ActionOutcome, ListQuarantinedRequest, PodRef, ReleaseRequest,
    responder_client::ResponderClient,
};
use vigil_responder::{Config, GrpcConfig, KubeConfig, Mode, kube_actions};
use vigil_service::Health;
use vigil_testkit::{Container, ContainerSpec, NatsServer, echo_client_prelude, require_root};

/// The echo port inside the container's own network namespace (nothing
/// else listens there).
const ECHO_PORT: u16 = 7777;

/// A real container with an echo client in it, connected to a listener the
/// test holds in the container's network namespace.
struct Wired {
    container: Container,
    /// The test's end of the established connection.
    conn: BufReader<TcpStream>,
}

impl Wired {
    fn new() -> Self {
        let spec = ContainerSpec::script(&echo_client_prelude(ECHO_PORT)).run_arg("--network=none");
        let container = Container::start(&spec).unwrap_or_else(|e| panic!("{e}"));
        let listener: TcpListener = container.listen_in_netns(ECHO_PORT).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stream = vigil_testkit::wait_until(Duration::from_secs(10), || {
            listener.accept().ok().map(|(stream, _)| stream)
        })
        .unwrap_or_else(|| {
            panic!(
                "the container's echo client never connected; its logs:\n{}",
                container.logs()
            )
        });
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut wired = Self {
            container,
            conn: BufReader::new(stream),
        };
        assert_eq!(wired.echo("hello").as_deref(), Some("hello"));
        wired
    }

    /// Sends a line; the echoed line, or None when nothing came back in time.
    fn echo(&mut self, line: &str) -> Option<String> {
        self.conn
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        self.read_line()
    }

    fn read_line(&mut self) -> Option<String> {
        let mut answer = String::new();
        match self.conn.read_line(&mut answer) {
            Ok(n) if n > 0 => Some(answer.trim_end().to_owned()),
            _ => None,
        }
    }

    /// Waits (TCP retransmits with back-off) for a line sent earlier.
    fn read_line_within(&mut self, patience: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if let Some(line) = self.read_line() {
                return Some(line);
            }
        }
        None
    }

    /// A finding for the container's own cgroup, id and pod.
    fn finding(&self, id: &str) -> vigil_proto::v1::Finding {
        let mut finding = finding(
            id,
            &self.container.cgroup_path,
            &self.container.id,
            &self.container.pod_uid,
            "shop",
        );
        finding.pod = "web-1".into();
        finding
    }
}

fn policy_file(dir: &tempfile::TempDir, actions: &str) -> PathBuf {
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "rate_limits:\n  per_pod: {{ max: 5, per_seconds: 60 }}\n  global: {{ max: 50, per_seconds: 60 }}\nmax_finding_age_seconds: 600\nrules:\n  - name: contain\n    match: {{ min_priority: warning }}\n    actions: {actions}\n"
        ),
    )
    .unwrap();
    path
}

fn free_addr() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": NODE, "containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap()
}

pub fn rbac() -> vigil_fake_kube::Rbac {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../k8s/base/rbac/responder.yaml"
    );
    vigil_fake_kube::Rbac::from_manifest(manifest, "vigil-responder").unwrap()
}

async fn release(
    grpc: std::net::SocketAddr,
    namespace: &str,
    name: &str,
) -> Vec<vigil_proto::v1::ActionRecord> {
    let mut client = ResponderClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    client
        .release(ReleaseRequest {
            target: Some(PodRef {
                namespace: namespace.into(),
                pod: name.into(),
            }),
            requested_by: "alice@test".into(),
            reason: "false positive".into(),
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner()
        .actions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_connection_is_cut_and_works_again_after_release() {
    if !require_root("an_established_connection_is_cut_and_works_again_after_release") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_addr();
    let config = Config {
        policy_file: Some(policy_file(&dir, "[{ kind: network_cut }]")),
        grpc: GrpcConfig { listen: Some(grpc) },
        ..config(&server)
    };
    let service = Running::start(config, Health::default()).await;
    let mut wired = tokio::task::spawn_blocking(Wired::new).await.unwrap();

    let finding = wired.finding("f-net");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;
    let (subject, record) = wait_records(&bus, 1).await.remove(0);
    assert_eq!(record.kind(), ActionKind::NetworkCut);
    assert_eq!(
        record.outcome(),
        ActionOutcome::Succeeded,
        "{}",
        record.reason
    );
    assert_eq!(subject, format!("vigil.actions.{NODE}.succeeded"));
    assert!(!wired.container.is_frozen(), "only the network is cut");
    assert!(
        wired.container.runs(Duration::from_secs(2)),
        "the container's processes run on"
    );

    // The client still runs, but nothing it receives or sends gets through.
    let (mut wired, cut) = tokio::task::spawn_blocking(move || {
        let answer = wired.echo("while-cut");
        (wired, answer)
    })
    .await
    .unwrap();
    assert_eq!(cut, None, "the established connection must be cut");

    let undone = release(grpc, "shop", "web-1").await;
    assert_eq!(undone.len(), 1, "{undone:?}");
    assert_eq!(undone[0].kind(), ActionKind::NetworkRestore);
    assert_eq!(
        undone[0].outcome(),
        ActionOutcome::Succeeded,
        "{}",
        undone[0].reason
    );
    assert_eq!(undone[0].requested_by, "alice@test");

    // TCP retransmits what was sent during the cut, then carries on. The
    // retransmission back-off doubles (0.2 s, 0.4 s, ...), so on a loaded
    // machine where the cut lasted seconds the next try can be 20 s away.
    let (wired, late, again) = tokio::task::spawn_blocking(move || {
        let late = wired.read_line_within(Duration::from_secs(60));
        let again = wired.echo("after-release");
        (wired, late, again)
    })
    .await
    .unwrap();
    assert_eq!(late.as_deref(), Some("while-cut"));
    assert_eq!(again.as_deref(), Some("after-release"));
    // Both records (cut, restore) are on the audit stream.
    let stored = wait_records(&bus, 2).await;
    assert_eq!(stored[1].1.kind(), ActionKind::NetworkRestore);
    service.stop().await;
    wired
        .container
        .remove()
        .expect("podman removes the released container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_restores_the_pod_thawed_network_back_label_removed() {
    if !require_root("release_restores_the_pod_thawed_network_back_label_removed") {
        return;
    }
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let fake = vigil_fake_kube::FakeKube::start(rbac()).await.unwrap();
    fake.put_pod(&pod("shop", "web-1")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_addr();
    let config = Config {
        mode: Mode::Both,
        policy_file: Some(policy_file(
            &dir,
            "[{ kind: freeze }, { kind: network_cut }, { kind: quarantine }, { kind: annotate }]",
        )),
        grpc: GrpcConfig { listen: Some(grpc) },
        kube: KubeConfig {
            enabled: true,
            api_url: Some(fake.url()),
            ..Default::default()
        },
        ..config(&server)
    };
    let service = Running::start(config, Health::default()).await;
    let wired = tokio::task::spawn_blocking(Wired::new).await.unwrap();
    let finding = wired.finding("f-all");
    publish_finding(&bus, &finding, &finding.id, &TraceContext::new_root()).await;

    let stored = wait_records(&bus, 4).await;
    for (_, record) in &stored {
        assert_eq!(record.outcome(), ActionOutcome::Succeeded, "{record:?}");
    }
    assert!(wired.container.is_frozen());
    assert!(
        !wired.container.runs(Duration::from_millis(500)),
        "the container's processes are really stopped"
    );
    let labels = fake.pod("shop", "web-1").unwrap().metadata.labels.unwrap();
    assert_eq!(
        labels
            .get(kube_actions::QUARANTINE_LABEL)
            .map(String::as_str),
        Some("true")
    );
    let annotations = fake
        .pod("shop", "web-1")
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(
        annotations
            .get(kube_actions::FINDING_ANNOTATION)
            .map(String::as_str),
        Some("f-all")
    );
    let policy = fake
        .network_policy("shop", kube_actions::QUARANTINE_POLICY)
        .expect("the deny-all NetworkPolicy exists");
    assert_eq!(policy.spec, kube_actions::deny_all_policy("shop").spec);

    let mut client = ResponderClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let listed = client
        .list_quarantined(ListQuarantinedRequest {})
        .await
        .unwrap()
        .into_inner()
        .pods;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let active: Vec<ActionKind> = listed[0].active().collect();
    assert_eq!(
        active,
        vec![
            ActionKind::Freeze,
            ActionKind::NetworkCut,
            ActionKind::Quarantine
        ]
    );

    let undone = release(grpc, "shop", "web-1").await;
    let kinds: Vec<(ActionKind, ActionOutcome)> =
        undone.iter().map(|r| (r.kind(), r.outcome())).collect();
    assert_eq!(
        kinds,
        vec![
            (ActionKind::Thaw, ActionOutcome::Succeeded),
            (ActionKind::NetworkRestore, ActionOutcome::Succeeded),
            (ActionKind::Release, ActionOutcome::Succeeded),
        ],
        "{undone:?}"
    );
    assert!(!wired.container.is_frozen(), "thawed");
    assert!(
        wired.container.runs(Duration::from_secs(2)),
        "the container's processes run again"
    );
    let labels = fake.pod("shop", "web-1").unwrap().metadata.labels.unwrap();
    assert_eq!(
        labels.get(kube_actions::QUARANTINE_LABEL),
        None,
        "label removed"
    );
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("web"),
        "other labels kept"
    );
    let (wired, echoed) = tokio::task::spawn_blocking(move || {
        let mut wired = wired;
        let echoed = wired.echo("released");
        (wired, echoed)
    })
    .await
    .unwrap();
    assert_eq!(echoed.as_deref(), Some("released"), "network back");
    // The runtime still owns a released container: it can remove it.
    wired
        .container
        .remove()
        .expect("podman removes the released container");
    assert!(
        client
            .list_quarantined(ListQuarantinedRequest {})
            .await
            .unwrap()
            .into_inner()
            .pods
            .is_empty()
    );
    let permissions: std::collections::BTreeSet<_> = kube_actions::KUBE_PERMISSIONS
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    assert!(
        fake.used_permissions().is_subset(&permissions),
        "{:?}",
        fake.used_permissions()
    );
    service.stop().await;
}
