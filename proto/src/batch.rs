//! Event batches on the wire: the one encoder (the collector's) and the one
//! decoder (every reader's) of `vigil/v1/batch.proto`.
//!
//! [`CompactEncoder`] takes events one at a time and keeps each process,
//! container and string once; [`decode`] reads either format and gives the
//! events back whole, as the detectors and the scorer evaluate them.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, Hash, Hasher, RandomState},
};

use prost::Message;

use crate::v1::{
    Ancestor, CompactAncestor, CompactBatch, CompactEvent, CompactPod, ContainerContext, Event,
    EventBatch, PodMeta, ProcessContext,
};

/// The format [`CompactEncoder`] writes and [`decode`] reads besides 1.
pub const COMPACT_FORMAT: u32 = 2;
/// The whole-event format, [`EventBatch`].
pub const FULL_FORMAT: u32 = 1;
/// Field 1 with wire type varint: how every compact batch starts (its
/// `format_version`), and how no [`EventBatch`] can (its field 1 is a string).
const VERSION_TAG: u8 = 0x08;

/// A batch that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(
        "event batch in format version {0}, which this reader does not know (it reads {FULL_FORMAT} and {COMPACT_FORMAT}); refused unread"
    )]
    UnknownVersion(u64),
    #[error("malformed event batch (format {format}): {source}")]
    Malformed {
        format: u32,
        #[source]
        source: prost::DecodeError,
    },
}

impl BatchError {
    /// The `error_type` label services count this under.
    pub fn reason(&self) -> &'static str {
        match self {
            BatchError::UnknownVersion(_) => "unknown_format_version",
            BatchError::Malformed { .. } => "malformed_payload",
        }
    }
}

/// An event left out because it refers to a table entry the batch lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingContext {
    /// Position of the event in the batch as sent.
    pub event: usize,
    /// The table: `process`, `container`, `string` (or `label value`, a
    /// label key without one).
    pub table: &'static str,
    /// The index that is not in it.
    pub index: u32,
}

impl fmt::Display for MissingContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} refers to {} entry {}, which the batch does not hold",
            self.event, self.table, self.index
        )
    }
}

/// A batch read back: its events whole, and the events left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub batch: EventBatch,
    /// [`FULL_FORMAT`] or [`COMPACT_FORMAT`].
    pub format: u32,
    pub skipped: Vec<MissingContext>,
}

/// Reads a batch in either format. An unknown format version is refused
/// without reading further; an event whose context is missing is skipped
/// and listed in [`Decoded::skipped`].
pub fn decode(payload: &[u8]) -> Result<Decoded, BatchError> {
    let Some(rest) = payload.strip_prefix(&[VERSION_TAG]) else {
        let batch = EventBatch::decode(payload).map_err(|source| BatchError::Malformed {
            format: FULL_FORMAT,
            source,
        })?;
        return Ok(Decoded {
            batch,
            format: FULL_FORMAT,
            skipped: Vec::new(),
        });
    };
    let version =
        prost::encoding::decode_varint(&mut &rest[..]).map_err(|source| BatchError::Malformed {
            format: COMPACT_FORMAT,
            source,
        })?;
    if version != u64::from(COMPACT_FORMAT) {
        return Err(BatchError::UnknownVersion(version));
    }
    let compact = CompactBatch::decode(payload).map_err(|source| BatchError::Malformed {
        format: COMPACT_FORMAT,
        source,
    })?;
    Ok(expand(compact))
}

/// The events of a compact batch, whole.
pub fn expand(compact: CompactBatch) -> Decoded {
    let table = Strings(&compact.strings);
    let containers: Vec<Result<Event, Missing>> = compact
        .containers
        .iter()
        .map(|c| table.container(c))
        .collect();
    let processes: Vec<Result<Event, Missing>> = compact
        .processes
        .iter()
        .map(|p| table.process(p, &containers))
        .collect();
    let base = Base {
        kernel: compact.base_kernel_time_ns,
        offset: compact
            .base_wall_time_ns
            .wrapping_sub(compact.base_kernel_time_ns),
    };
    let mut events = Vec::with_capacity(compact.events.len());
    let mut skipped = Vec::new();
    for (position, event) in compact.events.into_iter().enumerate() {
        let context = processes
            .get(event.process as usize)
            .ok_or(Missing::new("process", event.process))
            .and_then(|p| p.clone());
        let whole = context.and_then(|mut whole| {
            table.event_own(&mut whole, event, base)?;
            Ok(whole)
        });
        match whole {
            Ok(whole) => events.push(whole),
            Err(missing) => skipped.push(MissingContext {
                event: position,
                table: missing.table,
                index: missing.index,
            }),
        }
    }
    Decoded {
        batch: EventBatch {
            node: compact.node,
            sequence: compact.sequence,
            events,
            kernel_drops: compact.kernel_drops,
            userspace_drops: compact.userspace_drops,
            run_id: compact.run_id,
        },
        format: COMPACT_FORMAT,
        skipped,
    }
}

