//! Seccomp profiles in the format the kubelet reads from
//! `/var/lib/kubelet/seccomp/<localhostProfile>` (the OCI runtime-spec
//! `linux.seccomp` object), and applying one to this process.

use serde::{Deserialize, Serialize};

use crate::learn::Profile;

/// The JSON the kubelet passes to the runtime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    pub architectures: Vec<String>,
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
}

/// The phase a profile is in. A learned profile is never enforced straight
/// away: in `Log` the syscalls outside it still run and are logged by the
/// kernel (and reported by `vigil-profile check`), because a profile learned
/// from too short an observation breaks the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Log,
    Enforce,
}

const EPERM: u32 = 1;

/// The kubelet profile of `profile` in `mode`.
pub fn render(profile: &Profile, mode: Mode) -> SeccompProfile {
    let (default_action, default_errno_ret) = match mode {
        Mode::Log => ("SCMP_ACT_LOG", None),
        Mode::Enforce => ("SCMP_ACT_ERRNO", Some(EPERM)),
    };
    SeccompProfile {
        default_action: default_action.to_owned(),
        default_errno_ret,
        architectures: [
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_ARM",
        ]
        .map(str::to_owned)
        .to_vec(),
        syscalls: vec![SyscallRule {
            names: profile.allowed.iter().cloned().collect(),
            action: "SCMP_ACT_ALLOW".to_owned(),
            errno_ret: None,
        }],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "defaultAction {0:?} is not supported here (SCMP_ACT_ERRNO, SCMP_ACT_LOG, SCMP_ACT_KILL_PROCESS are)"
    )]
    DefaultAction(String),
    #[error(
        "syscalls[{index}].action {action:?} is not supported here (only SCMP_ACT_ALLOW rules are)"
    )]
    RuleAction { index: usize, action: String },
    #[error("this architecture is neither x86_64 nor aarch64")]
    Architecture,
    #[error("cannot compile the filter: {0}")]
    Compile(String),
    #[error("cannot install the filter: {0}")]
    Apply(String),
}

/// Compiles the profile into a BPF filter for this machine. Names the
/// architecture does not have are left out, as libseccomp does for the
/// kubelet.
pub fn compile(profile: &SeccompProfile) -> Result<seccompiler::BpfProgram, SeccompError> {
    let mismatch = match (profile.default_action.as_str(), profile.default_errno_ret) {
        ("SCMP_ACT_ERRNO", errno) => serde_json::json!({ "errno": errno.unwrap_or(EPERM) }),
        ("SCMP_ACT_LOG", _) => serde_json::json!("log"),
        ("SCMP_ACT_KILL_PROCESS", _) => serde_json::json!("kill_process"),
        (other, _) => return Err(SeccompError::DefaultAction(other.to_owned())),
    };
    let mut names = Vec::new();
    for (index, rule) in profile.syscalls.iter().enumerate() {
        if rule.action != "SCMP_ACT_ALLOW" {
            return Err(SeccompError::RuleAction {
                index,
                action: rule.action.clone(),
            });
        }
        names.extend(rule.names.iter().filter(|n| known_here(n)).cloned());
    }
    let filter: Vec<_> = names
        .iter()
        .map(|n| serde_json::json!({ "syscall": n }))
        .collect();
    let json = serde_json::json!({ "main": { "mismatch_action": mismatch, "match_action": "allow", "filter": filter } });
    let mut map = seccompiler::compile_from_json(json.to_string().as_bytes(), arch()?)
        .map_err(|e| SeccompError::Compile(e.to_string()))?;
    map.remove("main")
        .ok_or_else(|| SeccompError::Compile("no filter compiled".to_owned()))
}

/// Installs the filter on the calling thread (setting no_new_privs first,
/// as `allowPrivilegeEscalation: false` does); it is inherited across exec.
pub fn apply(program: &seccompiler::BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(program).map_err(|e| SeccompError::Apply(e.to_string()))
}

fn arch() -> Result<seccompiler::TargetArch, SeccompError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(seccompiler::TargetArch::x86_64),
        "aarch64" => Ok(seccompiler::TargetArch::aarch64),
        _ => Err(SeccompError::Architecture),
    }
}

/// Whether this architecture has a syscall of that name (aarch64 has no
/// `open` or `fork`, for example).
fn known_here(name: &str) -> bool {
    let json = serde_json::json!({ "probe": { "mismatch_action": { "errno": EPERM }, "match_action": "allow", "filter": [{ "syscall": name }] } });
    arch()
        .is_ok_and(|arch| seccompiler::compile_from_json(json.to_string().as_bytes(), arch).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::{Observation, learn};

    #[test]
    fn renders_the_kubelet_format_in_both_phases() {
        let profile = learn("web", Observation::default(), &["openat".to_owned()]);
        let log = render(&profile, Mode::Log);
        assert_eq!(log.default_action, "SCMP_ACT_LOG");
        let enforce = render(&profile, Mode::Enforce);
        assert_eq!(
            (enforce.default_action.as_str(), enforce.default_errno_ret),
            ("SCMP_ACT_ERRNO", Some(1))
        );
        let json = serde_json::to_value(&enforce).expect("serialise");
        assert_eq!(json["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert!(
            json["syscalls"][0]["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == "openat"))
        );
        let back: SeccompProfile = serde_json::from_value(json).expect("read back");
        assert_eq!(back, enforce);
    }

    #[test]
    fn compiles_and_rejects_what_it_cannot_express() {
        let profile = learn("web", Observation::default(), &[]);
        assert!(compile(&render(&profile, Mode::Enforce)).is_ok_and(|p| !p.is_empty()));
        let mut odd = render(&profile, Mode::Enforce);
        odd.default_action = "SCMP_ACT_TRACE".to_owned();
        assert!(matches!(compile(&odd), Err(SeccompError::DefaultAction(_))));
        assert!(known_here("read") && !known_here("no_such_syscall"));
    }
}
