//! Following the streams: each is read from its first message with an
//! ordered consumer (history replay, then live), decoded into the store and
//! broadcast to connected browsers. A payload that does not decode is
//! counted, logged and shown as malformed, never dropped silently.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use vigil_bus::{
    async_nats::jetstream::{
        self,
        consumer::{DeliverPolicy, pull::OrderedConfig},
    },
    codec,
    topology::StreamSpec,
};
use vigil_proto::v1::{ActionRecord, AnomalyScore, Finding, IncidentState};
use vigil_service::clock;

use crate::{
    app::App,
    metrics,
    views::{ActionView, FindingView, MalformedView, ScoreView, StateView, ns_to_ms},
};

const REOPEN_DELAY: Duration = Duration::from_millis(500);
const EVENTS_POLL: Duration = Duration::from_secs(10);

/// Follows `spec` until `shutdown`, handing each payload to `handle`.
pub async fn follow(
    js: jetstream::Context,
    spec: &'static StreamSpec,
    shutdown: CancellationToken,
    mut handle: impl FnMut(&[u8], &str, u64),
) {
    let mut next_sequence = 1;
    while !shutdown.is_cancelled() {
        let mut messages = match open(&js, spec, next_sequence).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(message = "Cannot follow stream; retrying.", stream = spec.name, %error);
                sleep_unless(&shutdown, REOPEN_DELAY).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(message = "Stream read failed; reopening.", stream = spec.name, %error);
                    break;
                }
                None => break,
            };
            let sequence = message.info().map_or(0, |i| i.stream_sequence);
            ::metrics::counter!(metrics::MESSAGES, "stream" => spec.name).increment(1);
            handle(&message.payload, &message.subject, sequence);
            next_sequence = sequence.max(next_sequence - 1) + 1;
        }
        sleep_unless(&shutdown, REOPEN_DELAY).await;
    }
}

async fn open(
    js: &jetstream::Context,
    spec: &StreamSpec,
    start: u64,
) -> Result<jetstream::consumer::pull::Ordered, String> {
    let stream = js.get_stream(spec.name).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

async fn sleep_unless(shutdown: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

fn decode<M: Message + Default>(
    app: &App,
    spec: &'static StreamSpec,
    payload: &[u8],
    subject: &str,
    sequence: u64,
) -> Option<M> {
    match codec::decode::<M>(payload, subject, sequence) {
        Ok(message) => Some(message),
        Err(error) => {
            metrics::error("malformed_payload", "decode");
            tracing::warn!(message = "Unparseable payload.", stream = spec.name, subject, sequence, %error);
            let view = MalformedView {
                stream: spec.name,
                subject: subject.to_owned(),
                sequence,
                error: error.to_string(),
                bytes: payload.len(),
                time_ms: ns_to_ms(clock::wall_ns()),
            };
            app.broadcast("malformed", &view);
            app.write().add_malformed(view);
            None
        }
    }
}

pub fn on_finding(app: &App, payload: &[u8], subject: &str, sequence: u64) {
    let spec = &vigil_bus::topology::FINDINGS;
    let Some(finding) = decode::<Finding>(app, spec, payload, subject, sequence) else {
        return;
    };
    let view = FindingView::new(&finding);
    let incident = view.incident_id.clone();
    let mut store = app.write();
    if store.add_finding(view.clone()) {
        let summary = store.incident(&incident);
        drop(store);
        app.broadcast("finding", &view);
        if let Some(summary) = summary {
            app.broadcast("incident", &summary);
        }
    }
}

pub fn on_action(app: &App, payload: &[u8], subject: &str, sequence: u64) {
    let spec = &vigil_bus::topology::ACTIONS;
    let Some(record) = decode::<ActionRecord>(app, spec, payload, subject, sequence) else {
        return;
    };
    let view = ActionView::new(&record);
    let incident = view.incident_id.clone();
    let summary = {
        let mut store = app.write();
        store.add_action(view.clone());
        store.incident(&incident)
    };
    app.broadcast("action", &view);
    if let Some(summary) = summary {
        app.broadcast("incident", &summary);
    }
}

pub fn on_score(app: &App, payload: &[u8], subject: &str, sequence: u64) {
    let spec = &vigil_bus::topology::SCORES;
    let Some(score) = decode::<AnomalyScore>(app, spec, payload, subject, sequence) else {
        return;
    };
    let view = ScoreView::new(&score);
    app.write().add_score(view.clone());
    app.broadcast("score", &view);
}

/// Follows the incident bucket: every change by any console shows up here.
pub async fn watch_incidents(app: Arc<App>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut watch = match app.kv.watch_all().await {
            Ok(watch) => watch,
            Err(error) => {
                tracing::warn!(message = "Cannot watch the incident bucket; retrying.", %error);
                sleep_unless(&shutdown, REOPEN_DELAY).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = watch.next() => next,
            };
            let Some(Ok(entry)) = next else { break };
            let subject = format!(
                "$KV.{}.{}",
                vigil_bus::topology::INCIDENTS_BUCKET.name,
                entry.key
            );
            let Ok(state) = codec::decode::<IncidentState>(&entry.value, &subject, entry.revision)
            else {
                metrics::error("malformed_payload", "incident_state");
                tracing::warn!(message = "Unparseable incident state.", key = %entry.key, revision = entry.revision);
                continue;
            };
            let summary = app.write().set_state(&entry.key, StateView::new(&state));
            if let Some(summary) = summary {
                app.broadcast("incident", &summary);
            }
        }
        sleep_unless(&shutdown, REOPEN_DELAY).await;
    }
}

/// Counts event batches per minute from the events stream's last sequence
/// (the console does not read the events themselves).
pub async fn count_event_batches(app: Arc<App>, shutdown: CancellationToken) {
    let mut last: Option<u64> = None;
    while !shutdown.is_cancelled() {
        if let Some(now) = events_last_sequence(&app).await {
            if let Some(before) = last {
                let now_ms = ns_to_ms(clock::wall_ns());
                app.write()
                    .add_event_batches(now_ms, now.saturating_sub(before));
            }
            last = Some(now);
        }
        sleep_unless(&shutdown, EVENTS_POLL).await;
    }
}

async fn events_last_sequence(app: &App) -> Option<u64> {
    let mut stream = app
        .js
        .get_stream(vigil_bus::topology::EVENTS.name)
        .await
        .ok()?;
    let info = stream.info().await.ok()?;
    Some(info.state.last_sequence)
}
