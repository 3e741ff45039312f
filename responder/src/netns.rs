//! Cutting a container's network: an nftables table inside the container's
//! own network namespace whose input and output chains drop everything.
//!
//! Rules inside the namespace stop traffic that a NetworkPolicy lets through
//! (pod to node is always allowed) and connections already established,
//! which some network plugins keep alive under a new policy. The table is
//! Vigil's alone, so restoring the network is deleting it, and nothing the
//! pod or its plugin configured is touched either way.
//!
//! `nft` is run through `nsenter --net=/proc/<pid>/ns/net`, which enters
//! the namespace in a child process and leaves the responder's own threads
//! where they are.

use std::{
    io::Write,
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
};

/// Vigil's table; its presence means "cut".
pub const TABLE: &str = "vigil_quarantine";

/// Drops every packet in and out, loopback included, ahead of any other
/// filter (priority -300 runs before the usual 0).
const CUT_RULESET: &str = "table inet vigil_quarantine {
  chain input { type filter hook input priority -300; policy drop; }
  chain output { type filter hook output priority -300; policy drop; }
  chain forward { type filter hook forward priority -300; policy drop; }
}
";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("process {pid} has no network namespace to enter: {source}")]
    NoNamespace {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "process {pid} shares the host's network namespace; cutting it would cut the node, refused"
    )]
    HostNamespace { pid: u32 },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("nft {what} in the network namespace of process {pid} failed: {stderr}")]
    Nft {
        what: &'static str,
        pid: u32,
        stderr: String,
    },
}

/// What a cut or restore did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOutcome {
    Changed,
    AlreadyInState,
}

/// Drops all traffic of the network namespace that process `pid` is in.
pub fn cut(pid: u32) -> Result<NetOutcome, NetError> {
    ensure_own_namespace(pid)?;
    if table_exists(pid)? {
        return Ok(NetOutcome::AlreadyInState);
    }
    nft(pid, &["-f", "-"], Some(CUT_RULESET), "add table")?;
    Ok(NetOutcome::Changed)
}

/// Undoes [`cut`].
pub fn restore(pid: u32) -> Result<NetOutcome, NetError> {
    ensure_own_namespace(pid)?;
    if !table_exists(pid)? {
        return Ok(NetOutcome::AlreadyInState);
    }
    nft(
        pid,
        &["delete", "table", "inet", TABLE],
        None,
        "delete table",
    )?;
    Ok(NetOutcome::Changed)
}

/// Whether the namespace of `pid` is cut now.
pub fn is_cut(pid: u32) -> Result<bool, NetError> {
    ensure_own_namespace(pid)?;
    table_exists(pid)
}

/// Refuses the host's namespace: a hostNetwork pod's "container network"
/// is the node's, and dropping it would take the node off the cluster. The
/// agent runs with the host network, so its own namespace is the host's;
/// init's is checked too where it can be read.
fn ensure_own_namespace(pid: u32) -> Result<(), NetError> {
    let inode = |path: &str| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    let target = inode(&format!("/proc/{pid}/ns/net"))
        .map_err(|source| NetError::NoNamespace { pid, source })?;
    let own = inode("/proc/self/ns/net").map_err(|source| NetError::NoNamespace {
        pid: std::process::id(),
        source,
    })?;
    let init = inode("/proc/1/ns/net").ok();
    if target == own || Some(target) == init {
        return Err(NetError::HostNamespace { pid });
    }
    Ok(())
}

fn table_exists(pid: u32) -> Result<bool, NetError> {
    let output = nsenter_nft(pid, &["list", "table", "inet", TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| NetError::Spawn {
            program: "nsenter",
            source,
        })?;
    Ok(output.success())
}

fn nft(pid: u32, args: &[&str], stdin: Option<&str>, what: &'static str) -> Result<(), NetError> {
    let mut child = nsenter_nft(pid, args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetError::Spawn {
            program: "nsenter",
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error shows up as nft's failure below.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(|source| NetError::Spawn {
        program: "nsenter",
        source,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError::Nft {
            what,
            pid,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn nsenter_nft(pid: u32, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg("--")
        .arg("nft")
        .args(args);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_responders_own_namespace_is_never_cut() {
        let error = cut(std::process::id()).unwrap_err();
        assert!(matches!(error, NetError::HostNamespace { .. }), "{error}");
        assert!(error.to_string().contains("would cut the node"), "{error}");
        assert!(matches!(
            restore(std::process::id()),
            Err(NetError::HostNamespace { .. })
        ));
    }

    #[test]
    fn a_vanished_process_is_an_error_that_names_it() {
        let error = cut(u32::MAX).unwrap_err();
        assert!(error.to_string().contains(&u32::MAX.to_string()), "{error}");
    }
}
