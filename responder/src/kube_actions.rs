//! Cluster-level actions through the Kubernetes API (kube-rs):
//!
//! * quarantine: make sure the namespace has the deny-all NetworkPolicy
//!   `vigil-quarantine` (selects pods labelled `vigil.dev/quarantined=true`,
//!   both policy types, no rule: no ingress and no egress), then label the
//!   pod, so only that one pod is isolated, not every replica of its owner;
//! * annotate: the finding's id and rule on the pod;
//! * evict (respects PodDisruptionBudgets) or delete the pod;
//! * release: remove the label (the policy stays for the next quarantine).
//!
//! A NetworkPolicy always lets a pod reach its own node, and whether it
//! cuts connections already open depends on the network plugin, so this is
//! the second line; the node agent's freeze and network cut are the first.
//!
//! Transient API errors (409 conflict, 429, 5xx, timeouts) are retried with
//! back-off, because every request here is idempotent; 403 and 404 are not.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::{
        core::v1::Pod,
        networking::v1::{NetworkPolicy, NetworkPolicySpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{DeleteParams, EvictParams, Patch, PatchParams, PostParams},
};
use vigil_proto::v1::Finding;

use crate::{actions::Done, config::KubeConfig};

/// Every (API group, resource, verb) this crate uses; the ClusterRole
/// `vigil-responder` (k8s/base/rbac/responder.yaml) grants exactly these.
pub const KUBE_PERMISSIONS: &[(&str, &str, &str)] = &[
    ("", "pods", "get"),
    ("", "pods", "patch"),
    ("", "pods", "delete"),
    ("", "pods/eviction", "create"),
    ("networking.k8s.io", "networkpolicies", "get"),
    ("networking.k8s.io", "networkpolicies", "create"),
    ("networking.k8s.io", "networkpolicies", "patch"),
];

/// The label that puts a pod under the deny-all policy.
pub const QUARANTINE_LABEL: &str = "vigil.dev/quarantined";
pub const QUARANTINE_POLICY: &str = "vigil-quarantine";
pub const FINDING_ANNOTATION: &str = "vigil.dev/finding";
pub const FINDING_NAME_ANNOTATION: &str = "vigil.dev/finding-name";
const FIELD_MANAGER: &str = "vigil-responder";
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Why a request to the Kubernetes API (or setting up its client) failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kube.api_url {url:?}: {source}")]
    ApiUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("no in-cluster config or kubeconfig: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build the client: {0}")]
    Client(#[source] kube::Error),
    #[error("{what}: {reason} ({code}): {message} (attempt {attempt} of {ATTEMPTS})")]
    Status {
        what: &'static str,
        code: u16,
        reason: String,
        message: String,
        attempt: u32,
    },
    #[error("{what}: {message} (attempt {attempt} of {ATTEMPTS})")]
    Transport {
        what: &'static str,
        message: String,
        attempt: u32,
    },
    #[error("{what}: timed out after {after:?} (attempt {attempt} of {ATTEMPTS})")]
    TimedOut {
        what: &'static str,
        after: Duration,
        attempt: u32,
    },
    #[error("pod {namespace}/{pod} does not exist")]
    NoSuchPod { namespace: String, pod: String },
}

impl KubeError {
    /// Whether asking again may succeed: conflicts, throttling, server
    /// errors, timeouts and broken connections may; 403, 404 and a bad
    /// configuration will not change by asking again.
    pub fn retryable(&self) -> bool {
        match self {
            KubeError::Status { code, .. } => matches!(code, 409 | 429 | 500 | 502 | 503 | 504),
            KubeError::Transport { .. } | KubeError::TimedOut { .. } => true,
            KubeError::ApiUrl { .. }
            | KubeError::Infer(_)
            | KubeError::Client(_)
            | KubeError::NoSuchPod { .. } => false,
        }
    }

    fn code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A 404 about `namespace/pod` says the pod is gone, in those words.
    fn pod_gone(self, namespace: &str, pod: &str) -> Self {
        if self.code() == Some(404) {
            KubeError::NoSuchPod {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
            }
        } else {
            self
        }
    }
}

type Result<T> = std::result::Result<T, KubeError>;

/// A Kubernetes client with Vigil's timeouts.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    timeout: Duration,
    /// The policy's protected labels, checked against the pod as the API
    /// server has it (the finding's copy of the labels may be missing or old).
    protected_labels: BTreeMap<String, String>,
}