/// The compact form of a whole batch (tools and tests; the collector
/// encodes event by event with [`CompactEncoder`]).
pub fn compact(batch: EventBatch) -> CompactBatch {
    let mut encoder = CompactEncoder::default();
    let EventBatch {
        node,
        sequence,
        events,
        kernel_drops,
        userspace_drops,
        run_id,
    } = batch;
    for event in events {
        encoder.push(event);
    }
    encoder.finish(Header {
        node,
        sequence,
        run_id,
        kernel_drops,
        userspace_drops,
    })
}

/// The batch's first kernel time and wall-minus-kernel offset.
#[derive(Clone, Copy, Debug)]
struct Base {
    kernel: u64,
    offset: u64,
}

#[derive(Clone, Copy, Debug)]
struct Missing {
    table: &'static str,
    index: u32,
}

impl Missing {
    fn new(table: &'static str, index: u32) -> Self {
        Self { table, index }
    }
}

/// A batch's string table, for reading.
struct Strings<'a>(&'a [String]);

impl Strings<'_> {
    fn get(&self, index: u32) -> Result<String, Missing> {
        self.0
            .get(index as usize)
            .cloned()
            .ok_or(Missing::new("string", index))
    }

    fn all(&self, indices: &[u32]) -> Result<Vec<String>, Missing> {
        indices.iter().map(|&i| self.get(i)).collect()
    }

    /// An event holding only the container's fields.
    fn container(&self, c: &ContainerContext) -> Result<Event, Missing> {
        Ok(Event {
            node: self.get(c.node_ref)?,
            cgroup_path: self.get(c.cgroup_path_ref)?,
            cgroup_id: c.cgroup_id,
            container_id: self.get(c.container_id_ref)?,
            pod_uid: self.get(c.pod_uid_ref)?,
            pod: c.pod.as_ref().map(|p| self.pod(p)).transpose()?,
            ..Event::default()
        })
    }

    fn pod(&self, p: &CompactPod) -> Result<PodMeta, Missing> {
        let mut labels = HashMap::with_capacity(p.label_refs.len() / 2);
        for pair in p.label_refs.chunks(2) {
            let [key, value] = pair else {
                // An odd count: the last key has no value.
                return Err(Missing::new("label value", *pair.first().unwrap_or(&0)));
            };
            labels.insert(self.get(*key)?, self.get(*value)?);
        }
        Ok(PodMeta {
            name: self.get(p.name_ref)?,
            namespace: self.get(p.namespace_ref)?,
            labels,
            service_account: self.get(p.service_account_ref)?,
            container_name: self.get(p.container_name_ref)?,
            image: self.get(p.image_ref)?,
            owner_kind: self.get(p.owner_kind_ref)?,
            owner_name: self.get(p.owner_name_ref)?,
        })
    }

    /// An event holding the process's and its container's fields.
    fn process(
        &self,
        p: &ProcessContext,
        containers: &[Result<Event, Missing>],
    ) -> Result<Event, Missing> {
        let mut event = containers
            .get(p.container as usize)
            .ok_or(Missing::new("container", p.container))?
            .clone()?;
        event.pid = p.pid;
        event.ppid = p.ppid;
        event.uid = p.uid;
        event.gid = p.gid;
        event.login_uid = p.login_uid;
        event.comm = self.get(p.comm_ref)?;
        event.exe_path = self.get(p.exe_path_ref)?;
        event.cwd = self.get(p.cwd_ref)?;
        event.cmdline = self.all(&p.cmdline_refs)?;
        event.tty = p.tty;
        event.process_start_ns = p.process_start_ns;
        event.ancestors = p
            .ancestors
            .iter()
            .map(|a| {
                Ok(Ancestor {
                    pid: a.pid,
                    comm: self.get(a.comm_ref)?,
                    exe_path: self.get(a.exe_path_ref)?,
                    cmdline: self.all(&a.cmdline_refs)?,
                })
            })
            .collect::<Result<_, Missing>>()?;
        event.cap_effective = p.cap_effective;
        event.container_runtime_setup = p.container_runtime_setup;
        Ok(event)
    }

    /// Fills in what is the event's own.
    fn event_own(&self, whole: &mut Event, own: CompactEvent, base: Base) -> Result<(), Missing> {
        whole.kernel_time_ns = base.kernel.wrapping_add(own.kernel_time_delta as u64);
        whole.wall_time_ns = whole
            .kernel_time_ns
            .wrapping_add(base.offset.wrapping_add(own.wall_offset_delta as u64));
        whole.tid = own.tid;
        whole.r#type = own.r#type;
        whole.return_value = own.return_value;
        whole.syscall = self.get(own.syscall_ref)?;
        whole.args = match own.args {
            Some(mut args) => {
                args.path = self.get(own.path_ref)?;
                args.path_raw = self.get(own.path_raw_ref)?;
                args.target_path = self.get(own.target_path_ref)?;
                args.argv = self.all(&own.argv_refs)?;
                Some(args)
            }
            None => None,
        };
        Ok(())
    }
}

