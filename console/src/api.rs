//! The browser-facing HTTP API, the live stream and the front end's files.
//!
//! Reads need a login (session cookie or bearer token); changes need the
//! responder role and, with a cookie, the session's `X-CSRF-Token`. Every
//! error is JSON `{"error": "..."}` naming what is wrong.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::Request,
    extract::{
        ConnectInfo, Path, Query, State,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{any, get, post},
};
use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tower_http::services::{ServeDir, ServeFile};
use vigil_proto::v1::Priority;

use crate::{
    app::{App, Edit, StepError},
    auth::{self, AuthError, Principal},
    metrics,
    store::{Filter, FindingFilter, process_tree},
    throttle::Refused,
};

type Shared = State<Arc<App>>;

/// A 4xx/5xx answer with a message.
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<std::time::Duration>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        metrics::error("bad_request", "api");
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(after) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let (status, label) = match error {
            AuthError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            AuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::SessionStore => (StatusCode::SERVICE_UNAVAILABLE, "session_store"),
            _ => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        };
        metrics::error(label, "api");
        Self {
            status,
            message: error.to_string(),
            retry_after: None,
        }
    }
}

impl From<StepError> for ApiError {
    fn from(error: StepError) -> Self {
        let status = match error {
            StepError::Invalid(_) => StatusCode::BAD_REQUEST,
            StepError::NotFound(_) => StatusCode::NOT_FOUND,
            StepError::Conflict(_) => StatusCode::CONFLICT,
            StepError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            StepError::Responder(_) => StatusCode::BAD_GATEWAY,
        };
        Self {
            status,
            message: error.to_string(),
            retry_after: None,
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        metrics::error(refused.label(), "login");
        tracing::warn!(message = "Login refused.", %refused);
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: refused.to_string(),
            retry_after: Some(refused.retry_after()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::bad_request(format!("request body: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(format!("query string: {}", rejection.body_text()))
    }
}

pub fn router(app: Arc<App>, web_dir: &std::path::Path) -> Router {
    let index = web_dir.join("index.html");
    let files = ServeDir::new(web_dir).fallback(ServeFile::new(index));
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/users", get(users))
        .route("/api/findings", get(findings))
        .route("/api/findings/{id}", get(finding))
        .route("/api/export/{format}", get(export))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}", get(incident))
        .route("/api/incidents/{id}/{step}", post(step))
        .route("/api/actions", get(actions))
        .route("/api/scores", get(scores))
        .route("/api/counters", get(counters))
        .route("/api/malformed", get(malformed))
        .route("/api/stream", get(live))
        .route("/api/{*rest}", any(no_such_endpoint))
        .fallback_service(files)
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// What every answer says to the browser: run only our own scripts and
/// styles, never inside a frame (clickjacking), never guess a content type,
/// never leak the console's URLs in a Referer.
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if api {
        // Findings and session data: no cache, shared or private, may keep them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Unknown API paths get a JSON 404, not the front end's page.
async fn no_such_endpoint(Path(rest): Path<String>) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no API endpoint /api/{rest}"),
        retry_after: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    // Refused before the body is even read: a flood costs a map lookup.
    app.throttle.admit(peer.ip()).map_err(ApiError::from)?;
    let Json(request) = body?;
    let mut slot = app.throttle.check_slot().await?;
    // Argon2 takes milliseconds of CPU on purpose: keep it off the runtime's threads.
    let checker = app.clone();
    let (name, password) = (request.username.clone(), request.password.clone());
    let checked =
        tokio::task::spawn_blocking(move || checker.auth.login(&name, &password, slot.memory()))
            .await;
    let checked = checked.map_err(|error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("password check failed: {error}"),
        retry_after: None,
    })?;
    let verified = match checked {
        Ok(verified) => verified,
        Err(error) => {
            // Logged and counted, not audited: anyone can fail a login, and
            // must not be able to flood the audit trail.
            tracing::warn!(message = "Failed login.", user = %request.username);
            return Err(error.into());
        }
    };
    let session = app
        .sessions
        .create(verified)
        .await
        .map_err(|error| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: error.to_string(),
            retry_after: None,
        })?;
    app.audit(&session.principal, "login", "", "", "ok").await;
    let cookie =
        auth::session_cookie_header(&session.token, app.sessions.ttl(), app.secure_cookies);
    let mut response = Json(session_json(&session.principal)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = app.authenticate(&headers).await?;
    auth::check_csrf(&who, &headers)?;
    if let Some(token) = auth::session_cookie(&headers) {
        app.sessions.end(token).await.map_err(|error| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: error.to_string(),
            retry_after: None,
        })?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&auth::clear_cookie_header()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn session_json(who: &Principal) -> serde_json::Value {
    json!({ "user": who.user, "role": who.role.label(), "csrf": who.csrf })
}

async fn session(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = app.authenticate(&headers).await?;
    Ok(Json(session_json(&who)).into_response())
}

async fn users(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    Ok(Json(&app.user_names).into_response())
}

/// Longest free-text query accepted (a search, not a document).
const MAX_QUERY: usize = 256;

/// Checks a findings query: the priority must name a level, the free text
/// must be short.
fn parse_filter(query: Result<Query<FindingFilter>, QueryRejection>) -> Result<Filter, ApiError> {
    let Query(raw) = query?;
    let min_severity = match &raw.priority {
        None => 0,
        Some(name) => Priority::parse_label(name)
            .map_err(|e| ApiError::bad_request(format!("priority: {e}")))?
            as i32,
    };
    if let Some(q) = &raw.q
        && q.len() > MAX_QUERY
    {
        return Err(ApiError::bad_request(format!(
            "q: {} bytes, at most {MAX_QUERY}",
            q.len()
        )));
    }
    Ok(Filter::new(min_severity, raw))
}

async fn findings(
    State(app): Shared,
    headers: HeaderMap,
    query: Result<Query<FindingFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let filter = parse_filter(query)?;
    let list = app.read().findings(&filter);
    Ok(Json(list).into_response())
}

/// One finding with its triggering events as they arrived.
async fn finding(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let found = app.read().finding(&id).ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no finding {id:?} (unknown, or older than the findings kept in memory)"),
        retry_after: None,
    })?;
    let raw_events = found.raw_events_text();
    Ok(Json(json!({ "finding": found, "raw_events": raw_events })).into_response())
}

/// The findings a query selects, as a file: `csv` or `json`.
async fn export(
    State(app): Shared,
    headers: HeaderMap,
    Path(format): Path<String>,
    query: Result<Query<FindingFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let format = crate::export::Format::parse(&format).map_err(ApiError::bad_request)?;
    let filter = parse_filter(query)?;
    let list = app.read().findings(&filter);
    let (content_type, body) = crate::export::render(format, &list);
    let disposition = format!(
        "attachment; filename=\"vigil-findings.{}\"",
        format.extension()
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn incidents(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let list = app.read().incidents();
    Ok(Json(list).into_response())
}

async fn incident(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let summary = app.incident(&id)?;
    let timeline = app.timeline(&id);
    let tree = process_tree(&timeline);
    let actions = app.read().actions_of(Some(&id));
    Ok(Json(json!({
        "incident": summary,
        "timeline": timeline,
        "process_tree": tree,
        "actions": actions,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StepRequest {
    assignee: Option<String>,
    text: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

const STEPS: &str = "acknowledge, assign, comment, quarantine, release, false-positive, resolve";
const MAX_TEXT: usize = 4_000;

async fn step(
    State(app): Shared,
    headers: HeaderMap,
    Path((id, step)): Path<(String, String)>,
    body: Result<Json<StepRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = app.authorize_change(&headers).await?;
    let Json(request) = body?;
    let incident = app.incident(&id)?;
    let result = run_step(&app, &who, &incident, &step, &request).await;
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.message.clone(),
    };
    let label = if result.is_ok() { "ok" } else { "failed" };
    ::metrics::counter!(metrics::STEPS, "step" => step_label(&step), "outcome" => label)
        .increment(1);
    let detail = request
        .text
        .as_deref()
        .or(request.reason.as_deref())
        .or(request.assignee.as_deref())
        .unwrap_or("");
    if step_label(&step) != "unknown" {
        app.audit(&who, step_label(&step), &id, detail, &outcome)
            .await;
    }
    result.map(IntoResponse::into_response)
}

fn step_label(step: &str) -> &'static str {
    match step {
        "acknowledge" => "acknowledge",
        "assign" => "assign",
        "comment" => "comment",
        "quarantine" => "quarantine",
        "release" => "release",
        "false-positive" => "false_positive",
        "resolve" => "resolve",
        _ => "unknown",
    }
}

async fn run_step(
    app: &App,
    who: &Principal,
    incident: &crate::store::IncidentSummary,
    step: &str,
    request: &StepRequest,
) -> Result<Json<serde_json::Value>, ApiError> {
    let reason = || request.reason.clone().unwrap_or_default();
    let edit = match step {
        "acknowledge" => Edit::Acknowledge,
        "resolve" => Edit::Resolve,
        "assign" => Edit::Assign(assignee(app, request)?),
        "comment" => Edit::Comment(required_text("text", request.text.as_deref())?),
        "false-positive" => {
            Edit::FalsePositive(required_text("reason", request.reason.as_deref())?)
        }
        "quarantine" => {
            let actions = app
                .quarantine(who, incident, &reason(), request.dry_run)
                .await?;
            return Ok(Json(json!({ "actions": actions })));
        }
        "release" => {
            let actions = app
                .release(who, incident, &reason(), request.dry_run)
                .await?;
            return Ok(Json(json!({ "actions": actions })));
        }
        other => {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("no workflow step {other:?}; steps are {STEPS}"),
                retry_after: None,
            });
        }
    };
    let state = app.edit(who, incident, &edit).await?;
    Ok(Json(
        json!({ "state": crate::views::StateView::new(&state) }),
    ))
}

fn assignee(app: &App, request: &StepRequest) -> Result<String, ApiError> {
    let name = required_text("assignee", request.assignee.as_deref())?;
    if !app.user_names.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "assignee: {name:?} is not a configured user"
        )));
    }
    Ok(name)
}

fn required_text(field: &str, value: Option<&str>) -> Result<String, ApiError> {
    let text = value.unwrap_or("").trim();
    if text.is_empty() {
        return Err(ApiError::bad_request(format!("{field}: must not be empty")));
    }
    if text.len() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "{field}: {} bytes, at most {MAX_TEXT}",
            text.len()
        )));
    }
    Ok(text.to_owned())
}

