//! The attack used by the demo, the end-to-end tests and the latency
//! benchmarks: a process in a pod opens /etc/shadow and stays alive on it,
//! as a credential-stealing foothold would.
//!
//! In a real container ([`shadow_read_container`], podman with runc) the
//! container waits with bash builtins only (no exec, no file opened) until
//! [`start_attack`] says go, then runs `tail -f /etc/shadow`: the shadow read
//! is the first thing the container does that Vigil could flag, and the
//! container can be started before the pipeline watches (runc's own set-up
//! of a new container still raises findings until the detectors learn the
//! runtime's patterns, issue 13). Its heartbeat shows whether its processes
//! really run ([`vigil_testkit::Container::runs`]).
//!
//! In a pod-like sandbox ([`start_shadow_read`]) no shell is involved at all;
//! kept for hosts without podman and for the benchmarks' sandbox figure.

use std::process::{Child, Stdio};

use vigil_testkit::{Container, ContainerSpec, PodSandbox};

/// Name fragment of the rule the scenario must trigger (see detectors).
pub const SHADOW_RULE_MARKER: &str = "shadow";
/// The detectors' rule the shadow read raises (detectors/rules/files.yaml).
pub const SHADOW_RULE: &str = "Read of /etc/shadow";
/// The attacking process's name.
pub const ATTACKER_COMM: &str = "tail";
/// The file whose creation inside the container starts the attack.
const GO_FILE: &str = "/tmp/attack";

/// A real container (own network namespace with loopback only) that runs
/// the attack once [`start_attack`] is called.
pub fn shadow_read_container() -> ContainerSpec {
    ContainerSpec::script(&attack_prelude()).run_arg("--network=none")
}

/// A [`shadow_read_container`] whose process also echoes lines on a TCP
/// connection to 127.0.0.1:`port` in its own network namespace, once the
/// test listens there ([`Container::listen_in_netns`]).
pub fn shadow_read_container_echoing(port: u16) -> ContainerSpec {
    ContainerSpec::script(&format!(
        "{}\n{}",
        vigil_testkit::echo_client_prelude(port),
        attack_prelude()
    ))
    .run_arg("--network=none")
}

/// In the background: the script's heartbeat runs meanwhile.
fn attack_prelude() -> String {
    format!(
        "(until [ -e {GO_FILE} ]; do pause 0.02; done; \
         exec {ATTACKER_COMM} -f /etc/shadow > /dev/null) &"
    )
}

/// Starts the attack in a [`shadow_read_container`] (within 20 ms).
pub fn start_attack(container: &Container) -> std::io::Result<()> {
    std::fs::write(container.path(GO_FILE), "")
}

/// Starts the attack in `sandbox`: `tail -f /etc/shadow`.
pub fn start_shadow_read(sandbox: &PodSandbox) -> std::io::Result<Child> {
    sandbox
        .command("tail", &["-f", "/etc/shadow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// The attacked pod as the Kubernetes API would describe it (for the fake
/// API server: no cluster runs on this host): `shop/<name>` on `node`, with
/// the runtime's pod UID and container id.
pub fn pod(
    name: &str,
    uid: &str,
    container_id: &str,
    node: &str,
) -> Result<k8s_openapi::api::core::v1::Pod, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": uid,
            "labels": {"app": "checkout", "pod-template-hash": "6f7c9d8b5"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-6f7c9d8b5",
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true
            }]
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "checkout",
            "containers": [{"name": "app", "image": "registry.example/shop/checkout:1.4"}]
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "image": "registry.example/shop/checkout:1.4", "imageID": "",
                "containerID": format!("containerd://{container_id}"),
                "ready": true, "restartCount": 0
            }]
        }
    }))
}

/// The attacked pod's namespace.
pub const NAMESPACE: &str = "shop";
