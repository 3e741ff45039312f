//! A profile learned from the collector's events, applied for real: the
//! workload still runs under it, the syscalls it never used fail with EPERM,
//! the log-only phase blocks nothing, and the AppArmor profile parses.
#![allow(clippy::unwrap_used, reason = "test assertions")]

mod support;

use std::process::Command;

use vigil_profiles::catalog::{self, CATALOG, Confinement, Outcome, Scene};
use vigil_profiles::seccomp::SeccompProfile;

fn scene(dir: &std::path::Path, victim: u32) -> Scene {
    Scene {
        dir: dir.to_path_buf(),
        victim_pid: victim,
        runtime_socket: dir.join("runtime.sock"),
        cgroup_procs: catalog::root_cgroup_procs().expect("a cgroup hierarchy"),
    }
}

#[test]
fn the_learned_profile_lets_the_workload_run_and_denies_what_it_never_used() {
    if !vigil_testkit::require_root(
        "the_learned_profile_lets_the_workload_run_and_denies_what_it_never_used",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile_path = support::learn(dir.path(), true);
    let profile: SeccompProfile =
        serde_json::from_str(&std::fs::read_to_string(&profile_path).unwrap()).unwrap();
    assert_eq!(profile.default_action, "SCMP_ACT_ERRNO");
    let allowed = &profile.syscalls[0].names;
    for seen in ["openat", "execve", "clone"] {
        assert!(
            allowed.iter().any(|n| n == seen),
            "{seen} was observed and must be allowed"
        );
    }
    assert!(
        !allowed.iter().any(|n| n == "unshare"),
        "another container's unshare leaked into the profile"
    );

    // The workload, confined as a restricted pod would be, still works.
    let out_file = dir.path().join("out");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let output = support::run_workload(
        &[
            "--seccomp",
            profile_path.to_str().unwrap(),
            "--user",
            "65534:65534",
        ],
        &out_file,
    );
    assert!(
        output.status.success(),
        "workload failed under its profile: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "workload ok\n");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "done\n");

    // Syscalls it never used fail with EPERM, though root could make them
    // unconfined: the denial is the profile's.
    let victim = Command::new("sleep").arg("30").spawn().unwrap();
    let scene = scene(dir.path(), victim.id());
    let runner = support::runner();
    let mut denied = 0;
    for id in [
        "unshare-mount-namespace",
        "keyctl-keyring",
        "userfaultfd",
        "bpf-program",
        "ptrace-other-process",
    ] {
        let technique = CATALOG.iter().find(|t| t.id == id).unwrap();
        let free = catalog::attempt(&runner, &Confinement::Unconfined, technique, &scene);
        assert!(
            !free.blocked(),
            "{id}: unconfined root should not be refused, got {free:?}"
        );
        let confined = catalog::attempt(
            &runner,
            &Confinement::SeccompOnly(profile_path.clone()),
            technique,
            &scene,
        );
        assert_eq!(
            confined,
            Outcome::Blocked("EPERM".into()),
            "{id} under the profile"
        );
        denied += 1;
    }
    println!("{denied} unused syscalls denied with EPERM; the workload ran");
    kill(victim);
}

#[test]
fn the_log_only_phase_blocks_nothing() {
    if !vigil_testkit::require_root("the_log_only_phase_blocks_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile_path = support::learn(dir.path(), false);
    let text = std::fs::read_to_string(&profile_path).unwrap();
    assert!(text.contains("SCMP_ACT_LOG"), "{text}");
    let output = support::run_workload(
        &["--seccomp", profile_path.to_str().unwrap()],
        &dir.path().join("out"),
    );
    assert!(output.status.success());
    let victim = Command::new("sleep").arg("30").spawn().unwrap();
    let technique = CATALOG
        .iter()
        .find(|t| t.id == "unshare-mount-namespace")
        .unwrap();
    let outcome = catalog::attempt(
        &support::runner(),
        &Confinement::SeccompOnly(profile_path),
        technique,
        &scene(dir.path(), victim.id()),
    );
    assert_eq!(outcome, Outcome::Succeeded, "log-only must not block");
    kill(victim);
}

#[test]
fn check_reports_what_the_profile_would_block() {
    let dir = tempfile::tempdir().unwrap();
    let profile_path = support::learn(dir.path(), false);
    let events = dir.path().join("events.pb");
    let check = |selector: &[&str]| {
        Command::new(support::runner())
            .arg("check")
            .arg("--profile")
            .arg(&profile_path)
            .arg("--events")
            .arg(&events)
            .args(selector)
            .output()
            .unwrap()
    };
    let own = check(&["--container", support::CONTAINER]);
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stdout)
    );
    let other = check(&["--container", "another"]);
    assert_eq!(other.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&other.stdout).contains("would block unshare (1 calls)"));
}

#[test]
fn the_apparmor_profile_parses_with_apparmor_parser() {
    let dir = tempfile::tempdir().unwrap();
    for enforce in [false, true] {
        support::learn(dir.path(), enforce);
        let profile = dir.path().join("vigil-web");
        let text = std::fs::read_to_string(&profile).unwrap();
        assert!(
            text.contains("\"/etc/hostname\" r,")
                && text.contains("\"/tmp/out\" rw,")
                && text.contains("\"/bin/true\" mrix,"),
            "{text}"
        );
        assert_eq!(text.contains("complain"), !enforce);
        support::apparmor_parse(&profile)
            .unwrap_or_else(|e| panic!("apparmor_parser rejected {text}: {e}"));
    }
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "profile broken {\n  /etc/hostname rx\n").unwrap();
    assert!(
        support::apparmor_parse(&broken).is_err(),
        "the parser check must be able to fail"
    );
}

#[test]
fn the_manifest_patch_applies_both_profiles_to_the_container() {
    let dir = tempfile::tempdir().unwrap();
    support::learn(dir.path(), true);
    let patch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("web.patch.json")).unwrap())
            .unwrap();
    assert_eq!(patch["metadata"]["namespace"], "shop");
    let container = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "web");
    assert_eq!(
        container["securityContext"]["seccompProfile"]["localhostProfile"],
        "vigil/web.json"
    );
    assert_eq!(
        container["securityContext"]["appArmorProfile"]["localhostProfile"],
        "vigil-web"
    );
}

fn kill(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}