/// The pod a cluster action is about, as the API server has it now.
struct Target<'f> {
    pods: Api<Pod>,
    namespace: &'f str,
    pod: &'f str,
    labels: BTreeMap<String, String>,
}

impl Kube {
    /// Connects to `api_url`, or to what in-cluster config or kubeconfig name.
    pub async fn connect(
        config: &KubeConfig,
        protected_labels: BTreeMap<String, String>,
    ) -> Result<Self> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut kube_config = match &config.api_url {
            Some(url) => {
                let uri = url
                    .parse::<http::Uri>()
                    .map_err(|source| KubeError::ApiUrl {
                        url: url.clone(),
                        source,
                    })?;
                kube::Config::new(uri)
            }
            None => kube::Config::infer().await?,
        };
        // Each request is bounded by `retry`'s own timeout, which says so
        // in the record; kube's read timeout would only blur that message.
        kube_config.read_timeout = None;
        kube_config.connect_timeout = Some(timeout);
        let client = Client::try_from(kube_config).map_err(KubeError::Client)?;
        Ok(Self::from_client(client, timeout, protected_labels))
    }

    pub fn from_client(
        client: Client,
        timeout: Duration,
        protected_labels: BTreeMap<String, String>,
    ) -> Self {
        Self {
            client,
            timeout,
            protected_labels,
        }
    }

    /// Reads the finding's pod: a missing pod is an error, a protected one
    /// is refused (`Err(Done)`), whatever the finding's copy of its labels says.
    async fn target<'f>(
        &self,
        finding: &'f Finding,
    ) -> Result<std::result::Result<Target<'f>, Done>> {
        let (namespace, pod) = (finding.namespace.as_str(), finding.pod.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let Some(current) = self.retry("get pod", || pods.get_opt(pod)).await? else {
            return Err(KubeError::NoSuchPod {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
            });
        };
        let labels = current.metadata.labels.unwrap_or_default();
        if let Some((key, value)) = self
            .protected_labels
            .iter()
            .find(|(key, value)| labels.get(*key) == Some(*value))
        {
            return Ok(Err(Done::refused(format!(
                "pod {namespace}/{pod} is labelled {key}={value}, which is protected"
            ))));
        }
        Ok(Ok(Target {
            pods,
            namespace,
            pod,
            labels,
        }))
    }

    /// Isolates the pod: the deny-all policy in its namespace, then the label.
    pub async fn quarantine(&self, finding: &Finding) -> Result<Done> {
        let target = match self.target(finding).await? {
            Ok(target) => target,
            Err(refused) => return Ok(refused),
        };
        let (namespace, pod) = (target.namespace, target.pod);
        self.ensure_policy(namespace).await?;
        if target
            .labels
            .get(QUARANTINE_LABEL)
            .is_some_and(|value| value == "true")
        {
            return Ok(Done::already(format!(
                "pod {namespace}/{pod} was already labelled {QUARANTINE_LABEL}=true; NetworkPolicy {QUARANTINE_POLICY} in place"
            )));
        }
        let patch = serde_json::json!({"metadata": {"labels": {QUARANTINE_LABEL: "true"}}});
        self.patch_pod(&target.pods, namespace, pod, &patch).await?;
        Ok(Done::succeeded(format!(
            "labelled pod {namespace}/{pod} {QUARANTINE_LABEL}=true; NetworkPolicy {QUARANTINE_POLICY} denies its ingress and egress"
        )))
    }

    /// Removes the quarantine label.
    pub async fn release(&self, namespace: &str, pod: &str) -> Result<Done> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({"metadata": {"labels": {QUARANTINE_LABEL: null}}});
        self.patch_pod(&pods, namespace, pod, &patch).await?;
        Ok(Done::succeeded(format!(
            "removed {QUARANTINE_LABEL} from pod {namespace}/{pod}"
        )))
    }

    /// Puts the finding's id and rule on the pod.
    pub async fn annotate(&self, finding: &Finding) -> Result<Done> {
        let target = match self.target(finding).await? {
            Ok(target) => target,
            Err(refused) => return Ok(refused),
        };
        let patch = serde_json::json!({"metadata": {"annotations": {
            FINDING_ANNOTATION: finding.id,
            FINDING_NAME_ANNOTATION: finding.name,
        }}});
        self.patch_pod(&target.pods, target.namespace, target.pod, &patch)
            .await?;
        Ok(Done::succeeded(format!(
            "annotated pod {}/{} with finding {}",
            target.namespace, target.pod, finding.id
        )))
    }

    /// Evicts the pod (PodDisruptionBudgets apply).
    pub async fn evict(&self, finding: &Finding) -> Result<Done> {
        self.remove(finding, "evict pod", "evicted", |pods, pod| async move {
            pods.evict(&pod, &EvictParams::default()).await.map(|_| ())
        })
        .await
    }

    /// Deletes the pod.
    pub async fn delete(&self, finding: &Finding) -> Result<Done> {
        self.remove(finding, "delete pod", "deleted", |pods, pod| async move {
            pods.delete(&pod, &DeleteParams::default())
                .await
                .map(|_| ())
        })
        .await
    }

    /// Takes the finding's pod off its node with `request`, retried.
    async fn remove<F, Fut>(
        &self,
        finding: &Finding,
        what: &'static str,
        done: &str,
        request: F,
    ) -> Result<Done>
    where
        F: Fn(Api<Pod>, String) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), kube::Error>>,
    {
        let target = match self.target(finding).await? {
            Ok(target) => target,
            Err(refused) => return Ok(refused),
        };
        let (namespace, pod) = (target.namespace, target.pod);
        self.retry(what, || request(target.pods.clone(), pod.to_owned()))
            .await
            .map_err(|e| e.pod_gone(namespace, pod))?;
        Ok(Done::succeeded(format!("{done} pod {namespace}/{pod}")))
    }

    async fn patch_pod(
        &self,
        pods: &Api<Pod>,
        namespace: &str,
        pod: &str,
        patch: &serde_json::Value,
    ) -> Result<()> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let patch = Patch::Merge(patch);
        self.retry("patch pod", || pods.patch(pod, &params, &patch))
            .await
            .map(|_| ())
            .map_err(|e| e.pod_gone(namespace, pod))
    }

    /// Creates the deny-all policy if missing, or puts it back to Vigil's
    /// spec if someone changed it.
    async fn ensure_policy(&self, namespace: &str) -> Result<()> {
        let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), namespace);
        let wanted = deny_all_policy(namespace);
        let post = PostParams::default();
        match self
            .retry("get networkpolicy", || policies.get_opt(QUARANTINE_POLICY))
            .await?
        {
            Some(existing) if existing.spec == wanted.spec => Ok(()),
            Some(_) => {
                let patch = Patch::Merge(serde_json::json!({"spec": wanted.spec}));
                let params = PatchParams::default();
                self.retry("patch networkpolicy", || {
                    policies.patch(QUARANTINE_POLICY, &params, &patch)
                })
                .await
                .map(|_| ())
            }
            None => match self
                .retry("create networkpolicy", || policies.create(&post, &wanted))
                .await
            {
                // Another responder created it in between: that is the goal.
                Err(error) if error.code() == Some(409) => Ok(()),
                other => other.map(|_| ()),
            },
        }
    }

    /// Runs `request` until it succeeds, fails for good, or attempts run
    /// out; each attempt bounded by the configured timeout.
    async fn retry<T, F, Fut>(&self, what: &'static str, mut request: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout(self.timeout, request()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => classify(what, attempt, error),
                Err(_) => KubeError::TimedOut {
                    what,
                    after: self.timeout,
                    attempt,
                },
            };
            if !error.retryable() || attempt >= ATTEMPTS {
                return Err(error);
            }
            crate::metrics::error("kube_retry", "act");
            tracing::debug!(message = "Retrying Kubernetes request.", what, attempt, %error);
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }
}

fn classify(what: &'static str, attempt: u32, error: kube::Error) -> KubeError {
    match error {
        kube::Error::Api(status) => KubeError::Status {
            what,
            code: status.code,
            reason: status.reason,
            message: status.message,
            attempt,
        },
        // Connection refused, reset, TLS and the like: the server may be back soon.
        other => KubeError::Transport {
            what,
            message: other.to_string(),
            attempt,
        },
    }
}

/// Denies all ingress and egress of the quarantined pods of `namespace`.
pub fn deny_all_policy(namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(QUARANTINE_POLICY.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "vigil".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    QUARANTINE_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    }
}
