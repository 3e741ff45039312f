//! The Pod Security Standards (`baseline` and `restricted`, as of
//! Kubernetes 1.33), evaluated on a pod spec — the same rules the API
//! server's PodSecurity admission applies to a namespace labelled
//! `pod-security.kubernetes.io/enforce`.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, SecurityContext};
use serde_json::Value;

use crate::objects::Object;

/// One rule a pod breaks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The standard's name for the control, e.g. `hostNamespaces`.
    pub rule: &'static str,
    /// What and where: `container "collector": capabilities.add BPF`.
    pub detail: String,
}

/// The level a namespace enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    /// From the `pod-security.kubernetes.io/enforce` label value.
    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "privileged" => Some(Self::Privileged),
            "baseline" => Some(Self::Baseline),
            "restricted" => Some(Self::Restricted),
            _ => None,
        }
    }
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The pod template of a workload object, if it has one.
pub fn pod_template(object: &Object) -> Option<PodTemplateSpec> {
    let value: Value = object.value.clone();
    match object.kind.as_str() {
        "Deployment" => serde_json::from_value::<Deployment>(value)
            .ok()?
            .spec?
            .template
            .into(),
        "DaemonSet" => serde_json::from_value::<DaemonSet>(value)
            .ok()?
            .spec?
            .template
            .into(),
        "StatefulSet" => serde_json::from_value::<StatefulSet>(value)
            .ok()?
            .spec?
            .template
            .into(),
        _ => None,
    }
}

/// Every control of `level` that `pod` breaks (none for `privileged`).
pub fn evaluate(pod: &PodSpec, level: Level) -> Vec<Violation> {
    let mut found = Vec::new();
    if level == Level::Privileged {
        return found;
    }
    baseline(pod, &mut found);
    if level == Level::Restricted {
        restricted(pod, &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn all_containers(pod: &PodSpec) -> Vec<(&str, Option<&SecurityContext>, &Container)> {
    pod.init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
        .map(|c| (c.name.as_str(), c.security_context.as_ref(), c))
        .collect()
}

fn push(found: &mut Vec<Violation>, rule: &'static str, detail: String) {
    found.push(Violation { rule, detail });
}

fn baseline(pod: &PodSpec, found: &mut Vec<Violation>) {
    let pod_sc = pod.security_context.as_ref();
    for (flag, name) in [
        (pod.host_network, "hostNetwork"),
        (pod.host_pid, "hostPID"),
        (pod.host_ipc, "hostIPC"),
    ] {
        if flag == Some(true) {
            push(found, "hostNamespaces", format!("{name}=true"));
        }
    }
    for volume in pod.volumes.iter().flatten() {
        if volume.host_path.is_some() {
            push(
                found,
                "hostPathVolumes",
                format!("volume {:?}", volume.name),
            );
        }
    }
    if pod_sc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        push(found, "hostProcess", "pod".to_owned());
    }
    if let Some(sc) = pod_sc {
        for sysctl in sc.sysctls.iter().flatten() {
            if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
                push(found, "sysctls", sysctl.name.clone());
            }
        }
        selinux(sc.se_linux_options.as_ref(), "pod", found);
        seccomp_not_unconfined(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            "pod",
            found,
        );
        apparmor(
            sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
            "pod",
            found,
        );
    }
    for (name, sc, container) in all_containers(pod) {
        let at = format!("container {name:?}");
        for port in container.ports.iter().flatten() {
            if port.host_port.is_some_and(|p| p != 0) {
                push(
                    found,
                    "hostPorts",
                    format!("{at}: hostPort {}", port.host_port.unwrap_or_default()),
                );
            }
        }
        let Some(sc) = sc else { continue };
        if sc.privileged == Some(true) {
            push(found, "privileged", at.clone());
        }
        if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
            push(found, "hostProcess", at.clone());
        }
        for cap in sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .into_iter()
            .flatten()
        {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                push(
                    found,
                    "capabilities",
                    format!("{at}: capabilities.add {cap}"),
                );
            }
        }
        if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
            push(found, "procMount", at.clone());
        }
        selinux(sc.se_linux_options.as_ref(), &at, found);
        seccomp_not_unconfined(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            &at,
            found,
        );
        apparmor(
            sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
            &at,
            found,
        );
    }
}

fn selinux(
    options: Option<&k8s_openapi::api::core::v1::SELinuxOptions>,
    at: &str,
    found: &mut Vec<Violation>,
) {
    let Some(options) = options else { return };
    if !SELINUX_TYPES.contains(&options.type_.as_deref().unwrap_or_default())
        || options.user.is_some()
        || options.role.is_some()
    {
        push(found, "seLinux", at.to_owned());
    }
}

