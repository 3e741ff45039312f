//! Loads and attaches the BPF programs and reads their per-CPU ring
//! buffers on a dedicated thread.
//!
//! Everything libbpf owns (skeleton, links, ring buffers) lives on that one
//! thread: the skeleton borrows its storage, and keeping it on the thread's
//! stack avoids both self-referential structs and sharing libbpf handles
//! across threads. The thread reports the outcome of load + attach before it
//! starts polling, so callers learn at once whether the kernel side runs.

use std::{
    cell::RefCell,
    io,
    mem::{MaybeUninit, offset_of},
    os::fd::{AsFd, AsRawFd},
    path::Path,
    rc::Rc,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use libbpf_rs::{
    MapCore, MapFlags, MapHandle, MapType, PrintLevel, RingBufferBuilder,
    skel::{OpenSkel, Skel, SkelBuilder},
};

use super::{abi, selection::EnabledSet, skel::VigilSkelBuilder};

/// Where the kernel publishes its BTF; CO-RE relocations need it.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// Read the ring buffer at least this often (the kernel wakes the reader
/// only for a backlog of `DEFAULT_WAKEUP_BYTES`).
const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_millis(2);
const DEFAULT_WAKEUP_BYTES: u32 = 256 << 10;
/// How often the per-CPU drop counters are summed into `KernelDrops`.
const COUNTER_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of libbpf output kept to explain a failed load.
const LOG_LINES: usize = 60;
/// The smallest ring buffer the kernel accepts: one page.
const MIN_RING_BYTES: u32 = 4096;
/// What each CPU's ring holds at least (unless the whole budget is
/// smaller): on a node with many CPUs an even split of the default 4 MiB
/// would leave 64 KiB per CPU, about 75 records, too few for one busy CPU
/// between two reads.
const MIN_SHARE_BYTES: u32 = 256 << 10;

/// How to run the kernel side.
#[derive(Clone, Debug)]
pub struct KernelOptions {
    /// Size of all BPF ring buffers together: a power of two, at least a
    /// page. Each CPU gets its share, rounded down to a power of two, but at
    /// least 256 KiB or the whole budget if smaller (see
    /// `per_cpu_ring_bytes`).
    pub ring_buffer_bytes: u32,
    /// A process whose events are ignored in the kernel: the collector's
    /// own, so that its reads of /proc cause no events of their own.
    pub ignore_tgid: u32,
    /// How often the ring buffer is read when the kernel has not woken the
    /// reader: the latency of an event when events are few.
    pub poll_timeout: Duration,
    /// The kernel wakes the reader once this many bytes wait in a CPU's ring
    /// buffer (at most an eighth of it), not for every record (the traced process would pay for each
    /// wakeup). 0 wakes for every record.
    pub wakeup_bytes: u32,
    /// The syscalls (and process events) the kernel reports; all others
    /// cost one map lookup and send nothing.
    pub syscalls: EnabledSet,
}

impl KernelOptions {
    /// Options that ignore this process and report every syscall.
    pub fn for_this_process(ring_buffer_bytes: u32) -> Self {
        Self {
            ring_buffer_bytes,
            ignore_tgid: std::process::id(),
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            wakeup_bytes: (ring_buffer_bytes / 8).min(DEFAULT_WAKEUP_BYTES),
            syscalls: EnabledSet::all(),
        }
    }

    /// The options `config` asks for (validated config: an invalid syscall
    /// selection, which validation rejects, falls back to every syscall).
    pub fn for_config(config: &crate::Config) -> Self {
        let syscalls = config
            .kernel
            .syscalls
            .resolve()
            .unwrap_or_else(|_| EnabledSet::all());
        Self::for_this_process(config.ring_buffer_bytes).with_syscalls(syscalls)
    }

    /// These options with only `syscalls` reported.
    pub fn with_syscalls(self, syscalls: EnabledSet) -> Self {
        Self { syscalls, ..self }
    }
}

/// The kernel side could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this kernel has no BTF ({VMLINUX_BTF} is missing), which the collector's CO-RE programs need; use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
    #[error(
        "loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON); running as uid {euid}: {source}"
    )]
    NotPermitted {
        euid: u32,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("cannot {stage} the eBPF programs: {source}{log}")]
    Libbpf {
        stage: &'static str,
        #[source]
        source: libbpf_rs::Error,
        /// libbpf's own output (the verifier log on a rejected program).
        log: String,
    },
    #[error("cannot start the ring-buffer thread: {0}")]
    Thread(#[source] io::Error),
    #[error("the ring-buffer thread ended before the programs were attached")]
    ThreadExited,
    #[error("this machine reports no CPUs to give ring buffers to")]
    NoRings,
}

