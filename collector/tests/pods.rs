//! Pod attribution through the whole collector: a process in a pod-like
//! sandbox (kubepods-style cgroup, own namespaces) is attributed to its
//! container id by the real BPF programs and, with the API serving a pod
//! whose containerStatuses name that id, to its pod.
//!
//! No Kubernetes API server can run here: the API is `vigil_fake_kube`, a
//! fake server that speaks the real HTTP API with k8s-openapi JSON and
//! enforces the collector's ClusterRole from `k8s/base/rbac/collector.yaml`.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod publish_support;

use std::{collections::BTreeSet, path::PathBuf, process::Child, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use publish_support::{Running, config, read};
use vigil_bus::{subject, topology::EVENTS};
use vigil_collector::{Config, KUBE_PERMISSIONS, Source};
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_proto::v1::{Event, EventBatch};
use vigil_testkit::{NatsServer, PodSandbox, require_root};

const NODE: &str = "pods-test-node";

fn cluster_role() -> Rbac {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../k8s/base/rbac/collector.yaml");
    Rbac::from_manifest(path, "vigil-collector").expect("the collector's ClusterRole")
}

fn pod(name: &str, node: &str, container_id: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "5f7c9d"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5f7c9d", "uid": "rs-1", "controller": true}]
        },
        "spec": {"nodeName": node, "serviceAccountName": "web", "containers": [{"name": "app", "image": "ghcr.io/acme/web:1.4"}]},
        "status": {"containerStatuses": [{
            "name": "app", "image": "ghcr.io/acme/web:1.4", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": format!("containerd://{container_id}")
        }]}
    }))
    .unwrap()
}

fn collector_config(nats: &NatsServer, fake: &FakeKube) -> Config {
    let mut config = config(nats, NODE);
    config.source = Source::Ebpf;
    config.ring_buffer_bytes = 1 << 24;
    config.kube.enabled = true;
    config.kube.api_url = fake.url();
    config
}

/// A process in the sandbox that keeps opening a file.
fn busy(sandbox: &PodSandbox) -> Child {
    sandbox
        .spawn(
            "/bin/sh",
            &[
                "-c",
                "while true; do cat /etc/hostname > /dev/null; sleep 0.1; done",
            ],
        )
        .unwrap()
}

/// The first event of the sandbox's container for which `matches` holds.
async fn sandbox_event(
    nats: &NatsServer,
    sandbox: &PodSandbox,
    matches: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let filter = subject::events(NODE, subject::event_partition(&sandbox.container_id));
    let batches = read::<EventBatch>(nats, &EVENTS, &filter, Duration::from_secs(20), |b| {
        b.iter()
            .flat_map(|b| &b.message.events)
            .any(|e| e.container_id == sandbox.container_id && matches(e))
    })
    .await;
    batches
        .into_iter()
        .flat_map(|b| b.message.events)
        .find(|e| e.container_id == sandbox.container_id && matches(e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_process_is_attributed_to_its_container_and_pod() {
    if !require_root("a_sandboxed_process_is_attributed_to_its_container_and_pod") {
        return;
    }
    let fake = FakeKube::start(cluster_role()).await.unwrap();
    let sandbox = PodSandbox::create().unwrap();
    fake.put_pod(&pod("web-5f7c9d-abcde", NODE, &sandbox.container_id))
        .unwrap();
    fake.put_pod(&pod("elsewhere", "other-node", "0123abcd"))
        .unwrap();
    let nats = NatsServer::start();
    let collector = Running::start(collector_config(&nats, &fake)).await;
    let mut child = busy(&sandbox);

    let event = sandbox_event(&nats, &sandbox, |e| e.pod.is_some()).await;
    child.kill().unwrap();
    child.wait().unwrap();
    collector.stop().await;
    let event = event.expect("an event of the sandbox with its pod within 20 s");
    assert_eq!(event.pod_uid, sandbox.pod_uid);
    assert_eq!(event.cgroup_path, sandbox.cgroup_path);
    let pod = event.pod.unwrap();
    assert_eq!(
        (pod.name.as_str(), pod.namespace.as_str()),
        ("web-5f7c9d-abcde", "shop")
    );
    assert_eq!(pod.labels["app"], "web");
    assert_eq!(pod.service_account, "web");
    assert_eq!(
        (pod.container_name.as_str(), pod.image.as_str()),
        ("app", "ghcr.io/acme/web:1.4")
    );
    assert_eq!(
        (pod.owner_kind.as_str(), pod.owner_name.as_str()),
        ("Deployment", "web")
    );

    let used = fake.used_permissions();
    let allowed: BTreeSet<(String, String, String)> = KUBE_PERMISSIONS
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(
        used, allowed,
        "the collector used exactly its declared permissions"
    );
    assert!(
        fake.requests().iter().all(|r| r.status < 400),
        "{:?}",
        fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_the_api_does_not_know_has_its_id_alone() {
    if !require_root("a_container_the_api_does_not_know_has_its_id_alone") {
        return;
    }
    let fake = FakeKube::start(cluster_role()).await.unwrap();
    let sandbox = PodSandbox::create().unwrap();
    let other = PodSandbox::create().unwrap();
    fake.put_pod(&pod("other", NODE, &other.container_id))
        .unwrap();
    let nats = NatsServer::start();
    let collector = Running::start(collector_config(&nats, &fake)).await;
    // The known sandbox shows the watch has listed the pods.
    let mut known = busy(&other);
    let listed = {
        let filter = subject::events(NODE, subject::event_partition(&other.container_id));
        read::<EventBatch>(&nats, &EVENTS, &filter, Duration::from_secs(20), |b| {
            b.iter()
                .flat_map(|b| &b.message.events)
                .any(|e| e.pod.is_some())
        })
        .await
    };
    assert!(
        listed
            .iter()
            .flat_map(|b| &b.message.events)
            .any(|e| e.pod.is_some())
    );
    let mut child = busy(&sandbox);
    let event = sandbox_event(&nats, &sandbox, |_| true).await;
    for process in [&mut known, &mut child] {
        process.kill().unwrap();
        process.wait().unwrap();
    }
    collector.stop().await;
    let event = event.expect("an event of the unknown sandbox");
    assert_eq!(event.pod_uid, sandbox.pod_uid);
    assert_eq!(event.pod, None, "container id alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_is_retried_until_pods_are_known() {
    if !require_root("a_failing_api_is_retried_until_pods_are_known") {
        return;
    }
    let fake = FakeKube::start(cluster_role()).await.unwrap();
    // The first list and the first watch fail as an overloaded API server would.
    fake.fail_next("list", "pods", 500, 2);
    fake.fail_next("watch", "pods", 504, 1);
    let sandbox = PodSandbox::create().unwrap();
    fake.put_pod(&pod("web-5f7c9d-retry", NODE, &sandbox.container_id))
        .unwrap();
    let nats = NatsServer::start();
    let collector = Running::start(collector_config(&nats, &fake)).await;
    let mut child = busy(&sandbox);
    let event = sandbox_event(&nats, &sandbox, |e| e.pod.is_some()).await;
    child.kill().unwrap();
    child.wait().unwrap();
    collector.stop().await;
    let failed = fake.requests().iter().filter(|r| r.status >= 500).count();
    assert!(
        failed >= 2,
        "the injected failures were hit: {:?}",
        fake.requests()
    );
    let event = event.expect("the pod is known once the API answers");
    assert_eq!(event.pod.unwrap().name, "web-5f7c9d-retry");
}
