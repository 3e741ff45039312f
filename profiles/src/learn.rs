//! What a workload did, gathered from the collector's events, and the
//! profile learned from it.

use std::collections::{BTreeMap, BTreeSet};

use vigil_proto::v1::{AddressFamily, Event, EventType};

use crate::syscalls::{BASE, is_guarded};

/// Which events belong to the workload.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// Container id (64 hex), as in `Event.container_id`.
    pub container_id: Option<String>,
    /// Pod namespace and name, as in `Event.pod`.
    pub pod: Option<(String, String)>,
    /// Programs whose events are not the workload's though they run in its
    /// cgroup: the runtime's container init, which creates the namespaces
    /// and mounts before it executes the entrypoint. Matched against the
    /// program's file name and its comm.
    pub ignore_programs: Vec<String>,
}

/// Container inits of the common runtimes.
pub const RUNTIME_INITS: &[&str] = &[
    "runc",
    "runc:[2:INIT]",
    "runc:[1:CHILD]",
    "crun",
    "youki",
    "runsc",
];

impl Selector {
    pub fn matches(&self, event: &Event) -> bool {
        let program = event.exe_path.rsplit('/').next().unwrap_or_default();
        if self
            .ignore_programs
            .iter()
            .any(|p| p == program || *p == event.comm)
        {
            return false;
        }
        if let Some(id) = &self.container_id
            && &event.container_id != id
        {
            return false;
        }
        if let Some((namespace, name)) = &self.pod {
            let pod = event.pod.as_ref();
            if pod.map(|p| (&p.namespace, &p.name)) != Some((namespace, name)) {
                return false;
            }
        }
        self.container_id.is_some() || self.pod.is_some()
    }
}

/// What the collector saw the workload do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Events of the workload.
    pub events: u64,
    /// Successful calls per syscall name.
    pub syscalls: BTreeMap<String, u64>,
    /// Calls that failed, per syscall name: reported, never learned (a
    /// workload that copes with a failure copes with EPERM too).
    pub failed: BTreeMap<String, u64>,
    pub files_read: BTreeSet<String>,
    pub files_written: BTreeSet<String>,
    pub executables: BTreeSet<String>,
    /// `inet`, `inet6`, `unix`.
    pub socket_families: BTreeSet<&'static str>,
}

const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

impl Observation {
    /// Adds one event of the workload.
    pub fn add(&mut self, event: &Event) {
        self.events += 1;
        if event.syscall.is_empty() {
            return;
        }
        let counter = if event.return_value < 0 {
            &mut self.failed
        } else {
            &mut self.syscalls
        };
        *counter.entry(event.syscall.clone()).or_default() += 1;
        if event.return_value < 0 {
            return;
        }
        let args = event.args.clone().unwrap_or_default();
        match event.r#type() {
            EventType::Open if !args.path.is_empty() => {
                let writes =
                    args.flags & O_ACCMODE != 0 || args.flags & (O_CREAT | O_TRUNC | O_APPEND) != 0;
                if writes {
                    self.files_written.insert(args.path);
                } else {
                    self.files_read.insert(args.path);
                }
            }
            EventType::Exec => {
                let path = if args.path.is_empty() {
                    event.exe_path.clone()
                } else {
                    args.path
                };
                if !path.is_empty() {
                    self.executables.insert(path);
                }
            }
            EventType::Socket => {
                if let Some(family) = family_of_domain(args.domain) {
                    self.socket_families.insert(family);
                }
            }
            EventType::Connect | EventType::Bind | EventType::Accept => {
                let address = args.address.or(args.local_address);
                if let Some(family) = address.and_then(|a| family_of_address(a.family())) {
                    self.socket_families.insert(family);
                }
            }
            _ => {}
        }
    }
}

fn family_of_domain(domain: i32) -> Option<&'static str> {
    match domain {
        1 => Some("unix"),
        2 => Some("inet"),
        10 => Some("inet6"),
        _ => None,
    }
}

fn family_of_address(family: AddressFamily) -> Option<&'static str> {
    match family {
        AddressFamily::Unix => Some("unix"),
        AddressFamily::Inet => Some("inet"),
        AddressFamily::Inet6 => Some("inet6"),
        AddressFamily::Unspecified => None,
    }
}

/// A learned profile: the syscalls to allow and what they were learned from.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Profile name: `[a-z0-9-]`, used for file names and the AppArmor profile.
    pub name: String,
    pub allowed: BTreeSet<String>,
    pub observation: Observation,
    /// Breakout primitives the workload was seen using: allowed because it
    /// used them, worth a human look before enforcing.
    pub warnings: Vec<String>,
}

