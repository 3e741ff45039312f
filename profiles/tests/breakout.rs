//! The breakout catalog against the profile learned for the workload: each
//! technique is attempted for real from a child process, unconfined (the
//! control), under the seccomp profile alone (as root), and under the whole
//! restricted profile (seccomp + non-root + no capabilities +
//! no_new_privs). Prints the share blocked; all of it must be blocked with
//! the workload still working.
#![allow(clippy::unwrap_used, reason = "test assertions")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use vigil_profiles::catalog::{self, CATALOG, Confinement, Outcome, Scene};
use vigil_profiles::syscalls::is_guarded;

#[test]
fn the_restricted_profile_blocks_the_whole_catalog_and_the_workload_still_runs() {
    if !vigil_testkit::require_root(
        "the_restricted_profile_blocks_the_whole_catalog_and_the_workload_still_runs",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
    let profile = support::learn(dir.path(), true);
    let learned: Vec<String> = support::observed_batches()
        .iter()
        .flat_map(|b| b.events.iter())
        .filter(|e| e.container_id == support::CONTAINER)
        .map(|e| e.syscall.clone())
        .collect();

    // A root-only socket where a runtime's would be, another process to attack.
    let socket = dir.path().join("runtime.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, PermissionsExt::from_mode(0o600)).unwrap();
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let scene = Scene {
        dir: dir.path().to_path_buf(),
        victim_pid: victim.id(),
        runtime_socket: socket,
        cgroup_procs: catalog::root_cgroup_procs().expect("a cgroup hierarchy"),
    };
    let runner = support::runner();

    let modes = [
        ("unconfined", Confinement::Unconfined),
        ("seccomp", Confinement::SeccompOnly(profile.clone())),
        ("restricted", Confinement::Restricted(profile.clone())),
    ];
    let mut blocked = [0usize; 3];
    let header = [
        "technique",
        "syscalls",
        "unconfined",
        "seccomp only",
        "restricted",
    ];
    println!(
        "{:<26} {:<30} {:<22} {:<22} {}",
        header[0], header[1], header[2], header[3], header[4]
    );
    for technique in CATALOG {
        let outcomes: Vec<Outcome> = modes
            .iter()
            .map(|(_, m)| catalog::attempt(&runner, m, technique, &scene))
            .collect();
        println!(
            "{:<26} {:<30} {:<22} {:<22} {:?}",
            technique.id,
            technique.syscalls.join(","),
            format!("{:?}", outcomes[0]),
            format!("{:?}", outcomes[1]),
            outcomes[2]
        );
        for (i, outcome) in outcomes.iter().enumerate() {
            assert!(
                !matches!(outcome, Outcome::DidNotRun(_)),
                "{} ({}) did not run: {outcome:?}",
                technique.id,
                modes[i].0
            );
            blocked[i] += usize::from(outcome.blocked());
        }
        // Where the technique needs a syscall the workload never made, the
        // seccomp profile alone refuses it even to root.
        let needs_unlearned = technique
            .syscalls
            .iter()
            .all(|s| is_guarded(s) && !learned.iter().any(|l| l == s));
        if needs_unlearned {
            assert!(
                outcomes[1].blocked(),
                "{}: seccomp alone should block it, got {:?}",
                technique.id,
                outcomes[1]
            );
        }
        assert!(
            outcomes[2].blocked(),
            "{}: the restricted profile let it through: {:?}",
            technique.id,
            outcomes[2]
        );
    }
    let _ = victim.kill();
    let _ = victim.wait();
    let total = CATALOG.len();
    for (i, (name, _)) in modes.iter().enumerate() {
        println!(
            "{name}: {} of {total} techniques blocked ({:.1}%)",
            blocked[i],
            100.0 * blocked[i] as f64 / total as f64
        );
    }

    let output = support::run_workload(
        &[
            "--seccomp",
            profile.to_str().unwrap(),
            "--user",
            "65534:65534",
        ],
        &dir.path().join("out"),
    );
    assert!(
        output.status.success(),
        "the workload broke: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(blocked[2], total);
}
