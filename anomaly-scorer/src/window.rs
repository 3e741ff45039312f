//! Per-container sliding windows over the event stream.

use std::collections::{HashMap, VecDeque};

use vigil_proto::v1::{Event, EventType, PodMeta, SocketAddress};

use crate::features::WindowObs;

/// Files whose opening is worth a signal in any workload: credentials,
/// keys, service-account tokens and container-runtime sockets.
const SENSITIVE_PREFIXES: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/root/.ssh/",
    "/var/run/secrets/kubernetes.io/",
    "/run/secrets/kubernetes.io/",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/proc/kcore",
];

/// An event that cannot be placed in a window.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("event {index} (pid {pid}) has neither a syscall name nor an event type")]
    NoSyscall { index: usize, pid: u32 },
    #[error("event {index} (pid {pid}, {syscall}) has no args")]
    NoArgs {
        index: usize,
        pid: u32,
        syscall: String,
    },
}

/// Who a container belongs to, from its latest event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMeta {
    pub container_id: String,
    pub node: String,
    pub pod: String,
    pub namespace: String,
    pub pod_uid: String,
    pub cgroup_path: String,
    pub workload: String,
    pub labels: HashMap<String, String>,
}

/// A closed window, ready to learn from or score.
#[derive(Clone, Debug)]
pub struct ClosedWindow {
    pub meta: ContainerMeta,
    pub obs: WindowObs,
    /// Wall-clock time of its last event.
    pub end_ns: u64,
}

/// One event reduced to what the features use.
#[derive(Clone, Debug)]
struct Reduced {
    call: u32,
    exec: Option<String>,
    peer: Option<String>,
    sensitive: bool,
    failed: bool,
    wall_ns: u64,
}

struct Container {
    meta: ContainerMeta,
    /// The pod metadata `meta` was built from: an event carrying the same
    /// needs no rebuild (every event may carry it).
    pod: Option<PodMeta>,
    events: VecDeque<Reduced>,
    since_window: u32,
}

/// The windows of every container this instance owns.
pub struct Windows {
    size: usize,
    stride: u32,
    containers: HashMap<String, Container>,
}

/// The workload a container's baseline belongs to: image plus owner (a
/// Deployment's replicas share one), else the container itself.
pub fn workload_key(event: &Event) -> String {
    match &event.pod {
        Some(pod) if !pod.image.is_empty() => {
            let owner = if pod.owner_kind.is_empty() {
                format!("Pod/{}", pod.name)
            } else {
                format!("{}/{}", pod.owner_kind, pod.owner_name)
            };
            format!("{}|{}/{}", pod.image, pod.namespace, owner)
        }
        _ => format!("container:{}", event.container_id),
    }
}

/// Stable token of a syscall name (FNV-1a), the same on every instance.
pub fn syscall_token(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn peer(address: Option<&SocketAddress>) -> Option<String> {
    let address = address?;
    if !address.unix_path.is_empty() {
        Some(address.unix_path.clone())
    } else if !address.ip.is_empty() {
        Some(format!("{}:{}", address.ip, address.port))
    } else {
        None
    }
}

/// Checks an event and reduces it; `index` is its position in the batch.
fn reduce(index: usize, event: &Event) -> Result<Reduced, EventError> {
    let event_type = EventType::try_from(event.r#type).unwrap_or(EventType::Unspecified);
    let name: std::borrow::Cow<'_, str> = if !event.syscall.is_empty() {
        event.syscall.as_str().into()
    } else if event_type != EventType::Unspecified {
        event_type.as_str_name().to_ascii_lowercase().into()
    } else {
        return Err(EventError::NoSyscall {
            index,
            pid: event.pid,
        });
    };
    let needs_args = matches!(
        event_type,
        EventType::Exec | EventType::Open | EventType::Connect
    );
    let args = match (&event.args, needs_args) {
        (Some(args), _) => Some(args),
        (None, false) => None,
        (None, true) => {
            return Err(EventError::NoArgs {
                index,
                pid: event.pid,
                syscall: name.into_owned(),
            });
        }
    };
    let path = args.map(|a| a.path.as_str()).unwrap_or_default();
    Ok(Reduced {
        call: syscall_token(&name),
        exec: (event_type == EventType::Exec).then(|| path.to_owned()),
        peer: (event_type == EventType::Connect)
            .then(|| peer(args.and_then(|a| a.address.as_ref())))
            .flatten(),
        sensitive: event_type == EventType::Open
            && SENSITIVE_PREFIXES.iter().any(|p| path.starts_with(p)),
        failed: event.return_value < 0,
        wall_ns: event.wall_time_ns,
    })
}

fn meta(event: &Event) -> ContainerMeta {
    let pod = event.pod.clone().unwrap_or_default();
    ContainerMeta {
        container_id: event.container_id.clone(),
        node: event.node.clone(),
        pod: pod.name,
        namespace: pod.namespace,
        pod_uid: event.pod_uid.clone(),
        cgroup_path: event.cgroup_path.clone(),
        workload: workload_key(event),
        labels: pod.labels,
    }
}

impl Container {
    /// Whether `meta` is what `event` would give.
    fn described_by(&self, event: &Event) -> bool {
        self.pod == event.pod
            && self.meta.node == event.node
            && self.meta.pod_uid == event.pod_uid
            && self.meta.cgroup_path == event.cgroup_path
    }
}

impl Windows {
    pub fn new(size: u32, stride: u32) -> Self {
        Self {
            size: size.max(1) as usize,
            stride: stride.max(1),
            containers: HashMap::new(),
        }
    }

    /// Adds one event of a container; returns the window it closes, if any.
    /// Host processes and heartbeats are not windowed (`Ok(None)`).
    pub fn push(
        &mut self,
        index: usize,
        event: &Event,
    ) -> Result<Option<ClosedWindow>, EventError> {
        if event.container_id.is_empty() || event.r#type == EventType::Heartbeat as i32 {
            return Ok(None);
        }
        let reduced = reduce(index, event)?;
        // Looked up by reference: the id is copied once per container, not per event.
        if !self.containers.contains_key(&event.container_id) {
            let container = Container {
                meta: meta(event),
                pod: event.pod.clone(),
                events: VecDeque::with_capacity(self.size),
                since_window: 0,
            };
            self.containers
                .insert(event.container_id.clone(), container);
        }
        let Some(container) = self.containers.get_mut(&event.container_id) else {
            return Ok(None);
        };
        if event.pod.is_some() && !container.described_by(event) {
            container.meta = meta(event);
            container.pod = event.pod.clone();
        }
        if container.events.len() == self.size {
            container.events.pop_front();
        }
        container.events.push_back(reduced);
        container.since_window += 1;
        // The first window closes when the buffer is full; later ones every
        // `stride` events, overlapping the previous by size - stride.
        let full = container.events.len() == self.size;
        if !full || container.since_window < self.stride {
            return Ok(None);
        }
        container.since_window = 0;
        Ok(Some(close(container)))
    }

    pub fn containers(&self) -> usize {
        self.containers.len()
    }

    /// Drops the windows of every container `keep` rejects (by container
    /// id), e.g. those of partitions handed to another instance: their
    /// next events go there, so a window kept here would only go stale.
    /// Returns how many containers were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) -> usize {
        let before = self.containers.len();
        self.containers.retain(|id, _| keep(id));
        before - self.containers.len()
    }
}

