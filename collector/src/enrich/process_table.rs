//! The process table: what the collector knows about every live process,
//! so each event can carry its command line, terminal, login uid, start
//! time and ancestry without reading /proc for every event.
//!
//! Seeded from /proc at start (processes that existed before the collector
//! are known), then kept current by the event stream: an exec replaces the
//! image, a clone copies the parent, an exit reclaims the entry. A process
//! seen for the first time (its clone was missed or dropped) is read from
//! /proc once. A /proc entry that cannot be read means the process is gone,
//! which is normal for short-lived processes and never an error.
//!
//! It also keeps each process's [`Origin`]: whether it is a container
//! runtime's own set-up (runc's stages before the entrypoint runs) or the
//! container's own process. Names and executables prove nothing (runc
//! renames its stages with prctl and re-executes a memfd copy of itself;
//! anyone can do both), so the mark follows the lineage instead:
//!
//! - a process becomes runtime set-up when it is first seen in a
//!   container's cgroup coming from outside every container, with a history
//!   the table saw (a clone from a host process, or an exec on the host);
//! - its clones inherit the mark;
//! - an exec keeps it only when the new image comes from the same mount
//!   namespace as the previous one (runc re-executing itself on the host's
//!   view); the entrypoint, or `runc exec`'s command, is executed from the
//!   container's mount namespace and ends it for good, for that process
//!   and everything it starts;
//! - a container's own process never gets it back, even after leaving the
//!   container's cgroup;
//! - anything the table cannot vouch for is not runtime set-up: a process
//!   first met from /proc, an exec it missed (the kernel's exec count moved
//!   without an exec record: a dropped record, or records read out of
//!   order), an event without the kernel's lineage facts.

use std::{collections::HashMap, path::Path};

use vigil_proto::v1::{Ancestor, Event, EventType};

use super::procfs::read_proc;

/// `CLONE_THREAD`: the clone made a thread, not a process.
const CLONE_THREAD: u32 = 0x0001_0000;
/// The audit login uid of a process that never logged in.
pub const LOGIN_UID_UNSET: u32 = u32::MAX;
/// Default ancestry depth carried in `Event.ancestors`.
pub const DEFAULT_ANCESTRY_DEPTH: usize = 4;
/// Default number of processes remembered.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// What the kernel says about the task behind each record, for the
/// runtime lineage (`vigil_header.mnt_ns` and `exec_id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Inode number of the task's mount namespace; 0 when unknown.
    pub mnt_ns: u32,
    /// Execs in the task's lineage (low 32 bits of `self_exec_id`): fork
    /// copies it, each exec adds one.
    pub exec_id: u32,
}

/// Where a process stands with regard to the node's containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// The table cannot vouch for its history (first seen from /proc, or a
    /// gap in it). Never runtime set-up; an exec outside every container
    /// makes it a host process, being seen in a container makes it the
    /// container's.
    #[default]
    Unknown,
    /// Outside every container, with a known history.
    Host,
    /// A container runtime's set-up: came into a container's cgroup from
    /// the host and has not executed an image from another mount namespace.
    RuntimeSetup,
    /// The container's own process, or one descended from it: final.
    Container,
}

/// One process as the table knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub cwd: String,
    /// `tty_nr` of `/proc/<pid>/stat`; 0 when none.
    pub tty: u32,
    pub login_uid: u32,
    /// Start time since boot in ns (from /proc's clock ticks, or the event's
    /// kernel time for a process seen being cloned).
    pub start_ns: u64,
    /// Runtime set-up or the container's own; see the module's comment.
    pub origin: Origin,
    /// The mount namespace its current image was executed from; 0 unknown.
    pub image_mnt_ns: u32,
    /// The kernel's exec count at its last record; `None` before the first.
    pub exec_id: Option<u32>,
    /// Exec count, origin and image namespace just before the last exec,
    /// for records of the old image read after the exec's record (another
    /// CPU's ring).
    pub before_exec: Option<(u32, Origin, u32)>,
}

/// How far `later` is past `earlier` in exec counts (which wrap).
fn execs_between(earlier: u32, later: u32) -> i32 {
    later.wrapping_sub(earlier) as i32
}

