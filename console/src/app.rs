//! The gateway's shared state and its workflow steps: incident state in the
//! KV bucket (compare-and-set, so concurrent consoles never lose an edit),
//! quarantine and release through the responder, and an audit record for
//! every step.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::http::HeaderMap;

use serde::Serialize;
use tokio::sync::broadcast;
use vigil_bus::{
    Publisher, TraceContext,
    async_nats::jetstream::{self, kv},
    codec, subject,
};
use vigil_proto::v1::{
    AuditRecord, IncidentComment, IncidentState, IncidentStatus, PodRef, QuarantineRequest,
    ReleaseRequest, responder_client::ResponderClient,
};
use vigil_service::clock;

use crate::{
    auth::{self, Auth, AuthError, Principal},
    store::{IncidentSummary, Store},
    views::{ActionView, FindingView},
};

/// Compare-and-set attempts before an edit is reported as conflicting.
const CAS_ATTEMPTS: usize = 8;

/// One message for every connected browser.
#[derive(Clone, Debug)]
pub struct Live {
    pub event: &'static str,
    pub data: Arc<str>,
}

pub struct App {
    pub store: RwLock<Store>,
    pub live: broadcast::Sender<Live>,
    pub auth: Auth,
    pub sessions: crate::sessions::Sessions,
    pub throttle: crate::throttle::LoginThrottle,
    pub js: jetstream::Context,
    pub kv: kv::Store,
    pub publisher: Publisher,
    pub responder: ResponderClient<tonic::transport::Channel>,
    pub secure_cookies: bool,
    pub user_names: Vec<String>,
    /// Ends the live streams on shutdown (the HTTP server waits for every
    /// open response, and a live stream never ends by itself).
    pub shutdown: tokio_util::sync::CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Invalid(String),
    #[error("no incident {0:?}")]
    NotFound(String),
    #[error("incident {0} was changed concurrently too often; try again")]
    Conflict(String),
    #[error("cannot store incident state: {0}")]
    Store(String),
    #[error("the responder refused or failed: {0}")]
    Responder(String),
}

/// What a step changes in the incident state.
pub enum Edit {
    Acknowledge,
    Assign(String),
    Comment(String),
    FalsePositive(String),
    Resolve,
}

