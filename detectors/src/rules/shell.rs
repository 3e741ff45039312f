//! A shell started inside a container.
//!
//! Falco's "Terminal shell in container" also requires a controlling tty;
//! events carry none yet, so this rule fires on every shell, interactive or
//! scripted. Entrypoints often run `sh -c`, which is why the default
//! priority is NOTICE (Falco's) and not high enough for the responder's
//! default `min_priority` of WARNING: freezing every pod whose entrypoint is
//! a script would be worse than the attack.

use vigil_proto::v1::{Event, EventType, Priority};

use super::{basename, info};
use crate::{
    engine::{Rule, RuleInfo},
    output::TemplateError,
};

pub const NAME: &str = "Shell spawned in container";

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "fish", "tcsh", "csh",
];

const OUTPUT: &str = "Shell spawned in a container | evt.type=%evt.type user.uid=%user.uid \
user.loginuid=%user.loginuid proc.name=%proc.name proc.pid=%proc.pid proc.ppid=%proc.ppid \
proc.exepath=%proc.exepath proc.cmdline=%proc.cmdline proc.cwd=%proc.cwd container.id=%container.id";

pub struct ShellInContainer {
    info: RuleInfo,
}

impl ShellInContainer {
    pub fn new(priority: Priority) -> Result<Self, TemplateError> {
        let info = info(
            NAME,
            "A shell was executed inside a container.",
            priority,
            &[
                "container",
                "shell",
                "process",
                "mitre_execution",
                "T1059.004",
            ],
            &[EventType::Exec],
            OUTPUT,
        )?;
        Ok(Self { info })
    }
}

impl Rule for ShellInContainer {
    fn info(&self) -> &RuleInfo {
        &self.info
    }

    fn matches(&self, event: &Event) -> bool {
        event.r#type() == EventType::Exec
            && !event.container_id.is_empty()
            && (is_shell(basename(executed(event)))
                || is_shell(basename(&event.exe_path))
                || is_shell(&event.comm)
                || is_busybox_shell(event))
    }
}

/// The path passed to execve: what was asked for, before symlinks, so a
/// `/bin/sh` that links to busybox or dash still reads as `sh`.
fn executed(event: &Event) -> &str {
    event.args.as_ref().map_or("", |a| a.path.as_str())
}

fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

/// `busybox sh …`: the image is busybox and its first argument names a shell.
fn is_busybox_shell(event: &Event) -> bool {
    let busybox = [
        basename(executed(event)),
        basename(&event.exe_path),
        &event.comm,
    ]
    .contains(&"busybox");
    busybox
        && event
            .args
            .as_ref()
            .and_then(|a| a.argv.get(1))
            .is_some_and(|applet| is_shell(basename(applet)))
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::Args;

    use super::*;

    const CONTAINER: &str = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

    fn exec(exe: &str, comm: &str, argv: &[&str], container: &str) -> Event {
        exec_path("", exe, comm, argv, container)
    }

    fn exec_path(path: &str, exe: &str, comm: &str, argv: &[&str], container: &str) -> Event {
        Event {
            r#type: EventType::Exec as i32,
            exe_path: exe.into(),
            comm: comm.into(),
            container_id: container.into(),
            args: Some(Args {
                path: path.into(),
                argv: argv.iter().map(|a| (*a).to_owned()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rule() -> ShellInContainer {
        ShellInContainer::new(Priority::Notice).unwrap()
    }

    #[test]
    fn shells_in_containers_match() {
        for event in [
            exec("/bin/sh", "sh", &["/bin/sh"], CONTAINER),
            exec("/usr/bin/bash", "bash", &["bash", "-i"], CONTAINER),
            exec("/bin/busybox", "sh", &["sh"], CONTAINER),
            exec(
                "/bin/busybox",
                "busybox",
                &["busybox", "sh", "-c", "id"],
                CONTAINER,
            ),
            // A renamed copy of bash still shows its comm.
            exec("/tmp/x", "bash", &["/tmp/x"], CONTAINER),
            // /bin/sh linking to dash: the executed path says sh.
            exec_path("/bin/sh", "/usr/bin/dash", "dash", &["sh"], CONTAINER),
            exec_path("/bin/ash", "/bin/busybox", "x", &["x"], CONTAINER),
        ] {
            assert!(rule().matches(&event), "{event:?}");
        }
    }

    #[test]
    fn near_misses_do_not_match() {
        for event in [
            exec("/bin/sh", "sh", &["/bin/sh"], ""),
            exec(
                "/usr/bin/shellcheck",
                "shellcheck",
                &["shellcheck"],
                CONTAINER,
            ),
            exec("/usr/sbin/sshd", "sshd", &["sshd"], CONTAINER),
            exec("/usr/bin/bashbug", "bashbug", &["bashbug"], CONTAINER),
            exec("/bin/busybox", "busybox", &["busybox", "ls"], CONTAINER),
            exec("/usr/bin/python3", "python3", &["python3", "sh"], CONTAINER),
            exec_path(
                "/usr/bin/sha256sum",
                "/usr/bin/sha256sum",
                "sha256sum",
                &["sh"],
                CONTAINER,
            ),
        ] {
            assert!(!rule().matches(&event), "{event:?}");
        }
        let mut open_by_shell = exec("/bin/sh", "sh", &[], CONTAINER);
        open_by_shell.r#type = EventType::Open as i32;
        assert!(!rule().matches(&open_by_shell));
    }

    #[test]
    fn output_names_the_process_and_container() {
        let event = exec("/bin/sh", "sh", &["/bin/sh", "-c", "id"], CONTAINER);
        let rendered = rule().info().output.render(&event);
        assert!(
            rendered
                .text
                .starts_with("Shell spawned in a container | evt.type=execve"),
            "{}",
            rendered.text
        );
        assert!(
            rendered.text.contains("proc.cmdline=sh -c id"),
            "{}",
            rendered.text
        );
        assert_eq!(rendered.fields["container.id"], &CONTAINER[..12]);
        assert_eq!(rendered.fields["proc.exepath"], "/bin/sh");
    }
}
