//! Cgroups as Vigil needs them.
//!
//! * [`Hierarchies`]: where the unified (v2) hierarchy and the v1 freezer
//!   are mounted; hosts may be pure v2, pure v1 or hybrid.
//! * [`identify`]: the container id and pod UID encoded in a cgroup path by
//!   containerd, CRI-O and Docker under the cgroupfs and systemd drivers.
//! * [`Hierarchies::freeze`] / [`Hierarchies::thaw`]: stop and resume every
//!   process of a cgroup, with `cgroup.freeze` on v2 and `freezer.state` on v1.
//! * [`Hierarchies::kill_all`] / [`Hierarchies::signal_in_cgroup`]: kill a
//!   whole cgroup (`cgroup.kill`, else every pid) or one of its processes,
//!   through pidfds so a recycled pid is never signalled.
//!
//! Cgroup paths are always relative to the hierarchy root, without a leading
//! slash (`kubepods/besteffort/pod…/…`), so they mean the same thing in both
//! hierarchies.

mod freeze;
mod identity;
mod kill;

use std::path::{Path, PathBuf};

pub use freeze::{FreezeError, FreezeOutcome, Freezer};
pub use identity::{ContainerIdentity, identify};
pub use kill::{KillError, KillMethod};
/// Signals, re-exported so callers name them without depending on rustix.
pub use rustix::process::Signal;

/// Where a host mounts its cgroup file systems. A service in a container
/// with its own cgroup namespace sees only its own subtree there, so its
/// manifest mounts the host's elsewhere and configures that path.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Mount points of the hierarchies this host has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchies {
    /// Root of the cgroup v2 hierarchy (`/sys/fs/cgroup` on pure v2 hosts,
    /// `/sys/fs/cgroup/unified` on hybrid ones).
    pub unified: Option<PathBuf>,
    /// Root of the cgroup v1 freezer hierarchy, if mounted.
    pub freezer_v1: Option<PathBuf>,
}

impl Hierarchies {
    /// Finds the hierarchies under `/sys/fs/cgroup`.
    pub fn detect() -> Self {
        Self::detect_under(Path::new(DEFAULT_ROOT))
    }

    /// Finds the hierarchies under `root` (a test may pass its own tree).
    pub fn detect_under(root: &Path) -> Self {
        let unified = [root.to_path_buf(), root.join("unified")]
            .into_iter()
            .find(|dir| {
                dir.join("cgroup.controllers").is_file()
                    || dir.join("cgroup.freeze").exists()
                    || is_v2_root(dir)
            });
        let freezer = root.join("freezer");
        let freezer_v1 = freezer
            .join("freezer.state")
            .exists()
            .then_some(())
            .or_else(|| {
                // The root cgroup of v1 has no freezer.state; a mounted freezer has tasks.
                freezer.join("tasks").is_file().then_some(())
            });
        Self {
            unified,
            freezer_v1: freezer_v1.map(|()| freezer),
        }
    }

    /// Directory of `relative` in the unified hierarchy.
    pub fn unified_dir(&self, relative: &str) -> Option<PathBuf> {
        self.unified.as_ref().map(|root| root.join(trim(relative)))
    }

    /// Directory of `relative` in the v1 freezer hierarchy.
    pub fn freezer_dir(&self, relative: &str) -> Option<PathBuf> {
        self.freezer_v1
            .as_ref()
            .map(|root| root.join(trim(relative)))
    }

    /// The cgroup path (relative) of the v2 cgroup with inode `id`, which is
    /// what `bpf_get_current_cgroup_id()` returns. Walks the hierarchy, so
    /// callers cache the answer.
    pub fn unified_path_of_id(&self, id: u64) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let root = self.unified.as_ref()?;
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            if meta.ino() == id {
                let relative = dir.strip_prefix(root).ok()?;
                return Some(relative.to_string_lossy().into_owned());
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            pending.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        None
    }
}

fn is_v2_root(dir: &Path) -> bool {
    // A hybrid host's unified mount has cgroup.procs but no controllers file
    // when no controller is enabled on it.
    dir.join("cgroup.procs").is_file() && dir.join("cgroup.subtree_control").is_file()
}

fn trim(relative: &str) -> &str {
    relative.trim_start_matches('/')
}

/// Reads a process's cgroup path (relative) in the unified hierarchy from
/// `/proc/<pid>/cgroup`; `None` if the process is gone or is in none.
pub fn unified_path_of_pid(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| trim(path).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_a_hybrid_layout() {
        let root = tempfile::tempdir().unwrap();
        let unified = root.path().join("unified");
        std::fs::create_dir_all(&unified).unwrap();
        std::fs::write(unified.join("cgroup.procs"), "").unwrap();
        std::fs::write(unified.join("cgroup.subtree_control"), "").unwrap();
        let freezer = root.path().join("freezer");
        std::fs::create_dir_all(&freezer).unwrap();
        std::fs::write(freezer.join("tasks"), "").unwrap();
        let found = Hierarchies::detect_under(root.path());
        assert_eq!(found.unified, Some(unified));
        assert_eq!(found.freezer_v1, Some(freezer));
        assert_eq!(
            found.unified_dir("/kubepods/pod1/c1"),
            Some(root.path().join("unified/kubepods/pod1/c1"))
        );
    }

    #[test]
    fn detects_a_pure_v2_layout() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        let found = Hierarchies::detect_under(root.path());
        assert_eq!(found.unified.as_deref(), Some(root.path()));
        assert_eq!(found.freezer_v1, None);
    }
}