impl App {
    /// The caller, from a bearer token or a session cookie.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        if let Some(principal) = self.auth.bearer(headers) {
            return principal;
        }
        let token = auth::session_cookie(headers).ok_or(AuthError::Missing)?;
        self.sessions
            .principal(token, |user| self.auth.role_of(user))
            .await
    }

    /// The caller, allowed to change state: a responder, with the session's
    /// CSRF token echoed when authenticated by cookie.
    pub async fn authorize_change(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let principal = self.authenticate(headers).await?;
        auth::check_csrf(&principal, headers)?;
        auth::require_responder(principal)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        // The store is only ever changed by whole-value operations.
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn broadcast(&self, event: &'static str, value: &impl Serialize) {
        if self.live.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(value) {
            // No receivers is not an error: nobody is looking.
            let _ = self.live.send(Live {
                event,
                data: json.into(),
            });
        }
    }

    /// Applies `edit` to the incident's state in the bucket.
    pub async fn edit(
        &self,
        who: &Principal,
        incident: &IncidentSummary,
        edit: &Edit,
    ) -> Result<IncidentState, StepError> {
        let proposal = match edit {
            Edit::FalsePositive(reason) => Some(self.propose_exception(who, incident, reason)),
            _ => None,
        };
        for _ in 0..CAS_ATTEMPTS {
            let entry = self
                .kv
                .entry(incident.id.clone())
                .await
                .map_err(|e| StepError::Store(e.to_string()))?;
            let mut state = match &entry {
                Some(entry) => {
                    match codec::decode::<IncidentState>(&entry.value, &incident.id, entry.revision)
                    {
                        Ok(state) => state,
                        Err(error) => {
                            // Start over rather than leave the incident stuck; say so.
                            crate::metrics::error("malformed_payload", "incident_state");
                            tracing::warn!(message = "Unparseable incident state replaced.", %error);
                            IncidentState::default()
                        }
                    }
                }
                None => IncidentState::default(),
            };
            state.id = incident.id.clone();
            state.namespace = incident.namespace.clone();
            state.pod = incident.pod.clone();
            apply(&mut state, who, edit, proposal.as_deref());
            let value = codec::encode(&state);
            let written = match &entry {
                Some(entry) => self
                    .kv
                    .update(&incident.id, value, entry.revision)
                    .await
                    .map_err(|e| e.to_string()),
                None => self
                    .kv
                    .create(&incident.id, value)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match written {
                Ok(_) => return Ok(state),
                Err(error) => {
                    tracing::debug!(message = "Incident changed meanwhile; retrying.", id = %incident.id, %error)
                }
            }
        }
        Err(StepError::Conflict(incident.id.clone()))
    }

    /// A Falco rule exception (or, for anomaly findings, a baseline update)
    /// covering what this incident's findings matched, for review.
    fn propose_exception(
        &self,
        who: &Principal,
        incident: &IncidentSummary,
        reason: &str,
    ) -> String {
        let findings = self.read().timeline(&incident.id);
        crate::proposal::propose(&findings, incident, &who.user, reason)
    }

    pub async fn quarantine(
        &self,
        who: &Principal,
        incident: &IncidentSummary,
        reason: &str,
        dry_run: bool,
    ) -> Result<Vec<ActionView>, StepError> {
        let mut request = tonic::Request::new(QuarantineRequest {
            target: Some(pod_ref(incident)?),
            requested_by: who.user.clone(),
            reason: reason.to_owned(),
            finding_id: incident.latest_finding_id.clone(),
            dry_run,
        });
        vouch_for(who, &mut request)?;
        let reply = self
            .responder
            .clone()
            .quarantine(request)
            .await
            .map_err(|status| StepError::Responder(status.message().to_owned()))?;
        Ok(reply
            .into_inner()
            .actions
            .iter()
            .map(ActionView::new)
            .collect())
    }

    pub async fn release(
        &self,
        who: &Principal,
        incident: &IncidentSummary,
        reason: &str,
        dry_run: bool,
    ) -> Result<Vec<ActionView>, StepError> {
        let mut request = tonic::Request::new(ReleaseRequest {
            target: Some(pod_ref(incident)?),
            requested_by: who.user.clone(),
            reason: reason.to_owned(),
            dry_run,
        });
        vouch_for(who, &mut request)?;
        let reply = self
            .responder
            .clone()
            .release(request)
            .await
            .map_err(|status| StepError::Responder(status.message().to_owned()))?;
        Ok(reply
            .into_inner()
            .actions
            .iter()
            .map(ActionView::new)
            .collect())
    }

    /// Publishes the audit record of a step; the step's answer waits for it,
    /// so nothing is done that is not on the record.
    pub async fn audit(
        &self,
        who: &Principal,
        step: &str,
        incident: &str,
        detail: &str,
        outcome: &str,
    ) {
        let record = AuditRecord {
            id: uuid::Uuid::new_v4().to_string(),
            time_ns: clock::wall_ns(),
            user: who.user.clone(),
            role: who.role.label().to_owned(),
            step: step.to_owned(),
            incident_id: incident.to_owned(),
            detail: detail.to_owned(),
            outcome: outcome.to_owned(),
        };
        let published = self
            .publisher
            .publish(
                subject::audit(step),
                &record.id,
                &TraceContext::new_root(),
                codec::encode(&record),
            )
            .await;
        if let Err(error) = published {
            crate::metrics::error("audit_publish_failed", "audit");
            tracing::error!(message = "Audit record not stored.", user = %who.user, step, incident, %error);
        }
    }

    pub fn incident(&self, id: &str) -> Result<IncidentSummary, StepError> {
        self.read()
            .incident(id)
            .ok_or_else(|| StepError::NotFound(id.to_owned()))
    }

    pub fn timeline(&self, id: &str) -> Vec<Arc<FindingView>> {
        self.read().timeline(id)
    }
}

fn pod_ref(incident: &IncidentSummary) -> Result<PodRef, StepError> {
    if incident.pod.is_empty() {
        return Err(StepError::Invalid(format!(
            "incident {} is not about a Kubernetes pod; only pods can be quarantined",
            incident.id
        )));
    }
    Ok(PodRef {
        namespace: incident.namespace.clone(),
        pod: incident.pod.clone(),
    })
}

fn apply(state: &mut IncidentState, who: &Principal, edit: &Edit, proposal: Option<&str>) {
    let now = clock::wall_ns();
    match edit {
        Edit::Acknowledge => state.status = IncidentStatus::Acknowledged as i32,
        Edit::Assign(user) => state.assignee = user.clone(),
        Edit::Comment(text) => state.comments.push(IncidentComment {
            user: who.user.clone(),
            time_ns: now,
            text: text.clone(),
        }),
        Edit::FalsePositive(_) => {
            state.status = IncidentStatus::FalsePositive as i32;
            state.proposed_change = proposal.unwrap_or_default().to_owned();
        }
        Edit::Resolve => state.status = IncidentStatus::Resolved as i32,
    }
    if state.status == IncidentStatus::Unspecified as i32 {
        state.status = IncidentStatus::Open as i32;
    }
    state.updated_ns = now;
    state.updated_by = who.user.clone();
}

/// Names the signed-in user to the responder, which records it when the
/// console's certificate identity may vouch (over TLS); the body's
/// `requested_by` is only a claim there.
fn vouch_for<T>(who: &Principal, request: &mut tonic::Request<T>) -> Result<(), StepError> {
    vigil_grpc_auth::vouch(request, &who.user)
        .map_err(|status| StepError::Responder(status.message().to_owned()))
}