/// Learns a profile: [`BASE`] plus every syscall the workload made
/// successfully, plus `extra` (names an operator adds after the log-only
/// phase showed them).
pub fn learn(name: &str, observation: Observation, extra: &[String]) -> Profile {
    let mut allowed: BTreeSet<String> = BASE.iter().map(|s| (*s).to_owned()).collect();
    let mut warnings = Vec::new();
    for syscall in observation.syscalls.keys().chain(extra) {
        if is_breakout_primitive(syscall) {
            warnings.push(format!(
                "the workload uses {syscall}, a container-breakout primitive; it stays allowed"
            ));
        }
        allowed.insert(syscall.clone());
    }
    Profile {
        name: sanitize(name),
        allowed,
        observation,
        warnings,
    }
}

/// The guarded syscalls that are breakout primitives in themselves (the
/// catalog's), as opposed to everyday ones like openat or clone.
fn is_breakout_primitive(syscall: &str) -> bool {
    is_guarded(syscall)
        && matches!(
            syscall,
            "mount"
                | "umount2"
                | "unshare"
                | "setns"
                | "ptrace"
                | "process_vm_writev"
                | "process_vm_readv"
                | "init_module"
                | "finit_module"
                | "delete_module"
                | "bpf"
                | "keyctl"
                | "add_key"
                | "request_key"
                | "userfaultfd"
                | "io_uring_setup"
                | "perf_event_open"
                | "open_by_handle_at"
                | "chroot"
                | "pivot_root"
                | "mknod"
                | "mknodat"
                | "pidfd_getfd"
                | "kexec_load"
                | "kexec_file_load"
                | "fsopen"
                | "fsmount"
                | "move_mount"
                | "open_tree"
        )
}

/// Guarded syscalls the profile denies: those the log-only phase reports.
pub fn would_block(profile: &Profile, observation: &Observation) -> BTreeMap<String, u64> {
    observation
        .syscalls
        .iter()
        .chain(&observation.failed)
        .filter(|(name, _)| !profile.allowed.contains(*name))
        .fold(BTreeMap::new(), |mut out, (name, count)| {
            *out.entry(name.clone()).or_default() += count;
            out
        })
}

/// Profile names become file names and AppArmor identifiers.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "workload".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::v1::Args;

    fn event(kind: EventType, syscall: &str, ret: i64, args: Args) -> Event {
        Event {
            r#type: kind as i32,
            syscall: syscall.to_owned(),
            return_value: ret,
            args: Some(args),
            container_id: "c1".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn learns_successful_syscalls_files_and_executables() {
        let mut seen = Observation::default();
        let read = Args {
            path: "/etc/hostname".into(),
            flags: 0,
            ..Default::default()
        };
        let write = Args {
            path: "/tmp/out".into(),
            flags: 0o1 | O_CREAT,
            ..Default::default()
        };
        seen.add(&event(EventType::Open, "openat", 3, read));
        seen.add(&event(EventType::Open, "openat", 4, write));
        seen.add(&event(
            EventType::Exec,
            "execve",
            0,
            Args {
                path: "/bin/true".into(),
                ..Default::default()
            },
        ));
        seen.add(&event(EventType::Unshare, "unshare", -1, Args::default()));
        let profile = learn("Web App!", seen, &[]);
        assert_eq!(profile.name, "web-app");
        assert!(profile.allowed.contains("openat") && profile.allowed.contains("execve"));
        assert!(
            !profile.allowed.contains("unshare"),
            "failed calls are not learned"
        );
        assert_eq!(profile.observation.failed.get("unshare"), Some(&1));
        assert!(profile.observation.files_read.contains("/etc/hostname"));
        assert!(profile.observation.files_written.contains("/tmp/out"));
        assert!(profile.observation.executables.contains("/bin/true"));
        assert!(profile.warnings.is_empty());
        assert_eq!(
            would_block(&profile, &profile.observation),
            BTreeMap::from([("unshare".to_owned(), 1)])
        );
    }

    #[test]
    fn a_used_breakout_primitive_is_allowed_with_a_warning() {
        let mut seen = Observation::default();
        seen.add(&event(EventType::Mount, "mount", 0, Args::default()));
        let profile = learn("x", seen, &[]);
        assert!(profile.allowed.contains("mount"));
        assert_eq!(profile.warnings.len(), 1);
    }

    #[test]
    fn the_selector_needs_a_criterion_and_matches_on_it() {
        let mut e = event(EventType::Open, "openat", 3, Args::default());
        e.exe_path = "/usr/bin/perl".into();
        assert!(!Selector::default().matches(&e));
        let init = Selector {
            container_id: Some("c1".into()),
            ignore_programs: vec!["perl".into()],
            ..Default::default()
        };
        assert!(
            !init.matches(&e),
            "events of an ignored program are not the workload's"
        );
        assert!(
            Selector {
                container_id: Some("c1".into()),
                ..Default::default()
            }
            .matches(&e)
        );
        assert!(
            !Selector {
                container_id: Some("c2".into()),
                ..Default::default()
            }
            .matches(&e)
        );
    }
}
