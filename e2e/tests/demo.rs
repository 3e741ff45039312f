//! The demo as `scripts/up --exit-after-demo` runs it (here from the debug
//! binaries, without the release build and the console): it attacks a real
//! container, shows the finding and the freeze, and exits 0.

use std::process::Command;

use vigil_testkit::require_root;

#[test]
fn the_demo_attacks_a_real_container_and_freezes_it() {
    if !require_root("the_demo_attacks_a_real_container_and_freezes_it") {
        return;
    }
    let demo = vigil_testkit::binary("vigil-demo");
    let binaries = demo.parent().expect("binary directory");
    let output = Command::new(&demo)
        .arg("--exit-after-demo")
        .arg("--binaries")
        .arg(binaries)
        .arg("--fallback")
        .arg(vigil_testkit::workspace_root().join("e2e/scenarios/shadow-read.batch"))
        .output()
        .expect("run vigil-demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "vigil-demo failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "(a real container: podman with runc) reads /etc/shadow",
        "rule     Read of /etc/shadow",
        "Freeze -> succeeded",
        "cgroup frozen now: true",
        "container processes running: false",
        "syscall-to-freeze latency: ",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    // The demo removes its container when it exits.
    let id = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("container "))
        .expect("the container id line")
        .trim();
    let inspect = Command::new("podman")
        .args(["container", "exists", id])
        .status()
        .expect("run podman");
    assert!(!inspect.success(), "container {id} is left behind");
}
