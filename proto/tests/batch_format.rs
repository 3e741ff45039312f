//! The compact batch format's guarantees beyond a round trip: a version this
//! reader does not know is refused unread, an event whose context the batch
//! does not hold is skipped and reported, and shared context is sent once.

use std::collections::HashMap;

use prost::Message;
use vigil_proto::batch::{self, BatchError, COMPACT_FORMAT, MissingContext};
use vigil_proto::v1::{Ancestor, Args, CompactBatch, Event, EventBatch, EventType, PodMeta};

/// A process in a pod opening `path`, as the collector reports it.
fn open_event(pid: u32, path: &str, time: u64) -> Event {
    Event {
        kernel_time_ns: time,
        wall_time_ns: 1_765_000_000_000_000_000 + time,
        node: "node-1".into(),
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        comm: "nginx".into(),
        exe_path: "/usr/sbin/nginx".into(),
        cwd: "/".into(),
        r#type: EventType::Open as i32,
        return_value: 3,
        args: Some(Args {
            path: path.into(),
            flags: 0,
            ..Args::default()
        }),
        cgroup_path: "/kubepods/besteffort/pod1234/abcdef".into(),
        container_id: "abcdef0123456789".into(),
        pod_uid: "1234".into(),
        cgroup_id: 4242,
        syscall: "openat".into(),
        cmdline: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        process_start_ns: 99,
        ancestors: vec![Ancestor {
            pid: 1,
            comm: "containerd-shim".into(),
            exe_path: "/usr/bin/containerd-shim-runc-v2".into(),
            cmdline: vec!["containerd-shim-runc-v2".into()],
        }],
        pod: Some(PodMeta {
            name: "web-7d9f".into(),
            namespace: "shop".into(),
            labels: HashMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "front".into()),
            ]),
            service_account: "web".into(),
            container_name: "nginx".into(),
            image: "ghcr.io/acme/web:1.4".into(),
            owner_kind: "Deployment".into(),
            owner_name: "web".into(),
        }),
        ..Event::default()
    }
}

fn two_process_batch() -> EventBatch {
    EventBatch {
        node: "node-1".into(),
        sequence: 5,
        run_id: "run".into(),
        events: vec![
            open_event(10, "/etc/passwd", 1_000),
            open_event(11, "/etc/shadow", 2_000),
            open_event(10, "/etc/hosts", 3_000),
        ],
        ..EventBatch::default()
    }
}

#[test]
fn a_compact_batch_starts_with_its_version_and_reads_back_whole() {
    let whole = two_process_batch();
    let compact = batch::compact(whole.clone());
    assert_eq!(compact.processes.len(), 2, "one entry per process");
    assert_eq!(compact.containers.len(), 1, "one entry per container");
    let bytes = compact.encode_to_vec();
    assert_eq!(&bytes[..2], &[0x08, COMPACT_FORMAT as u8]);
    let decoded = batch::decode(&bytes).expect("decodes");
    assert_eq!(decoded.batch, whole);
    assert!(decoded.skipped.is_empty());
}

#[test]
fn an_unknown_version_is_refused_and_named() {
    let mut compact = batch::compact(two_process_batch());
    compact.format_version = 3;
    let error = batch::decode(&compact.encode_to_vec()).expect_err("version 3 is unknown");
    assert!(matches!(error, BatchError::UnknownVersion(3)), "{error:?}");
    assert_eq!(error.reason(), "unknown_format_version");
    let text = error.to_string();
    assert!(text.contains("format version 3"), "{text}");

    // A version too large for the field's type is refused the same way.
    let huge = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(matches!(
        batch::decode(&huge),
        Err(BatchError::UnknownVersion(v)) if v == 0x7fff_ffff_ffff_ffff
    ));
    // A version cut short is malformed, not guessed.
    let cut = batch::decode(&[0x08, 0x80]).expect_err("a varint cut short");
    assert_eq!(cut.reason(), "malformed_payload");
}

#[test]
fn an_event_with_a_missing_process_is_skipped_and_reported() {
    let whole = two_process_batch();
    let mut compact = batch::compact(whole.clone());
    compact.events[1].process = 7;
    let decoded = batch::decode(&compact.encode_to_vec()).expect("the batch is still read");
    assert_eq!(
        decoded.skipped,
        vec![MissingContext {
            event: 1,
            table: "process",
            index: 7
        }]
    );
    let expected = vec![whole.events[0].clone(), whole.events[2].clone()];
    assert_eq!(decoded.batch.events, expected);
    assert_eq!(
        decoded.skipped[0].to_string(),
        "event 1 refers to process entry 7, which the batch does not hold"
    );
}

#[test]
fn missing_containers_and_strings_skip_only_the_events_using_them() {
    let mut compact = batch::compact(two_process_batch());
    let strings = compact.strings.len() as u32;
    // Process 1 (pid 11) points at a container the batch lacks.
    compact.processes[1].container = 3;
    // Event 2's path is past the string table.
    compact.events[2].path_ref = strings + 10;
    let decoded = batch::decode(&compact.encode_to_vec()).expect("the batch is still read");
    let missing: Vec<(usize, &str)> = decoded.skipped.iter().map(|m| (m.event, m.table)).collect();
    assert_eq!(missing, vec![(1, "container"), (2, "string")]);
    assert_eq!(decoded.batch.events.len(), 1);
    assert_eq!(decoded.batch.events[0].pid, 10);
}

#[test]
fn a_format_1_reader_refuses_a_compact_batch() {
    let bytes = batch::compact(two_process_batch()).encode_to_vec();
    let error = EventBatch::decode(bytes.as_slice()).expect_err("field 1 is a string there");
    assert!(error.to_string().contains("wire type"), "{error}");
}

#[test]
fn shared_context_is_sent_once() {
    let events: Vec<Event> = (0..256)
        .map(|i| {
            open_event(
                10 + i % 4,
                &format!("/var/www/{}", i % 16),
                1_000 * u64::from(i),
            )
        })
        .collect();
    let whole = EventBatch {
        node: "node-1".into(),
        events,
        ..EventBatch::default()
    };
    let full = whole.encode_to_vec().len();
    let compact: CompactBatch = batch::compact(whole.clone());
    let small = compact.encode_to_vec().len();
    // The context (ancestry, pod, command line) dominates a whole event.
    assert!(small * 5 < full, "compact {small} bytes vs whole {full}");
    assert_eq!(batch::expand(compact).batch, whole);
}
