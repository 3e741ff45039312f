//! Decoded events → complete events: node, wall time, cgroup path and the
//! container and pod it belongs to, executable, absolute paths, and the
//! process context (command line, tty, login uid, start time, ancestry)
//! from the process table.

mod cgroup;
pub mod pods;
mod process;
pub mod procs;

use std::path::Path;

pub use cgroup::CgroupPaths;
pub use pods::PodDirectory;
pub use procs::{ProcessInfo, ProcessTable};
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::{Event, EventType};

use crate::decode::Decoded;

/// Adds what the kernel record does not carry. Keeps a cgroup-path cache
/// and the process table, so one instance serves the whole stream.
#[derive(Debug)]
pub struct Enricher {
    node: String,
    cgroups: CgroupPaths,
    processes: ProcessTable,
    pods: PodDirectory,
}

impl Enricher {
    /// An enricher with the default ancestry depth and table size, seeded
    /// from /proc.
    pub fn new(node: &str, hierarchies: Hierarchies) -> Self {
        let processes = ProcessTable::seeded(
            Path::new("/proc"),
            procs::DEFAULT_ANCESTRY_DEPTH,
            procs::DEFAULT_CAPACITY,
        );
        Self::with_processes(node, hierarchies, processes)
    }

    /// The enricher `config` asks for, seeded from /proc.
    pub fn for_config(config: &crate::Config) -> Self {
        let processes = ProcessTable::seeded(
            Path::new("/proc"),
            config.process_ancestry_depth,
            procs::DEFAULT_CAPACITY,
        );
        Self::with_processes(&config.node_name, Hierarchies::detect(), processes)
    }

    pub fn with_processes(node: &str, hierarchies: Hierarchies, processes: ProcessTable) -> Self {
        Self {
            node: node.to_owned(),
            cgroups: CgroupPaths::new(hierarchies, cgroup::DEFAULT_CAPACITY),
            processes,
            pods: PodDirectory::default(),
        }
    }

    /// Attributes containers to pods through `pods`.
    pub fn with_pods(mut self, pods: PodDirectory) -> Self {
        self.pods = pods;
        self
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    pub fn enrich(&mut self, decoded: Decoded) -> Event {
        let Decoded {
            mut event,
            dirfd,
            target_dirfd,
            lineage,
            ..
        } = decoded;
        event.node.clone_from(&self.node);
        event.wall_time_ns = vigil_service::clock::monotonic_to_wall_ns(event.kernel_time_ns);
        self.attribute(&mut event);
        absolutize(&mut event, dirfd, target_dirfd);
        if event.r#type() == EventType::Exec && event.return_value >= 0 {
            // The new image, with symlinks resolved; other events take the
            // exe from the process table instead of reading /proc each time.
            event.exe_path = process::exe_path(event.pid).unwrap_or_default();
        }
        self.processes.apply_with(&mut event, lineage);
        event
    }

    fn attribute(&mut self, event: &mut Event) {
        let Some(path) = self.cgroups.path_of(event.cgroup_id) else {
            return;
        };
        if let Some(identity) = vigil_cgroup::identify(&path) {
            event.container_id = identity.container_id;
            event.pod_uid = identity.pod_uid;
            event.pod = self.pods.get(&event.container_id);
        }
        event.cgroup_path = path;
    }
}

/// Makes relative path arguments absolute, recording the cwd when read.
/// Exec paths are relative to the cwd; open paths to their dirfd; a second
/// path (rename's new name, a link, a mount point) to its own.
fn absolutize(event: &mut Event, dirfd: Option<i32>, target_dirfd: Option<i32>) {
    let (pid, tid) = (event.pid, event.tid);
    let Some(args) = event.args.as_mut() else {
        return;
    };
    let dirfd = dirfd.unwrap_or(crate::kernel::abi::AT_FDCWD);
    if let Some(base) = resolve_in_place(&mut args.path, pid, tid, dirfd)
        && dirfd == crate::kernel::abi::AT_FDCWD
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
    let base = process::base_dir(pid, tid, dirfd)?;
    *path = process::resolve(&base, path);
    Some(base)
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{Args, EventType};

    use super::*;

    fn decoded_open(path: &str) -> Decoded {
        let pid = std::process::id();
        Decoded {
            event: Event {
                r#type: EventType::Open.into(),
                pid,
                tid: pid,
                kernel_time_ns: vigil_service::clock::monotonic_ns(),
                cgroup_id: u64::MAX,
                args: Some(Args {
                    path: path.to_owned(),
                    ..Args::default()
                }),
                ..Event::default()
            },
            dirfd: Some(crate::kernel::abi::AT_FDCWD),
            target_dirfd: None,
            flags: 0,
            lineage: None,
        }
    }

    #[test]
    fn relative_open_paths_become_absolute_and_node_and_time_are_set() {
        let mut enricher = Enricher::new(
            "node-a",
            Hierarchies {
                unified: None,
                freezer_v1: None,
            },
        );
        let event = enricher.enrich(decoded_open("Cargo.toml"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            event.args.unwrap().path,
            cwd.join("Cargo.toml").to_string_lossy()
        );
        assert_eq!(event.cwd, cwd.to_string_lossy());
        assert_eq!(event.node, "node-a");
        assert!(event.wall_time_ns.abs_diff(vigil_service::clock::wall_ns()) < 5_000_000_000);
        assert_eq!(
            event.exe_path,
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert_eq!(event.cgroup_path, "");
    }

    #[test]
    fn absolute_paths_are_left_alone() {
        let mut enricher = Enricher::new(
            "n",
            Hierarchies {
                unified: None,
                freezer_v1: None,
            },
        );
        let event = enricher.enrich(decoded_open("/etc/hostname"));
        assert_eq!(event.args.unwrap().path, "/etc/hostname");
        // The cwd comes from the process table, not from resolving the path.
        assert_eq!(
            event.cwd,
            std::env::current_dir().unwrap().to_string_lossy()
        );
        assert!(!event.cmdline.is_empty(), "this process's command line");
        assert!(event.process_start_ns > 0);
    }
}
