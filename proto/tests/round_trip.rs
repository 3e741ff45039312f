//! Property tests: every payload a service publishes decodes to the value
//! that was encoded, and survives fields it does not know (a newer sender).

use std::collections::HashMap;

use proptest::{collection::vec, prelude::*};
use prost::Message;
use vigil_proto::batch::{self, COMPACT_FORMAT};
use vigil_proto::v1::{
    ActionRecord, ActionTimings, Ancestor, AnomalyScore, Args, AuditRecord, Event, EventBatch,
    FeatureContribution, Finding, IncidentComment, IncidentState, PodMeta, PodRef, QuarantineState,
    SocketAddress,
};

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including NUL and the replacement character.
    prop_oneof![".{0,12}", "[a-z/._-]{0,40}", Just(String::new())]
}

fn labels() -> impl Strategy<Value = HashMap<String, String>> {
    proptest::collection::hash_map(text(), text(), 0..4)
}

/// Enum fields are open in proto3: unknown numbers must survive too.
fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![0..12i32, any::<i32>()]
}

fn address() -> impl Strategy<Value = Option<SocketAddress>> {
    proptest::option::of((enum_value(), text(), any::<u32>(), text()).prop_map(
        |(family, ip, port, unix_path)| SocketAddress {
            family,
            ip,
            port,
            unix_path,
        },
    ))
}

fn args() -> impl Strategy<Value = Args> {
    (
        (
            text(),
            text(),
            any::<u32>(),
            any::<u32>(),
            any::<i32>(),
            address(),
        ),
        (
            vec(text(), 0..4),
            vec(any::<i64>(), 0..3),
            any::<u64>(),
            enum_value(),
        ),
        (address(), text(), any::<i32>()),
    )
        .prop_map(
            |(
                (path, target_path, flags, mode, fd, address),
                (argv, ids, cap_effective, fd_kind),
                (local_address, name, exit_code),
            )| Args {
                path,
                target_path,
                flags,
                mode,
                fd,
                address,
                argv,
                ids,
                cap_effective,
                fd_kind,
                local_address,
                name,
                exit_code,
                ..Args::default()
            },
        )
}

