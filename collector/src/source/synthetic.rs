//! A synthetic workload: a realistic mix of execs, opens (mostly ordinary
//! files, a few sensitive ones), connects, clones and exits from a set of
//! containers with pod metadata, plus host processes, at a set rate.
//! Deterministic for a seed, so benchmark runs compare like with like.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use vigil_proto::v1::{AddressFamily, Ancestor, Args, Event, EventType, PodMeta, SocketAddress};

use super::{Sink, TaskSource};

/// `[synthetic]`: used when `source = "synthetic"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Events per second.
    pub rate: u64,
    /// Containers the events come from (plus host processes).
    pub containers: u32,
    /// Seed of the mix: the same seed gives the same events.
    pub seed: u64,
    /// Stop after this many events; 0 = run until shut down.
    pub max_events: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            rate: 10_000,
            containers: 20,
            seed: 1,
            max_events: 0,
        }
    }
}

impl SyntheticConfig {
    pub fn validate(&self, problems: &mut vigil_service::Problems) {
        problems.positive("synthetic.rate", self.rate);
        problems.positive("synthetic.containers", u64::from(self.containers));
    }
}

/// Events between checks for a stop while catching up.
const CANCEL_CHECK_EVERY: u64 = 4096;
/// How often the generator catches up with its rate.
const TICK: Duration = Duration::from_millis(1);

pub struct SyntheticSource;

impl SyntheticSource {
    /// Generates events on a task, offering them to `sink` without waiting
    /// (like the kernel: what does not fit is dropped and counted).
    pub fn start(node: &str, config: &SyntheticConfig, sink: Sink) -> std::io::Result<TaskSource> {
        let mut generator = Generator::new(node, config);
        let (rate, max_events) = (config.rate, config.max_events);
        TaskSource::spawn_thread("synthetic", move |cancel| {
            let started = std::time::Instant::now();
            let mut emitted: u64 = 0;
            while !cancel.is_cancelled() {
                let elapsed = started.elapsed().as_secs_f64();
                let mut due = (elapsed * rate as f64) as u64;
                if max_events > 0 {
                    due = due.min(max_events);
                }
                while emitted < due {
                    if !sink.offer(generator.next_event()) {
                        return;
                    }
                    emitted += 1;
                    // Far behind an impossible rate, keep stop responsive.
                    if emitted.is_multiple_of(CANCEL_CHECK_EVERY) && cancel.is_cancelled() {
                        break;
                    }
                }
                if max_events > 0 && emitted >= max_events {
                    break;
                }
                std::thread::sleep(TICK);
            }
            tracing::info!(message = "The synthetic source stopped.", events = emitted);
        })
    }
}

/// One simulated container: its identity and pod, and its processes.
#[derive(Clone, Debug)]
struct Container {
    id: String,
    pod_uid: String,
    cgroup_path: String,
    cgroup_id: u64,
    pod: PodMeta,
    image: (&'static str, &'static [&'static str]),
    next_pid: u32,
}

const IMAGES: &[(&str, &[&str])] = &[
    ("/usr/local/bin/python3", &["python3", "app.py"]),
    ("/usr/sbin/nginx", &["nginx", "-g", "daemon off;"]),
    ("/usr/local/bin/node", &["node", "server.js"]),
    ("/app/api", &["/app/api", "--port", "8080"]),
];
const NAMESPACES: &[&str] = &["shop", "payments", "default", "monitoring"];
const NORMAL_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/app/static/index.html",
    "/proc/self/status",
    "/tmp/cache/session.db",
    "/etc/ld.so.cache",
    "/usr/share/zoneinfo/UTC",
];
const SENSITIVE_FILES: &[&str] = &[
    "/etc/shadow",
    "/root/.ssh/id_rsa",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "/etc/sudoers",
];
const CHILDREN: &[(&str, &[&str])] = &[
    ("/bin/sh", &["sh", "-c", "date"]),
    (
        "/usr/bin/curl",
        &["curl", "-s", "http://inventory:8080/health"],
    ),
    ("/usr/bin/ls", &["ls", "-la", "/tmp"]),
    ("/bin/bash", &["bash"]),
];

/// Produces the event mix. Cheap per event: the containers are built once.
#[derive(Debug)]
pub struct Generator {
    node: String,
    rng: StdRng,
    containers: Vec<Container>,
    kernel_time_ns: u64,
}

impl Generator {
    pub fn new(node: &str, config: &SyntheticConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let containers = (0..config.containers.max(1))
            .map(|i| container(&mut rng, i))
            .collect();
        Self {
            node: node.to_owned(),
            rng,
            containers,
            kernel_time_ns: vigil_service::clock::monotonic_ns(),
        }
    }

