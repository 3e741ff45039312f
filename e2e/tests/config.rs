//! Every service binary refuses a bad configuration before starting:
//! exit code 78, every bad key named on stderr.

use std::process::Command;

#[test]
fn every_service_names_every_bad_key_and_exits_78() {
    for service in [
        "collector",
        "detectors",
        "responder",
        "anomaly-scorer",
        "console",
    ] {
        let prefix = vigil_service::config::env_prefix(service);
        let output = Command::new(vigil_testkit::binary(&format!("vigil-{service}")))
            .env(format!("{prefix}NATS__URL"), "http://not-nats")
            .env(format!("{prefix}NATS__STREAM_REPLICAS"), "2")
            .output()
            .expect("run the service binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{service}: {stderr}");
        assert!(stderr.contains("nats.url"), "{service}: {stderr}");
        assert!(
            stderr.contains("nats.stream_replicas"),
            "{service}: {stderr}"
        );
    }
}