fn pod() -> impl Strategy<Value = PodMeta> {
    (text(), text(), labels(), text()).prop_map(|(name, namespace, labels, image)| PodMeta {
        name,
        namespace,
        labels,
        image,
        ..PodMeta::default()
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            text(),
            enum_value(),
        ),
        (
            any::<i64>(),
            proptest::option::of(args()),
            text(),
            any::<u64>(),
        ),
        (vec(text(), 0..3), proptest::option::of(pod()), text()),
        vec((any::<u32>(), text()), 0..3),
    )
        .prop_map(
            |(
                (kernel_time_ns, pid, uid, comm, r#type),
                (return_value, args, container_id, cgroup_id),
                (cmdline, pod, syscall),
                ancestors,
            )| Event {
                kernel_time_ns,
                pid,
                uid,
                comm,
                r#type,
                return_value,
                args,
                container_id,
                cgroup_id,
                cmdline,
                pod,
                syscall,
                ancestors: ancestors
                    .into_iter()
                    .map(|(pid, comm)| Ancestor {
                        pid,
                        comm,
                        ..Ancestor::default()
                    })
                    .collect(),
                ..Event::default()
            },
        )
}

fn batch() -> impl Strategy<Value = EventBatch> {
    (
        text(),
        any::<u64>(),
        vec(event(), 0..4),
        any::<u64>(),
        text(),
    )
        .prop_map(
            |(node, sequence, events, kernel_drops, run_id)| EventBatch {
                node,
                sequence,
                events,
                kernel_drops,
                run_id,
                ..EventBatch::default()
            },
        )
}

/// Finite scores: a NaN is not equal to itself, whatever the wire did.
/// An event with every context field set, on top of [`event`].
fn full_event() -> impl Strategy<Value = Event> {
    (
        event(),
        (
            any::<u64>(),
            text(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (text(), text(), text(), text(), any::<u32>()),
        (any::<u64>(), any::<u64>(), any::<bool>(), any::<u32>()),
        vec((any::<u32>(), text(), text(), vec(text(), 0..2)), 0..3),
    )
        .prop_map(
            |(
                base,
                (wall_time_ns, node, tid, ppid, gid),
                (exe_path, cwd, cgroup_path, pod_uid, login_uid),
                (process_start_ns, cap_effective, container_runtime_setup, tty),
                ancestors,
            )| Event {
                wall_time_ns,
                node,
                tid,
                ppid,
                gid,
                exe_path,
                cwd,
                cgroup_path,
                pod_uid,
                login_uid,
                process_start_ns,
                cap_effective,
                container_runtime_setup,
                tty,
                ancestors: ancestors
                    .into_iter()
                    .map(|(pid, comm, exe_path, cmdline)| Ancestor {
                        pid,
                        comm,
                        exe_path,
                        cmdline,
                    })
                    .collect(),
                ..base
            },
        )
}

/// A batch whose events share a few processes, as a real one does: each
/// event is one of a few templates with its own time, thread, result and
/// arguments.
fn shared_context_batch() -> impl Strategy<Value = EventBatch> {
    (
        vec(full_event(), 1..4),
        vec(
            (
                any::<prop::sample::Index>(),
                (any::<u64>(), any::<u64>(), any::<u32>(), enum_value()),
                (any::<i64>(), proptest::option::of((args(), text())), text()),
            ),
            0..12,
        ),
        (text(), any::<u64>(), text(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(templates, picks, (node, sequence, run_id, kernel_drops, userspace_drops))| {
                let events = picks
                    .into_iter()
                    .map(
                        |(
                            pick,
                            (kernel_time_ns, wall_time_ns, tid, r#type),
                            (return_value, args, syscall),
                        )| {
                            Event {
                                kernel_time_ns,
                                wall_time_ns,
                                tid,
                                r#type,
                                return_value,
                                args: args.map(|(args, path_raw)| Args { path_raw, ..args }),
                                syscall,
                                ..pick.get(&templates).clone()
                            }
                        },
                    )
                    .collect();
                EventBatch {
                    node,
                    sequence,
                    events,
                    kernel_drops,
                    userspace_drops,
                    run_id,
                }
            },
        )
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        0.0..1.0
    ]
}

fn finding() -> impl Strategy<Value = Finding> {
    (
        (text(), any::<u64>(), enum_value(), text(), enum_value()),
        (vec(text(), 0..3), text(), labels(), vec(event(), 0..2)),
        (score(), vec((text(), score()), 0..3), labels(), text()),
    )
        .prop_map(
            |(
                (id, time_ns, source, name, priority),
                (tags, output, output_fields, events),
                (score, explanation, pod_labels, namespace),
            )| Finding {
                id,
                time_ns,
                source,
                name,
                priority,
                tags,
                output,
                output_fields,
                events,
                score,
                explanation: explanation
                    .into_iter()
                    .map(|(feature, value)| FeatureContribution {
                        feature,
                        value,
                        weight: value / 2.0,
                    })
                    .collect(),
                pod_labels,
                namespace,
                ..Finding::default()
            },
        )
}

fn action() -> impl Strategy<Value = ActionRecord> {
    (
        (text(), text(), enum_value(), enum_value(), any::<bool>()),
        (text(), text(), any::<[u64; 4]>(), any::<u32>()),
    )
        .prop_map(
            |((id, finding_id, kind, outcome, dry_run), (pod, namespace, t, pid))| ActionRecord {
                id,
                finding_id,
                kind,
                outcome,
                dry_run,
                pod,
                namespace,
                timings: Some(ActionTimings {
                    event_kernel_time_ns: t[0],
                    finding_received_ns: t[1],
                    action_started_ns: t[2],
                    action_completed_ns: t[3],
                }),
                pid,
                ..ActionRecord::default()
            },
        )
}

fn anomaly() -> impl Strategy<Value = AnomalyScore> {
    (text(), text(), any::<u64>(), any::<u32>(), score(), score()).prop_map(
        |(container_id, workload, window_end_ns, window_events, score, novelty)| AnomalyScore {
            container_id,
            workload,
            window_end_ns,
            window_events,
            score,
            novelty,
            ..AnomalyScore::default()
        },
    )
}

fn quarantine() -> impl Strategy<Value = QuarantineState> {
    (text(), text(), vec(enum_value(), 0..4), any::<u64>()).prop_map(
        |(namespace, pod, active, since_ns)| QuarantineState {
            target: Some(PodRef { namespace, pod }),
            active,
            since_ns,
            ..QuarantineState::default()
        },
    )
}

fn incident() -> impl Strategy<Value = IncidentState> {
    (
        text(),
        enum_value(),
        text(),
        vec((text(), any::<u64>(), text()), 0..3),
    )
        .prop_map(|(id, status, assignee, comments)| IncidentState {
            id,
            status,
            assignee,
            comments: comments
                .into_iter()
                .map(|(user, time_ns, text)| IncidentComment {
                    user,
                    time_ns,
                    text,
                })
                .collect(),
            ..IncidentState::default()
        })
}

fn audit() -> impl Strategy<Value = AuditRecord> {
    (text(), any::<u64>(), text(), text(), text()).prop_map(|(id, time_ns, user, step, detail)| {
        AuditRecord {
            id,
            time_ns,
            user,
            step,
            detail,
            ..AuditRecord::default()
        }
    })
}

/// Encodes, checks the length, decodes; and decodes again with an unknown
/// field of every wire type appended, which a reader must skip.
fn assert_round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M) {
    let bytes = message.encode_to_vec();
    assert_eq!(bytes.len(), message.encoded_len());
    assert_eq!(
        &M::decode(bytes.as_slice()).expect("own encoding decodes"),
        message
    );
    let mut newer = bytes.clone();
    newer.extend_from_slice(&UNKNOWN_FIELDS);
    assert_eq!(
        &M::decode(newer.as_slice()).expect("unknown fields are skipped"),
        message
    );
}

/// Field 1000 as a varint, a fixed64, a length-delimited and a fixed32.
const UNKNOWN_FIELDS: [u8; 26] = [
    0xc0, 0x3e, 0x96, 0x01, // varint 150
    0xc1, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8, // fixed64
    0xc2, 0x3e, 3, b'n', b'e', b'w', // bytes "new"
    0xc5, 0x3e, 9, 9, 9, 9, // fixed32
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn event_batches_round_trip(batch in batch()) {
        assert_round_trip(&batch);
    }

    /// The compact form gives back every event whole, survives fields it
    /// does not know, and a format-1 reader refuses it instead of reading a
    /// batch without events.
    #[test]
    fn compact_batches_round_trip(whole in shared_context_batch()) {
        let compact = batch::compact(whole.clone());
        assert_round_trip(&compact);
        let mut bytes = compact.encode_to_vec();
        bytes.extend_from_slice(&UNKNOWN_FIELDS);
        let decoded = batch::decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(decoded.format, COMPACT_FORMAT);
        prop_assert_eq!(decoded.skipped, vec![]);
        prop_assert_eq!(decoded.batch, whole);
        prop_assert!(EventBatch::decode(bytes.as_slice()).is_err());
    }

    /// Format 1 still reads through the same decoder.
    #[test]
    fn whole_batches_decode_as_format_1(whole in batch()) {
        let decoded = batch::decode(&whole.encode_to_vec()).expect("format 1 decodes");
        prop_assert_eq!(decoded.format, batch::FULL_FORMAT);
        prop_assert_eq!(decoded.batch, whole);
    }

    #[test]
    fn findings_round_trip(finding in finding()) {
        assert_round_trip(&finding);
    }

    #[test]
    fn action_records_round_trip(action in action()) {
        assert_round_trip(&action);
    }

    #[test]
    fn anomaly_scores_round_trip(score in anomaly()) {
        assert_round_trip(&score);
    }

    #[test]
    fn kv_states_round_trip(quarantine in quarantine(), incident in incident(), audit in audit()) {
        assert_round_trip(&quarantine);
        assert_round_trip(&incident);
        assert_round_trip(&audit);
    }

    /// A batch split in two and concatenated decodes as one (protobuf's
    /// merge: repeated fields append), which relays may rely on.
    #[test]
    fn concatenated_batches_merge(first in vec(event(), 0..3), second in vec(event(), 0..3)) {
        let mut bytes = EventBatch { events: first.clone(), ..EventBatch::default() }.encode_to_vec();
        EventBatch { events: second.clone(), ..EventBatch::default() }
            .encode(&mut bytes)
            .expect("a Vec grows");
        let merged = EventBatch::decode(bytes.as_slice()).expect("concatenation decodes");
        let expected: Vec<Event> = first.into_iter().chain(second).collect();
        prop_assert_eq!(merged.events, expected);
    }
}

#[test]
fn unknown_fields_are_well_formed() {
    // The appended bytes alone are a valid message of any type.
    assert_eq!(
        Event::decode(UNKNOWN_FIELDS.as_slice()).expect("decodes"),
        Event::default()
    );
}
