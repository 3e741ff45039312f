//! Falco rules files (`vigil_rules::RuleSet`), conditions and output
//! templates: errors say where (file, line, column or offset) and what;
//! what loads evaluates any event without panicking.

use std::sync::LazyLock;

use vigil_proto::v1::{Args, Event, EventType, PodMeta};
use vigil_rules::{RuleSet, condition, output::OutputTemplate};

const FILE: &str = "fuzz_rules.yaml";

/// Loads `text` as one rules file and evaluates what compiles.
pub fn check_file(text: &str) {
    match RuleSet::load_sources(&[(FILE, text)]) {
        Ok(rules) => evaluate(&rules, &sample_events()),
        Err(error) => {
            let message = error.to_string();
            assert_eq!(error.file, FILE, "{message}");
            assert!(!error.message.trim().is_empty(), "{message}");
            // Line 0 is for errors about the whole file (empty, not a list).
            let lines = yaml_lines(text);
            assert!(
                error.line <= lines + 1,
                "line {} of {lines}: {message}",
                error.line
            );
        }
    }
}

/// Lines as YAML counts them: a lone CR ends a line too (as in most editors).
fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1
}

/// Runs every rule that each event's type selects, and renders its output.
pub fn evaluate(rules: &RuleSet, events: &[Event]) {
    for event in events {
        for rule in rules.matching(event) {
            std::hint::black_box(rule.output.render(event));
        }
    }
}

/// The detectors' own path for a batch from the bus: decode (either
/// format, `vigil_proto::batch::decode`), then the default rule pack over
/// every event, findings built.
pub fn check_batch(payload: &[u8]) {
    static PACK: LazyLock<RuleSet> =
        LazyLock::new(
            || match RuleSet::load_sources(vigil_detectors::engine::DEFAULT_PACK) {
                Ok(rules) => rules,
                Err(error) => panic!("the default rule pack does not load: {error}"),
            },
        );
    let Ok(decoded) = vigil_proto::batch::decode(payload) else {
        return;
    };
    let batch = decoded.batch;
    for raised in vigil_detectors::finding::evaluate(&PACK, &batch, 1) {
        // SIEMs parse this line; whatever the event held, it must be JSON.
        if let Err(error) = serde_json::from_str::<serde_json::Value>(&raised.falco_json) {
            panic!(
                "rule {:?}: Falco JSON does not parse ({error}): {}",
                raised.finding.name, raised.falco_json
            );
        }
    }
}

/// Parses `text` as a condition and as an output template.
pub fn check_condition(text: &str) {
    if let Err(error) = condition::parse(text) {
        let message = error.to_string();
        assert!(error.offset <= text.len(), "{message}");
        assert!(
            text.is_char_boundary(error.offset),
            "offset inside a character: {message}"
        );
        assert!(!error.expected.is_empty(), "{message}");
        assert!(
            message.starts_with(&format!("at offset {}: expected ", error.offset)),
            "{message}"
        );
    }
    if let Err(error) = OutputTemplate::parse(text) {
        let message = error.to_string();
        assert!(message.contains("unknown field %"), "{message}");
    }
}

/// A few events of the kinds rules test, with odd values where fields parse
/// text (paths, addresses, argv).
pub fn sample_events() -> Vec<Event> {
    let pod = PodMeta {
        namespace: "shop".into(),
        name: "web-0".into(),
        ..PodMeta::default()
    };
    let event = |kind: EventType, syscall: &str, args: Args| Event {
        r#type: kind.into(),
        syscall: syscall.into(),
        pid: 4242,
        ppid: 1,
        comm: "sh".into(),
        container_id: "c0ffee".into(),
        pod: Some(pod.clone()),
        args: Some(args),
        ..Event::default()
    };
    vec![
        event(
            EventType::Open,
            "openat",
            Args {
                path: "/etc/shadow".into(),
                flags: 0o2,
                ..Args::default()
            },
        ),
        event(
            EventType::Exec,
            "execve",
            Args {
                path: "/bin/sh".into(),
                argv: vec!["sh".into(), "-c".into(), "".into(), "\u{fffd}/%".into()],
                ..Args::default()
            },
        ),
        event(
            EventType::Connect,
            "connect",
            Args {
                path: "../../..//".into(),
                ..Args::default()
            },
        ),
        Event::default(),
    ]
}
