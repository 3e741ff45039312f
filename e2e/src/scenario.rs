//! The attack used by the demo, the end-to-end tests and the latency
//! benchmark: a process in a pod opens /etc/shadow and stays alive on it,
//! as a credential-stealing foothold would. No shell is involved, so the
//! shadow read is the first thing Vigil sees from the container.

use std::process::{Child, Stdio};

use vigil_testkit::PodSandbox;

/// Name fragment of the rule the scenario must trigger (see detectors).
pub const SHADOW_RULE_MARKER: &str = "shadow";

/// Starts the attack in `sandbox`: `tail -f /etc/shadow`.
pub fn start_shadow_read(sandbox: &PodSandbox) -> std::io::Result<Child> {
    sandbox
        .command("tail", &["-f", "/etc/shadow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
