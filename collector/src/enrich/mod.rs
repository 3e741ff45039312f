//! Decoded events → complete events: node, wall time, cgroup path and the
//! container and pod it belongs to, executable, absolute paths, and the
//! process context (command line, tty, login uid, start time, ancestry)
//! from the process table.
//!
//! | module | job |
//! |---|---|
//! | [`cgroup`](CgroupPaths) | cgroup id → path, container id and pod uid |
//! | [`pods`] | container id → pod metadata, from the Kubernetes API |
//! | [`process_table`] | pid → what the collector knows about the process, kept current by the event stream; the runtime set-up lineage |
//! | [`procfs`] | reads /proc: a process's entry for the table, its executable, cwd and descriptors' paths |
//! | `paths` | relative path arguments made absolute |
//!
//! [`Enricher`] runs them in that order on each record and holds a record
//! whose lineage record (clone, exec) has not been read yet.

mod cgroup;
mod paths;
pub mod pods;
pub mod process_table;
pub mod procfs;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
    time::{Duration, Instant},
};

pub use cgroup::CgroupPaths;
pub use pods::PodDirectory;
pub use process_table::{Lineage, ProcessInfo, ProcessTable};
use vigil_cgroup::Hierarchies;
use vigil_proto::v1::{Event, EventType, PathSource};

use crate::decode::Decoded;

/// How long a record may wait for the clone or exec record that comes
/// before it in its process's history ([`ProcessTable::must_wait`]); after
/// that it is judged without it (not runtime set-up). The clone record is
/// written when the parent's clone returns, and the child may run long
/// before that on another CPU of a busy node (50 ms was seen to be too
/// short on two loaded cores). Only records of processes whose start the
/// table has not seen wait, in containers; a process it knows never does.
pub const LINEAGE_PATIENCE: Duration = Duration::from_millis(500);
/// Records held at most; beyond it the oldest is judged at once (a flood
/// of new processes must not make the ring-buffer thread slow).
pub const MAX_WAITING: usize = 4096;

/// Adds what the kernel record does not carry. Keeps a cgroup-path cache
/// and the process table, so one instance serves the whole stream.
#[derive(Debug)]
pub struct Enricher {
    node: String,
    cgroups: CgroupPaths,
    processes: ProcessTable,
    pods: PodDirectory,
    /// Records waiting for an earlier record of their lineage, oldest
    /// first: (when parked, event, the kernel's lineage facts).
    waiting: VecDeque<(Instant, Event, Option<Lineage>)>,
    /// pid → its records in `waiting`, so a record finds out in O(1)
    /// whether it must queue behind its process's earlier ones.
    waiting_pids: HashMap<u32, usize>,
}

impl Enricher {
    /// An enricher with the default ancestry depth and table size, seeded
    /// from /proc.
    pub fn new(node: &str, hierarchies: Hierarchies) -> Self {
        let processes = ProcessTable::seeded(
            Path::new("/proc"),
            process_table::DEFAULT_ANCESTRY_DEPTH,
            process_table::DEFAULT_CAPACITY,
        );
        Self::with_processes(node, hierarchies, processes)
    }

    /// The enricher `config` asks for, seeded from /proc.
    pub fn for_config(config: &crate::Config) -> Self {
        let processes = ProcessTable::seeded(
            Path::new("/proc"),
            config.process_ancestry_depth,
            process_table::DEFAULT_CAPACITY,
        );
        Self::with_processes(
            &config.node_name,
            Hierarchies::detect_under(&config.cgroup_root),
            processes,
        )
    }