    /// The container ids the generator uses.
    pub fn container_ids(&self) -> Vec<String> {
        self.containers.iter().map(|c| c.id.clone()).collect()
    }

    pub fn next_event(&mut self) -> Event {
        self.kernel_time_ns += 1_000;
        let host = self.rng.random_ratio(1, 10);
        let index = self.rng.random_range(0..self.containers.len());
        let roll = self.rng.random_range(0..100u32);
        let mut event = self.base((!host).then_some(index));
        let pid = event.pid;
        let (kind, syscall, args, ret) = match roll {
            0..55 => {
                let path = NORMAL_FILES[self.rng.random_range(0..NORMAL_FILES.len())];
                (EventType::Open, "openat", open_args(path), 3)
            }
            55..57 => {
                let path = SENSITIVE_FILES[self.rng.random_range(0..SENSITIVE_FILES.len())];
                (EventType::Open, "openat", open_args(path), 3)
            }
            57..77 => (EventType::Connect, "connect", self.connect_args(), 0),
            77..87 => {
                let (exe, argv) = CHILDREN[self.rng.random_range(0..CHILDREN.len())];
                event.comm = comm_of(argv);
                event.exe_path = exe.to_owned();
                event.cmdline = argv.iter().map(|s| (*s).to_owned()).collect();
                let args = Args {
                    path: exe.to_owned(),
                    argv: event.cmdline.clone(),
                    ..Args::default()
                };
                (EventType::Exec, "execve", args, 0)
            }
            87..94 => {
                let child = pid + 1 + self.rng.random_range(0..1000);
                (EventType::Clone, "clone", Args::default(), i64::from(child))
            }
            _ => {
                let args = Args {
                    exit_code: 0,
                    ..Args::default()
                };
                (EventType::Exit, "exit_group", args, 0)
            }
        };
        event.r#type = kind.into();
        event.syscall = syscall.to_owned();
        event.args = Some(args);
        event.return_value = ret;
        event
    }

    fn base(&mut self, container: Option<usize>) -> Event {
        let mut event = Event {
            kernel_time_ns: self.kernel_time_ns,
            wall_time_ns: vigil_service::clock::monotonic_to_wall_ns(self.kernel_time_ns),
            node: self.node.clone(),
            login_uid: u32::MAX,
            ..Event::default()
        };
        match container.and_then(|i| self.containers.get_mut(i)) {
            Some(c) => {
                c.next_pid = 2 + (c.next_pid + 1) % 200;
                let (exe, argv) = c.image;
                event.pid = c.next_pid;
                event.ppid = 1;
                event.uid = 1000;
                event.gid = 1000;
                event.comm = comm_of(argv);
                event.exe_path = exe.to_owned();
                event.cmdline = argv.iter().map(|s| (*s).to_owned()).collect();
                event.cwd = "/app".to_owned();
                event.container_id.clone_from(&c.id);
                event.pod_uid.clone_from(&c.pod_uid);
                event.cgroup_path.clone_from(&c.cgroup_path);
                event.cgroup_id = c.cgroup_id;
                event.pod = Some(c.pod.clone());
            }
            None => {
                event.pid = 1000 + self.rng.random_range(0..500);
                event.ppid = 1;
                event.comm = "systemd-journal".to_owned();
                event.exe_path = "/usr/lib/systemd/systemd-journald".to_owned();
                event.cmdline = vec!["/usr/lib/systemd/systemd-journald".to_owned()];
                event.cwd = "/".to_owned();
                event.cgroup_path = "system.slice/systemd-journald.service".to_owned();
                event.cgroup_id = 2;
            }
        }
        event.tid = event.pid;
        event.process_start_ns = self.kernel_time_ns.saturating_sub(60_000_000_000);
        event.ancestors = ancestors(container.and_then(|i| self.containers.get(i)));
        event
    }

