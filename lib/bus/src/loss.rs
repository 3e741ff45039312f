//! Data JetStream discards before a consumer of this process handled it,
//! made visible. The consume loop watches its own consumer for the two ways
//! JetStream drops a message without anyone being told:
//!
//! * **Max deliveries.** A message that was not acknowledged after
//!   `max_deliver` deliveries is given up; the server announces it on
//!   `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`,
//!   which the loop subscribes to in a queue group, so one instance of a
//!   service sharing the durable reports each advisory.
//! * **Stream limits.** Streams discard their oldest messages at their
//!   limits (`max_age`, `max_bytes`), read or not. The consumer's position
//!   (the last stream sequence it was handed) behind the stream's first
//!   sequence means the messages in between were removed before it reached
//!   them. The server moves the position past the gap at the next delivery,
//!   so the loop compares before the first pull of every subscription and
//!   every [`CHECK_INTERVAL`] while it runs; a gap opened and passed within
//!   one interval while the consumer keeps pulling goes unseen.
//!
//! The gap is exactly the messages lost for a consumer of all of its
//! stream's subjects. A filtered consumer (an anomaly-scorer partition) is
//! not compared: its position is the last message of its own subjects, so a
//! quiet partition would look passed by every message `max_age` ages out.
//! The detectors' consumer reads the whole events stream and reports its
//! losses.
//!
//! Each loss is counted in [`LOST_MESSAGES`] (by stream, consumer and
//! reason) and raised as a finding named [`FINDING_NAME`] (source internal,
//! priority warning, no namespace) whose id names the stream, consumer and
//! lost sequences: a loss is reported once, and a repeat of its finding is
//! discarded by the findings stream's duplicate window.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::{Finding, FindingSource, Priority};

use crate::{Publisher, TraceContext, codec, subject};

/// Rule name of the finding raised for every loss.
pub const FINDING_NAME: &str = "JetStream data lost";
/// Messages lost by a consumer of this process, by `stream`, `consumer`
/// and `reason` (`max_deliveries`, `stream_limits`).
pub const LOST_MESSAGES: &str = "vigil_bus_data_lost_messages_total";
/// Comparisons of a consumer's position with its stream's first message,
/// by `consumer` (`<stream>/<durable>`): proof the stream-limit watch runs.
pub const LOSS_CHECKS: &str = "vigil_bus_data_loss_checks_total";
/// How often a running loop compares its consumer with the stream.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
const PUBLISH_FIRST_RETRY: Duration = Duration::from_millis(200);
const PUBLISH_MAX_RETRY: Duration = Duration::from_secs(10);

/// Why messages were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MaxDeliveries,
    StreamLimits,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::MaxDeliveries => "max_deliveries",
            Reason::StreamLimits => "stream_limits",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            Reason::MaxDeliveries => "it was not acknowledged within its maximum deliveries",
            Reason::StreamLimits => {
                "the stream removed them first (its limits discard the oldest, or a purge)"
            }
        }
    }
}

/// Messages one consumer will never be handed.
#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    pub stream: String,
    pub consumer: String,
    pub reason: Reason,
    /// Stream sequences of the lost messages, inclusive.
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Deliveries made before JetStream gave up (max deliveries only).
    pub deliveries: Option<u64>,
}

impl Loss {
    /// How many messages the range holds.
    pub fn count(&self) -> u64 {
        self.last_sequence - self.first_sequence + 1
    }

