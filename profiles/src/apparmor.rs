//! AppArmor profiles learned from the files, programs and sockets the
//! workload used, with explicit denials for the breakout paths.

use std::fmt::Write;

use crate::learn::Profile;
use crate::seccomp::Mode;

/// Denied whatever else the profile allows: the file-system side of the
/// breakout catalog that seccomp cannot see (it allows `openat`).
const DENIALS: &[&str] = &[
    "deny mount,",
    "deny umount,",
    "deny pivot_root,",
    "deny ptrace,",
    "deny @{PROC}/sys/kernel/core_pattern w,",
    "deny @{PROC}/sys/kernel/modprobe w,",
    "deny @{PROC}/sysrq-trigger rwklx,",
    "deny @{PROC}/kcore rwklx,",
    "deny /sys/fs/cgroup/**/release_agent w,",
    "deny /sys/kernel/security/** w,",
    "deny /{,var/}run/{containerd/containerd,docker,crio/crio,k3s/containerd/containerd}.sock rw,",
];

/// The profile text, loadable with `apparmor_parser` on the node; in
/// [`Mode::Log`] it is in complain mode (violations logged, not denied).
pub fn render(profile: &Profile, mode: Mode) -> String {
    let seen = &profile.observation;
    let flags = match mode {
        Mode::Log => "attach_disconnected,mediate_deleted,complain",
        Mode::Enforce => "attach_disconnected,mediate_deleted",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by vigil-profile from {} events of the workload.",
        seen.events
    );
    let _ = writeln!(out, "abi <abi/3.0>,\n#include <tunables/global>\n");
    let _ = writeln!(out, "profile vigil-{} flags=({flags}) {{", profile.name);
    let _ = writeln!(out, "  #include <abstractions/base>\n");
    for path in &seen.executables {
        let _ = writeln!(out, "  {} mrix,", quote(path));
    }
    for path in &seen.files_read {
        let _ = writeln!(out, "  {} r,", quote(path));
    }
    for path in &seen.files_written {
        let _ = writeln!(out, "  {} rw,", quote(path));
    }
    for family in &seen.socket_families {
        let _ = writeln!(out, "  network {family},");
    }
    let _ = writeln!(
        out,
        "\n  # Breakout paths, denied even where a rule above would allow them."
    );
    for rule in DENIALS {
        let _ = writeln!(out, "  {rule}");
    }
    out.push_str("}\n");
    out
}

/// A path as an AppArmor file rule: quoted, with the glob characters and
/// quotes escaped so a file name cannot widen the rule.
fn quote(path: &str) -> String {
    let mut out = String::from("\"");
    for c in path.chars() {
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '^' | '"' | '\\' | '@' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('_'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_paths_are_escaped() {
        assert_eq!(quote("/data/a*b{c}"), "\"/data/a\\*b\\{c\\}\"");
        assert_eq!(quote("/x\"y"), "\"/x\\\"y\"");
    }
}
