//! Container and pod identity from a cgroup path.
//!
//! | runtime, driver         | leaf of the cgroup path                                  |
//! |-------------------------|----------------------------------------------------------|
//! | any, cgroupfs           | `kubepods/<qos>/pod<uid>/<id>`, `docker/<id>`            |
//! | containerd, systemd     | `…-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` |
//! | CRI-O, systemd          | `…/crio-<id>.scope` (and `crio-conmon-<id>.scope`, not a container) |
//! | Docker, systemd         | `system.slice/docker-<id>.scope`                         |
//!
//! `<id>` is 64 lowercase hex digits.

/// Who a cgroup belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerIdentity {
    /// Full 64-hex container id.
    pub container_id: String,
    /// Pod UID when the path is under `kubepods`; empty otherwise.
    pub pod_uid: String,
}

impl ContainerIdentity {
    /// The 12-character short id Docker and Falco display.
    pub fn short_id(&self) -> &str {
        self.container_id.get(..12).unwrap_or(&self.container_id)
    }
}

/// Identifies the container of a cgroup path; `None` for host processes.
pub fn identify(cgroup_path: &str) -> Option<ContainerIdentity> {
    let mut components = cgroup_path.split('/').filter(|c| !c.is_empty());
    let container_id = components.clone().rev().find_map(container_id_of)?;
    let pod_uid = components.find_map(pod_uid_of).unwrap_or_default();
    Some(ContainerIdentity {
        container_id: container_id.to_owned(),
        pod_uid,
    })
}

fn container_id_of(component: &str) -> Option<&str> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let id = [
        "cri-containerd-",
        "crio-",
        "docker-",
        "containerd-",
        "libpod-",
    ]
    .iter()
    .find_map(|prefix| name.strip_prefix(prefix))
    .unwrap_or(name);
    is_container_id(id).then_some(id)
}

fn is_container_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn pod_uid_of(component: &str) -> Option<String> {
    if let Some(uid) = component.strip_prefix("pod") {
        // cgroupfs driver: pod<uid>
        return looks_like_uid(uid).then(|| uid.to_owned());
    }
    // systemd driver: kubepods-besteffort-pod<uid_with_underscores>.slice
    let slice = component.strip_suffix(".slice")?;
    let uid = &slice[slice.rfind("-pod")? + 4..];
    let uid = uid.replace('_', "-");
    looks_like_uid(&uid).then_some(uid)
}

fn looks_like_uid(uid: &str) -> bool {
    uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a1c2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const UID: &str = "0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

    #[test]
    fn kubepods_cgroupfs() {
        let path = format!("/kubepods/besteffort/pod{UID}/{ID}");
        let found = identify(&path).unwrap();
        assert_eq!(found.container_id, ID);
        assert_eq!(found.pod_uid, UID);
        assert_eq!(found.short_id(), &ID[..12]);
        let guaranteed = identify(&format!("kubepods/pod{UID}/{ID}")).unwrap();
        assert_eq!(guaranteed.pod_uid, UID);
    }

    #[test]
    fn kubepods_systemd_containerd_and_crio() {
        let underscored = UID.replace('-', "_");
        for leaf in [
            format!("cri-containerd-{ID}.scope"),
            format!("crio-{ID}.scope"),
        ] {
            let path = format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/{leaf}"
            );
            let found = identify(&path).unwrap();
            assert_eq!(found.container_id, ID, "{path}");
            assert_eq!(found.pod_uid, UID, "{path}");
        }
    }

    #[test]
    fn docker_outside_kubernetes() {
        for path in [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
        ] {
            let found = identify(&path).unwrap();
            assert_eq!(found.container_id, ID);
            assert_eq!(found.pod_uid, "");
        }
    }

    #[test]
    fn host_processes_and_conmon_are_not_containers() {
        for path in [
            "/".to_owned(),
            "/user.slice/user-0.slice/session-1.scope".to_owned(),
            "/system.slice/containerd.service".to_owned(),
            format!("/kubepods.slice/crio-conmon-{ID}.scope"),
            format!("/kubepods/pod{UID}/{}", &ID[..63]),
        ] {
            assert_eq!(identify(&path), None, "{path}");
        }
    }
}
