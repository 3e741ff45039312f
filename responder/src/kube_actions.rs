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
use vigil_proto::v1::{ActionOutcome, Finding};

use crate::{config::KubeConfig, node::Done, policy::Action};

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

/// A Kubernetes client with Vigil's timeouts.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    timeout: Duration,
    /// The policy's protected labels, checked against the pod as the API
    /// server has it (the finding's copy of the labels may be missing or old).
    protected_labels: BTreeMap<String, String>,
}

impl Kube {
    /// Connects to `api_url`, or to what in-cluster config or kubeconfig name.
    pub async fn connect(
        config: &KubeConfig,
        protected_labels: BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut kube_config = match &config.api_url {
            Some(url) => {
                let uri = url
                    .parse::<http::Uri>()
                    .map_err(|error| format!("kube.api_url {url:?}: {error}"))?;
                kube::Config::new(uri)
            }
            None => kube::Config::infer().await.map_err(|e| e.to_string())?,
        };
        // Each request is bounded by `retry`'s own timeout, which says so
        // in the record; kube's read timeout would only blur that message.
        kube_config.read_timeout = None;
        kube_config.connect_timeout = Some(timeout);
        let client = Client::try_from(kube_config).map_err(|e| e.to_string())?;
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

    /// Carries out a cluster-level action for the finding's pod, after
    /// reading the pod: a missing pod fails, a protected one is refused.
    pub async fn act(&self, action: Action, finding: &Finding) -> Done {
        let (namespace, pod) = (finding.namespace.as_str(), finding.pod.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let current = match self.retry("get pod", || pods.get_opt(pod)).await {
            Ok(Some(current)) => current,
            Ok(None) => {
                return (
                    ActionOutcome::Failed,
                    format!("pod {namespace}/{pod} does not exist"),
                );
            }
            Err(reason) => return (ActionOutcome::Failed, reason),
        };
        let labels = current.metadata.labels.clone().unwrap_or_default();
        if let Some((key, value)) = self
            .protected_labels
            .iter()
            .find(|(key, value)| labels.get(*key) == Some(*value))
        {
            return (
                ActionOutcome::Refused,
                format!("pod {namespace}/{pod} is labelled {key}={value}, which is protected"),
            );
        }
        let result = match action {
            Action::Quarantine => self.quarantine(&pods, namespace, pod, &labels).await,
            Action::Annotate => self.annotate(&pods, namespace, pod, finding).await,
            Action::Evict => self.evict(&pods, namespace, pod).await,
            Action::DeletePod => self.delete(&pods, namespace, pod).await,
            other => Err(format!("{} is not a cluster-level action", other.label())),
        };
        result.unwrap_or_else(|reason| (ActionOutcome::Failed, reason))
    }

    async fn quarantine(
        &self,
        pods: &Api<Pod>,
        namespace: &str,
        pod: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Done, String> {
        self.ensure_policy(namespace).await?;
        if labels
            .get(QUARANTINE_LABEL)
            .is_some_and(|value| value == "true")
        {
            return Ok((
                ActionOutcome::AlreadyDone,
                format!(
                    "pod {namespace}/{pod} was already labelled {QUARANTINE_LABEL}=true; NetworkPolicy {QUARANTINE_POLICY} in place"
                ),
            ));
        }
        let patch = serde_json::json!({"metadata": {"labels": {QUARANTINE_LABEL: "true"}}});
        self.patch_pod(pods, pod, &patch).await?;
        Ok((
            ActionOutcome::Succeeded,
            format!(
                "labelled pod {namespace}/{pod} {QUARANTINE_LABEL}=true; NetworkPolicy {QUARANTINE_POLICY} denies its ingress and egress"
            ),
        ))
    }

    /// Removes the quarantine label.
    pub async fn release(&self, namespace: &str, pod: &str) -> Done {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({"metadata": {"labels": {QUARANTINE_LABEL: null}}});
        match self.patch_pod(&pods, pod, &patch).await {
            Ok(()) => (
                ActionOutcome::Succeeded,
                format!("removed {QUARANTINE_LABEL} from pod {namespace}/{pod}"),
            ),
            Err(reason) => (ActionOutcome::Failed, reason),
        }
    }

    async fn annotate(
        &self,
        pods: &Api<Pod>,
        namespace: &str,
        pod: &str,
        finding: &Finding,
    ) -> Result<Done, String> {
        let patch = serde_json::json!({"metadata": {"annotations": {
            FINDING_ANNOTATION: finding.id,
            FINDING_NAME_ANNOTATION: finding.name,
        }}});
        self.patch_pod(pods, pod, &patch).await?;
        Ok((
            ActionOutcome::Succeeded,
            format!(
                "annotated pod {namespace}/{pod} with finding {}",
                finding.id
            ),
        ))
    }

    async fn evict(&self, pods: &Api<Pod>, namespace: &str, pod: &str) -> Result<Done, String> {
        let params = EvictParams::default();
        match self.retry("evict pod", || pods.evict(pod, &params)).await {
            Ok(_) => Ok((
                ActionOutcome::Succeeded,
                format!("evicted pod {namespace}/{pod}"),
            )),
            Err(reason) if reason.contains("(404)") => {
                Err(format!("pod {namespace}/{pod} does not exist"))
            }
            Err(reason) => Err(reason),
        }
    }

    async fn delete(&self, pods: &Api<Pod>, namespace: &str, pod: &str) -> Result<Done, String> {
        let params = DeleteParams::default();
        match self.retry("delete pod", || pods.delete(pod, &params)).await {
            Ok(_) => Ok((
                ActionOutcome::Succeeded,
                format!("deleted pod {namespace}/{pod}"),
            )),
            Err(reason) if reason.contains("(404)") => {
                Err(format!("pod {namespace}/{pod} does not exist"))
            }
            Err(reason) => Err(reason),
        }
    }

    async fn patch_pod(
        &self,
        pods: &Api<Pod>,
        pod: &str,
        patch: &serde_json::Value,
    ) -> Result<(), String> {
        let params = PatchParams::apply(FIELD_MANAGER);
        let params = PatchParams {
            field_manager: params.field_manager,
            ..Default::default()
        };
        let patch = Patch::Merge(patch);
        match self
            .retry("patch pod", || pods.patch(pod, &params, &patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(reason) if reason.contains("(404)") => {
                Err(format!("pod {pod} does not exist: {reason}"))
            }
            Err(reason) => Err(reason),
        }
    }

    /// Creates the deny-all policy if missing, or puts it back to Vigil's
    /// spec if someone changed it.
    async fn ensure_policy(&self, namespace: &str) -> Result<(), String> {
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
                Err(reason) if reason.contains("(409)") => Ok(()),
                other => other.map(|_| ()),
            },
        }
    }

    /// Runs `request` until it succeeds, fails for good, or attempts run
    /// out; each attempt bounded by the configured timeout.
    async fn retry<T, F, Fut>(&self, what: &str, mut request: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout(self.timeout, request()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => describe(&error),
                Err(_) => (format!("timed out after {:?}", self.timeout), true),
            };
            let (message, transient) = error;
            if !transient || attempt >= ATTEMPTS {
                return Err(format!(
                    "{what}: {message} (attempt {attempt} of {ATTEMPTS})"
                ));
            }
            crate::metrics::error("kube_retry", "act");
            tracing::debug!(message = "Retrying Kubernetes request.", what, attempt, error = %message);
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }
}

/// The error's text (with the HTTP code as `(NNN)`) and whether a retry may help.
fn describe(error: &kube::Error) -> (String, bool) {
    match error {
        kube::Error::Api(status) => {
            let transient = matches!(status.code, 409 | 429 | 500 | 502 | 503 | 504);
            (
                format!("{} ({}): {}", status.reason, status.code, status.message),
                transient,
            )
        }
        // Connection refused, reset, TLS and the like: the server may be back soon.
        other => (other.to_string(), true),
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