impl ProcessInfo {
    /// The origin and image namespace the process had at exec count
    /// `exec_id`, when the table still knows it.
    fn at_exec(&self, exec_id: u32) -> Option<(Origin, u32)> {
        if self.exec_id == Some(exec_id) {
            return Some((self.origin, self.image_mnt_ns));
        }
        self.before_exec
            .filter(|(id, ..)| *id == exec_id)
            .map(|(_, origin, ns)| (origin, ns))
    }

    /// Moves the process's origin on by one of its records (`in_container`:
    /// the record came from a container's cgroup; `exec`: a successful exec,
    /// already applied to the entry).
    fn observe(&mut self, in_container: bool, lineage: Option<Lineage>, exec: bool) {
        let Some(lineage) = lineage else {
            // Nothing to check the history against.
            self.exec_id = None;
            if self.origin != Origin::Container {
                self.origin = if in_container {
                    Origin::Container
                } else {
                    Origin::Unknown
                };
            }
            return;
        };
        let expected = if exec {
            self.exec_id.map(|id| id.wrapping_add(1))
        } else {
            self.exec_id
        };
        if expected != Some(lineage.exec_id) && self.origin != Origin::Container {
            // An exec the table did not see (or the first record of a
            // process it did not see start): the lineage is not proven.
            if self.origin == Origin::RuntimeSetup {
                tracing::debug!(message = "Runtime lineage broken: an exec count the table did not expect.", pid = self.pid, comm = %self.comm, known = ?self.exec_id, seen = lineage.exec_id, exec);
            }
            self.origin = Origin::Unknown;
        }
        self.before_exec = self
            .exec_id
            .filter(|_| exec)
            .map(|id| (id, self.origin, self.image_mnt_ns))
            .or(self.before_exec);
        self.exec_id = Some(lineage.exec_id);
        if exec {
            let same_view = lineage.mnt_ns != 0 && lineage.mnt_ns == self.image_mnt_ns;
            let entering = self.origin == Origin::RuntimeSetup
                || (self.origin == Origin::Host && in_container);
            if entering && !same_view {
                // The entrypoint, or a command run by `runc exec`: an image
                // from the container's filesystem.
                self.origin = Origin::Container;
            }
            self.image_mnt_ns = lineage.mnt_ns;
            if self.origin == Origin::Unknown && !in_container {
                self.origin = Origin::Host;
            }
        }
        if in_container {
            self.origin = match self.origin {
                Origin::Host => Origin::RuntimeSetup,
                Origin::Unknown => Origin::Container,
                kept => kept,
            };
        }
    }
}

/// pid → process, bounded, with ancestry lookups.
#[derive(Debug)]
pub struct ProcessTable {
    proc_root: std::path::PathBuf,
    entries: HashMap<u32, ProcessInfo>,
    depth: usize,
    capacity: usize,
}

impl ProcessTable {
    /// An empty table reading `proc_root` (normally `/proc`).
    pub fn new(proc_root: &Path, depth: usize, capacity: usize) -> Self {
        Self {
            proc_root: proc_root.to_owned(),
            entries: HashMap::new(),
            depth,
            capacity: capacity.max(1),
        }
    }

    /// A table holding every process that exists now.
    pub fn seeded(proc_root: &Path, depth: usize, capacity: usize) -> Self {
        let mut table = Self::new(proc_root, depth, capacity);
        table.seed();
        table
    }

    /// Reads every numeric entry of /proc; the ones that vanish meanwhile
    /// are skipped.
    pub fn seed(&mut self) {
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            tracing::warn!(message = "Cannot list /proc; the process table starts empty.", root = %self.proc_root.display());
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if self.entries.len() >= self.capacity {
                break;
            }
            if let Some(info) = read_proc(&self.proc_root, pid) {
                self.entries.insert(pid, info);
            }
        }
        tracing::debug!(
            message = "Seeded the process table.",
            processes = self.entries.len()
        );
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.entries.get(&pid)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Updates the table from `event` and fills the event's process fields
    /// (cmdline, tty, login uid, start time, ancestors, exe and cwd when
    /// the event lacks them). Without the kernel's [`Lineage`] no process
    /// is marked as runtime set-up.
    pub fn apply(&mut self, event: &mut Event) {
        self.apply_with(event, None);
    }

