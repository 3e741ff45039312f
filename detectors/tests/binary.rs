//! The `vigil-detectors` process: exits 0 on SIGTERM, promptly, even while
//! NATS is away; names at start the rules it skips.

use std::path::Path;

use vigil_testkit::{Pipeline, ServiceSpec};

fn built() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vigil-detectors"))
}

#[test]
fn sigterm_while_nats_is_away_exits_cleanly() {
    let spec = ServiceSpec::new("vigil-detectors");
    if let Err(error) = Pipeline::sigterm_while_nats_is_away(built(), &spec) {
        panic!("{error}");
    }
}

/// A rule needing an unsupported field, and one naming a field from a newer
/// Falco with `skip-if-unknown-filter: true`: the service starts, logs each
/// skipped rule by name with its field, and counts them in `/metrics`.
#[test]
fn skipped_rules_are_logged_by_name_and_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("falco.yaml"),
        "- rule: Privileged shell\n  desc: d\n  condition: exec_ok and container.privileged = true\n  output: o\n  priority: WARNING\n\
         - rule: From a newer Falco\n  desc: d\n  condition: exec_ok and proc.future_field = x\n  output: o\n  priority: WARNING\n  skip-if-unknown-filter: true\n",
    )
    .expect("write rules");
    let directories = format!("[{:?}]", dir.path().to_string_lossy());
    let spec = ServiceSpec::new("vigil-detectors").with("RULES__DIRECTORIES", &directories);
    let binaries = built().parent().expect("target directory");
    let mut pipeline =
        Pipeline::start(binaries, "node-1", &[spec]).unwrap_or_else(|e| panic!("{e}"));
    let service = pipeline.service("vigil-detectors").expect("the service");
    let log = service.log_text();
    for (rule, field) in [
        ("Privileged shell", "container.privileged"),
        ("From a newer Falco", "proc.future_field"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("rule \"{rule}\" is skipped")) && l.contains(field)),
            "no warning naming {rule} and {field} in:\n{log}"
        );
    }
    let metrics = service.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l == "vigil_detectors_rules_skipped 2"),
        "{metrics}"
    );
    assert_eq!(service.stop().and_then(|s| s.code()), Some(0));
}