/// The batch fields that are not events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub node: String,
    pub sequence: u64,
    pub run_id: String,
    pub kernel_drops: u64,
    pub userspace_drops: u64,
}

/// Builds one compact batch from events pushed one at a time. A process or
/// container seen before in the batch costs a hash and a comparison, no
/// allocation; only a new one is added to the tables (its strings moved,
/// not copied). [`CompactEncoder::finish`] hands the batch over and leaves
/// the encoder empty, its maps' capacity kept for the next batch.
#[derive(Debug)]
pub struct CompactEncoder {
    strings: Vec<String>,
    string_index: HashMap<u64, u32>,
    containers: Vec<ContainerContext>,
    container_index: HashMap<u64, u32>,
    processes: Vec<ProcessContext>,
    process_index: HashMap<u64, u32>,
    events: Vec<CompactEvent>,
    /// Kernel and wall time of the first event.
    base: Option<(u64, u64)>,
    hasher: RandomState,
}

impl Default for CompactEncoder {
    fn default() -> Self {
        Self {
            strings: vec![String::new()],
            string_index: HashMap::new(),
            containers: Vec::new(),
            container_index: HashMap::new(),
            processes: Vec::new(),
            process_index: HashMap::new(),
            events: Vec::new(),
            base: None,
            hasher: RandomState::new(),
        }
    }
}

impl CompactEncoder {
    /// Events pushed since the last [`CompactEncoder::finish`].
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds an event; its context goes into the tables unless already there.
    pub fn push(&mut self, event: Event) {
        let Event {
            kernel_time_ns,
            wall_time_ns,
            node,
            pid,
            tid,
            ppid,
            uid,
            gid,
            login_uid,
            comm,
            exe_path,
            cwd,
            r#type,
            return_value,
            args,
            cgroup_path,
            container_id,
            pod_uid,
            cgroup_id,
            syscall,
            cmdline,
            tty,
            process_start_ns,
            ancestors,
            pod,
            cap_effective,
            container_runtime_setup,
        } = event;
        let container = self.container(ContainerParts {
            node,
            cgroup_path,
            cgroup_id,
            container_id,
            pod_uid,
            pod,
        });
        let process = self.process(ProcessParts {
            container,
            pid,
            ppid,
            uid,
            gid,
            login_uid,
            comm,
            exe_path,
            cwd,
            cmdline,
            tty,
            process_start_ns,
            ancestors,
            cap_effective,
            container_runtime_setup,
        });
        let (base_kernel, base_wall) = *self.base.get_or_insert((kernel_time_ns, wall_time_ns));
        let base_offset = base_wall.wrapping_sub(base_kernel);
        let offset = wall_time_ns.wrapping_sub(kernel_time_ns);
        let syscall_ref = self.intern(syscall);
        let (args, refs) = match args {
            Some(mut args) => {
                let refs = ArgsRefs {
                    path: self.intern(std::mem::take(&mut args.path)),
                    path_raw: self.intern(std::mem::take(&mut args.path_raw)),
                    target_path: self.intern(std::mem::take(&mut args.target_path)),
                    argv: self.intern_all(std::mem::take(&mut args.argv)),
                };
                (Some(args), refs)
            }
            None => (None, ArgsRefs::default()),
        };
        self.events.push(CompactEvent {
            process,
            kernel_time_delta: kernel_time_ns.wrapping_sub(base_kernel) as i64,
            wall_offset_delta: offset.wrapping_sub(base_offset) as i64,
            tid,
            r#type,
            return_value,
            syscall_ref,
            args,
            path_ref: refs.path,
            path_raw_ref: refs.path_raw,
            target_path_ref: refs.target_path,
            argv_refs: refs.argv,
        });
    }

