//! Learning from the real collector: the workload runs in a pod-like
//! sandbox while the collector's eBPF programs watch it and publish to a
//! real nats-server; `vigil-profile learn --nats` reads VIGIL_EVENTS for the
//! sandbox's container, and the profile it writes lets the same workload
//! run confined as a restricted pod while the breakout catalog is blocked.
#![allow(clippy::unwrap_used, reason = "test assertions")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use vigil_profiles::catalog::{self, CATALOG, Confinement, Scene};
use vigil_testkit::{Pipeline, PodSandbox, ServiceSpec, require_root};

#[test]
fn a_profile_learned_from_the_collector_confines_the_workload() {
    if !require_root("a_profile_learned_from_the_collector_confines_the_workload") {
        return;
    }
    let binaries = vigil_testkit::binary("vigil-collector")
        .parent()
        .unwrap()
        .to_owned();
    let mut pipeline = Pipeline::start(
        &binaries,
        "profile-node",
        &[ServiceSpec::new("vigil-collector")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    pipeline
        .wait_healthy(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
    let out_file = dir.path().join("out");
    let sandbox = PodSandbox::create().unwrap();
    let run = sandbox
        .command("perl", &["-e", support::WORKLOAD])
        .env("OUT", &out_file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the workload failed unconfined: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let profiles = dir.path().join("profiles");
    let learned = vigil_testkit::wait_until(Duration::from_secs(20), || {
        let output = Command::new(support::runner())
            // The sandbox's own init (sh, then unshare) plays the runtime's.
            .args(["learn", "--name", "live", "--enforce", "--idle-secs", "1"])
            .args(["--ignore-program", "sh", "--ignore-program", "unshare"])
            .arg("--nats")
            .arg(pipeline.nats.url())
            .arg("--container")
            .arg(&sandbox.container_id)
            .arg("--out")
            .arg(&profiles)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        // A read may begin before the collector has published the whole
        // run: wait until the learner has seen everything the workload
        // does, up to the exits that end it.
        let seen = text
            .lines()
            .find_map(|line| line.strip_prefix("syscalls seen: "))
            .unwrap_or_default();
        let complete = ["clone", "execve", "openat", "procexit"]
            .iter()
            .all(|syscall| seen.split(' ').any(|s| s == *syscall));
        (output.status.success() && complete).then_some(text)
    });
    let profile = profiles.join("live.json");
    let summary = learned.unwrap_or_else(|| {
        let log = pipeline
            .service("vigil-collector")
            .map(|s| s.log_text())
            .unwrap_or_default();
        panic!("nothing learned from the collector; its log:\n{log}")
    });
    println!("{summary}");
    let apparmor = profiles.join("vigil-live");
    support::apparmor_parse(&apparmor)
        .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&apparmor).unwrap()));

    // The unconfined run left a root-owned file; the confined one writes it anew.
    std::fs::remove_file(&out_file).unwrap();
    let output = support::run_workload(
        &[
            "--seccomp",
            profile.to_str().unwrap(),
            "--user",
            "65534:65534",
        ],
        &out_file,
    );
    assert!(
        output.status.success(),
        "the workload broke under the profile learned from the collector: {}\n{}\n{:?}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(&profile).unwrap(),
        Command::new("ls")
            .arg("-la")
            .arg(dir.path())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    );

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
    let blocked: Vec<&str> = CATALOG
        .iter()
        .filter(|t| {
            catalog::attempt(
                &support::runner(),
                &Confinement::Restricted(profile.clone()),
                t,
                &scene,
            )
            .blocked()
        })
        .map(|t| t.id)
        .collect();
    let _ = victim.kill();
    let _ = victim.wait();
    println!(
        "learned from the collector: {} of {} techniques blocked",
        blocked.len(),
        CATALOG.len()
    );
    assert_eq!(blocked.len(), CATALOG.len(), "blocked only {blocked:?}");
}