    /// [`apply`](Self::apply) with the kernel's lineage facts of the
    /// record, which also sets `event.container_runtime_setup`. The event's
    /// `container_id` must already be attributed.
    pub fn apply_with(&mut self, event: &mut Event, lineage: Option<Lineage>) {
        let exec = event.r#type() == EventType::Exec && event.return_value >= 0;
        if exec {
            self.on_exec(event);
        } else {
            self.known(event.pid);
        }
        let in_container = !event.container_id.is_empty();
        let mut origin = None;
        if let Some(info) = self.entries.get_mut(&event.pid) {
            let late = match (lineage, info.exec_id) {
                (Some(lineage), Some(known)) => !exec && execs_between(lineage.exec_id, known) > 0,
                _ => false,
            };
            if late {
                // A record of the image before the last exec, read after
                // the exec's record: it is judged as of then.
                let exec_id = lineage.map_or(0, |l| l.exec_id);
                origin = info.at_exec(exec_id);
            } else {
                info.observe(in_container, lineage, exec);
                origin = Some((info.origin, info.image_mnt_ns));
            }
        }
        event.container_runtime_setup =
            in_container && origin.is_some_and(|(o, _)| o == Origin::RuntimeSetup);
        // After the parent's own record moved its origin on: the child
        // starts where the parent was at the clone.
        if event.r#type() == EventType::Clone {
            self.on_clone(event, lineage, origin);
        }
        if event.ppid != 0
            && let Some(info) = self.entries.get_mut(&event.pid)
        {
            // Reparenting (the parent exited) is only visible this way.
            info.ppid = event.ppid;
        }
        self.fill(event);
        if event.r#type() == EventType::Exit {
            self.entries.remove(&event.pid);
        }
    }

    /// The ancestors of `pid`, parent first, up to the configured depth.
    pub fn ancestors(&mut self, pid: u32) -> Vec<Ancestor> {
        let mut chain = Vec::with_capacity(self.depth);
        let mut current = self.known(pid).map(|info| info.ppid);
        while let Some(ppid) = current {
            if chain.len() >= self.depth || ppid == 0 || ppid == pid {
                break;
            }
            let Some(parent) = self.known(ppid) else {
                break;
            };
            chain.push(Ancestor {
                pid: parent.pid,
                comm: parent.comm.clone(),
                exe_path: parent.exe.clone(),
                cmdline: parent.cmdline.clone(),
            });
            current = (parent.ppid != ppid).then_some(parent.ppid);
        }
        chain
    }

    fn fill(&mut self, event: &mut Event) {
        event.ancestors = self.ancestors(event.pid);
        let Some(info) = self.entries.get(&event.pid) else {
            return;
        };
        if event.cmdline.is_empty() {
            event.cmdline.clone_from(&info.cmdline);
        }
        if event.exe_path.is_empty() {
            event.exe_path.clone_from(&info.exe);
        }
        if event.cwd.is_empty() {
            event.cwd.clone_from(&info.cwd);
        }
        if event.ppid == 0 {
            event.ppid = info.ppid;
        }
        if event.login_uid == 0 && info.login_uid != 0 {
            event.login_uid = info.login_uid;
        }
        event.tty = info.tty;
        event.process_start_ns = info.start_ns;
    }

    /// The entry for `pid`, read from /proc the first time it is seen.
    fn known(&mut self, pid: u32) -> Option<&ProcessInfo> {
        if !self.entries.contains_key(&pid) {
            let info = read_proc(&self.proc_root, pid)?;
            self.insert(info);
        }
        self.entries.get(&pid)
    }

    fn on_exec(&mut self, event: &Event) {
        let pid = event.pid;
        // The new image: comm, exe and argv change; ancestry, tty, login
        // uid and start time stay.
        let mut info = self.entries.remove(&pid).unwrap_or_else(|| {
            read_proc(&self.proc_root, pid).unwrap_or(ProcessInfo {
                pid,
                ppid: event.ppid,
                login_uid: event.login_uid,
                start_ns: event.kernel_time_ns,
                ..ProcessInfo::default()
            })
        });
        info.comm.clone_from(&event.comm);
        if let Some(args) = &event.args {
            if !args.argv.is_empty() {
                info.cmdline.clone_from(&args.argv);
            }
            if !args.path.is_empty() {
                info.exe.clone_from(&args.path);
            }
        }
        if !event.exe_path.is_empty() {
            info.exe.clone_from(&event.exe_path);
        }
        if !event.cwd.is_empty() {
            info.cwd.clone_from(&event.cwd);
        }
        if event.ppid != 0 {
            info.ppid = event.ppid;
        }
        self.insert(info);
    }

    /// `origin`: the parent's origin and image namespace at the clone.
    fn on_clone(&mut self, event: &Event, lineage: Option<Lineage>, origin: Option<(Origin, u32)>) {
        let flags = event.args.as_ref().map_or(0, |a| a.flags);
        let Ok(child) = u32::try_from(event.return_value) else {
            return;
        };
        if child == 0 || flags & CLONE_THREAD != 0 {
            return;
        }
        if let (Some(existing), Some(lineage)) = (self.entries.get(&child), lineage)
            && existing
                .exec_id
                .is_some_and(|id| execs_between(lineage.exec_id, id) > 0)
        {
            // The child's own records came first and it has executed since
            // the fork (a vfork's parent returns only after the child's
            // exec): what they said is newer than the parent's state.
            return;
        }
        let Some(parent) = self.known(event.pid) else {
            return;
        };
        let (origin, image_mnt_ns) = origin.unwrap_or_default();
        let info = ProcessInfo {
            pid: child,
            ppid: parent.pid,
            start_ns: event.kernel_time_ns,
            // fork copies the exec count.
            exec_id: lineage.map(|l| l.exec_id),
            origin: if lineage.is_some() {
                origin
            } else {
                Origin::Unknown
            },
            image_mnt_ns,
            before_exec: None,
            ..parent.clone()
        };
        self.insert(info);
    }

    /// Whether `event` should wait for a record that comes before it in
    /// the process's history but has not been read yet: the clone that made
    /// its process (a child often runs, on another CPU, before its parent's
    /// clone returns), or the exec that started its image. Only records in a
    /// container's cgroup wait: their runtime mark depends on it.
    pub fn must_wait(&self, event: &Event, lineage: Option<Lineage>) -> bool {
        let Some(lineage) = lineage else {
            return false;
        };
        if event.container_id.is_empty() {
            return false;
        }
        let Some(info) = self.entries.get(&event.pid) else {
            return true;
        };
        if info.origin == Origin::Container {
            return false;
        }
        let Some(known) = info.exec_id else {
            return true;
        };
        let exec = event.r#type() == EventType::Exec && event.return_value >= 0;
        execs_between(known, lineage.exec_id) > i32::from(exec)
    }

    fn insert(&mut self, info: ProcessInfo) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&info.pid) {
            self.reclaim_dead();
        }
        if self.entries.len() < self.capacity || self.entries.contains_key(&info.pid) {
            self.entries.insert(info.pid, info);
        }
    }

    /// Exits can be dropped under load: when full, forget the processes
    /// /proc no longer has.
    fn reclaim_dead(&mut self) {
        let root = self.proc_root.clone();
        self.entries
            .retain(|pid, _| root.join(pid.to_string()).exists());
        tracing::debug!(
            message = "Reclaimed exited processes.",
            remaining = self.entries.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime lineage, driven by hand-made records. The table reads an
    /// empty directory as /proc, so every process it did not see start is
    /// unknown, as one whose clone was dropped would be.
    mod lineage {
        use vigil_proto::v1::Args;

        use super::*;

        const HOST_NS: u32 = 4_026_531_841;
        const CONTAINER_NS: u32 = 4_026_532_500;

        struct Node {
            table: ProcessTable,
            _proc: tempfile::TempDir,
        }

        fn event(kind: EventType, pid: u32, container: &str) -> Event {
            Event {
                r#type: kind.into(),
                pid,
                tid: pid,
                comm: "x".into(),
                container_id: container.into(),
                ..Event::default()
            }
        }

        impl Node {
            fn new() -> Self {
                let proc = tempfile::tempdir().unwrap();
                Self {
                    table: ProcessTable::new(proc.path(), 4, 1024),
                    _proc: proc,
                }
            }

            /// Applies one record; returns the event's runtime set-up mark.
            fn record(&mut self, mut event: Event, mnt_ns: u32, exec_id: u32) -> bool {
                self.table
                    .apply_with(&mut event, Some(Lineage { mnt_ns, exec_id }));
                event.container_runtime_setup
            }

            fn syscall(&mut self, pid: u32, container: &str, mnt_ns: u32, exec_id: u32) -> bool {
                self.record(event(EventType::Mount, pid, container), mnt_ns, exec_id)
            }

            fn exec(&mut self, pid: u32, container: &str, mnt_ns: u32, exec_id: u32) -> bool {
                self.record(event(EventType::Exec, pid, container), mnt_ns, exec_id)
            }

            fn clone(
                &mut self,
                parent: u32,
                child: u32,
                container: &str,
                mnt_ns: u32,
                exec_id: u32,
            ) -> bool {
                let mut clone = event(EventType::Clone, parent, container);
                clone.return_value = i64::from(child);
                clone.args = Some(Args::default());
                self.record(clone, mnt_ns, exec_id)
            }

            fn origin(&self, pid: u32) -> Origin {
                self.table.get(pid).unwrap().origin
            }

            /// A runtime on the host (exec'd there, so its history is
            /// known) that started `pid` with `exec_id` execs behind it.
            fn host_runtime(&mut self, runtime: u32, pid: u32) {
                assert!(!self.exec(runtime, "", HOST_NS, 4));
                assert_eq!(self.origin(runtime), Origin::Host);
                assert!(!self.clone(runtime, pid, "", HOST_NS, 4));
                // `runc init`, executed on the host before the cgroup move.
                assert!(!self.exec(pid, "", HOST_NS, 5));
                assert_eq!(self.origin(pid), Origin::Host);
            }
        }

        #[test]
        fn runc_stages_are_runtime_set_up_until_the_entrypoint_runs() {
            let mut node = Node::new();
            node.host_runtime(100, 101);
            // Moved into the container's cgroup by its parent.
            assert!(node.syscall(101, "c1", HOST_NS, 5), "runc:[0:PARENT]");
            // runc 1.1 re-executes a memfd copy of itself, still on the
            // host's mount namespace (before or after the move).
            assert!(node.exec(101, "c1", HOST_NS, 6), "the memfd re-exec");
            assert!(node.clone(101, 102, "c1", HOST_NS, 6));
            // runc:[1:CHILD] unshares the container's namespaces.
            assert!(node.syscall(102, "c1", CONTAINER_NS, 6), "runc:[1:CHILD]");
            assert!(node.clone(102, 103, "c1", CONTAINER_NS, 6));
            assert!(
                node.syscall(103, "c1", CONTAINER_NS, 6),
                "runc:[2:INIT]: mounts, pivot_root"
            );

            // The entrypoint comes from the container's mount namespace.
            assert!(!node.exec(103, "c1", CONTAINER_NS, 7), "the entrypoint");
            assert_eq!(node.origin(103), Origin::Container);
            assert!(
                !node.syscall(103, "c1", CONTAINER_NS, 7),
                "the entrypoint's mount"
            );
            assert!(!node.clone(103, 104, "c1", CONTAINER_NS, 7));
            assert!(!node.syscall(104, "c1", CONTAINER_NS, 7), "its child");
            // Executing the runtime's binary again (/proc/self/exe, a memfd)
            // from inside changes nothing.
            assert!(!node.exec(104, "c1", CONTAINER_NS, 8));
            assert!(
                !node.exec(104, "c1", HOST_NS, 9),
                "not even in the host's namespace"
            );
        }

        #[test]
        fn runc_exec_set_up_ends_at_the_command_executed_in_the_container() {
            let mut node = Node::new();
            node.host_runtime(200, 201);
            assert!(!node.clone(201, 202, "", HOST_NS, 5));
            // Stage 1 joins the container's namespaces on the host's cgroup;
            // its child is moved into the container's cgroup afterwards.
            assert!(!node.syscall(202, "", CONTAINER_NS, 5));
            assert!(!node.clone(202, 203, "", CONTAINER_NS, 5));
            assert!(node.syscall(203, "c1", CONTAINER_NS, 5), "set-up inside");
            assert!(
                !node.exec(203, "c1", CONTAINER_NS, 6),
                "the command of `podman exec`"
            );
            assert!(!node.syscall(203, "c1", CONTAINER_NS, 6));
        }

        #[test]
        fn processes_without_a_known_history_are_never_runtime_set_up() {
            let mut node = Node::new();
            // First seen inside (its clone missed, or from /proc): unknown.
            let mut first = event(EventType::Mount, 300, "c1");
            node.table.insert(ProcessInfo {
                pid: 300,
                ..ProcessInfo::default()
            });
            assert!(!node.record(first.clone(), HOST_NS, 1));
            assert_eq!(node.origin(300), Origin::Container);
            // ...and stays so wherever it goes.
            assert!(!node.syscall(300, "", HOST_NS, 1));
            assert!(!node.exec(300, "", HOST_NS, 2));
            assert!(
                !node.syscall(300, "c1", HOST_NS, 2),
                "back into a container"
            );
            assert_eq!(node.origin(300), Origin::Container);

            // Without the kernel's lineage facts.
            node.host_runtime(310, 311);
            first.pid = 311;
            node.table.apply(&mut first);
            assert!(!first.container_runtime_setup);
            assert!(!node.syscall(311, "c1", HOST_NS, 5));
        }

        #[test]
        fn a_missed_exec_ends_runtime_set_up() {
            let mut node = Node::new();
            node.host_runtime(400, 401);
            assert!(node.syscall(401, "c1", HOST_NS, 5));
            // The exec record was dropped: the count moved without one.
            assert!(!node.syscall(401, "c1", CONTAINER_NS, 6));
            assert_eq!(node.origin(401), Origin::Container);
            assert!(!node.exec(401, "c1", HOST_NS, 7));

            // A missed exec on the host: known again by its next exec there.
            node.host_runtime(410, 411);
            assert!(!node.syscall(411, "", HOST_NS, 9));
            assert_eq!(node.origin(411), Origin::Unknown);
            assert!(
                !node.syscall(411, "c1", HOST_NS, 9),
                "unknown when it enters"
            );
            node.host_runtime(420, 421);
            assert!(!node.syscall(421, "", HOST_NS, 9));
            assert!(!node.exec(421, "", HOST_NS, 10));
            assert_eq!(node.origin(421), Origin::Host);
            assert!(node.syscall(421, "c1", HOST_NS, 10));
        }

        #[test]
        fn records_read_out_of_order_are_judged_as_of_when_they_were_made() {
            let mut node = Node::new();
            node.host_runtime(700, 701);
            assert!(node.syscall(701, "c1", HOST_NS, 5));
            assert!(!node.exec(701, "c1", CONTAINER_NS, 6), "the entrypoint");
            // A mount of runc's init stage read after the entrypoint's exec
            // (another CPU's ring): still the runtime's.
            assert!(node.syscall(701, "c1", CONTAINER_NS, 5));
            assert_eq!(node.origin(701), Origin::Container, "unchanged by it");
            assert!(!node.syscall(701, "c1", CONTAINER_NS, 6));
            // Older than the table remembers: not vouched for.
            assert!(!node.syscall(701, "c1", CONTAINER_NS, 3));
        }

        #[test]
        fn container_records_wait_for_the_clone_or_exec_before_them() {
            let mut node = Node::new();
            node.host_runtime(800, 801);
            let lineage = |exec_id| {
                Some(Lineage {
                    mnt_ns: HOST_NS,
                    exec_id,
                })
            };
            let mount = |pid| event(EventType::Mount, pid, "c1");
            assert!(
                node.table.must_wait(&mount(802), lineage(5)),
                "clone not read yet"
            );
            assert!(!node.table.must_wait(&mount(801), lineage(5)));
            assert!(
                node.table.must_wait(&mount(801), lineage(6)),
                "exec not read yet"
            );
            let exec = event(EventType::Exec, 801, "c1");
            assert!(!node.table.must_wait(&exec, lineage(6)), "the exec itself");
            let mut host = mount(802);
            host.container_id.clear();
            assert!(
                !node.table.must_wait(&host, lineage(5)),
                "host records never wait"
            );
            assert!(!node.table.must_wait(&mount(802), None));
        }

        #[test]
        fn a_vfork_child_s_exec_read_before_its_parent_s_clone_is_kept() {
            let mut node = Node::new();
            assert!(!node.exec(600, "", HOST_NS, 4));
            // The child's exec on the host comes first: its parent's
            // vfork returns only after it.
            assert!(!node.exec(601, "", HOST_NS, 5));
            assert!(!node.clone(600, 601, "", HOST_NS, 4));
            assert_eq!(node.table.get(601).unwrap().exec_id, Some(5));
            assert_eq!(node.origin(601), Origin::Host);
            assert!(
                node.syscall(601, "c1", HOST_NS, 5),
                "moved in: runtime set-up"
            );
        }

        #[test]
        fn a_host_process_executing_from_the_container_view_as_it_enters_is_the_container_s() {
            let mut node = Node::new();
            node.host_runtime(500, 501);
            // Its first record inside is the exec of an image from the
            // container's mount namespace.
            assert!(!node.exec(501, "c1", CONTAINER_NS, 6));
            assert_eq!(node.origin(501), Origin::Container);
        }
    }
}
