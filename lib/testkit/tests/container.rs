//! The real-container test bed itself: podman with runc puts the container
//! where a kubelet would, and reports what the runtime reports.

use vigil_testkit::{Container, ContainerSpec, require_root, run_to_completion};

#[test]
fn a_container_runs_in_a_kubepods_cgroup_named_by_its_runtime_id() {
    if !require_root("a_container_runs_in_a_kubepods_cgroup_named_by_its_runtime_id") {
        return;
    }
    let container =
        Container::start(&ContainerSpec::new(["sleep", "60"])).expect("start a container");
    assert_eq!(container.id.len(), 64, "runtime id {:?}", container.id);
    assert_eq!(
        container.cgroup_path,
        format!(
            "kubepods/besteffort/pod{}/libpod-{}",
            container.pod_uid, container.id
        )
    );
    let identity = vigil_cgroup::identify(&container.cgroup_path).expect("a container cgroup");
    assert_eq!(identity.container_id, container.id);
    assert_eq!(identity.pod_uid, container.pod_uid);

    let output = container
        .exec(&["cat", "/proc/1/cmdline"])
        .expect("podman exec");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "sleep\u{0}60\u{0}");
}

#[test]
fn a_container_that_exits_while_starting_is_reported_with_its_logs() {
    if !require_root("a_container_that_exits_while_starting_is_reported_with_its_logs") {
        return;
    }
    let error = Container::start(&ContainerSpec::new([
        "sh",
        "-c",
        "echo the-entrypoint-gave-up; exit 3",
    ]))
    .expect_err("the container exits at once");
    assert!(
        error.to_string().contains("the-entrypoint-gave-up"),
        "{error}"
    );
}

#[test]
fn a_container_run_to_completion_reports_its_id_and_output() {
    if !require_root("a_container_run_to_completion_reports_its_id_and_output") {
        return;
    }
    let (id, output) =
        run_to_completion(&ContainerSpec::new(["cat", "/etc/debian_version"])).expect("run");
    assert_eq!(id.len(), 64);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("12."));
}
