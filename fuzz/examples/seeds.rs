//! Writes the checked-in seed corpus (`fuzz/corpus/<target>/`) from Vigil's
//! own encoders and fixtures: `cargo run --manifest-path fuzz/Cargo.toml
//! --example seeds`. Every seed is checked by its target's invariants
//! before it is written, so a seed is also a regression test.

use std::{
    fs,
    path::{Path, PathBuf},
};

use prost::Message;
use vigil_collector::kernel::abi;
use vigil_fuzz::{
    kernel::{self, Body, HeaderFields},
    proto, recording, rules,
};
use vigil_proto::v1::{
    ActionRecord, AnomalyScore, AuditRecord, Event, EventBatch, Finding, IncidentState, PodRef,
    QuarantineRequest, QuarantineState,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = root.join("..");
    let corpus = root.join("corpus");
    let recorded = fs::read(repo.join("e2e/scenarios/shadow-read.batch"))?;
    let recorded = EventBatch::decode(recorded.as_slice())?;
    // A handful of the recorded attack's events keep the seeds small.
    let events: Vec<Event> = recorded.events.iter().take(12).cloned().collect();
    let small_batch = EventBatch {
        events: events.clone(),
        ..recorded.clone()
    };

    let records = kernel_records();
    write_all(&corpus, "kernel_record", &records, kernel::check)?;

    let mut samples = rules::sample_events();
    samples.retain(|event| event.encoded_len() > 0);
    let recordings = vec![
        ("empty".to_owned(), recording::encode(&[])?),
        ("shadow-read".to_owned(), recording::encode(&events)?),
        ("samples".to_owned(), recording::encode(&samples)?),
    ];
    write_all(&corpus, "recording", &recordings, recording::check)?;

    let batches = vec![
        ("shadow-read".to_owned(), small_batch.encode_to_vec()),
        (
            "shadow-read-compact".to_owned(),
            vigil_proto::batch::compact(small_batch.clone()).encode_to_vec(),
        ),
        (
            "samples".to_owned(),
            EventBatch {
                node: "node-1".into(),
                events: rules::sample_events(),
                ..EventBatch::default()
            }
            .encode_to_vec(),
        ),
    ];
    write_all(&corpus, "event_batch", &batches, rules::check_batch)?;

    write_all(
        &corpus,
        "proto_payload",
        &proto_seeds(&small_batch),
        proto::check,
    )?;

    let pack: Vec<(String, String)> = vigil_detectors::engine::DEFAULT_PACK
        .iter()
        .map(|(name, text)| (file_stem(name), (*text).to_owned()))
        .collect();
    let mut rules_files = Vec::new();
    for (name, text) in &pack[1..] {
        // Each pack file after base's lists and macros, which it uses.
        rules_files.push((name.clone(), format!("{}\n{text}", pack[0].1)));
    }
    rules_files.push(("base".to_owned(), pack[0].1.clone()));
    let rules_files: Vec<(String, Vec<u8>)> = rules_files
        .into_iter()
        .map(|(name, text)| (name, text.into_bytes()))
        .collect();
    write_all(&corpus, "rules_file", &rules_files, |bytes| {
        rules::check_file(&String::from_utf8_lossy(bytes));
    })?;

    write_all(&corpus, "condition", &conditions(&pack), |bytes| {
        rules::check_condition(&String::from_utf8_lossy(bytes));
    })?;

    let policies = vec![
        (
            "default".to_owned(),
            vigil_responder::policy::DEFAULT_POLICY.as_bytes().to_vec(),
        ),
        (
            "enforcing".to_owned(),
            vigil_responder::policy::default_policy_enforcing("{ namespaces: [shop] }")
                .into_bytes(),
        ),
    ];
    write_all(&corpus, "policy", &policies, |bytes| {
        vigil_fuzz::policy::check(&String::from_utf8_lossy(bytes));
    })?;
    Ok(())
}

/// One record per kind, and a syscall record for every reported syscall.
fn kernel_records() -> Vec<(String, Vec<u8>)> {
    let header = HeaderFields {
        pid: 4242,
        tid: 4242,
        ppid: 1,
        ktime_ns: 1_000_000,
        cgroup_id: 77,
        mnt_ns: 4026531841,
        exec_id: 2,
        comm: kernel::comm(b"cat"),
        ..HeaderFields::default()
    };
    let mut records = vec![
        (
            "exec".to_owned(),
            kernel::encode(
                &header,
                &Body::Exec {
                    filename: b"/bin/cat".to_vec(),
                    argv: b"cat\0/etc/shadow\0".to_vec(),
                },
            ),
        ),
        (
            "exit".to_owned(),
            kernel::encode(&header, &Body::Exit { exit_code: 9 }),
        ),
    ];
    let mut inet = vec![0u8; 16];
    inet[..2].copy_from_slice(&abi::AF_INET.to_ne_bytes());
    inet[2..4].copy_from_slice(&443u16.to_be_bytes());
    inet[4..8].copy_from_slice(&[127, 0, 0, 1]);
    for nr in kernel::reported_syscalls() {
        let header = HeaderFields {
            syscall: nr,
            ret: 3,
            ..header.clone()
        };
        let body = Body::Syscall {
            args: [u64::from(abi::AT_FDCWD as u32), 0x1000, 2, 0o644, 0, 0],
            path: b"/etc/shadow".to_vec(),
            path2: b"../tmp/x".to_vec(),
            sockaddr: inet.clone(),
            fd_kind: 3,
        };
        records.push((format!("syscall-{nr}"), kernel::encode(&header, &body)));
    }
    records
}

