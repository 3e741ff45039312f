//! The default pack's /etc/shadow rule on opens as the collector reports
//! them (collector/tests/resolved_paths.rs checks the kernel side): every
//! disguised form of the path (`args.path_raw`) resolves to /etc/shadow
//! (`args.path`, `fd.name`) and fires; a raw path that only looks like it
//! does not, because rules match the resolved path.

#![allow(clippy::unwrap_used, reason = "test assertions")]

use vigil_detectors::{RulesConfig, engine};
use vigil_proto::v1::{Args, Event, EventType, PathSource};

const RULE: &str = "Read of /etc/shadow";

/// A read-only open by `cat` in a container, as the collector emits it.
fn open(resolved: &str, raw: &str, source: PathSource, ret: i64) -> Event {
    Event {
        r#type: EventType::Open as i32,
        syscall: "openat".into(),
        comm: "cat".into(),
        exe_path: "/usr/bin/cat".into(),
        cmdline: vec!["cat".into(), raw.into()],
        pid: 4242,
        uid: 1000,
        login_uid: u32::MAX,
        return_value: ret,
        container_id: "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a".into(),
        args: Some(Args {
            path: resolved.into(),
            path_raw: raw.into(),
            path_source: source.into(),
            fd: i32::try_from(ret).unwrap_or(-1),
            ..Args::default()
        }),
        ..Event::default()
    }
}

#[test]
fn every_disguised_form_of_shadow_fires_the_default_rule() {
    let rules = engine::load(&RulesConfig::default()).unwrap();
    let fires = |e: &Event| rules.matching(e).any(|r| r.name == RULE);
    let disguised = [
        "/etc/shadow",
        "/etc//shadow",
        "/etc/./shadow",
        "/usr/../etc/shadow",
        "/./etc/././shadow",
        "shadow",
        "/tmp/link-to-shadow",
        "/proc/self/root/etc/shadow",
        "/proc/self/cwd/shadow",
    ];
    for raw in disguised {
        // A successful open: the kernel walk's path.
        let event = open("/etc/shadow", raw, PathSource::Kernel, 3);
        assert!(fires(&event), "{raw} (kernel-resolved) did not fire");
        // A refused one: the argument normalised against the cwd.
        let event = open("/etc/shadow", raw, PathSource::Lexical, -13);
        assert!(fires(&event), "{raw} (normalised, EACCES) did not fire");
    }
    // The raw path names /etc/shadow, the file opened is another.
    let look_alike = open("/tmp/etc/shadow", "etc/shadow", PathSource::Kernel, 3);
    assert!(!fires(&look_alike), "fired on a raw path alone");
}
