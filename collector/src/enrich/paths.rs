//! Relative path arguments made absolute against the directory the
//! process resolved them in.

use std::path::{Path, PathBuf};

use vigil_proto::v1::Event;

use super::procfs;
use crate::kernel::abi;

/// Makes relative path arguments absolute, recording the cwd when read.
/// Exec paths are relative to the cwd; open paths to their dirfd; a second
/// path (rename's new name, a link, a mount point) to its own.
pub(super) fn absolutize(event: &mut Event, dirfd: Option<i32>, target_dirfd: Option<i32>) {
    let (pid, tid) = (event.pid, event.tid);
    let Some(args) = event.args.as_mut() else {
        return;
    };
    let dirfd = dirfd.unwrap_or(abi::AT_FDCWD);
    if let Some(base) = resolve_in_place(&mut args.path, pid, tid, dirfd)
        && dirfd == abi::AT_FDCWD
    {
        event.cwd = base;
    }
    if let Some(target_dirfd) = target_dirfd {
        resolve_in_place(&mut args.target_path, pid, tid, target_dirfd);
    }
}

/// Resolves a relative `path` against the directory `dirfd` names in the
/// process; returns that directory when it was read.
fn resolve_in_place(path: &mut String, pid: u32, tid: u32, dirfd: i32) -> Option<String> {
    if path.is_empty() || path.starts_with('/') {
        return None;
    }
    let base = procfs::base_dir(pid, tid, dirfd)?;
    *path = resolve(&base, path);
    Some(base)
}

/// `path` made absolute against `base`, without touching the filesystem
/// (the process's view may differ from ours, and `..` stays as given).
pub fn resolve(base: &str, path: &str) -> String {
    let joined: PathBuf = Path::new(base).join(path.trim_start_matches("./"));
    joined.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_joined_to_their_base() {
        assert_eq!(resolve("/home/app", "data/x.txt"), "/home/app/data/x.txt");
        assert_eq!(resolve("/home/app", "./x"), "/home/app/x");
        assert_eq!(resolve("/", "etc/passwd"), "/etc/passwd");
    }
}