fn proto_seeds(batch: &EventBatch) -> Vec<(String, Vec<u8>)> {
    let finding = Finding {
        id: "f-1".into(),
        name: "Read sensitive file untrusted".into(),
        priority: 5,
        source: 1,
        namespace: "shop".into(),
        pod: "web-0".into(),
        events: batch.events.iter().take(2).cloned().collect(),
        score: 0.75,
        ..Finding::default()
    };
    let mut seeds: Vec<(String, Vec<u8>)> = proto::empty_seeds()
        .into_iter()
        .map(|(selector, bytes)| {
            (
                format!("empty-{}", proto::NAMES[usize::from(selector)]),
                with_selector(selector, &bytes),
            )
        })
        .collect();
    let mut push = |name: &str, bytes: Vec<u8>| {
        if let Some(selector) = proto::selector(name) {
            seeds.push((name.to_owned(), with_selector(selector, &bytes)));
        }
    };
    push("EventBatch", batch.encode_to_vec());
    push(
        "CompactBatch",
        vigil_proto::batch::compact(batch.clone()).encode_to_vec(),
    );
    push("Finding", finding.encode_to_vec());
    push(
        "ActionRecord",
        ActionRecord {
            id: "a-1".into(),
            finding_id: "f-1".into(),
            kind: 1,
            outcome: 1,
            pod: "web-0".into(),
            namespace: "shop".into(),
            ..ActionRecord::default()
        }
        .encode_to_vec(),
    );
    push(
        "AnomalyScore",
        AnomalyScore {
            container_id: "c0ffee".into(),
            score: 0.9,
            novelty: 0.1,
            window_events: 128,
            ..AnomalyScore::default()
        }
        .encode_to_vec(),
    );
    let target = Some(PodRef {
        namespace: "shop".into(),
        pod: "web-0".into(),
    });
    push(
        "QuarantineState",
        QuarantineState {
            target: target.clone(),
            active: vec![1, 5, 7],
            ..QuarantineState::default()
        }
        .encode_to_vec(),
    );
    push(
        "QuarantineRequest",
        QuarantineRequest {
            target,
            requested_by: "console:alice".into(),
            reason: "shell in web".into(),
            ..QuarantineRequest::default()
        }
        .encode_to_vec(),
    );
    push(
        "IncidentState",
        IncidentState {
            id: "i-1".into(),
            status: 2,
            assignee: "alice".into(),
            ..IncidentState::default()
        }
        .encode_to_vec(),
    );
    push(
        "AuditRecord",
        AuditRecord {
            id: "au-1".into(),
            user: "alice".into(),
            step: "quarantine".into(),
            ..AuditRecord::default()
        }
        .encode_to_vec(),
    );
    seeds
}

fn with_selector(selector: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![selector];
    bytes.extend_from_slice(payload);
    bytes
}

/// Every `condition:` and `output:` of the pack, inline or folded. A plain
/// scan of the text, so the seeds do not depend on the loader's API.
fn conditions(pack: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (file, text) in pack {
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start().trim_start_matches("- ");
            let Some((key, value)) = trimmed.split_once(':') else {
                continue;
            };
            if key != "condition" && key != "output" {
                continue;
            }
            let value = value.trim();
            let text = if value.starts_with('>') || value.starts_with('|') {
                let indent = line.len() - line.trim_start().len();
                lines[at + 1..]
                    .iter()
                    .take_while(|next| {
                        next.trim().is_empty() || next.len() - next.trim_start().len() > indent
                    })
                    .map(|next| next.trim())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                value.to_owned()
            };
            seeds.push((format!("{file}-{key}-{at:04}"), text.into_bytes()));
        }
    }
    seeds
}

fn file_stem(name: &str) -> String {
    Path::new(name).file_stem().map_or_else(
        || name.to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

/// Checks each seed with its target's invariants, then writes it.
fn write_all(
    corpus: &Path,
    target: &str,
    seeds: &[(String, Vec<u8>)],
    check: impl Fn(&[u8]),
) -> std::io::Result<()> {
    let dir = corpus.join(target);
    fs::create_dir_all(&dir)?;
    for (name, bytes) in seeds {
        check(bytes);
        fs::write(dir.join(name), bytes)?;
    }
    println!("{target}: {} seeds", seeds.len());
    Ok(())
}