    /// The finding that reports this loss.
    pub fn finding(&self) -> Finding {
        let count = self.count();
        let output = format!(
            "JetStream lost {count} message(s) of stream {} (sequences {}-{}) for consumer {}: {}",
            self.stream,
            self.first_sequence,
            self.last_sequence,
            self.consumer,
            self.reason.explanation()
        );
        let mut fields = vec![
            ("stream", self.stream.clone()),
            ("consumer", self.consumer.clone()),
            ("reason", self.reason.label().to_owned()),
            ("lost_messages", count.to_string()),
            ("first_sequence", self.first_sequence.to_string()),
            ("last_sequence", self.last_sequence.to_string()),
        ];
        if let Some(deliveries) = self.deliveries {
            fields.push(("deliveries", deliveries.to_string()));
        }
        Finding {
            id: format!(
                "jetstream-data-lost:{}:{}:{}:{}-{}",
                self.stream,
                self.consumer,
                self.reason.label(),
                self.first_sequence,
                self.last_sequence
            ),
            time_ns: wall_ns(),
            source: FindingSource::Internal.into(),
            name: FINDING_NAME.to_owned(),
            priority: Priority::Warning.into(),
            tags: vec![
                "vigil".to_owned(),
                "jetstream".to_owned(),
                "data_lost".to_owned(),
            ],
            output,
            output_fields: fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
            ..Finding::default()
        }
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// What the stream-limit watch knows of one consumer's position.
#[derive(Debug, Default)]
struct Position {
    /// Highest stream sequence delivered to the consumer or reported lost.
    accounted: Option<u64>,
    /// Creation time of the consumer the position was read from: a
    /// recreated durable starts at the stream's first message, which says
    /// nothing about what the one before it had read.
    incarnation: Option<String>,
}

impl Position {
    /// The lost range, if the stream's first sequence `first` has passed
    /// the position; then the position moves to the consumer's `delivered`
    /// stream sequence (of incarnation `created`), or past the gap.
    fn advance(&mut self, delivered: u64, created: String, first: u64) -> Option<(u64, u64)> {
        let same = self.incarnation.as_ref() == Some(&created);
        let base = match self.accounted {
            Some(accounted) if same => accounted.max(delivered),
            Some(accounted) => accounted,
            None => delivered,
        };
        self.incarnation = Some(created);
        let gap = (first > base + 1).then(|| (base + 1, first - 1));
        self.accounted = Some(gap.map_or(base, |(_, last)| last).max(delivered));
        gap
    }

    fn handed(&mut self, stream_sequence: u64) {
        self.accounted = Some(self.accounted.unwrap_or(0).max(stream_sequence));
    }
}

/// The loss watch of one consume loop.
pub(crate) struct Watch {
    js: jetstream::Context,
    stream: String,
    consumer: String,
    /// Whether the consumer reads every subject of its stream, so a gap
    /// behind the stream's first message is exactly its loss.
    unfiltered: bool,
    /// Whether JetStream ever gives up on a message of this consumer
    /// (`max_deliver` set); with no limit there is no advisory to follow.
    gives_up: bool,
    position: Mutex<Position>,
    shutdown: CancellationToken,
}

impl Watch {
    pub(crate) fn new(
        js: jetstream::Context,
        consumer: &PullConsumer,
        stream_subjects: &str,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let info = consumer.cached_info();
        let config = &info.config;
        let unfiltered = config.filter_subjects.is_empty()
            && (config.filter_subject.is_empty() || config.filter_subject == stream_subjects);
        Arc::new(Self {
            js,
            stream: info.stream_name.clone(),
            consumer: info.name.clone(),
            unfiltered,
            gives_up: config.max_deliver > 0,
            position: Mutex::new(Position::default()),
            shutdown,
        })
    }

    fn key(&self) -> String {
        format!("{}/{}", self.stream, self.consumer)
    }

    /// Notes that the loop was handed the message at `stream_sequence`.
    pub(crate) fn handed(&self, stream_sequence: u64) {
        self.position().handed(stream_sequence);
    }

    fn position(&self) -> std::sync::MutexGuard<'_, Position> {
        self.position.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Compares the consumer's position with the stream's first message
    /// and reports a gap. Errors (NATS away, consumer missing) skip this
    /// comparison; the next one covers the same range.
    pub(crate) async fn check_limits(self: &Arc<Self>, consumer: &PullConsumer) {
        if !self.unfiltered {
            return;
        }
        let (info, stream) = match (
            consumer.get_info().await,
            self.js.get_stream(&self.stream).await,
        ) {
            (Ok(info), Ok(stream)) => (info, stream),
            (Err(error), _) => {
                tracing::debug!(message = "Cannot read the consumer's position; checking later.", consumer = %self.key(), %error);
                return;
            }
            (_, Err(error)) => {
                tracing::debug!(message = "Cannot read the stream's state; checking later.", consumer = %self.key(), %error);
                return;
            }
        };
        metrics::counter!(LOSS_CHECKS, "consumer" => self.key()).increment(1);
        let first = stream.cached_info().state.first_sequence;
        // Messages handed out since the requests only raise the position,
        // and a second comparison sees the gap the first reported.
        let gap = self.position().advance(
            info.delivered.stream_sequence,
            info.created.to_string(),
            first,
        );
        if let Some((first_sequence, last_sequence)) = gap {
            self.report(Loss {
                stream: self.stream.clone(),
                consumer: self.consumer.clone(),
                reason: Reason::StreamLimits,
                first_sequence,
                last_sequence,
                deliveries: None,
            });
        }
    }

    /// Counts `loss` and publishes its finding in the background, retrying
    /// until JetStream stores it or the loop shuts down.
    fn report(self: &Arc<Self>, loss: Loss) {
        metrics::counter!(LOST_MESSAGES, "stream" => loss.stream.clone(), "consumer" => loss.consumer.clone(), "reason" => loss.reason.label())
            .increment(loss.count());
        let finding = loss.finding();
        tracing::warn!(message = "JetStream lost messages before this consumer handled them.", output = %finding.output, id = %finding.id);
        let (publisher, shutdown) = (Publisher::new(self.js.clone()), self.shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {
                    tracing::warn!(message = "Shut down before the data-loss finding was stored.", id = %finding.id);
                }
                () = publish_until_stored(&publisher, &finding) => {}
            }
        });
    }

