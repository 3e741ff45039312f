//! Pod attribution: container id → pod metadata, from the Kubernetes API.
//!
//! The collector watches the pods of its own node (`fieldSelector
//! spec.nodeName=<node>`, list + watch only, see `k8s/base/rbac/collector.yaml`)
//! and maps the id of each container in `status.containerStatuses` (and the
//! init and ephemeral ones) to the pod's name, namespace, labels, service
//! account, container name, image and owner. Without the API, events carry
//! the container id alone.
//!
//! Owner: a pod made by a Deployment is owned by a ReplicaSet named
//! `<deployment>-<pod-template-hash>`; when the pod's `pod-template-hash`
//! label matches that suffix the owner is shown as the Deployment, without
//! needing read access to ReplicaSets.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::PodMeta;

/// Every (api group, resource, verb) the collector uses in the Kubernetes
/// API; `k8s/base/rbac/collector.yaml` grants exactly these.
pub const KUBE_PERMISSIONS: &[(&str, &str, &str)] = &[("", "pods", "list"), ("", "pods", "watch")];

/// `[kube]`: the metadata provider.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KubeConfig {
    /// Watch the pods of this node for pod metadata.
    pub enabled: bool,
    /// API server URL (tests); "" = in-cluster service account, else kubeconfig.
    pub api_url: String,
}

impl KubeConfig {
    pub fn validate(&self, problems: &mut vigil_service::Problems) {
        if !self.api_url.is_empty() && self.api_url.parse::<http::Uri>().is_err() {
            problems.add("kube.api_url", format!("{:?} is not a URL", self.api_url));
        }
    }

    /// A client for the configured API server.
    pub async fn client(&self) -> Result<kube::Client, PodsError> {
        if self.api_url.is_empty() {
            return kube::Client::try_default().await.map_err(PodsError::Client);
        }
        let url = self
            .api_url
            .parse::<http::Uri>()
            .map_err(|error| PodsError::Url(error.to_string()))?;
        kube::Client::try_from(kube::Config::new(url)).map_err(PodsError::Client)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("kube.api_url is not a URL: {0}")]
    Url(String),
    #[error("cannot create a Kubernetes client (in-cluster or kubeconfig): {0}")]
    Client(#[source] kube::Error),
}

/// Container id → pod metadata, shared by the watcher (writer) and the
/// enricher (reader).
#[derive(Clone, Debug, Default)]
pub struct PodDirectory {
    containers: Arc<RwLock<HashMap<String, Arc<PodMeta>>>>,
}

impl PodDirectory {
    /// The pod of container `id`, if known.
    pub fn get(&self, container_id: &str) -> Option<PodMeta> {
        if container_id.is_empty() {
            return None;
        }
        let containers = self.containers.read().ok()?;
        containers.get(container_id).map(|meta| (**meta).clone())
    }

    pub fn len(&self) -> usize {
        self.containers.read().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, pod: &Pod) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        if let Ok(mut containers) = self.containers.write() {
            containers
                .retain(|_, meta| !(meta.name == pod_name && meta.namespace == namespace_of(pod)));
            containers.extend(
                pod_entries(pod)
                    .into_iter()
                    .map(|(id, meta)| (id, Arc::new(meta))),
            );
        }
    }

    fn delete(&self, pod: &Pod) {
        if let Ok(mut containers) = self.containers.write() {
            for (id, _) in pod_entries(pod) {
                containers.remove(&id);
            }
        }
    }

    fn replace(&self, pods: &[Pod]) {
        let fresh = pods
            .iter()
            .flat_map(pod_entries)
            .map(|(id, meta)| (id, Arc::new(meta)))
            .collect();
        if let Ok(mut containers) = self.containers.write() {
            *containers = fresh;
        }
    }
}

/// Watches the pods of `node` into `directory` until `shutdown`. Errors
/// (API down, 403) are logged and retried with back-off; the collector
/// keeps publishing with container ids alone meanwhile.
pub async fn watch(
    client: kube::Client,
    node: &str,
    directory: PodDirectory,
    shutdown: CancellationToken,
) {
    let pods: kube::Api<Pod> = kube::Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(pods, config).default_backoff().boxed();
    let mut initial: Vec<Pod> = Vec::new();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Ok(watcher::Event::Init)) => initial.clear(),
            Some(Ok(watcher::Event::InitApply(pod))) => initial.push(pod),
            Some(Ok(watcher::Event::InitDone)) => {
                directory.replace(&std::mem::take(&mut initial));
                tracing::info!(
                    message = "Pods of this node listed.",
                    containers = directory.len()
                );
            }
            Some(Ok(watcher::Event::Apply(pod))) => directory.apply(&pod),
            Some(Ok(watcher::Event::Delete(pod))) => directory.delete(&pod),
            Some(Err(error)) => {
                ::metrics::counter!(crate::metrics::KUBE_ERRORS).increment(1);
                tracing::warn!(message = "Watching pods failed; retrying.", %error);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The container ids of `pod` with the metadata of each.
pub fn pod_entries(pod: &Pod) -> Vec<(String, PodMeta)> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let statuses = [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ];
    statuses
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|container| {
            let id = container_id(container.container_id.as_deref()?)?;
            Some((id.to_owned(), meta(pod, container)))
        })
        .collect()
}