    fn connect_args(&mut self) -> Args {
        let ports = [443, 5432, 6379, 8080, 53];
        Args {
            fd: 5,
            address: Some(SocketAddress {
                family: AddressFamily::Inet.into(),
                ip: format!(
                    "10.96.{}.{}",
                    self.rng.random_range(0..8),
                    self.rng.random_range(1..255)
                ),
                port: ports[self.rng.random_range(0..ports.len())],
                unix_path: String::new(),
            }),
            ..Args::default()
        }
    }
}

/// What the process table gives a process of a container (the app's main
/// process, then the runtime's shim) or of the host (systemd).
fn ancestors(container: Option<&Container>) -> Vec<Ancestor> {
    let ancestor = |pid: u32, exe: &str, cmdline: &[&str]| Ancestor {
        pid,
        comm: comm_of(cmdline),
        exe_path: exe.to_owned(),
        cmdline: cmdline.iter().map(|s| (*s).to_owned()).collect(),
    };
    match container {
        Some(c) => vec![
            ancestor(1, c.image.0, c.image.1),
            ancestor(
                900,
                "/usr/bin/containerd-shim-runc-v2",
                &[
                    "/usr/bin/containerd-shim-runc-v2",
                    "-namespace",
                    "k8s.io",
                    "-id",
                    &c.id,
                ],
            ),
        ],
        None => vec![ancestor(1, "/usr/lib/systemd/systemd", &["/sbin/init"])],
    }
}

fn open_args(path: &str) -> Args {
    Args {
        path: path.to_owned(),
        flags: 0o2_000_000, // O_RDONLY | O_CLOEXEC
        ..Args::default()
    }
}

fn comm_of(argv: &[&str]) -> String {
    let first = argv.first().copied().unwrap_or_default();
    let name = first.rsplit('/').next().unwrap_or(first);
    name.chars().take(15).collect()
}

fn container(rng: &mut StdRng, index: u32) -> Container {
    let id: String = (0..64)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    let pod_uid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.random::<u32>(),
        rng.random::<u16>(),
        rng.random_range(0..0x1000u16),
        rng.random_range(0..0x1000u16),
        rng.random::<u64>() & 0xffff_ffff_ffff
    );
    let image = IMAGES[index as usize % IMAGES.len()];
    let app = ["web", "checkout", "catalog", "worker"][index as usize % 4];
    let namespace = NAMESPACES[index as usize % NAMESPACES.len()];
    let replica_set = format!("{app}-{:x}", rng.random::<u32>());
    let pod = PodMeta {
        name: format!("{replica_set}-{index:05}"),
        namespace: namespace.to_owned(),
        labels: [("app".to_owned(), app.to_owned())].into_iter().collect(),
        service_account: app.to_owned(),
        container_name: app.to_owned(),
        image: format!("ghcr.io/acme/{app}:1.{index}"),
        owner_kind: "Deployment".to_owned(),
        owner_name: app.to_owned(),
    };
    Container {
        cgroup_path: format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
            pod_uid.replace('-', "_")
        ),
        cgroup_id: 10_000 + u64::from(index),
        id,
        pod_uid,
        pod,
        image,
        next_pid: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_deterministic_and_realistic() {
        let config = SyntheticConfig {
            containers: 5,
            ..SyntheticConfig::default()
        };
        let mut a = Generator::new("n", &config);
        let mut b = Generator::new("n", &config);
        let events: Vec<Event> = (0..5000).map(|_| a.next_event()).collect();
        for event in &events {
            let mut other = b.next_event();
            other.wall_time_ns = event.wall_time_ns;
            other.kernel_time_ns = event.kernel_time_ns;
            other.process_start_ns = event.process_start_ns;
            assert_eq!(&other, event);
        }
        let count = |t: EventType| events.iter().filter(|e| e.r#type() == t).count();
        for t in [
            EventType::Open,
            EventType::Connect,
            EventType::Exec,
            EventType::Clone,
            EventType::Exit,
        ] {
            assert!(count(t) > 100, "{t:?}: {}", count(t));
        }
        let sensitive = events
            .iter()
            .filter(|e| e.args.as_ref().is_some_and(|a| a.path == "/etc/shadow"))
            .count();
        assert!((1..100).contains(&sensitive), "{sensitive}");
        let ids = a.container_ids();
        assert_eq!(ids.len(), 5);
        let in_pods = events.iter().filter(|e| !e.container_id.is_empty()).count();
        assert!(in_pods > 4000 && in_pods < 5000, "{in_pods}");
        for event in events.iter().filter(|e| !e.container_id.is_empty()) {
            assert!(ids.contains(&event.container_id));
            assert!(event.pod.as_ref().is_some_and(|p| !p.name.is_empty()));
            assert_eq!(event.ancestors.len(), 2, "parent and shim");
            assert!(
                vigil_cgroup::identify(&event.cgroup_path)
                    .is_some_and(|i| i.container_id == event.container_id)
            );
        }
    }
}
