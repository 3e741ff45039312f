//! Replays a recording ([`super::recording`]) into the pipeline, at the
//! pace it was recorded or as fast as the publisher takes it. Nothing is
//! dropped: a replay waits for room in the channel.

use std::{fs::File, io::BufReader, path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::Event;

use super::{
    Sink, SourceError, TaskSource,
    recording::{FormatError, RecordingReader},
};
use crate::metrics;

/// `[replay]`: used when `source = "replay"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// The recording to replay (written with `record_path`).
    pub path: String,
    /// `original`: keep the recorded gaps between events (divided by
    /// `speed`); `fast`: as fast as the publisher takes them.
    pub pace: Pace,
    /// Speed-up of the original pace (2.0 = twice as fast).
    pub speed: f64,
    /// Shift wall-clock times so the first event happens now (downstream
    /// windows and retention see fresh events).
    pub rebase_time: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    #[default]
    Original,
    Fast,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            pace: Pace::Original,
            speed: 1.0,
            rebase_time: true,
        }
    }
}

impl ReplayConfig {
    /// Problems with `[replay]` when it is the source in use.
    pub fn validate(&self, problems: &mut vigil_service::Problems) {
        if self.path.trim().is_empty() {
            problems.add("replay.path", "is required when source = \"replay\"");
        }
        if !(self.speed.is_finite() && self.speed > 0.0) {
            problems.add(
                "replay.speed",
                format!("{} must be a positive number", self.speed),
            );
        }
    }
}

/// Checks the whole file, so a corrupt recording fails at start with the
/// offset, not halfway through a demo. Returns the number of events.
pub fn check(path: &Path) -> Result<u64, FormatError> {
    let file = File::open(path).map_err(FormatError::Io)?;
    let mut reader = RecordingReader::new(BufReader::new(file))?;
    let mut events = 0;
    while reader.next_event()?.is_some() {
        events += 1;
    }
    Ok(events)
}

pub struct ReplaySource;

impl ReplaySource {
    /// Checks the recording, then replays it on a task.
    pub fn start(config: &ReplayConfig, sink: Sink) -> Result<TaskSource, SourceError> {
        let path = Path::new(&config.path).to_owned();
        let recording_error = |source| SourceError::Recording {
            path: config.path.clone(),
            source,
        };
        let events = check(&path).map_err(recording_error)?;
        let reader = File::open(&path)
            .map_err(FormatError::Io)
            .and_then(|file| RecordingReader::new(BufReader::with_capacity(1 << 16, file)))
            .map_err(recording_error)?;
        tracing::info!(message = "Replaying a recording.", path = %config.path, events, pace = ?config.pace);
        let config = config.clone();
        Ok(TaskSource::spawn("replay", move |cancel| async move {
            match replay(reader, &config, &sink, &cancel).await {
                Ok(sent) => tracing::info!(message = "Replay finished.", events = sent),
                Err(error) => {
                    ::metrics::counter!(metrics::REPLAY_ERRORS, "reason" => error.reason())
                        .increment(1);
                    tracing::error!(message = "The recording changed while it was replayed.", path = %config.path, %error);
                }
            }
        }))
    }
}

/// Sends every event of `reader` into `sink`; returns how many.
pub async fn replay<R: std::io::Read>(
    mut reader: RecordingReader<R>,
    config: &ReplayConfig,
    sink: &Sink,
    cancel: &CancellationToken,
) -> Result<u64, FormatError> {
    let started = tokio::time::Instant::now();
    let now_wall = vigil_service::clock::wall_ns();
    let mut first_wall = None;
    let mut sent = 0;
    while let Some(mut event) = reader.next_event()? {
        let first = *first_wall.get_or_insert(event.wall_time_ns);
        if config.pace == Pace::Original {
            let gap = event.wall_time_ns.saturating_sub(first) as f64 / config.speed;
            let due = started + Duration::from_nanos(gap as u64);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
        }
        if config.rebase_time {
            rebase(&mut event, first, now_wall);
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            queued = sink.send(event) => if !queued { break },
        }
        sent += 1;
    }
    Ok(sent)
}

fn rebase(event: &mut Event, first_wall: u64, now_wall: u64) {
    event.wall_time_ns = now_wall.saturating_add(event.wall_time_ns.saturating_sub(first_wall));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, atomic::AtomicU64};

    use tokio::sync::mpsc;

    use super::*;
    use crate::source::recording::RecordingWriter;

    /// A recording of events `gaps_ms` apart (wall time).
    fn recording(gaps_ms: &[u64]) -> Vec<u8> {
        let mut writer = RecordingWriter::new(Vec::new()).unwrap();
        for (i, gap) in gaps_ms.iter().enumerate() {
            let event = Event {
                pid: i as u32 + 1,
                wall_time_ns: 7_000_000_000 + gap * 1_000_000,
                ..Event::default()
            };
            writer.write(&event).unwrap();
        }
        writer.finish().unwrap()
    }

    /// Replays with time paused: the runtime's clock only moves when the
    /// replay sleeps, so the virtual time taken is exactly the paced gaps.
    async fn replay_duration(pace: Pace, speed: f64) -> (Duration, Vec<Event>) {
        let bytes = recording(&[0, 2_000, 5_000]);
        let reader = RecordingReader::new(bytes.as_slice()).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let sink = Sink::new(tx, Arc::new(AtomicU64::new(0)));
        let config = ReplayConfig {
            pace,
            speed,
            rebase_time: false,
            ..ReplayConfig::default()
        };
        let started = tokio::time::Instant::now();
        let sent = replay(reader, &config, &sink, &CancellationToken::new())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        drop(sink);
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        assert_eq!(sent, 3);
        (elapsed, events)
    }

    #[tokio::test(start_paused = true)]
    async fn the_original_pace_keeps_the_recorded_gaps_divided_by_speed() {
        let (elapsed, events) = replay_duration(Pace::Original, 2.0).await;
        assert_eq!(elapsed, Duration::from_millis(2_500));
        assert_eq!(events.iter().map(|e| e.pid).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            events[1].wall_time_ns,
            7_000_000_000 + 2_000_000_000,
            "not rebased"
        );
        let (elapsed, _) = replay_duration(Pace::Original, 1.0).await;
        assert_eq!(elapsed, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn fast_replays_do_not_wait() {
        let (elapsed, events) = replay_duration(Pace::Fast, 1.0).await;
        assert_eq!(elapsed, Duration::ZERO);
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn replay_keys_are_checked() {
        let mut problems = vigil_service::Problems::default();
        ReplayConfig {
            speed: 0.0,
            ..ReplayConfig::default()
        }
        .validate(&mut problems);
        let text = format!("{problems:?}");
        assert!(
            text.contains("replay.path") && text.contains("replay.speed"),
            "{text}"
        );
    }
}
