//! `vigil-detectors syscalls`: the syscalls the rules need, for the
//! collector's in-kernel filter.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(vigil_testkit::binary("vigil-detectors"))
        .arg("syscalls")
        .args(args)
        .output()
        .expect("run vigil-detectors");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_default_pack_names_its_syscalls_and_local_files_add_theirs() {
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let names: Vec<&str> = stdout.lines().collect();
    for needed in [
        "execve", "openat", "connect", "dup2", "ptrace", "mount", "setns",
    ] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
    assert!(!names.contains(&"*"), "a pack rule runs on every event");

    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join("local.yaml");
    std::fs::write(
        &local,
        "- rule: Local\n  desc: d\n  condition: evt.type = fchownat\n  output: o\n  priority: info\n",
    )
    .expect("write rules");
    let path = local.to_string_lossy().into_owned();
    let (code, stdout, _) = run(&["--no-default-pack", "--rules", &path]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "fchownat\n");

    std::fs::write(
        &local,
        "- rule: Local\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: info\n",
    )
    .expect("write rules");
    let (_, stdout, _) = run(&["--no-default-pack", "--rules", &path]);
    assert_eq!(stdout, "*\n", "a rule without evt.type needs every syscall");

    std::fs::write(
        &local,
        "- rule: Local\n  desc: d\n  condition: evt.type = (\n",
    )
    .expect("write");
    let (code, _, stderr) = run(&["--rules", &path]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&format!("{path}:")), "{stderr}");
}
