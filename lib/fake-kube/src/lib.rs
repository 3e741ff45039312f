//! A fake Kubernetes API server for tests.
//!
//! No API server can run on the machines Vigil is tested on, so the code
//! that talks to Kubernetes is tested against this one: a real HTTP server
//! on loopback that kube-rs talks to over the wire. It keeps Pods and
//! NetworkPolicies, checks every object written against the k8s-openapi
//! types (unknown fields are rejected by name), enforces the RBAC of one of
//! our own ClusterRoles, and records every request so a test can assert the
//! calls made and the permissions used.
//!
//! Simplifications, all on the lenient side of a real server except where
//! noted: server-side apply is a JSON merge patch (no field ownership);
//! strategic merge is a JSON merge patch; lists are never paginated; watch
//! never sends bookmarks or 410 Gone (the whole change log is kept).

mod rbac;
mod server;
mod store;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use tokio::sync::broadcast;

pub use rbac::{Permission, Rbac, RbacError};
use store::{Change, Kind, Store};

/// One request the fake answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Kubernetes verb: get, list, watch, create, patch, update, delete.
    pub verb: String,
    pub api_group: String,
    /// Resource with subresource, e.g. `pods/eviction`.
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub status: u16,
}

impl Recorded {
    fn unknown(method: &http::Method, path: &str, status: u16) -> Self {
        Recorded {
            method: method.to_string(),
            path: path.to_owned(),
            verb: String::new(),
            api_group: String::new(),
            resource: String::new(),
            namespace: String::new(),
            name: String::new(),
            status,
        }
    }
}

/// An API error, answered as a `metav1.Status`.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: String) -> Self {
        ApiError {
            code,
            reason: reason.to_owned(),
            message,
        }
    }

    fn invalid(kind: Kind, message: String) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{} is invalid: {message}", kind.kind()),
        )
    }

    fn not_found(kind: Kind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.resource()),
        )
    }

    fn already_exists(kind: Kind, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.resource()),
        )
    }

    fn conflict(kind: Kind, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified",
                kind.resource()
            ),
        )
    }

    /// The canonical reason for an injected status code.
    fn for_code(code: u16) -> Self {
        let reason = match code {
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Self::new(code, reason, format!("injected failure ({reason})"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.code)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        (status, axum::Json(body)).into_response()
    }
}

struct Failure {
    verb: String,
    resource: String,
    code: u16,
    remaining: u32,
}

/// State shared by the handlers and the test's handle.
struct Shared {
    rbac: Rbac,
    store: Mutex<Store>,
    changes: broadcast::Sender<Change>,
    requests: Mutex<Vec<Recorded>>,
    failures: Mutex<VecDeque<Failure>>,
    delay: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide every later assertion behind a
    // poisoned lock; the data is still consistent for our purposes.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn record(&self, recorded: Recorded) {
        lock(&self.requests).push(recorded);
    }

    fn delay(&self) -> Duration {
        *lock(&self.delay)
    }

    /// Called with the store locked by the writer, so a watch that
    /// subscribes under the same lock misses nothing and sees nothing twice.
    fn publish(&self, change: &Change) {
        // No receivers is normal: nobody is watching.
        let _ = self.changes.send(change.clone());
    }

    fn subscribe(&self, since: u64) -> (Vec<Change>, broadcast::Receiver<Change>) {
        let store = self.store();
        let receiver = self.changes.subscribe();
        (store.changes_since(since), receiver)
    }

    fn take_failure(&self, verb: &str, resource: &str) -> Option<ApiError> {
        let mut failures = lock(&self.failures);
        let index = failures
            .iter()
            .position(|f| f.verb == verb && f.resource == resource)?;
        let failure = &mut failures[index];
        let error = ApiError::for_code(failure.code);
        failure.remaining -= 1;
        if failure.remaining == 0 {
            failures.remove(index);
        }
        Some(error)
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum FakeKubeError {
    #[error("binding the fake API server: {0}")]
    Bind(std::io::Error),
    #[error("the object is not valid: {0}")]
    Invalid(String),
    #[error("building a client: {0}")]
    Client(String),
}

impl FakeKube {
    /// Starts on a free loopback port, enforcing `rbac`.
    pub async fn start(rbac: Rbac) -> Result<FakeKube, FakeKubeError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(FakeKubeError::Bind)?;
        let address = listener.local_addr().map_err(FakeKubeError::Bind)?;
        let (changes, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            rbac,
            store: Mutex::new(Store::default()),
            changes,
            requests: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "fake API server stopped");
            }
        });
        Ok(FakeKube {
            address,
            shared,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kube client for this server, default namespace `default`.
    pub fn client(&self) -> Result<kube::Client, FakeKubeError> {
        let uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| FakeKubeError::Client(e.to_string()))?;
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).map_err(|e| FakeKubeError::Client(e.to_string()))
    }

    /// Stores a pod (test set-up): validated, stamped and announced to watches.
    pub fn put_pod(&self, pod: &Pod) -> Result<(), FakeKubeError> {
        self.put(Kind::Pod, pod.metadata.namespace.as_deref(), pod)
    }

    pub fn put_network_policy(&self, policy: &NetworkPolicy) -> Result<(), FakeKubeError> {
        self.put(
            Kind::NetworkPolicy,
            policy.metadata.namespace.as_deref(),
            policy,
        )
    }

    fn put<T: serde::Serialize>(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        object: &T,
    ) -> Result<(), FakeKubeError> {
        let value =
            serde_json::to_value(object).map_err(|e| FakeKubeError::Invalid(e.to_string()))?;
        let mut store = self.shared.store();
        let change = store
            .put(kind, namespace.unwrap_or("default"), value)
            .map_err(|e| FakeKubeError::Invalid(e.message))?;
        self.shared.publish(&change);
        Ok(())
    }

    /// Deletes a pod as if its node lost it; `false` when there was none.
    pub fn remove_pod(&self, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store();
        match store.delete(Kind::Pod, namespace, name) {
            Ok(change) => {
                self.shared.publish(&change);
                true
            }
            Err(_) => false,
        }
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.get(Kind::Pod, namespace, name)
    }

    pub fn network_policy(&self, namespace: &str, name: &str) -> Option<NetworkPolicy> {
        self.get(Kind::NetworkPolicy, namespace, name)
    }

    pub fn network_policies(&self, namespace: &str) -> Vec<NetworkPolicy> {
        let store = self.shared.store();
        store
            .list(Kind::NetworkPolicy, Some(namespace))
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect()
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Option<T> {
        let store = self.shared.store();
        let value = store.get(kind, namespace, name)?.clone();
        serde_json::from_value(value).ok()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The (group, resource, verb) of every request that reached a resource,
    /// allowed or not.
    pub fn used_permissions(&self) -> BTreeSet<Permission> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| !r.verb.is_empty())
            .map(|r| (r.api_group.clone(), r.resource.clone(), r.verb.clone()))
            .collect()
    }

    /// The next `times` requests with `verb` on `resource` (e.g. "patch",
    /// "pods") fail with `status` (409, 403, 500, 504, ...).
    pub fn fail_next(&self, verb: &str, resource: &str, status: u16, times: u32) {
        if times == 0 {
            return;
        }
        lock(&self.shared.failures).push_back(Failure {
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            code: status,
            remaining: times,
        });
    }

    /// Every later request waits `delay` before it is answered.
    pub fn delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}