/// The kernel's statistics of one BPF program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: String,
    pub run_time_ns: u64,
    pub run_count: u64,
}

/// Records the kernel dropped, by reason, summed over all CPUs since load.
#[derive(Debug, Default)]
pub struct KernelDrops {
    counts: [AtomicU64; abi::DROP_REASONS.len()],
}

impl KernelDrops {
    /// Total drops for every reason, with its metric label.
    pub fn by_reason(&self) -> Vec<(&'static str, u64)> {
        abi::DROP_REASONS
            .iter()
            .zip(&self.counts)
            .map(|((_, label), count)| (*label, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Total drops for all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The running kernel side. Stops and detaches on [`KernelSource::stop`] or drop.
#[derive(Debug)]
pub struct KernelSource {
    /// Id of this load's `syscall_specs` map, which every one of its
    /// programs uses: it identifies them.
    specs_map_id: u32,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    drops: Arc<KernelDrops>,
}

impl KernelSource {
    /// Loads and attaches the programs, then calls `on_record` with every
    /// ring-buffer record, on the ring-buffer thread, until stopped. Returns
    /// once the programs are attached, or with the reason they are not.
    pub fn start<F>(options: KernelOptions, on_record: F) -> Result<Self, LoadError>
    where
        F: FnMut(&[u8]) + Send + 'static,
    {
        Self::start_sink(options, on_record)
    }

    /// [`start`](Self::start) with a sink that also hears when each read
    /// of the rings ends.
    pub fn start_sink<F>(options: KernelOptions, on_record: F) -> Result<Self, LoadError>
    where
        F: RecordSink + Send + 'static,
    {
        if !Path::new(VMLINUX_BTF).exists() {
            return Err(LoadError::NoBtf);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(KernelDrops::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("vigil-ringbuf".to_owned())
            .spawn({
                let (stop, drops) = (stop.clone(), drops.clone());
                move || ring_thread(&options, on_record, &stop, &drops, &ready_tx)
            })
            .map_err(LoadError::Thread)?;
        let mut source = Self {
            specs_map_id: 0,
            stop,
            thread: Some(thread),
            drops,
        };
        match ready_rx.recv() {
            Ok(Ok(specs_map_id)) => {
                source.specs_map_id = specs_map_id;
                Ok(source)
            }
            Ok(Err(error)) => {
                source.stop();
                Err(error)
            }
            Err(_) => {
                source.stop();
                Err(LoadError::ThreadExited)
            }
        }
    }

    /// Run time and run count of each of this load's programs, as the
    /// kernel counts them while `kernel.bpf_stats_enabled` is 1.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let options = libbpf_rs::query::ProgInfoQueryOptions::default().include_map_ids(true);
        libbpf_rs::query::ProgInfoIter::with_query_opts(options)
            .filter(|info| info.map_ids.contains(&self.specs_map_id))
            .map(|info| ProgramStats {
                name: info.name.to_string_lossy().into_owned(),
                run_time_ns: info.run_time_ns,
                run_count: info.run_cnt,
            })
            .collect()
    }

    /// The kernel's drop counters, refreshed by the ring-buffer thread.
    pub fn drops(&self) -> Arc<KernelDrops> {
        self.drops.clone()
    }

    /// Detaches the programs and waits for the thread. `on_record` is
    /// dropped once this returns.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(message = "The ring-buffer thread panicked.");
        }
    }
}

impl Drop for KernelSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The body of the ring-buffer thread: load, report, poll until stopped.
fn ring_thread<F>(
    options: &KernelOptions,
    mut sink: F,
    stop: &AtomicBool,
    drops: &KernelDrops,
    ready: &mpsc::SyncSender<Result<u32, LoadError>>,
) where
    F: RecordSink,
{
    let rings = match create_rings(options.ring_buffer_bytes) {
        Ok(rings) => rings,
        Err(error) => {
            let _receiver_gone = ready.send(Err(error));
            return;
        }
    };
    let mut storage = MaybeUninit::uninit();
    let skel = match load_and_attach(options, &rings, &mut storage) {
        Ok(skel) => skel,
        Err(error) => {
            let _receiver_gone = ready.send(Err(error));
            return;
        }
    };
    let read = Rc::new(RefCell::new(InTimeOrder::default()));
    let mut builder = RingBufferBuilder::new();
    let mut added = Ok(());
    for ring in &rings {
        let read = read.clone();
        added = added.and_then(|()| {
            builder
                .add(ring, move |record: &[u8]| {
                    read.borrow_mut().push(record);
                    0
                })
                .map(|_| ())
        });
    }
    let ring = match added.and_then(|()| builder.build()) {
        Ok(ring) => ring,
        Err(source) => {
            let _receiver_gone = ready.send(Err(libbpf_error("read the ring buffers of", source)));
            return;
        }
    };
    let specs_map_id = skel
        .maps
        .syscall_specs
        .info()
        .map_or(0, |info| info.info.id);
    let _receiver_gone = ready.send(Ok(specs_map_id));
    tracing::info!(
        message = "eBPF programs attached.",
        ring_buffers = rings.len(),
        ring_buffer_bytes = per_cpu_ring_bytes(options.ring_buffer_bytes, rings.len()),
        wakeup_bytes = options.wakeup_bytes,
        ignored_tgid = options.ignore_tgid
    );
    let mut counted_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Err(error) = ring.poll(options.poll_timeout)
            && error.kind() != libbpf_rs::ErrorKind::Interrupted
        {
            tracing::warn!(message = "Ring buffer poll failed.", %error);
            std::thread::sleep(options.poll_timeout);
        }
        // Records submitted without a wakeup: a poll that timed out has
        // not read them.
        if let Err(error) = ring.consume() {
            tracing::warn!(message = "Ring buffer read failed.", %error);
        }
        read.borrow_mut().deliver(&mut sink);
        sink.read_end();
        if counted_at.elapsed() >= COUNTER_INTERVAL {
            refresh_drops(&skel.maps.drops, drops);
            counted_at = Instant::now();
        }
    }
    // Drain what is left so that a stop loses nothing already delivered.
    let _drained = ring.consume();
    read.borrow_mut().deliver(&mut sink);
    sink.read_end();
    refresh_drops(&skel.maps.drops, drops);
}

/// What the ring-buffer thread feeds: every record, then the end of each
/// read of the rings (every poll, records or not). A closure taking a
/// record is one.
pub trait RecordSink {
    fn record(&mut self, record: &[u8]);
    /// A read of every ring ended.
    fn read_end(&mut self) {}
}

impl<F: FnMut(&[u8])> RecordSink for F {
    fn record(&mut self, record: &[u8]) {
        self(record);
    }
}

/// Each CPU's share of `total` ring-buffer bytes: a power of two (as the
/// kernel requires), at least [`MIN_SHARE_BYTES`] (or `total` when that is
/// smaller) and a page.
pub fn per_cpu_ring_bytes(total: u32, cpus: usize) -> u32 {
    let cpus = u32::try_from(cpus.max(1)).unwrap_or(u32::MAX);
    let share = total / cpus;
    let power = if share.is_power_of_two() {
        share
    } else {
        share.checked_next_power_of_two().map_or(1 << 31, |p| p / 2)
    };
    power.max(total.min(MIN_SHARE_BYTES)).max(MIN_RING_BYTES)
}

/// One ring buffer per possible CPU, created before the programs load so
/// that the outer map can be given their layout.
fn create_rings(total_bytes: u32) -> Result<Vec<MapHandle>, LoadError> {
    let cpus = libbpf_rs::num_possible_cpus()
        .map_err(|source| libbpf_error("count the CPUs for", source))?;
    let bytes = per_cpu_ring_bytes(total_bytes, cpus);
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    (0..cpus)
        .map(|_| {
            MapHandle::create(MapType::RingBuf, Some("vigil_ring"), 0, 0, bytes, &opts)
                .map_err(|source| classify("create the ring buffers of", source))
        })
        .collect()
}

/// The records of one read of all CPUs' rings, delivered in the order the
/// kernel stamped them, so that a process's exec on one CPU reaches user
/// space before its first open on another. Records of a later read come
/// later; what straddles two reads is ordered only within each.
#[derive(Default)]
struct InTimeOrder {
    bytes: Vec<u8>,
    /// (kernel time, start in `bytes`, length)
    records: Vec<(u64, usize, usize)>,
}

impl InTimeOrder {
    fn push(&mut self, record: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record);
        self.records
            .push((kernel_time(record), start, record.len()));
    }

    fn deliver(&mut self, sink: &mut impl RecordSink) {
        // Stable: records with one timestamp keep their ring's order.
        self.records.sort_by_key(|&(time, start, _)| (time, start));
        for &(_, start, len) in &self.records {
            if let Some(record) = self.bytes.get(start..start + len) {
                sink.record(record);
            }
        }
        self.records.clear();
        self.bytes.clear();
    }
}

/// A record's `ktime_ns`; 0 for a record too short to have one (the
/// decoder rejects it and counts it).
fn kernel_time(record: &[u8]) -> u64 {
    let at = offset_of!(abi::Header, ktime_ns);
    record
        .get(at..at + 8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

fn load_and_attach<'obj>(
    options: &KernelOptions,
    rings: &[MapHandle],
    storage: &'obj mut MaybeUninit<libbpf_rs::OpenObject>,
) -> Result<super::skel::VigilSkel<'obj>, LoadError> {
    capture_libbpf_output();
    let mut open = VigilSkelBuilder::default()
        .open(storage)
        .map_err(|source| libbpf_error("open", source))?;
    let ring_bytes = per_cpu_ring_bytes(options.ring_buffer_bytes, rings.len());
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.self_tgid = options.ignore_tgid;
        rodata.wakeup_bytes = options.wakeup_bytes.min(ring_bytes / 8);
    }
    let first = rings.first().ok_or(LoadError::NoRings)?;
    open.maps
        .rings
        .set_inner_map_fd(first.as_fd())
        .and_then(|()| {
            open.maps
                .rings
                .set_max_entries(u32::try_from(rings.len()).unwrap_or(u32::MAX))
        })
        .map_err(|source| libbpf_error("size the ring buffers of", source))?;
    let mut skel = open.load().map_err(|source| classify("load", source))?;
    for (cpu, ring) in (0u32..).zip(rings) {
        skel.maps
            .rings
            .update(
                &cpu.to_ne_bytes(),
                &ring.as_fd().as_raw_fd().to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|source| libbpf_error("install the ring buffers of", source))?;
    }
    enable_syscalls(&skel.maps.syscall_specs, &options.syscalls)?;
    skel.attach().map_err(|source| classify("attach", source))?;
    Ok(skel)
}