/// `containerd://abc…` (or `cri-o://`, `docker://`) → `abc…`.
pub fn container_id(runtime_id: &str) -> Option<&str> {
    let id = runtime_id
        .split_once("://")
        .map_or(runtime_id, |(_, id)| id);
    (!id.is_empty()).then_some(id)
}

fn namespace_of(pod: &Pod) -> String {
    pod.metadata.namespace.clone().unwrap_or_default()
}

fn meta(pod: &Pod, container: &ContainerStatus) -> PodMeta {
    let spec = pod.spec.as_ref();
    let image = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container.name)
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| container.image.clone());
    let (owner_kind, owner_name) = owner(pod);
    PodMeta {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: namespace_of(pod),
        labels: pod
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        container_name: container.name.clone(),
        image,
        owner_kind,
        owner_name,
    }
}

/// The controlling owner; a Deployment's ReplicaSet shown as the Deployment.
fn owner(pod: &Pod) -> (String, String) {
    let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    else {
        return (String::new(), String::new());
    };
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    if owner.kind == "ReplicaSet"
        && let Some(hash) = hash
        && let Some(deployment) = owner.name.strip_suffix(&format!("-{hash}"))
    {
        return ("Deployment".to_owned(), deployment.to_owned());
    }
    (owner.kind.clone(), owner.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(owner_kind: &str, owner_name: &str, hash: Option<&str>) -> Pod {
        let mut labels = serde_json::json!({"app": "web"});
        if let Some(hash) = hash {
            labels["pod-template-hash"] = hash.into();
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-7d4b9c-x2x", "namespace": "shop", "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name, "uid": "u1", "controller": true}]
            },
            "spec": {"nodeName": "n1", "serviceAccountName": "web-sa", "containers": [
                {"name": "app", "image": "ghcr.io/acme/web:1.4"}, {"name": "proxy", "image": "envoy:1.30"}
            ]},
            "status": {"containerStatuses": [
                {"name": "app", "image": "ghcr.io/acme/web@sha256:1", "imageID": "", "ready": true, "restartCount": 0, "containerID": "containerd://abc123"},
                {"name": "proxy", "image": "envoy", "imageID": "", "ready": true, "restartCount": 0, "containerID": "cri-o://def456"},
                {"name": "pending", "image": "x", "imageID": "", "ready": false, "restartCount": 0}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn container_ids_map_to_their_pod_and_container() {
        let entries = pod("ReplicaSet", "web-7d4b9c", Some("7d4b9c"));
        let entries = pod_entries(&entries);
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["abc123", "def456"],
            "runtime prefixes stripped, no id no entry"
        );
        let app = &entries[0].1;
        assert_eq!(
            (app.name.as_str(), app.namespace.as_str()),
            ("web-7d4b9c-x2x", "shop")
        );
        assert_eq!(app.labels["app"], "web");
        assert_eq!(app.service_account, "web-sa");
        assert_eq!(
            (app.container_name.as_str(), app.image.as_str()),
            ("app", "ghcr.io/acme/web:1.4")
        );
        assert_eq!(
            (app.owner_kind.as_str(), app.owner_name.as_str()),
            ("Deployment", "web")
        );
        assert_eq!(entries[1].1.image, "envoy:1.30");
    }

    #[test]
    fn other_owners_are_shown_as_they_are() {
        let (_, meta) = pod_entries(&pod("ReplicaSet", "web-other", Some("7d4b9c"))).remove(0);
        assert_eq!(
            (meta.owner_kind.as_str(), meta.owner_name.as_str()),
            ("ReplicaSet", "web-other")
        );
        let (_, meta) = pod_entries(&pod("DaemonSet", "agent", None)).remove(0);
        assert_eq!(
            (meta.owner_kind.as_str(), meta.owner_name.as_str()),
            ("DaemonSet", "agent")
        );
        assert_eq!(container_id("docker://"), None);
        assert_eq!(container_id("abc"), Some("abc"));
    }

    #[test]
    fn the_directory_follows_applies_and_deletes() {
        let directory = PodDirectory::default();
        let web = pod("DaemonSet", "agent", None);
        directory.replace(std::slice::from_ref(&web));
        assert_eq!(directory.get("abc123").unwrap().container_name, "app");
        assert_eq!(directory.get(""), None);
        directory.delete(&web);
        assert!(directory.is_empty());
        directory.apply(&web);
        assert_eq!(directory.len(), 2);
    }
}
