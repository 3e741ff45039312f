//! A read of `/etc/shadow`, the password hashes.
//!
//! Fires for every process, on the host or in a container, and for failed
//! attempts as well as successful ones: a process without permission that
//! tries is the typical probe of an intruder, and the output says which it
//! was (`evt.res`). Falco's equivalent counts successful opens only.
//!
//! Write-only opens are not reads and are left to a future "write below
//! /etc" rule. The path is normalised lexically (`//`, `.`, `..`), which
//! defeats the cheapest evasions; symlinks and `/proc/self/root` need the
//! collector's kernel-side path resolution.

use vigil_proto::v1::{Event, EventType, Priority};

use super::info;
use crate::{
    engine::{Rule, RuleInfo},
    fields,
    output::TemplateError,
};

pub const NAME: &str = "Read of /etc/shadow";

const SHADOW: &str = "/etc/shadow";
const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;

const OUTPUT: &str = "Read of /etc/shadow | fd.name=%fd.name evt.res=%evt.res evt.type=%evt.type \
user.uid=%user.uid user.loginuid=%user.loginuid proc.name=%proc.name proc.pid=%proc.pid \
proc.exepath=%proc.exepath proc.cmdline=%proc.cmdline proc.cwd=%proc.cwd container.id=%container.id";

pub struct ShadowRead {
    info: RuleInfo,
}

impl ShadowRead {
    pub fn new() -> Result<Self, TemplateError> {
        let info = info(
            NAME,
            "A process opened /etc/shadow for reading, or tried to.",
            // Falco's guideline: reading sensitive state is WARNING.
            Priority::Warning,
            &[
                "host",
                "container",
                "filesystem",
                "mitre_credential_access",
                "T1003.008",
            ],
            &[EventType::Open],
            OUTPUT,
        )?;
        Ok(Self { info })
    }
}

impl Rule for ShadowRead {
    fn info(&self) -> &RuleInfo {
        &self.info
    }

    fn matches(&self, event: &Event) -> bool {
        let Some(path) = fields::file_path(event) else {
            return false;
        };
        let flags = event.args.as_ref().map_or(0, |a| a.flags);
        flags & O_ACCMODE != O_WRONLY && normalize(path, &event.cwd).as_deref() == Some(SHADOW)
    }
}

/// Resolves `.`, `..` and repeated slashes without touching the file
/// system; a relative path is taken from `cwd`. `None` when neither gives an
/// absolute path.
fn normalize(path: &str, cwd: &str) -> Option<String> {
    let joined;
    let absolute = if path.starts_with('/') {
        path
    } else if cwd.starts_with('/') {
        joined = format!("{cwd}/{path}");
        &joined
    } else {
        return None;
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in absolute.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::Args;

    use super::*;

    const O_RDONLY: u32 = 0;
    const O_RDWR: u32 = 0o2;
    const O_CLOEXEC: u32 = 0o2000000;

    fn open(path: &str, flags: u32, return_value: i64, container: &str) -> Event {
        Event {
            r#type: EventType::Open as i32,
            return_value,
            container_id: container.into(),
            cwd: "/root".into(),
            args: Some(Args {
                path: path.into(),
                flags,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_and_attempts_match_on_host_and_in_containers() {
        let rule = ShadowRead::new().unwrap();
        for event in [
            open("/etc/shadow", O_RDONLY, 3, ""),
            open("/etc/shadow", O_RDONLY | O_CLOEXEC, 3, "abc"),
            open("/etc/shadow", O_RDWR, 3, ""),
            open("/etc/shadow", O_RDONLY, -13, "abc"),
            open("//etc/./shadow", O_RDONLY, 3, ""),
            open("/tmp/../etc/shadow", O_RDONLY, 3, ""),
            open("../etc/shadow", O_RDONLY, 3, ""),
        ] {
            assert!(rule.matches(&event), "{event:?}");
        }
    }

    #[test]
    fn other_files_writes_and_other_events_do_not_match() {
        let rule = ShadowRead::new().unwrap();
        for event in [
            open("/etc/shadow-", O_RDONLY, 3, ""),
            open("/etc/gshadow", O_RDONLY, 3, ""),
            open("/etc/passwd", O_RDONLY, 3, ""),
            open("/tmp/etc/shadow", O_RDONLY, 3, ""),
            open("/etc/shadow/x", O_RDONLY, -20, ""),
            open("/etc/shadow", O_WRONLY, 3, ""),
            open("", O_RDONLY, 3, ""),
        ] {
            assert!(!rule.matches(&event), "{event:?}");
        }
        let mut exec = open("/etc/shadow", O_RDONLY, 0, "");
        exec.r#type = EventType::Exec as i32;
        assert!(!rule.matches(&exec));
    }

    #[test]
    fn output_says_whether_the_read_succeeded() {
        let rule = ShadowRead::new().unwrap();
        let denied = rule
            .info()
            .output
            .render(&open("/etc/shadow", O_RDONLY, -13, ""));
        assert!(
            denied.text.contains("fd.name=/etc/shadow evt.res=EACCES"),
            "{}",
            denied.text
        );
        assert_eq!(denied.fields["container.id"], "host");
    }

    #[test]
    fn normalization_is_lexical() {
        assert_eq!(normalize("/a/../../b", "").as_deref(), Some("/b"));
        assert_eq!(normalize("b", "/a").as_deref(), Some("/a/b"));
        assert_eq!(normalize("b", ""), None);
    }
}
