//! The attack used by the demo, the end-to-end tests and the latency
//! benchmark: a process in a pod reads /etc/shadow, then stays alive, as a
//! credential-stealing foothold would.

use std::process::Child;

use vigil_testkit::PodSandbox;

/// Shell command run inside the sandbox.
pub const SHADOW_READ: &str = "cat /etc/shadow > /dev/null; exec sleep 600";

/// Name of the rule the scenario must trigger (see detectors).
pub const SHADOW_RULE_MARKER: &str = "shadow";

/// Starts the attack in `sandbox`.
pub fn start_shadow_read(sandbox: &PodSandbox) -> std::io::Result<Child> {
    sandbox.spawn("/bin/sh", &["-c", SHADOW_READ])
}