    /// The batch of everything pushed since the last call.
    pub fn finish(&mut self, header: Header) -> CompactBatch {
        let (base_kernel_time_ns, base_wall_time_ns) = self.base.take().unwrap_or_default();
        self.string_index.clear();
        self.container_index.clear();
        self.process_index.clear();
        let strings = std::mem::replace(&mut self.strings, vec![String::new()]);
        CompactBatch {
            format_version: COMPACT_FORMAT,
            node: header.node,
            sequence: header.sequence,
            run_id: header.run_id,
            kernel_drops: header.kernel_drops,
            userspace_drops: header.userspace_drops,
            strings,
            containers: std::mem::take(&mut self.containers),
            processes: std::mem::take(&mut self.processes),
            events: std::mem::take(&mut self.events),
            base_kernel_time_ns,
            base_wall_time_ns,
        }
    }

    fn intern(&mut self, text: String) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let hash = self.hasher.hash_one(text.as_str());
        if let Some(&index) = self.string_index.get(&hash)
            && self.string(index) == text
        {
            return index;
        }
        let index = self.strings.len() as u32;
        self.strings.push(text);
        // On a hash collision the latest string takes the slot: both are
        // stored, only one is shared.
        self.string_index.insert(hash, index);
        index
    }

    fn intern_all(&mut self, texts: Vec<String>) -> Vec<u32> {
        texts.into_iter().map(|t| self.intern(t)).collect()
    }

    fn string(&self, index: u32) -> &str {
        self.strings.get(index as usize).map_or("", String::as_str)
    }

    fn strings_equal(&self, refs: &[u32], texts: &[String]) -> bool {
        refs.len() == texts.len() && refs.iter().zip(texts).all(|(&r, t)| self.string(r) == t)
    }

    fn container(&mut self, parts: ContainerParts) -> u32 {
        let hash = self.hasher.hash_one(&parts);
        if let Some(&index) = self.container_index.get(&hash)
            && self
                .containers
                .get(index as usize)
                .is_some_and(|entry| self.container_equal(entry, &parts))
        {
            return index;
        }
        let entry = ContainerContext {
            node_ref: self.intern(parts.node),
            cgroup_path_ref: self.intern(parts.cgroup_path),
            cgroup_id: parts.cgroup_id,
            container_id_ref: self.intern(parts.container_id),
            pod_uid_ref: self.intern(parts.pod_uid),
            pod: parts.pod.map(|pod| self.pod(pod)),
        };
        let index = self.containers.len() as u32;
        self.containers.push(entry);
        self.container_index.insert(hash, index);
        index
    }

    fn pod(&mut self, pod: PodMeta) -> CompactPod {
        let mut labels: Vec<(String, String)> = pod.labels.into_iter().collect();
        labels.sort_unstable();
        let mut label_refs = Vec::with_capacity(labels.len() * 2);
        for (key, value) in labels {
            label_refs.push(self.intern(key));
            label_refs.push(self.intern(value));
        }
        CompactPod {
            name_ref: self.intern(pod.name),
            namespace_ref: self.intern(pod.namespace),
            label_refs,
            service_account_ref: self.intern(pod.service_account),
            container_name_ref: self.intern(pod.container_name),
            image_ref: self.intern(pod.image),
            owner_kind_ref: self.intern(pod.owner_kind),
            owner_name_ref: self.intern(pod.owner_name),
        }
    }

    fn container_equal(&self, entry: &ContainerContext, parts: &ContainerParts) -> bool {
        entry.cgroup_id == parts.cgroup_id
            && self.string(entry.node_ref) == parts.node
            && self.string(entry.cgroup_path_ref) == parts.cgroup_path
            && self.string(entry.container_id_ref) == parts.container_id
            && self.string(entry.pod_uid_ref) == parts.pod_uid
            && match (&entry.pod, &parts.pod) {
                (None, None) => true,
                (Some(compact), Some(pod)) => self.pod_equal(compact, pod),
                _ => false,
            }
    }

    fn pod_equal(&self, compact: &CompactPod, pod: &PodMeta) -> bool {
        self.string(compact.name_ref) == pod.name
            && self.string(compact.namespace_ref) == pod.namespace
            && self.string(compact.service_account_ref) == pod.service_account
            && self.string(compact.container_name_ref) == pod.container_name
            && self.string(compact.image_ref) == pod.image
            && self.string(compact.owner_kind_ref) == pod.owner_kind
            && self.string(compact.owner_name_ref) == pod.owner_name
            && compact.label_refs.len() == pod.labels.len() * 2
            && compact.label_refs.chunks(2).all(|pair| match pair {
                [key, value] => pod
                    .labels
                    .get(self.string(*key))
                    .is_some_and(|v| v == self.string(*value)),
                _ => false,
            })
    }

    fn process(&mut self, parts: ProcessParts) -> u32 {
        let hash = self.hasher.hash_one(&parts);
        if let Some(&index) = self.process_index.get(&hash)
            && self
                .processes
                .get(index as usize)
                .is_some_and(|entry| self.process_equal(entry, &parts))
        {
            return index;
        }
        let ancestors = parts
            .ancestors
            .into_iter()
            .map(|a| CompactAncestor {
                pid: a.pid,
                comm_ref: self.intern(a.comm),
                exe_path_ref: self.intern(a.exe_path),
                cmdline_refs: self.intern_all(a.cmdline),
            })
            .collect();
        let entry = ProcessContext {
            container: parts.container,
            pid: parts.pid,
            ppid: parts.ppid,
            uid: parts.uid,
            gid: parts.gid,
            login_uid: parts.login_uid,
            comm_ref: self.intern(parts.comm),
            exe_path_ref: self.intern(parts.exe_path),
            cwd_ref: self.intern(parts.cwd),
            cmdline_refs: self.intern_all(parts.cmdline),
            tty: parts.tty,
            process_start_ns: parts.process_start_ns,
            ancestors,
            cap_effective: parts.cap_effective,
            container_runtime_setup: parts.container_runtime_setup,
        };
        let index = self.processes.len() as u32;
        self.processes.push(entry);
        self.process_index.insert(hash, index);
        index
    }

    fn process_equal(&self, entry: &ProcessContext, parts: &ProcessParts) -> bool {
        entry.container == parts.container
            && entry.pid == parts.pid
            && entry.ppid == parts.ppid
            && entry.uid == parts.uid
            && entry.gid == parts.gid
            && entry.login_uid == parts.login_uid
            && entry.tty == parts.tty
            && entry.process_start_ns == parts.process_start_ns
            && entry.cap_effective == parts.cap_effective
            && entry.container_runtime_setup == parts.container_runtime_setup
            && self.string(entry.comm_ref) == parts.comm
            && self.string(entry.exe_path_ref) == parts.exe_path
            && self.string(entry.cwd_ref) == parts.cwd
            && self.strings_equal(&entry.cmdline_refs, &parts.cmdline)
            && entry.ancestors.len() == parts.ancestors.len()
            && entry.ancestors.iter().zip(&parts.ancestors).all(|(e, a)| {
                e.pid == a.pid
                    && self.string(e.comm_ref) == a.comm
                    && self.string(e.exe_path_ref) == a.exe_path
                    && self.strings_equal(&e.cmdline_refs, &a.cmdline)
            })
    }
}

