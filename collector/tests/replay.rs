//! Record and replay through the whole collector and a real nats-server: a
//! recording made while publishing replays to the same events; a corrupt or
//! truncated recording stops the collector at start with the byte offset.

#![allow(clippy::unwrap_used, reason = "test assertions")]

mod publish_support;

use std::{path::Path, time::Duration};

use publish_support::{Running, Stored, config, event_count, read};
use tokio_util::sync::CancellationToken;
use vigil_bus::{subject, topology::EVENTS};
use vigil_collector::{
    Config, Source, run,
    source::{
        recording::{RecordingReader, RecordingWriter},
        replay::Pace,
    },
};
use vigil_proto::v1::{Event, EventBatch};
use vigil_service::Health;
use vigil_testkit::NatsServer;

const EVENTS_RECORDED: usize = 300;

fn by_time(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(|e| e.kernel_time_ns);
    events
}

fn published(batches: &[Stored<EventBatch>]) -> Vec<Event> {
    batches
        .iter()
        .flat_map(|b| b.message.events.clone())
        .collect()
}

fn read_recording(path: &Path) -> Vec<Event> {
    let file = std::fs::File::open(path).unwrap();
    RecordingReader::new(std::io::BufReader::new(file))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn replay_config(nats: &NatsServer, path: &Path) -> Config {
    let mut config = config(nats, "replay-test");
    config.source = Source::Replay;
    config.replay.path = path.to_string_lossy().into_owned();
    config.replay.pace = Pace::Fast;
    config.replay.rebase_time = false;
    config
}

async fn read_events(nats: &NatsServer, count: usize) -> Vec<Event> {
    let batches = read(
        nats,
        &EVENTS,
        subject::EVENTS_ALL,
        Duration::from_secs(20),
        |b| event_count(b) >= count,
    )
    .await;
    published(&batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_file_replays_to_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.vigilrec");

    let nats = NatsServer::start();
    let mut recording = config(&nats, "replay-test");
    recording.synthetic.max_events = EVENTS_RECORDED as u64;
    recording.synthetic.rate = 100_000;
    recording.record_path = path.to_string_lossy().into_owned();
    let collector = Running::start(recording).await;
    let sent = read_events(&nats, EVENTS_RECORDED).await;
    collector.stop().await;
    assert_eq!(sent.len(), EVENTS_RECORDED);
    let recorded = read_recording(&path);
    assert_eq!(recorded.len(), EVENTS_RECORDED);
    assert_eq!(
        by_time(sent),
        by_time(recorded.clone()),
        "the recording holds what was published"
    );

    let other_nats = NatsServer::start();
    let collector = Running::start(replay_config(&other_nats, &path)).await;
    let replayed = read_events(&other_nats, EVENTS_RECORDED).await;
    collector.stop().await;
    assert_eq!(replayed.len(), EVENTS_RECORDED, "no event lost or repeated");
    assert_eq!(by_time(replayed), by_time(recorded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebased_replays_keep_the_gaps_between_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.vigilrec");
    let gaps = [0, 5_000_000, 7_000_000];
    let mut writer = RecordingWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (i, gap) in gaps.iter().enumerate() {
        let event = Event {
            pid: 100 + i as u32,
            kernel_time_ns: 1 + i as u64,
            wall_time_ns: 1_000_000_000 + gap,
            ..Event::default()
        };
        writer.write(&event).unwrap();
    }
    writer.finish().unwrap();

    let nats = NatsServer::start();
    let mut config = replay_config(&nats, &path);
    config.replay.rebase_time = true;
    let before = vigil_service::clock::wall_ns();
    let collector = Running::start(config).await;
    let replayed = by_time(read_events(&nats, gaps.len()).await);
    collector.stop().await;
    assert_eq!(replayed.len(), gaps.len());
    let first = replayed[0].wall_time_ns;
    assert!(first >= before, "rebased to the time of the replay");
    let replayed_gaps: Vec<u64> = replayed.iter().map(|e| e.wall_time_ns - first).collect();
    assert_eq!(replayed_gaps, gaps);
}

/// `run` with a bad recording: fails before it needs the bus.
async fn start_error(path: &Path) -> String {
    let mut config = Config {
        source: Source::Replay,
        ..Config::default()
    };
    config.replay.path = path.to_string_lossy().into_owned();
    config.nats.url = "nats://127.0.0.1:1".into();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(config, Health::default(), CancellationToken::new()),
    )
    .await
    .expect("a bad recording fails at once");
    result.expect_err("a bad recording is an error").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_corrupt_recording_fails_with_the_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.vigilrec");
    let events = [
        Event {
            pid: 1,
            comm: "first".into(),
            ..Event::default()
        },
        Event {
            pid: 2,
            comm: "second".into(),
            ..Event::default()
        },
    ];
    let mut writer = RecordingWriter::new(Vec::new()).unwrap();
    for event in &events {
        writer.write(event).unwrap();
    }
    let bytes = writer.finish().unwrap();
    let first_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let second_body = 12 + 4 + first_len + 4;
    let second_len = bytes.len() - second_body;

    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let text = start_error(&path).await;
    let expected = format!(
        "replay.path {}: byte {second_body}: expected a {second_len}-byte record body, but the file ends after {} of them",
        path.display(),
        second_len - 3
    );
    assert_eq!(text, expected);

    let mut corrupt = bytes.clone();
    corrupt[12 + 4 + first_len..second_body].copy_from_slice(&(u32::MAX).to_le_bytes());
    std::fs::write(&path, &corrupt).unwrap();
    let text = start_error(&path).await;
    assert!(
        text.contains(&format!(
            "byte {}: expected a record length between 1 and",
            12 + 4 + first_len
        )),
        "{text}"
    );

    std::fs::write(&path, b"PK\x03\x04 a zip file").unwrap();
    let text = start_error(&path).await;
    assert!(
        text.contains("byte 0: expected the magic \"VIGILREC\""),
        "{text}"
    );

    let text = start_error(&dir.path().join("missing.vigilrec")).await;
    assert!(
        text.contains("missing.vigilrec") && text.contains("No such file"),
        "{text}"
    );
}