    /// Reports each max-deliveries advisory of the consumer until shutdown.
    pub(crate) async fn follow_max_deliveries(self: Arc<Self>) {
        if !self.gives_up {
            return;
        }
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            self.stream, self.consumer
        );
        let queue = format!("vigil-loss.{}.{}", self.stream, self.consumer);
        let mut advisories = match self
            .js
            .client()
            .queue_subscribe(subject.clone(), queue)
            .await
        {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::error!(message = "Cannot follow max-deliveries advisories; such losses go unreported.", %subject, %error);
                return;
            }
        };
        loop {
            let advisory = tokio::select! {
                () = self.shutdown.cancelled() => return,
                advisory = advisories.next() => advisory,
            };
            let Some(advisory) = advisory else { return };
            match serde_json::from_slice::<MaxDeliveries>(&advisory.payload) {
                Ok(parsed) => self.report(Loss {
                    stream: self.stream.clone(),
                    consumer: self.consumer.clone(),
                    reason: Reason::MaxDeliveries,
                    first_sequence: parsed.stream_seq,
                    last_sequence: parsed.stream_seq,
                    deliveries: Some(parsed.deliveries),
                }),
                Err(error) => {
                    metrics::counter!("vigil_bus_errors_total", "error_type" => "advisory_malformed", "stage" => "max_deliveries")
                        .increment(1);
                    tracing::warn!(message = "Malformed max-deliveries advisory ignored.", %subject, %error);
                }
            }
        }
    }

    /// Compares every [`CHECK_INTERVAL`] until shutdown.
    pub(crate) async fn check_periodically(self: Arc<Self>, consumer: PullConsumer) {
        if !self.unfiltered {
            return;
        }
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = ticker.tick() => self.check_limits(&consumer).await,
            }
        }
    }
}

/// The fields of JetStream's `io.nats.jetstream.advisory.v1.max_deliver`
/// this watch needs.
#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

async fn publish_until_stored(publisher: &Publisher, finding: &Finding) {
    let subject = subject::findings(Priority::Warning, "");
    let mut delay = PUBLISH_FIRST_RETRY;
    loop {
        let published = publisher
            .publish(
                subject.clone(),
                &finding.id,
                &TraceContext::new_root(),
                codec::encode(finding),
            )
            .await;
        match published {
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(message = "Cannot publish the data-loss finding; retrying.", id = %finding.id, %error, retry_in = ?delay);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(PUBLISH_MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_passing_the_position_is_a_gap_reported_once() {
        let mut position = Position::default();
        // Restarted: the durable had read up to 20; the stream now starts at 421.
        assert_eq!(position.advance(20, "a".into(), 421), Some((21, 420)));
        assert_eq!(position.advance(20, "a".into(), 421), None);
        assert_eq!(position.advance(500, "a".into(), 450), None);
    }

    #[test]
    fn a_new_consumer_has_lost_nothing_of_what_aged_out_before_it() {
        let mut position = Position::default();
        // Created on a stream starting at 41: JetStream places it at 40.
        assert_eq!(position.advance(40, "a".into(), 41), None);
    }

    #[test]
    fn a_recreated_consumer_is_measured_from_what_its_predecessor_read() {
        let mut position = Position::default();
        assert_eq!(position.advance(10, "a".into(), 1), None);
        position.handed(30);
        // Deleted, the stream moved on to 101, recreated there.
        assert_eq!(position.advance(100, "b".into(), 101), Some((31, 100)));
        // Replayed messages below the position do not move it back.
        position.handed(5);
        assert_eq!(position.advance(100, "b".into(), 101), None);
    }

    #[test]
    fn the_finding_names_stream_consumer_and_count() {
        let loss = Loss {
            stream: "VIGIL_EVENTS".into(),
            consumer: "detectors".into(),
            reason: Reason::StreamLimits,
            first_sequence: 21,
            last_sequence: 420,
            deliveries: None,
        };
        let finding = loss.finding();
        assert_eq!(finding.name, FINDING_NAME);
        assert_eq!(
            finding.id,
            "jetstream-data-lost:VIGIL_EVENTS:detectors:stream_limits:21-420"
        );
        assert_eq!(finding.output_fields["lost_messages"], "400");
        assert_eq!(finding.priority(), Priority::Warning);
        assert!(
            finding.output.contains("lost 400 message(s)"),
            "{}",
            finding.output
        );
    }
}