/// Writes the spec of every enabled syscall into the kernel's filter; the
/// other slots stay zero (disabled).
fn enable_syscalls(map: &dyn MapCore, syscalls: &EnabledSet) -> Result<(), LoadError> {
    for (slot, spec) in &syscalls.slots {
        map.update(&slot.to_ne_bytes(), &spec.to_bytes(), MapFlags::ANY)
            .map_err(|source| libbpf_error("enable the syscalls of", source))?;
    }
    Ok(())
}

/// Sums each reason's per-CPU counters into `drops`.
fn refresh_drops(map: &dyn MapCore, drops: &KernelDrops) {
    for ((reason, _), total) in abi::DROP_REASONS.iter().zip(&drops.counts) {
        match map.lookup_percpu(&reason.to_ne_bytes(), MapFlags::ANY) {
            Ok(Some(per_cpu)) => {
                let sum = per_cpu
                    .iter()
                    .filter_map(|bytes| bytes.get(..8)?.try_into().ok())
                    .map(u64::from_ne_bytes)
                    .sum();
                total.store(sum, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(message = "Cannot read the drop counters.", %error),
        }
    }
}

fn classify(stage: &'static str, source: libbpf_rs::Error) -> LoadError {
    let euid = nix::unistd::geteuid();
    let denied = matches!(source.kind(), libbpf_rs::ErrorKind::PermissionDenied);
    if denied && !euid.is_root() {
        return LoadError::NotPermitted {
            euid: euid.as_raw(),
            source,
        };
    }
    libbpf_error(stage, source)
}

fn libbpf_error(stage: &'static str, source: libbpf_rs::Error) -> LoadError {
    let lines = take_libbpf_output();
    let log = if lines.is_empty() {
        String::new()
    } else {
        format!("\nlibbpf said:\n{}", lines.join("\n"))
    };
    LoadError::Libbpf { stage, source, log }
}

/// libbpf's recent output: its print callback is a plain function, so the
/// lines go through a global.
static LIBBPF_OUTPUT: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture_libbpf_output() {
    if let Ok(mut lines) = LIBBPF_OUTPUT.lock() {
        lines.clear();
    }
    libbpf_rs::set_print(Some((PrintLevel::Info, on_libbpf_output)));
}

fn on_libbpf_output(level: PrintLevel, text: String) {
    let text = text.trim_end();
    match level {
        PrintLevel::Warn => tracing::warn!(message = "libbpf", output = %text),
        PrintLevel::Info => tracing::debug!(message = "libbpf", output = %text),
        PrintLevel::Debug => tracing::trace!(message = "libbpf", output = %text),
    }
    if level == PrintLevel::Debug {
        return;
    }
    if let Ok(mut lines) = LIBBPF_OUTPUT.lock() {
        lines.extend(text.lines().map(str::to_owned));
        let excess = lines.len().saturating_sub(LOG_LINES);
        lines.drain(..excess);
    }
}

fn take_libbpf_output() -> Vec<String> {
    LIBBPF_OUTPUT
        .lock()
        .map(|mut lines| std::mem::take(&mut *lines))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cpu_gets_a_power_of_two_share_of_at_least_256_kib() {
        assert_eq!(per_cpu_ring_bytes(4 << 20, 2), 2 << 20);
        assert_eq!(per_cpu_ring_bytes(4 << 20, 3), 1 << 20);
        assert_eq!(per_cpu_ring_bytes(4 << 20, 1), 4 << 20);
        assert_eq!(per_cpu_ring_bytes(4 << 20, 64), 256 << 10);
        assert_eq!(per_cpu_ring_bytes(64 << 10, 2), 64 << 10);
        assert_eq!(per_cpu_ring_bytes(4096, 64), 4096);
        assert_eq!(per_cpu_ring_bytes(1 << 30, 0), 1 << 30);
    }

    fn record(time: u64, tag: u8) -> Vec<u8> {
        let mut bytes = vec![tag; std::mem::size_of::<abi::Header>()];
        let at = offset_of!(abi::Header, ktime_ns);
        bytes[at..at + 8].copy_from_slice(&time.to_ne_bytes());
        bytes
    }

    #[test]
    fn records_of_all_rings_are_delivered_in_kernel_time_order() {
        let mut read = InTimeOrder::default();
        // Ring 0 was read first, but ring 1 holds the earlier records.
        for (time, tag) in [(30, b'a'), (50, b'b'), (10, b'c'), (30, b'd')] {
            read.push(&record(time, tag));
        }
        read.push(b"short");
        let mut seen = Vec::new();
        read.deliver(&mut |bytes: &[u8]| seen.push(bytes[0]));
        assert_eq!(seen, b"scadb");
        read.deliver(&mut |_: &[u8]| panic!("delivered twice"));
    }
}
