//! kube-rs against the fake, over real HTTP: what the collector and the
//! responder rely on behaves as the API server would.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use vigil_fake_kube::{FakeKube, Rbac};

fn pod(namespace: &str, name: &str, node: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([("app".into(), name.into())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("registry.example/web:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn start(rbac: Rbac) -> (FakeKube, kube::Client) {
    let fake = FakeKube::start(rbac).await.expect("fake API server");
    let client = fake.client().expect("client");
    (fake, client)
}

fn status_code(error: kube::Error) -> u16 {
    match error {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn lists_pods_by_node_and_watches_new_ones() {
    let (fake, client) = start(Rbac::allow_all()).await;
    fake.put_pod(&pod("shop", "web", "n1")).expect("put");
    fake.put_pod(&pod("shop", "db", "n2")).expect("put");
    let pods: Api<Pod> = Api::all(client);
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .expect("list");
    let names: Vec<_> = on_n1
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["web"]);

    let config = watcher::Config::default().fields("spec.nodeName=n1");
    let mut events = watcher(pods, config).boxed();
    let mut seen = Vec::new();
    fake.put_pod(&pod("shop", "cache", "n1")).expect("put");
    fake.put_pod(&pod("shop", "other", "n2")).expect("put");
    while !(seen.contains(&"cache".to_owned()) && seen.contains(&"web".to_owned())) {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("watch event in time")
            .expect("stream open")
            .expect("watch ok");
        match event {
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                seen.push(p.metadata.name.unwrap_or_default())
            }
            _ => {}
        }
    }
    assert!(!seen.contains(&"other".to_owned()), "{seen:?}");
}

#[tokio::test]
async fn patches_evicts_and_keeps_network_policies() {
    let (fake, client) = start(Rbac::allow_all()).await;
    fake.put_pod(&pod("shop", "web", "n1")).expect("put");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");

    let merge = json!({"metadata": {"labels": {"vigil.dev/quarantine": "true"}}});
    pods.patch("web", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("merge patch");
    let apply = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "annotations": {"vigil.dev/finding": "f1"}}});
    pods.patch(
        "web",
        &PatchParams::apply("vigil-responder"),
        &Patch::Apply(&apply),
    )
    .await
    .expect("apply patch");
    let stored = fake.pod("shop", "web").expect("pod");
    assert_eq!(
        stored
            .metadata
            .labels
            .expect("labels")
            .get("vigil.dev/quarantine"),
        Some(&"true".to_owned())
    );
    assert_eq!(
        stored
            .metadata
            .annotations
            .expect("annotations")
            .get("vigil.dev/finding"),
        Some(&"f1".to_owned())
    );

    let typo = json!({"metadata": {"lables": {"a": "b"}}});
    let error = pods
        .patch("web", &PatchParams::default(), &Patch::Merge(&typo))
        .await
        .expect_err("unknown field");
    assert_eq!(status_code(error), 422);

    let policies: Api<NetworkPolicy> = Api::namespaced(client, "shop");
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("vigil-quarantine".into()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "vigil.dev/quarantine".into(),
                    "true".into(),
                )])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..Default::default()
        }),
    };
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create");
    let again = policies
        .create(&PostParams::default(), &policy)
        .await
        .expect_err("exists");
    assert_eq!(status_code(again), 409);
    assert!(fake.network_policy("shop", "vigil-quarantine").is_some());

    pods.evict("web", &EvictParams::default())
        .await
        .expect("evict");
    assert!(fake.pod("shop", "web").is_none());
    let gone = pods
        .delete("web", &DeleteParams::default())
        .await
        .expect_err("gone");
    assert_eq!(status_code(gone), 404);

    let used = fake.used_permissions();
    for wanted in [
        ("", "pods", "patch"),
        ("", "pods/eviction", "create"),
        ("", "pods", "delete"),
        ("networking.k8s.io", "networkpolicies", "create"),
    ] {
        let wanted = (
            wanted.0.to_owned(),
            wanted.1.to_owned(),
            wanted.2.to_owned(),
        );
        assert!(used.contains(&wanted), "{wanted:?} not in {used:?}");
    }
}

#[tokio::test]
async fn enforces_the_manifest_rbac_and_injected_failures() {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../k8s/base/rbac/collector.yaml"
    );
    let rbac = Rbac::from_manifest(manifest, "vigil-collector").expect("collector role");
    let (fake, client) = start(rbac).await;
    fake.put_pod(&pod("shop", "web", "n1")).expect("put");
    let pods: Api<Pod> = Api::all(client.clone());
    pods.list(&ListParams::default())
        .await
        .expect("collector may list");
    // 500, not 503/504: kube's client retries those by itself.
    fake.fail_next("list", "pods", 500, 1);
    assert_eq!(
        status_code(
            pods.list(&ListParams::default())
                .await
                .expect_err("injected")
        ),
        500
    );
    pods.list(&ListParams::default()).await.expect("only once");

    let namespaced: Api<Pod> = Api::namespaced(client, "shop");
    let merge = json!({"metadata": {"labels": {"x": "y"}}});
    let denied = namespaced
        .patch("web", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect_err("collector may not patch");
    assert_eq!(status_code(denied), 403);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 500, 200, 403]);
}
