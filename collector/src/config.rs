//! The collector's configuration: `[nats]`, `[admin]`, `[log]` plus how
//! events are read, batched and published.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `node_name` | host name | node token of `vigil.events.<node>` and `Event.node` |
//! | `source` | `ebpf` | where events come from: `ebpf`, `replay` (`[replay]`), `synthetic` (`[synthetic]`); see `source/` |
//! | `record_path` | "" | when set, every event published is also appended to this recording file |
//! | `cgroup_root` | `/sys/fs/cgroup` | where the host's cgroup file systems are mounted: container attribution maps the kernel's cgroup ids to paths there (in a pod with its own cgroup namespace, the host's mounted elsewhere) |
//! | `process_ancestry_depth` | 4 | ancestors carried in each event, parent first |
//! | `replay.path`, `replay.pace`, `replay.speed`, `replay.rebase_time` | "", `original`, 1.0, true | see `source::replay::ReplayConfig` |
//! | `synthetic.rate`, `synthetic.containers`, `synthetic.seed`, `synthetic.max_events` | 10000, 20, 1, 0 | see `source::synthetic::SyntheticConfig` |
//! | `kube.enabled`, `kube.api_url` | false, "" | watch this node's pods for pod metadata; "" = in-cluster or kubeconfig |
//! | `drops.threshold`, `drops.interval_ms`, `drops.priority` | 1, 10000, `critical` | drops per interval that raise a finding; see `drops::DropsConfig` |
//! | `batch_max_events` | 256 | a batch is published when it holds this many events |
//! | `flush_interval_ms` | 5 | a partly filled batch (or one reporting only drops) is published at least this often |
//! | `channel_capacity` | 16384 | events queued between the ring-buffer thread and the publisher; beyond it events are dropped and counted |
//! | `ring_buffer_bytes` | 4194304 | BPF ring buffers, all CPUs together: a power of two, 4 KiB to 1 GiB; each CPU gets its own ring of its share (a power of two, at least 256 KiB unless the whole budget is smaller) |
//! | `kernel.syscalls` | `"default"` | syscalls the kernel reports, by name (`["openat", "execve", "procexit"]`), or `"default"` for every one the collector knows; the rest are filtered out in the kernel (`kernel::selection`) |

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

use crate::{
    drops::DropsConfig,
    enrich::pods::KubeConfig,
    kernel::KernelConfig,
    source::{replay::ReplayConfig, synthetic::SyntheticConfig},
};

pub const DEFAULT_BATCH_MAX_EVENTS: usize = 256;
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 5;
pub const DEFAULT_CHANNEL_CAPACITY: usize = 16 * 1024;
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 4 << 20;

/// Keeps a batch well under NATS's default 1 MiB payload limit even when
/// every event is an exec with a full argv (about 1 KiB encoded).
const MAX_BATCH_EVENTS: usize = 512;
const MIN_RING_BUFFER_BYTES: u32 = 4096;
/// Deeper chains add bytes to every event and say little more.
const MAX_ANCESTRY_DEPTH: usize = 32;
const MAX_RING_BUFFER_BYTES: u32 = 1 << 30;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The node this collector runs on: subject token and `Event.node`.
    pub node_name: String,
    /// Where events come from.
    pub source: Source,
    /// Events per batch at most.
    pub batch_max_events: usize,
    /// A partly filled batch waits at most this many milliseconds.
    pub flush_interval_ms: u64,
    /// Events buffered between the ring-buffer thread and the publisher.
    pub channel_capacity: usize,
    /// Bytes of all per-CPU BPF ring buffers together (a power of two).
    pub ring_buffer_bytes: u32,
    /// Also append every published event to this recording ("" = off).
    pub record_path: String,
    /// Where the host's cgroup file systems are mounted.
    pub cgroup_root: PathBuf,
    /// Ancestors carried in each event's `ancestors`, parent first.
    pub process_ancestry_depth: usize,
    pub replay: ReplayConfig,
    pub synthetic: SyntheticConfig,
    pub drops: DropsConfig,
    pub kube: KubeConfig,
    pub kernel: KernelConfig,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