fn close(container: &Container) -> ClosedWindow {
    let mut obs = WindowObs::default();
    for e in &container.events {
        obs.calls.push(e.call);
        obs.execs.extend(e.exec.clone());
        obs.peers.extend(e.peer.clone());
        obs.sensitive_opens += u32::from(e.sensitive);
        obs.failed += u32::from(e.failed);
    }
    ClosedWindow {
        meta: container.meta.clone(),
        obs,
        end_ns: container.events.back().map_or(0, |e| e.wall_ns),
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{Args, PodMeta};

    use super::*;

    fn event(syscall: &str, event_type: EventType, path: &str) -> Event {
        Event {
            container_id: "c1".into(),
            syscall: syscall.into(),
            r#type: event_type as i32,
            args: Some(Args {
                path: path.into(),
                ..Args::default()
            }),
            pod: Some(PodMeta {
                name: "web-1".into(),
                namespace: "shop".into(),
                image: "shop/web:1".into(),
                owner_kind: "Deployment".into(),
                owner_name: "web".into(),
                ..PodMeta::default()
            }),
            ..Event::default()
        }
    }

    #[test]
    fn windows_close_when_full_then_every_stride() {
        let mut windows = Windows::new(4, 2);
        let closed: Vec<usize> = (0..10)
            .filter(|&i| {
                windows
                    .push(i, &event("openat", EventType::Open, "/data"))
                    .expect("valid")
                    .is_some()
            })
            .collect();
        assert_eq!(closed, [3, 5, 7, 9]);
    }

    #[test]
    fn a_window_carries_its_signals_and_workload() {
        let mut windows = Windows::new(3, 3);
        windows
            .push(0, &event("execve", EventType::Exec, "/bin/sh"))
            .expect("valid");
        windows
            .push(1, &event("openat", EventType::Open, "/etc/shadow"))
            .expect("valid");
        let mut failed = event("openat", EventType::Open, "/nope");
        failed.return_value = -2;
        let window = windows.push(2, &failed).expect("valid").expect("closed");
        assert_eq!(window.obs.execs, ["/bin/sh"]);
        assert_eq!(window.obs.sensitive_opens, 1);
        assert_eq!(window.obs.failed, 1);
        assert_eq!(window.meta.workload, "shop/web:1|shop/Deployment/web");
        assert_eq!(window.obs.calls[1], syscall_token("openat"));
    }

    #[test]
    fn events_missing_fields_are_errors_and_host_events_are_skipped() {
        let mut windows = Windows::new(3, 3);
        let mut nameless = event("", EventType::Unspecified, "/x");
        nameless.pid = 7;
        assert_eq!(
            windows.push(4, &nameless).unwrap_err(),
            EventError::NoSyscall { index: 4, pid: 7 }
        );
        let mut argless = event("connect", EventType::Connect, "");
        argless.args = None;
        assert!(matches!(
            windows.push(5, &argless),
            Err(EventError::NoArgs { index: 5, .. })
        ));
        let mut host = event("openat", EventType::Open, "/x");
        host.container_id.clear();
        assert!(windows.push(6, &host).expect("valid").is_none());
        assert_eq!(windows.containers(), 0);
    }

    #[test]
    fn dropped_containers_start_their_windows_afresh() {
        let mut windows = Windows::new(2, 2);
        let mut other = event("openat", EventType::Open, "/data");
        other.container_id = "c2".into();
        windows
            .push(0, &event("openat", EventType::Open, "/data"))
            .expect("valid");
        windows.push(1, &other).expect("valid");
        assert_eq!(windows.retain(|id| id != "c1"), 1);
        assert_eq!(windows.containers(), 1);
        // c1's earlier event is gone: one more does not close a window.
        let next = windows.push(2, &event("openat", EventType::Open, "/data"));
        assert!(next.expect("valid").is_none());
        // c2 kept its event: its second closes one.
        assert!(windows.push(3, &other).expect("valid").is_some());
    }
}