    pub fn with_processes(node: &str, hierarchies: Hierarchies, processes: ProcessTable) -> Self {
        Self {
            node: node.to_owned(),
            cgroups: CgroupPaths::new(hierarchies, cgroup::DEFAULT_CAPACITY),
            processes,
            pods: PodDirectory::default(),
            waiting: VecDeque::new(),
            waiting_pids: HashMap::new(),
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

    /// One record, enriched at once (no waiting for records read late).
    pub fn enrich(&mut self, decoded: Decoded) -> Event {
        let (mut event, lineage) = self.prepare(decoded);
        self.processes.apply_with(&mut event, lineage);
        event
    }

    /// One record of the kernel stream: enriched and given to `emit`, or,
    /// when an earlier record of its lineage has not been read yet (its
    /// process's clone, its image's exec: another CPU's ring), held until
    /// that record comes or [`LINEAGE_PATIENCE`] passes. Records of one
    /// process keep their order.
    pub fn push(&mut self, decoded: Decoded, emit: &mut impl FnMut(Event)) {
        let (event, lineage) = self.prepare(decoded);
        let behind_another = self.waiting_pids.contains_key(&event.pid);
        if behind_another || self.processes.must_wait(&event, lineage) {
            *self.waiting_pids.entry(event.pid).or_insert(0) += 1;
            self.waiting.push_back((Instant::now(), event, lineage));
            if self.waiting.len() > MAX_WAITING {
                self.release_oldest(emit);
            }
            return;
        }
        let mut event = event;
        // Only a new process or a new image can let a held record go.
        let unblocks = matches!(event.r#type(), EventType::Clone | EventType::Exec);
        self.processes.apply_with(&mut event, lineage);
        emit(event);
        if unblocks && !self.waiting.is_empty() {
            self.release(Instant::now(), emit);
        }
    }

    fn release_oldest(&mut self, emit: &mut impl FnMut(Event)) {
        if let Some((_, mut event, lineage)) = self.waiting.pop_front() {
            self.forget_waiting(event.pid);
            self.processes.apply_with(&mut event, lineage);
            emit(event);
        }
    }

    fn forget_waiting(&mut self, pid: u32) {
        if let Some(count) = self.waiting_pids.get_mut(&pid) {
            *count -= 1;
            if *count == 0 {
                self.waiting_pids.remove(&pid);
            }
        }
    }

    /// Gives `emit` the held records whose lineage is now known or whose
    /// patience ran out (call it after every read, even an empty one).
    pub fn release(&mut self, now: Instant, emit: &mut impl FnMut(Event)) {
        // Releasing one record (a clone) can make others ready (the child's).
        let mut progress = true;
        while progress && !self.waiting.is_empty() {
            progress = false;
            let mut blocked = HashSet::new();
            let mut kept = VecDeque::with_capacity(self.waiting.len());
            while let Some((parked, mut event, lineage)) = self.waiting.pop_front() {
                let ready = !blocked.contains(&event.pid)
                    && (now.duration_since(parked) >= LINEAGE_PATIENCE
                        || !self.processes.must_wait(&event, lineage));
                if ready {
                    if now.duration_since(parked) >= LINEAGE_PATIENCE {
                        tracing::debug!(message = "A record waited in vain for its lineage.", pid = event.pid, comm = %event.comm, known = self.processes.get(event.pid).is_some(), exec_id = ?lineage.map(|l| l.exec_id), kind = ?event.r#type());
                    }
                    self.forget_waiting(event.pid);
                    self.processes.apply_with(&mut event, lineage);
                    emit(event);
                    progress = true;
                } else {
                    blocked.insert(event.pid);
                    kept.push_back((parked, event, lineage));
                }
            }
            self.waiting = kept;
        }
    }

    /// Records held by [`push`](Self::push).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn prepare(&mut self, decoded: Decoded) -> (Event, Option<Lineage>) {
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
        paths::absolutize(&mut event, dirfd, target_dirfd);
        if event.r#type() == EventType::Exec && event.return_value >= 0 {
            // The new image, with symlinks resolved; other events take the
            // exe from the process table instead of reading /proc each time.
            event.exe_path = exec_image(&event)
                .unwrap_or_else(|| procfs::exe_path(event.pid).unwrap_or_default());
        }
        (event, lineage)
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

/// The image an exec loaded, as the kernel resolved it at the exec: a
/// process that exits at once has no /proc entry left to read by the time
/// its record is enriched, and an unknown executable must not be what lets
/// a renamed copy match an exception.
fn exec_image(event: &Event) -> Option<String> {
    let args = event.args.as_ref()?;
    (args.path_source() == PathSource::Kernel && !args.path.is_empty()).then(|| args.path.clone())
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