/// The event source.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The BPF programs in `collector/bpf/` (needs root and BTF).
    #[default]
    Ebpf,
    /// A recording, see `[replay]`.
    Replay,
    /// Generated events, see `[synthetic]`.
    Synthetic,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            source: Source::default(),
            batch_max_events: DEFAULT_BATCH_MAX_EVENTS,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            record_path: String::new(),
            cgroup_root: PathBuf::from(vigil_cgroup::DEFAULT_ROOT),
            process_ancestry_depth: crate::enrich::process_table::DEFAULT_ANCESTRY_DEPTH,
            replay: ReplayConfig::default(),
            synthetic: SyntheticConfig::default(),
            drops: DropsConfig::default(),
            kube: KubeConfig::default(),
            kernel: KernelConfig::default(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            problems.add(
                "batch_max_events",
                format!("must be between 1 and {MAX_BATCH_EVENTS}"),
            );
        }
        problems.positive("flush_interval_ms", self.flush_interval_ms);
        self.kernel.validate(problems);
        problems.positive("channel_capacity", self.channel_capacity as u64);
        let ring = self.ring_buffer_bytes;
        if !ring.is_power_of_two()
            || !(MIN_RING_BUFFER_BYTES..=MAX_RING_BUFFER_BYTES).contains(&ring)
        {
            problems.add(
                "ring_buffer_bytes",
                format!("{ring} must be a power of two between {MIN_RING_BUFFER_BYTES} and {MAX_RING_BUFFER_BYTES}"),
            );
        }
        if !self.cgroup_root.is_absolute() {
            problems.add(
                "cgroup_root",
                format!("{} is not an absolute path", self.cgroup_root.display()),
            );
        }
        if self.process_ancestry_depth > MAX_ANCESTRY_DEPTH {
            problems.add(
                "process_ancestry_depth",
                format!("must be at most {MAX_ANCESTRY_DEPTH}"),
            );
        }
        match self.source {
            Source::Replay => self.replay.validate(problems),
            Source::Synthetic => self.synthetic.validate(problems),
            Source::Ebpf => {}
        }
        self.drops.validate(problems);
        self.kube.validate(problems);
    }
}

impl vigil_service::process::ServiceConfig for Config {
    fn log(&self) -> &vigil_service::LogConfig {
        &self.log
    }

    fn admin(&self) -> &vigil_service::AdminConfig {
        &self.admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, vigil_service::ConfigError> {
        vigil_service::config::load(
            crate::SERVICE,
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(&[]).unwrap();
        assert_eq!(config.batch_max_events, DEFAULT_BATCH_MAX_EVENTS);
        assert_eq!(config.ring_buffer_bytes, DEFAULT_RING_BUFFER_BYTES);
        assert_eq!(config.source, Source::Ebpf);
        assert!(!config.node_name.is_empty());
    }

    #[test]
    fn environment_overrides_apply() {
        let config = load(&[
            ("VIGIL_COLLECTOR__BATCH_MAX_EVENTS", "10"),
            ("VIGIL_COLLECTOR__RING_BUFFER_BYTES", "65536"),
            ("VIGIL_COLLECTOR__SOURCE", "ebpf"),
            ("VIGIL_COLLECTOR__NODE_NAME", "node-7"),
        ])
        .unwrap();
        assert_eq!(
            (config.batch_max_events, config.ring_buffer_bytes),
            (10, 65536)
        );
        assert_eq!(config.node_name, "node-7");
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let error = load(&[
            ("VIGIL_COLLECTOR__BATCH_MAX_EVENTS", "0"),
            ("VIGIL_COLLECTOR__FLUSH_INTERVAL_MS", "0"),
            ("VIGIL_COLLECTOR__CHANNEL_CAPACITY", "0"),
            ("VIGIL_COLLECTOR__RING_BUFFER_BYTES", "100000"),
            ("VIGIL_COLLECTOR__NODE_NAME", " "),
            ("VIGIL_COLLECTOR__CGROUP_ROOT", "sys/fs/cgroup"),
        ])
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 6, "{text}");
        for key in [
            "cgroup_root",
            "batch_max_events",
            "flush_interval_ms",
            "channel_capacity",
            "ring_buffer_bytes",
            "node_name",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let unknown_source = load(&[("VIGIL_COLLECTOR__SOURCE", "pcap")]).unwrap_err();
        assert!(
            unknown_source.to_string().contains("source"),
            "{unknown_source}"
        );
        let unknown_key = load(&[("VIGIL_COLLECTOR__BATCH_SIZE", "1")]).unwrap_err();
        assert!(
            unknown_key.to_string().contains("batch_size"),
            "{unknown_key}"
        );
    }
}