async fn actions(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let list = app.read().actions_of(None);
    Ok(Json(list).into_response())
}

async fn scores(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let body = serde_json::to_value(app.read().scores()).unwrap_or_default();
    Ok(Json(body).into_response())
}

async fn counters(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let minutes = app.read().minutes();
    Ok(Json(minutes).into_response())
}

async fn malformed(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    app.authenticate(&headers).await?;
    let (total, recent) = app.read().malformed();
    Ok(Json(json!({ "total": total, "recent": recent })).into_response())
}

/// Server-sent events: `hello` first (the browser then fetches the
/// snapshot; anything arriving meanwhile comes twice and is de-duplicated
/// by id), then `finding`, `action`, `score`, `incident`, `malformed`, and
/// `lagged` if this browser fell behind and must fetch the snapshot again.
async fn live(State(app): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = app.authenticate(&headers).await?;
    let receiver = app.live.subscribe();
    let hello = Event::default()
        .event("hello")
        .data(session_json(&who).to_string());
    let session = auth::session_cookie(&headers).map(str::to_owned);
    let client = LiveClient::new(receiver, app.clone(), session);
    let live = stream::unfold(client, |mut client| async move {
        let event = client.next().await?;
        Some((event, client))
    });
    let events = stream::once(async move { Ok::<_, Infallible>(hello) }).chain(live);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// How often an open live stream checks that its session still exists:
/// a logout or expiry on any replica ends the stream within this time.
const LIVE_SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// One browser's subscription; counted while it lasts.
struct LiveClient {
    receiver: tokio::sync::broadcast::Receiver<crate::app::Live>,
    app: Arc<App>,
    /// The session cookie's token (none for bearer callers, whose tokens
    /// are configuration and do not end).
    session: Option<String>,
    check: tokio::time::Interval,
}

impl LiveClient {
    fn new(
        receiver: tokio::sync::broadcast::Receiver<crate::app::Live>,
        app: Arc<App>,
        session: Option<String>,
    ) -> Self {
        ::metrics::gauge!(metrics::LIVE_CLIENTS).increment(1.0);
        let first = tokio::time::Instant::now() + LIVE_SESSION_CHECK;
        Self {
            receiver,
            app,
            session,
            check: tokio::time::interval_at(first, LIVE_SESSION_CHECK),
        }
    }

    async fn next(&mut self) -> Option<Result<Event, Infallible>> {
        let received = loop {
            tokio::select! {
                () = self.app.shutdown.cancelled() => return None,
                _ = self.check.tick() => {
                    if self.session_ended().await {
                        return None;
                    }
                }
                received = self.receiver.recv() => break received,
            }
        };
        match received {
            Ok(live) => Some(Ok(Event::default().event(live.event).data(&*live.data))),
            Err(RecvError::Lagged(missed)) => Some(Ok(Event::default()
                .event("lagged")
                .data(missed.to_string()))),
            Err(RecvError::Closed) => None,
        }
    }

    /// Logged out or expired; a session store that cannot be read is not
    /// taken as an ending (the next check asks again).
    async fn session_ended(&self) -> bool {
        let Some(token) = &self.session else {
            return false;
        };
        let found = self
            .app
            .sessions
            .principal(token, |user| self.app.auth.role_of(user))
            .await;
        matches!(found, Err(AuthError::UnknownSession))
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        ::metrics::gauge!(metrics::LIVE_CLIENTS).decrement(1.0);
    }
}
