//! Fixtures for Vigil's tests, demo and benchmarks. Everything here is real: a `nats-server`
//! process per test, cgroups and namespaces created by root.
//!
//! * [`NatsServer`]: JetStream on a free loopback port with a temporary store;
//!   can be stopped and restarted on the same port and store.
//! * [`PodSandbox`]: a kubepods-style cgroup (v2 and v1 freezer) whose
//!   processes run in their own network and mount namespaces.
//! * [`Pipeline`]: NATS plus the service binaries as processes, healthy.
//! * [`NatsCluster`], [`ClusterPipeline`]: three routed nats-servers (R3
//!   streams) and the services against them; nodes and services killed and
//!   restarted one at a time (the chaos suite).
//! * [`Container`]: a real container (podman, runc) in a kubepods cgroup
//!   parent, from the base image `scripts/image-base` builds, or the benign
//!   corpus's [`workload_images`] (`scripts/image-workloads`).
//! * [`require_root`]: privileged tests call it first; without root it skips
//!   loudly, and fails when `VIGIL_REQUIRE_ROOT=1` (set by CI).
//! * [`wait_until`]: polls a condition against a deadline.
//! * [`streams`]: what a stream stored, once a consumer has acknowledged it all.
//! * [`in_process`]: a service's `run` in the test's runtime, async polling
//!   and a bus connection, for component tests.

mod cluster;
mod container;
pub mod in_process;
mod nats;
mod pipeline;
mod sandbox;
pub mod streams;

use std::time::{Duration, Instant};

pub use cluster::{CLUSTER_REPLICAS, ClusterPipeline, NatsCluster};
pub use container::{
    Container, ContainerSpec, WorkloadImages, base_image, echo_client_prelude, run_to_completion,
    unified_cgroup_of, workload_images, workspace_root,
};
pub use nats::NatsServer;
pub use pipeline::{Pipeline, ServiceProcess, ServiceSpec, http_get};
pub use sandbox::PodSandbox;

/// Returns true when running as root. Otherwise prints why the test is
/// skipped, or panics when `VIGIL_REQUIRE_ROOT=1` so CI can never skip.
pub fn require_root(test: &str) -> bool {
    // The effective uid is the second field of Uid: in /proc/self/status.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    if !root {
        if std::env::var("VIGIL_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
            panic!(
                "{test} needs root (cgroups, namespaces, BPF) and VIGIL_REQUIRE_ROOT=1 forbids skipping"
            );
        }
        eprintln!(
            "SKIPPED {test}: needs root (cgroups, namespaces, BPF); set VIGIL_REQUIRE_ROOT=1 to make this a failure"
        );
    }
    root
}

/// Polls `condition` every 10 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A random 64-hex container id.
pub fn random_container_id() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

/// Path of a workspace binary (`vigil-collector`, …) built by
/// `cargo build --bins` next to the running test executable.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} not built: run `cargo build --bins` first (scripts/test does)",
        path.display()
    );
    path
}