/// Where an event's argument strings went in the string table.
#[derive(Default)]
struct ArgsRefs {
    path: u32,
    path_raw: u32,
    target_path: u32,
    argv: Vec<u32>,
}

/// An event's container fields, taken out of it.
struct ContainerParts {
    node: String,
    cgroup_path: String,
    cgroup_id: u64,
    container_id: String,
    pod_uid: String,
    pod: Option<PodMeta>,
}

impl Hash for ContainerParts {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Every field but the labels (a map, and the same for one pod);
        // equality is checked field by field.
        self.node.hash(state);
        self.cgroup_path.hash(state);
        self.cgroup_id.hash(state);
        self.container_id.hash(state);
        self.pod_uid.hash(state);
        self.pod
            .as_ref()
            .map(|p| {
                (
                    (&p.name, &p.namespace, &p.service_account),
                    (&p.container_name, &p.image, &p.owner_kind, &p.owner_name),
                )
            })
            .hash(state);
    }
}

/// An event's process fields, taken out of it.
struct ProcessParts {
    container: u32,
    pid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    login_uid: u32,
    comm: String,
    exe_path: String,
    cwd: String,
    cmdline: Vec<String>,
    tty: u32,
    process_start_ns: u64,
    ancestors: Vec<Ancestor>,
    cap_effective: u64,
    container_runtime_setup: bool,
}

impl Hash for ProcessParts {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Every field, so a process whose context changed (setuid, chdir,
        // exec) gets an entry of its own at once; equality is still checked.
        (self.container, self.pid, self.ppid, self.process_start_ns).hash(state);
        (self.uid, self.gid, self.login_uid, self.tty).hash(state);
        (self.cap_effective, self.container_runtime_setup).hash(state);
        (&self.comm, &self.exe_path, &self.cwd, &self.cmdline).hash(state);
        for a in &self.ancestors {
            (a.pid, &a.comm, &a.exe_path, &a.cmdline).hash(state);
        }
    }
}
