//! Path arguments the kernel did not resolve, made absolute against the
//! directory the process resolved them in and normalised lexically, so
//! `/etc//shadow`, `/usr/../etc/shadow` and `shadow` in `/etc` all read
//! `/etc/shadow`. A path the kernel resolved (`PathSource::Kernel`, from
//! the file of a successful open or exec) is already final.

use vigil_proto::v1::{Args, Event, PathSource};

use super::procfs;
use crate::{decode::NO_BASE, kernel::abi};

/// Makes relative path arguments absolute and normalises them, recording
/// the cwd when read. Exec paths are relative to the cwd; open paths to
/// their dirfd; a second path (rename's new name, a link, a mount point)
/// to its own. `args.path_raw` keeps the argument as given.
pub(super) fn absolutize(event: &mut Event, dirfd: Option<i32>, target_dirfd: Option<i32>) {
    let (pid, tid) = (event.pid, event.tid);
    let Some(args) = event.args.as_mut() else {
        return;
    };
    if args.path_raw.is_empty() {
        args.path_raw.clone_from(&args.path);
    }
    let dirfd = dirfd.unwrap_or(abi::AT_FDCWD);
    if args.path_source() != PathSource::Kernel
        && let Some(base) = resolve_path(args, pid, tid, dirfd)
        && dirfd == abi::AT_FDCWD
    {
        event.cwd = base;
    }
    if let Some(target_dirfd) = target_dirfd {
        resolve_in_place(&mut args.target_path, pid, tid, target_dirfd);
    }
}

/// Resolves `args.path` lexically and says how; returns the base directory
/// when one was read.
fn resolve_path(args: &mut Args, pid: u32, tid: u32, dirfd: i32) -> Option<String> {
    if args.path.is_empty() || dirfd == NO_BASE {
        return None;
    }
    let base = resolve_in_place(&mut args.path, pid, tid, dirfd);
    let source = if args.path.starts_with('/') {
        PathSource::Lexical
    } else {
        PathSource::Raw
    };
    args.set_path_source(source);
    base
}

/// Resolves `path` against the directory `dirfd` names in the process
/// (when relative) and normalises it; returns that directory when read. A
/// relative path whose base cannot be read stays as given, or it would
/// read as a path it is not.
fn resolve_in_place(path: &mut String, pid: u32, tid: u32, dirfd: i32) -> Option<String> {
    // A symlink's target or a mount source is kept as written.
    if path.is_empty() || dirfd == NO_BASE {
        return None;
    }
    if path.starts_with('/') {
        *path = normalize(path);
        return None;
    }
    let base = procfs::base_dir(pid, tid, dirfd)?;
    *path = resolve(&base, path);
    Some(base)
}

/// `path` made absolute against `base` and normalised, without touching
/// the filesystem (the process's view may differ from ours).
pub fn resolve(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        return normalize(path);
    }
    normalize(&format!("{base}/{path}"))
}

/// An absolute path with `//` and `.` dropped and `..` applied to what is
/// written before it (at the root, `..` is the root, as the kernel has it).
/// Lexical: through a symlink `..` may name another directory, which is
/// why a kernel-resolved path is preferred wherever there is one.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let mut normal = String::with_capacity(path.len());
    for part in &parts {
        normal.push('/');
        normal.push_str(part);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_joined_to_their_base() {
        assert_eq!(resolve("/home/app", "data/x.txt"), "/home/app/data/x.txt");
        assert_eq!(resolve("/home/app", "./x"), "/home/app/x");
        assert_eq!(resolve("/", "etc/passwd"), "/etc/passwd");
        assert_eq!(resolve("/etc", "shadow"), "/etc/shadow");
        assert_eq!(resolve("/app/bin", "../tmp/x"), "/app/tmp/x");
    }

    #[test]
    fn disguised_forms_normalise_to_the_plain_one() {
        for disguised in [
            "/etc//shadow",
            "/etc/./shadow",
            "/usr/../etc/shadow",
            "/./etc/././shadow",
            "//etc/shadow/",
            "/../../etc/shadow",
            "/etc/ssh/../shadow",
        ] {
            assert_eq!(normalize(disguised), "/etc/shadow", "{disguised}");
        }
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(normalize("/a/.../b"), "/a/.../b");
    }

    #[test]
    fn kernel_resolved_paths_are_kept_and_raw_paths_remembered() {
        let mut event = Event {
            pid: std::process::id(),
            tid: std::process::id(),
            args: Some(Args {
                path: "/etc/shadow".to_owned(),
                path_raw: "/proc/self/root/etc/shadow".to_owned(),
                path_source: PathSource::Kernel.into(),
                ..Args::default()
            }),
            ..Event::default()
        };
        absolutize(&mut event, Some(abi::AT_FDCWD), None);
        let args = event.args.unwrap();
        assert_eq!(args.path, "/etc/shadow");
        assert_eq!(args.path_raw, "/proc/self/root/etc/shadow");

        let mut event = Event {
            pid: std::process::id(),
            tid: std::process::id(),
            args: Some(Args {
                path: "/usr/../etc//shadow".to_owned(),
                ..Args::default()
            }),
            ..Event::default()
        };
        absolutize(&mut event, Some(abi::AT_FDCWD), None);
        let args = event.args.unwrap();
        assert_eq!(args.path, "/etc/shadow");
        assert_eq!(args.path_raw, "/usr/../etc//shadow");
        assert_eq!(args.path_source(), PathSource::Lexical);
    }
}
