//! What /proc tells about the process behind an event: best effort, since
//! a short-lived process may be gone by the time its record is read.

use std::path::{Path, PathBuf};

use crate::kernel::abi;

/// The process's executable (`/proc/<pid>/exe`).
pub fn exe_path(pid: u32) -> Option<String> {
    link(format!("/proc/{pid}/exe"))
}

/// The thread's working directory. Threads may differ (unshare(CLONE_FS)),
/// so the thread's own entry is read.
pub fn cwd(pid: u32, tid: u32) -> Option<String> {
    link(format!("/proc/{pid}/task/{tid}/cwd")).or_else(|| link(format!("/proc/{pid}/cwd")))
}

/// The path behind descriptor `fd` of the process.
pub fn fd_path(pid: u32, fd: i32) -> Option<String> {
    link(format!("/proc/{pid}/fd/{fd}"))
}

fn link(path: String) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// The directory a relative path given with `dirfd` is relative to.
pub fn base_dir(pid: u32, tid: u32, dirfd: i32) -> Option<String> {
    if dirfd == abi::AT_FDCWD {
        cwd(pid, tid)
    } else {
        fd_path(pid, dirfd)
    }
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

    #[test]
    fn this_process_can_be_inspected() {
        let pid = std::process::id();
        let exe = exe_path(pid).unwrap();
        assert_eq!(exe, std::env::current_exe().unwrap().to_string_lossy());
        let here = std::env::current_dir().unwrap();
        assert_eq!(cwd(pid, pid).unwrap(), here.to_string_lossy());
        assert_eq!(
            base_dir(pid, pid, abi::AT_FDCWD).unwrap(),
            here.to_string_lossy()
        );
        assert_eq!(exe_path(u32::MAX), None);
    }
}
