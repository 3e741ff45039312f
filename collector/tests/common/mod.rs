//! Helpers shared by the collector's privileged tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use vigil_cgroup::Hierarchies;
use vigil_collector::{
    enrich::Enricher,
    kernel::{KernelOptions, KernelSource},
    source::{Sink, ebpf},
};
use vigil_proto::v1::Event;

/// Large enough that a busy build on the same machine does not overflow
/// the ring buffer while a test waits for its few events.
pub const RING_BUFFER_BYTES: u32 = 1 << 24;
const CHANNEL_CAPACITY: usize = 1 << 18;

/// The real BPF programs feeding a channel the test drains.
pub struct Probe {
    pub source: KernelSource,
    pub userspace_drops: Arc<AtomicU64>,
    events: mpsc::Receiver<Event>,
    seen: Vec<Event>,
}

impl Probe {
    /// Loads and attaches the programs (ignoring this test process).
    pub fn start(node: &str) -> Self {
        let (tx, events) = mpsc::channel(CHANNEL_CAPACITY);
        let userspace_drops = Arc::new(AtomicU64::new(0));
        let options = KernelOptions::for_this_process(RING_BUFFER_BYTES);
        let enricher = Enricher::new(node, Hierarchies::detect());
        let sink = Sink::new(tx, userspace_drops.clone());
        let source = ebpf::start_kernel(options, enricher, sink)
            .unwrap_or_else(|error| panic!("load the BPF programs: {error}"));
        Self {
            source,
            userspace_drops,
            events,
            seen: Vec::new(),
        }
    }

    /// The first event (seen so far or arriving within `timeout`) that
    /// `matches`; panics with what was seen from `pid` otherwise.
    pub fn expect(
        &mut self,
        what: &str,
        pid: u32,
        timeout: Duration,
        matches: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(event) = self.events.try_recv() {
                self.seen.push(event);
            }
            if let Some(event) = self.seen.iter().find(|e| matches(e)) {
                return event.clone();
            }
            if Instant::now() >= deadline {
                let from_pid: Vec<&Event> = self.seen.iter().filter(|e| e.pid == pid).collect();
                panic!(
                    "no event for {what} within {timeout:?}; events of pid {pid}: {from_pid:#?}"
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every event received so far.
    pub fn drain(&mut self) -> Vec<Event> {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
        self.seen.clone()
    }
}