fn seccomp_not_unconfined(kind: Option<&str>, at: &str, found: &mut Vec<Violation>) {
    if kind == Some("Unconfined") {
        push(found, "seccomp", format!("{at}: Unconfined"));
    }
}

fn apparmor(kind: Option<&str>, at: &str, found: &mut Vec<Violation>) {
    if kind == Some("Unconfined") {
        push(found, "appArmor", format!("{at}: Unconfined"));
    }
}

/// Restricted allows only configMap, csi, downwardAPI, emptyDir, ephemeral,
/// persistentVolumeClaim, projected and secret volumes.
fn restricted(pod: &PodSpec, found: &mut Vec<Violation>) {
    for volume in pod.volumes.iter().flatten() {
        let allowed = volume.config_map.is_some()
            || volume.csi.is_some()
            || volume.downward_api.is_some()
            || volume.empty_dir.is_some()
            || volume.ephemeral.is_some()
            || volume.persistent_volume_claim.is_some()
            || volume.projected.is_some()
            || volume.secret.is_some();
        if !allowed {
            push(found, "volumeTypes", format!("volume {:?}", volume.name));
        }
    }
    let pod_sc = pod.security_context.as_ref();
    let pod_non_root = pod_sc.and_then(|s| s.run_as_non_root);
    let pod_seccomp = pod_sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.clone());
    if pod_sc.and_then(|s| s.run_as_user) == Some(0) {
        push(found, "runAsUser", "pod".to_owned());
    }
    for (name, sc, _) in all_containers(pod) {
        let at = format!("container {name:?}");
        if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            push(
                found,
                "allowPrivilegeEscalation",
                format!("{at}: not set to false"),
            );
        }
        match sc.and_then(|s| s.run_as_non_root).or(pod_non_root) {
            Some(true) => {}
            _ => push(found, "runAsNonRoot", at.clone()),
        }
        if sc.and_then(|s| s.run_as_user) == Some(0) {
            push(found, "runAsUser", at.clone());
        }
        let seccomp = sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.clone())
            .or(pod_seccomp.clone());
        if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
            push(
                found,
                "seccomp",
                format!("{at}: {seccomp:?} is neither RuntimeDefault nor Localhost"),
            );
        }
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        if !caps
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL"))
        {
            push(found, "capabilities", format!("{at}: does not drop ALL"));
        }
        for cap in caps.and_then(|c| c.add.as_ref()).into_iter().flatten() {
            if cap != "NET_BIND_SERVICE" {
                push(
                    found,
                    "capabilities",
                    format!("{at}: capabilities.add {cap}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: Value) -> PodSpec {
        serde_json::from_value(json).expect("pod spec")
    }

    fn rules(found: &[Violation]) -> Vec<&'static str> {
        let mut rules: Vec<_> = found.iter().map(|v| v.rule).collect();
        rules.dedup();
        rules
    }

    #[test]
    fn a_hardened_pod_meets_restricted() {
        let spec = pod(serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "tmp", "emptyDir": {}}]
        }));
        assert_eq!(evaluate(&spec, Level::Restricted), vec![]);
    }

    #[test]
    fn a_default_pod_breaks_restricted_but_meets_baseline() {
        let spec = pod(serde_json::json!({"containers": [{"name": "app"}]}));
        assert_eq!(evaluate(&spec, Level::Baseline), vec![]);
        assert_eq!(
            rules(&evaluate(&spec, Level::Restricted)),
            vec![
                "allowPrivilegeEscalation",
                "capabilities",
                "runAsNonRoot",
                "seccomp"
            ]
        );
    }

    #[test]
    fn a_privileged_pod_breaks_baseline_on_every_control() {
        let spec = pod(serde_json::json!({
            "hostPID": true, "hostNetwork": true,
            "securityContext": {"sysctls": [{"name": "kernel.core_pattern", "value": "|/x"}]},
            "containers": [{"name": "x", "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {"privileged": true, "procMount": "Unmasked", "capabilities": {"add": ["SYS_ADMIN"]},
                    "seccompProfile": {"type": "Unconfined"}}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]
        }));
        assert_eq!(
            rules(&evaluate(&spec, Level::Baseline)),
            vec![
                "capabilities",
                "hostNamespaces",
                "hostPathVolumes",
                "hostPorts",
                "privileged",
                "procMount",
                "seccomp",
                "sysctls"
            ]
        );
        assert!(evaluate(&spec, Level::Privileged).is_empty());
    }
}
