//! The source keys through the real config loader (file + environment):
//! every source's parameters parse, and every bad one is reported by key,
//! all at once, before anything starts.

#![allow(clippy::unwrap_used, reason = "test assertions")]

use vigil_collector::{Config, SERVICE, Source, source::replay::Pace};

fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, vigil_service::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
    }
    vigil_service::config::load(
        SERVICE,
        file.map(|_| path.as_path()),
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

#[test]
fn every_source_reads_its_section_from_file_and_environment() {
    let file = r#"
source = "replay"
record_path = "/tmp/out.vigilrec"
process_ancestry_depth = 6
[replay]
path = "/tmp/in.vigilrec"
pace = "fast"
[synthetic]
rate = 5000
[drops]
threshold = 50
priority = "warning"
[kube]
enabled = true
api_url = "https://10.0.0.1:6443"
"#;
    let config = load(
        Some(file),
        &[
            ("VIGIL_COLLECTOR__REPLAY__SPEED", "4.0"),
            ("VIGIL_COLLECTOR__SYNTHETIC__CONTAINERS", "3"),
        ],
    )
    .unwrap();
    assert_eq!(config.source, Source::Replay);
    assert_eq!(config.replay.path, "/tmp/in.vigilrec");
    assert_eq!((config.replay.pace, config.replay.speed), (Pace::Fast, 4.0));
    assert_eq!(
        (config.synthetic.rate, config.synthetic.containers),
        (5000, 3)
    );
    assert_eq!(config.process_ancestry_depth, 6);
    assert_eq!(config.record_path, "/tmp/out.vigilrec");
    assert_eq!(
        (config.drops.threshold, config.drops.priority.as_str()),
        (50, "warning")
    );
    assert!(config.kube.enabled);

    let synthetic = load(None, &[("VIGIL_COLLECTOR__SOURCE", "synthetic")]).unwrap();
    assert_eq!(synthetic.source, Source::Synthetic);
}

#[test]
fn bad_source_keys_are_all_reported_by_name() {
    let error = load(
        None,
        &[
            ("VIGIL_COLLECTOR__SOURCE", "replay"),
            ("VIGIL_COLLECTOR__REPLAY__SPEED", "-1"),
            ("VIGIL_COLLECTOR__PROCESS_ANCESTRY_DEPTH", "1000"),
            ("VIGIL_COLLECTOR__DROPS__PRIORITY", "loud"),
            ("VIGIL_COLLECTOR__DROPS__INTERVAL_MS", "0"),
            ("VIGIL_COLLECTOR__KUBE__API_URL", "not a url"),
        ],
    )
    .unwrap_err();
    let text = error.to_string();
    for key in [
        "replay.path",
        "replay.speed",
        "process_ancestry_depth",
        "drops.priority",
        "drops.interval_ms",
        "kube.api_url",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    assert_eq!(error.problems.len(), 6, "{text}");

    let synthetic = load(
        None,
        &[
            ("VIGIL_COLLECTOR__SOURCE", "synthetic"),
            ("VIGIL_COLLECTOR__SYNTHETIC__RATE", "0"),
        ],
    )
    .unwrap_err();
    assert!(
        synthetic.to_string().contains("synthetic.rate"),
        "{synthetic}"
    );
    let unknown = load(None, &[("VIGIL_COLLECTOR__SYNTHETIC__BURST", "1")]).unwrap_err();
    assert!(unknown.to_string().contains("burst"), "{unknown}");
}
