//! Events from a process in a pod-like sandbox (kubepods-style cgroup, own
//! network and mount namespaces) carry the sandbox's cgroup path, container
//! id and pod UID, found from the kernel's cgroup id alone.

mod common;

use std::{process::Stdio, time::Duration};

use common::Probe;
use vigil_proto::v1::EventType;
use vigil_testkit::{PodSandbox, require_root};

#[test]
fn events_in_a_pod_carry_its_container_pod_and_cgroup() {
    if !require_root("events_in_a_pod_carry_its_container_pod_and_cgroup") {
        return;
    }
    let mut probe = Probe::start("attribution-test");
    let sandbox = PodSandbox::create().expect("create the pod sandbox");
    let mut child = sandbox
        .command("/bin/cat", &["/etc/hostname"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start cat in the sandbox");
    let pid = child.id();
    assert!(child.wait().unwrap().success());

    let wait = Duration::from_secs(10);
    let open = probe.expect("cat opening /etc/hostname", pid, wait, |e| {
        e.pid == pid && e.args.as_ref().is_some_and(|a| a.path == "/etc/hostname")
    });
    assert_eq!(open.r#type(), EventType::Open);
    assert_eq!(open.comm, "cat");
    assert!(open.return_value >= 0);
    assert_eq!(open.cgroup_path, sandbox.cgroup_path);
    assert_eq!(open.container_id, sandbox.container_id);
    assert_eq!(open.pod_uid, sandbox.pod_uid);
    assert!(open.cgroup_id > 0);

    let exec = probe.expect("the exec of cat", pid, wait, |e| {
        e.pid == pid && e.r#type() == EventType::Exec && e.comm == "cat"
    });
    assert_eq!(exec.container_id, sandbox.container_id);
    assert_eq!(exec.args.unwrap().argv, ["/bin/cat", "/etc/hostname"]);
}

#[test]
fn host_processes_have_no_container() {
    if !require_root("host_processes_have_no_container") {
        return;
    }
    let mut probe = Probe::start("attribution-test");
    let mut child = std::process::Command::new("/bin/cat")
        .arg("/etc/hostname")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let open = probe.expect(
        "cat opening /etc/hostname",
        pid,
        Duration::from_secs(10),
        |e| e.pid == pid && e.args.as_ref().is_some_and(|a| a.path == "/etc/hostname"),
    );
    assert_eq!(
        (open.container_id.as_str(), open.pod_uid.as_str()),
        ("", "")
    );
    assert_eq!(
        Some(open.cgroup_path),
        vigil_cgroup::unified_path_of_pid(std::process::id())
    );
}
