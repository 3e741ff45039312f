//! Paths as the kernel resolved them, on the running kernel with the real
//! BPF programs: every disguised way of opening /etc/shadow (doubled
//! slashes, `.`, `..`, a relative name in /etc, a symlink, /proc/self/root,
//! /proc/self/cwd) arrives with `args.path` "/etc/shadow" from the kernel
//! walk and the argument as given in `args.path_raw`; a relative exec
//! arrives as the image's absolute path; a hard link carries the inode of
//! the file it names; a deleted file and a name that is not UTF-8 carry
//! their markers.

mod common;

use std::{
    ffi::OsStr,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::Path,
    process::Command,
    time::Duration,
};

use common::Probe;
use vigil_proto::v1::{Args, Event, EventType, PathMarker, PathSource};
use vigil_testkit::require_root;

const WAIT: Duration = Duration::from_secs(10);

/// Runs `script` in `sh` with the working directory `cwd` and returns the
/// shell's pid once it has exited successfully.
fn run(script: &str, cwd: &Path) -> u32 {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .spawn()
        .expect("start sh");
    let pid = child.id();
    let status = child.wait().expect("wait for sh");
    assert!(status.success(), "{script:?} failed: {status}");
    pid
}

fn args(event: &Event) -> &Args {
    event.args.as_ref().expect("the event has arguments")
}

/// The successful open of `raw` by the shell `sh` or a child of it.
fn open_of(probe: &mut Probe, what: &str, sh: u32, raw: &[u8]) -> Event {
    let raw = String::from_utf8_lossy(raw).into_owned();
    probe.expect(what, sh, WAIT, |e| {
        e.r#type() == EventType::Open
            && (e.pid == sh || e.ppid == sh)
            && e.return_value >= 0
            && args(e).path_raw == raw
    })
}

#[test]
fn disguised_opens_of_a_file_resolve_to_its_path() {
    if !require_root("disguised_opens_of_a_file_resolve_to_its_path") {
        return;
    }
    let mut probe = Probe::start("resolved-paths-test");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link-to-shadow");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let link = link.to_str().unwrap().to_owned();
    let forms: [(&str, &str, &str); 9] = [
        ("plain", "cat /etc/shadow", "/etc/shadow"),
        ("doubled slash", "cat /etc//shadow", "/etc//shadow"),
        ("dot", "cat /etc/./shadow", "/etc/./shadow"),
        ("dot-dot", "cat /usr/../etc/shadow", "/usr/../etc/shadow"),
        ("padded", "cat /./etc/././shadow", "/./etc/././shadow"),
        ("relative in /etc", "cd /etc; cat shadow", "shadow"),
        ("symlink", &format!("cat {link}"), &link),
        (
            "/proc/self/root",
            "cat /proc/self/root/etc/shadow",
            "/proc/self/root/etc/shadow",
        ),
        (
            "/proc/self/cwd",
            "cd /etc; cat /proc/self/cwd/shadow",
            "/proc/self/cwd/shadow",
        ),
    ];
    let shadow = std::fs::metadata("/etc/shadow").unwrap();
    for (what, script, raw) in forms {
        let sh = run(&format!("{script} >/dev/null"), dir.path());
        let event = open_of(&mut probe, what, sh, raw.as_bytes());
        let args = args(&event);
        assert_eq!(args.path, "/etc/shadow", "{what}: {args:?}");
        assert_eq!(args.path_source(), PathSource::Kernel, "{what}");
        assert!(args.path_markers.is_empty(), "{what}: {args:?}");
        assert_eq!(
            (args.file_dev, args.file_inode),
            (shadow.dev(), shadow.ino()),
            "{what}: the identity stat(2) gives"
        );
    }
}

#[test]
fn a_hard_link_carries_the_identity_of_the_file_it_names() {
    if !require_root("a_hard_link_carries_the_identity_of_the_file_it_names") {
        return;
    }
    let mut probe = Probe::start("resolved-paths-test");
    // A hard link must be on the file's own filesystem: beside it in /etc.
    let hard_link = format!("/etc/.vigil-test-link-{}", std::process::id());
    std::fs::hard_link("/etc/shadow", &hard_link).unwrap();
    let sh = run(&format!("cat {hard_link} >/dev/null"), Path::new("/"));
    std::fs::remove_file(&hard_link).unwrap();
    let event = open_of(&mut probe, "hard link", sh, hard_link.as_bytes());
    let shadow = std::fs::metadata("/etc/shadow").unwrap();
    let args = args(&event);
    assert_eq!(args.path, hard_link, "a hard link is a name of its own");
    assert_eq!(
        (args.file_dev, args.file_inode),
        (shadow.dev(), shadow.ino())
    );
}

#[test]
fn a_relative_exec_resolves_to_the_image() {
    if !require_root("a_relative_exec_resolves_to_the_image") {
        return;
    }
    let mut probe = Probe::start("resolved-paths-test");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let image = dir.path().join("x");
    std::fs::copy("/bin/true", &image).unwrap();
    let sh = run("../x", &dir.path().join("sub"));
    let event = probe.expect("relative exec", sh, WAIT, |e| {
        e.r#type() == EventType::Exec
            && (e.pid == sh || e.ppid == sh)
            && e.return_value == 0
            && args(e).path_raw == "../x"
    });
    let args = args(&event);
    let canonical = image.canonicalize().unwrap();
    assert_eq!(args.path, canonical.to_str().unwrap());
    assert_eq!(args.path_source(), PathSource::Kernel);
    // The copy of `true` is gone from /proc long before its record is
    // enriched; its executable still comes from the kernel's walk.
    assert_eq!(event.exe_path, canonical.to_str().unwrap());
}

#[test]
fn a_deleted_file_and_a_name_that_is_not_utf8_carry_markers() {
    if !require_root("a_deleted_file_and_a_name_that_is_not_utf8_carry_markers") {
        return;
    }
    let mut probe = Probe::start("resolved-paths-test");
    let dir = tempfile::tempdir().unwrap();
    let canonical_dir = dir.path().canonicalize().unwrap();

    // Opened again through /proc/self/fd after it was unlinked.
    let sh = run(
        "exec 3<>gone; rm gone; cat /proc/self/fd/3 >/dev/null",
        dir.path(),
    );
    let event = open_of(&mut probe, "deleted file", sh, b"/proc/self/fd/3");
    let deleted = args(&event);
    assert_eq!(deleted.path, canonical_dir.join("gone").to_str().unwrap());
    assert!(
        deleted.path_markers().any(|m| m == PathMarker::Deleted),
        "{deleted:?}"
    );

    let name = OsStr::from_bytes(b"bad-\xff\xfe-name");
    std::fs::write(dir.path().join(name), b"x").unwrap();
    let sh = run(
        "cat \"$(printf 'bad-\\377\\376-name')\" >/dev/null",
        dir.path(),
    );
    let event = open_of(&mut probe, "a name that is not UTF-8", sh, name.as_bytes());
    let args = args(&event);
    let expected = format!(
        "{}/bad-\u{fffd}\u{fffd}-name",
        canonical_dir.to_str().unwrap()
    );
    assert_eq!(args.path, expected);
    assert!(
        args.path_markers().any(|m| m == PathMarker::NotUtf8),
        "{args:?}"
    );
}
