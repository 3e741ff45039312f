//! Which syscalls the kernel reports: the `[kernel]` section of the
//! configuration and the `syscall_specs` map contents it resolves to.

use serde::{Deserialize, Serialize};

use super::{
    abi::{self, SyscallSpec},
    syscalls::{self, HEADER_ONLY, PROCESS_EXIT, SYSCALLS},
};

/// The `[kernel]` section of the collector's configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// What the kernel reports; everything else is filtered out in the kernel.
    pub syscalls: SyscallSelection,
}

impl KernelConfig {
    /// Adds a problem for `kernel.syscalls` when it names no valid set.
    pub fn validate(&self, problems: &mut vigil_service::Problems) {
        if let Err(message) = self.syscalls.resolve() {
            problems.add("kernel.syscalls", message);
        }
    }
}

/// `[kernel] syscalls`: `"default"` (every syscall above and process exit)
/// or a list of names.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SyscallSelection {
    Preset(String),
    List(Vec<String>),
}

impl Default for SyscallSelection {
    fn default() -> Self {
        SyscallSelection::Preset("default".to_owned())
    }
}

/// The `syscall_specs` map contents a selection asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnabledSet {
    /// (slot, spec) for every enabled slot.
    pub slots: Vec<(u32, SyscallSpec)>,
}

impl EnabledSet {
    /// Every syscall and process exit.
    pub fn all() -> Self {
        let names = SYSCALLS
            .iter()
            .map(|s| s.name)
            .chain([PROCESS_EXIT])
            .collect::<Vec<_>>();
        Self::from_names(&names).unwrap_or_default()
    }

    /// The slots for `names`; the unknown names otherwise.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, Vec<String>> {
        let mut slots = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name == PROCESS_EXIT {
                slots.push((abi::SLOT_EXIT, HEADER_ONLY));
                continue;
            }
            let Some(syscall) = syscalls::by_name(name) else {
                unknown.push(name.to_owned());
                continue;
            };
            let Ok(slot) = u32::try_from(syscall.nr) else {
                unknown.push(name.to_owned());
                continue;
            };
            slots.push((slot, syscall.spec));
            // A successful exec arrives through sched_process_exec.
            if syscall.spec.flags & abi::SPEC_EXEC != 0 {
                slots.push((abi::SLOT_EXEC, HEADER_ONLY));
            }
        }
        slots.sort_by_key(|(slot, _)| *slot);
        slots.dedup_by_key(|(slot, _)| *slot);
        if unknown.is_empty() {
            Ok(Self { slots })
        } else {
            Err(unknown)
        }
    }

    /// Whether `slot` is enabled.
    pub fn contains(&self, slot: u32) -> bool {
        self.slots.iter().any(|(s, _)| *s == slot)
    }
}

impl SyscallSelection {
    /// The enabled set, or a message naming what is wrong.
    pub fn resolve(&self) -> Result<EnabledSet, String> {
        match self {
            SyscallSelection::Preset(preset) if preset == "default" => Ok(EnabledSet::all()),
            SyscallSelection::Preset(other) => Err(format!(
                "{other:?} is not a preset: use \"default\" or a list of syscall names"
            )),
            SyscallSelection::List(names) if names.is_empty() => {
                Err("an empty list would report nothing".to_owned())
            }
            SyscallSelection::List(names) => EnabledSet::from_names(names).map_err(|unknown| {
                format!(
                    "unknown syscall(s) {}; known: {}, {PROCESS_EXIT}",
                    unknown.join(", "),
                    SYSCALLS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_enables_every_syscall_exec_and_exit() {
        let all = SyscallSelection::default().resolve().unwrap();
        assert_eq!(all.slots.len(), SYSCALLS.len() + 2);
        assert!(all.contains(abi::SLOT_EXEC) && all.contains(abi::SLOT_EXIT));
    }

    #[test]
    fn a_list_enables_only_its_syscalls() {
        let set = SyscallSelection::List(vec!["openat".into(), "execve".into()])
            .resolve()
            .unwrap();
        let slots: Vec<u32> = set.slots.iter().map(|(s, _)| *s).collect();
        let mut expected = vec![
            libc::SYS_openat as u32,
            libc::SYS_execve as u32,
            abi::SLOT_EXEC,
        ];
        expected.sort_unstable();
        assert_eq!(slots, expected);
        let spec = set.slots[0].1;
        assert_eq!(spec.enabled, 1);
    }

    #[test]
    fn unknown_names_and_presets_are_named() {
        let error = SyscallSelection::List(vec!["openat".into(), "frobnicate".into()])
            .resolve()
            .unwrap_err();
        assert!(
            error.contains("frobnicate") && error.contains("known: execve"),
            "{error}"
        );
        let error = SyscallSelection::Preset("all".into())
            .resolve()
            .unwrap_err();
        assert!(error.contains("\"all\""), "{error}");
        assert!(SyscallSelection::List(vec![]).resolve().is_err());
    }

    fn load(toml: &str) -> Result<crate::Config, vigil_service::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(&file, toml).unwrap();
        vigil_service::config::load(crate::SERVICE, Some(&file), [])
    }

    #[test]
    fn the_config_selects_syscalls_by_name_and_names_the_bad_ones() {
        let config = load("[kernel]\nsyscalls = [\"openat\", \"procexit\"]\n").unwrap();
        let options = crate::kernel::KernelOptions::for_config(&config);
        let slots: Vec<u32> = options.syscalls.slots.iter().map(|(s, _)| *s).collect();
        assert_eq!(slots, [libc::SYS_openat as u32, abi::SLOT_EXIT]);
        let default = load("").unwrap();
        assert_eq!(default.kernel.syscalls, SyscallSelection::default());
        assert_eq!(
            crate::kernel::KernelOptions::for_config(&default).syscalls,
            EnabledSet::all()
        );
        let error = load("[kernel]\nsyscalls = [\"openat\", \"opnat\"]\n").unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("kernel.syscalls") && text.contains("opnat"),
            "{text}"
        );
        let error = load("[kernel]\nsyscall = \"default\"\n").unwrap_err();
        assert!(error.to_string().contains("syscall"), "{error}");
    }
}
