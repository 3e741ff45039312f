//! Confining this process before it executes a workload: drop to a non-root
//! user (which clears every capability), then install the seccomp filter.

use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

use crate::seccomp::{self, SeccompError, SeccompProfile};

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot switch to uid {uid} gid {gid}: {source}")]
    User {
        uid: u32,
        gid: u32,
        source: nix::Error,
    },
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}

/// Confines the calling process: the filter is compiled first (it needs
/// syscalls the profile may deny), then the user is switched, then the
/// filter installed. Both survive exec.
pub fn confine(
    profile: Option<&SeccompProfile>,
    user: Option<(u32, u32)>,
) -> Result<(), ConfineError> {
    let program = profile.map(seccomp::compile).transpose()?;
    if let Some((uid, gid)) = user {
        let fail = |source| ConfineError::User { uid, gid, source };
        setgroups(&[]).map_err(fail)?;
        setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid)).map_err(fail)?;
        setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid)).map_err(fail)?;
    }
    if let Some(program) = &program {
        seccomp::apply(program)?;
    }
    Ok(())
}
