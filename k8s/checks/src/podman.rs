//! A file `podman kube play` (4.3) runs, made from a rendered overlay.
//!
//! Podman plays Pods, Deployments, ConfigMaps and PersistentVolumeClaims;
//! it has no DaemonSet, StatefulSet, Service, Secret (as env source),
//! ServiceAccount, RBAC, PodDisruptionBudget, NetworkPolicy or KEDA, does not
//! expand `$(VAR)` in env values, ignores `hostPID`, and runs httpGet probes
//! as `curl` inside the container (Vigil's images have no shell, no curl).
//! [`generate`] therefore turns every workload into one Pod (one replica)
//! and resolves what podman would not, listing each change in
//! [`Play::changes`]; k8s/README.md ("Images") lists them for users.
//!
//! Services become `hostAliases`: every pod gets a fixed address (`podman
//! kube play --ip`, in [`Play::pods`] order, on a network the caller
//! creates) and every Service name (`<svc>`, `<svc>.<ns>`, …`.svc`,
//! …`.svc.cluster.local`) resolves in every pod to the address of the one
//! pod it selects, so the configuration's URLs stay as the manifests write
//! them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};

use crate::Object;

/// What [`generate`] needs besides the objects.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address of the first pod; the others follow.
    pub first_ip: Ipv4Addr,
    /// What `spec.nodeName` resolves to (the host podman runs on).
    pub node_name: String,
    /// Image replacements by prefix (an image a cluster pulls but podman
    /// cannot, e.g. `docker.io/library/nats:` → `localhost/vigil-nats:2.15.1`).
    pub images: Vec<(String, String)>,
    /// An API server for the pods that would get a service account token
    /// (`automountServiceAccountToken` not false): they get a kubeconfig
    /// naming it (`KUBECONFIG`), since podman has no API server and no
    /// tokens. A URL the pods can reach, e.g. on the network's gateway.
    pub kube_api_url: Option<String>,
    /// Podman's default seccomp profile (`/usr/share/containers/seccomp.json`).
    /// It allows `bpf` and `perf_event_open` only with `CAP_SYS_ADMIN`
    /// (containerd >= 1.7 also with `CAP_BPF`/`CAP_PERFMON`); a container
    /// that adds BPF or PERFMON gets this profile with those two allowed for
    /// its capabilities instead ([`Play::seccomp_profiles`]). `None`: left
    /// as is.
    pub default_seccomp: Option<String>,
}

/// The file to play and what it holds.
#[derive(Clone, Debug)]
pub struct Play {
    /// YAML documents (JSON-formatted), ConfigMaps and claims first.
    pub yaml: String,
    /// Pods in file order: the `--ip` arguments, in this order.
    pub pods: Vec<PlayPod>,
    /// Persistent volume claims the file creates (podman volumes that
    /// `podman kube down` leaves behind).
    pub volumes: Vec<String>,
    /// Each thing changed or dropped, one sentence each.
    pub changes: Vec<String>,
    /// Seccomp profiles the pods name (`localhost/<file>`): file name and
    /// contents, to be written to the directory given to `podman kube play
    /// --seccomp-profile-root`.
    pub seccomp_profiles: Vec<(String, String)>,
}

/// One pod of the play.
#[derive(Clone, Debug)]
pub struct PlayPod {
    /// Pod name (the workload's).
    pub name: String,
    pub namespace: String,
    /// `Kind/namespace/name` of the workload it comes from.
    pub workload: String,
    pub ip: Ipv4Addr,
    /// Readiness probes the file drops, to be polled from outside: one per
    /// container that had one.
    pub readiness: Vec<Readiness>,
}

/// An httpGet readiness probe, port resolved to a number.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub container: String,
    pub port: u16,
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("{at}: {what}")]
    Unsupported { at: String, what: String },
}

fn unsupported(at: &str, what: impl Into<String>) -> PlayError {
    PlayError::Unsupported {
        at: at.to_owned(),
        what: what.into(),
    }
}

/// Kinds podman has no use for, and why dropping them is safe here.
const DROPPED: &[(&str, &str)] = &[
    (
        "Namespace",
        "podman has no namespaces: names are qualified instead",
    ),
    ("ServiceAccount", "no API server, no tokens"),
    ("ClusterRole", "no API server"),
    ("ClusterRoleBinding", "no API server"),
    ("Role", "no API server"),
    ("RoleBinding", "no API server"),
    ("PodDisruptionBudget", "no evictions"),
    ("NetworkPolicy", "podman does not enforce NetworkPolicy"),
    ("ScaledObject", "no KEDA"),
    ("Secret", "resolved into the env values that name them"),
    ("Service", "resolved into hostAliases of every pod"),
];

/// Builds the podman-ready file from a rendered overlay.
pub fn generate(objects: &[Object], options: &Options) -> Result<Play, PlayError> {
    let mut changes = Vec::new();
    let mut documents: Vec<Value> = Vec::new();
    let mut volumes = Vec::new();
    let mut pods: Vec<(PlayPod, Value)> = Vec::new();

    // ConfigMaps of different namespaces share one name space in podman.
    let config_map_name = |namespace: &str, name: &str| format!("{namespace}.{name}");
    let mut dropped: BTreeMap<&str, usize> = BTreeMap::new();
    for object in objects {
        match object.kind.as_str() {
            "ConfigMap" => {
                let mut value = object.value.clone();
                let name = config_map_name(&object.namespace, &object.name);
                value["metadata"] = json!({"name": name});
                documents.push(value);
            }
            "Deployment" | "DaemonSet" | "StatefulSet" => {}
            kind => match DROPPED.iter().find(|(dropped, _)| *dropped == kind) {
                Some(_) => *dropped.entry(kind).or_default() += 1,
                None => return Err(unsupported(&object.id(), "a kind podman cannot play")),
            },
        }
    }
    for (kind, count) in &dropped {
        let why = DROPPED
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("", |(_, why)| why);
        changes.push(format!("{count} {kind} dropped: {why}"));
    }

    let mut seccomp_profiles = Vec::new();
    let mut next_ip = u32::from(options.first_ip);
    for object in objects {
        if !matches!(
            object.kind.as_str(),
            "Deployment" | "DaemonSet" | "StatefulSet"
        ) {
            continue;
        }
        let at = object.id();
        let ip = Ipv4Addr::from(next_ip);
        next_ip += 1;
        let replicas = object
            .value
            .pointer("/spec/replicas")
            .and_then(Value::as_u64);
        if replicas.is_some_and(|r| r != 1) {
            changes.push(format!(
                "{at}: one pod instead of {} replicas",
                replicas.unwrap_or(1)
            ));
        }
        if object.kind != "Deployment" {
            changes.push(format!(
                "{at}: played as a Pod (podman 4.3 has no {})",
                object.kind
            ));
        }
        let template = object
            .value
            .pointer("/spec/template")
            .ok_or_else(|| unsupported(&at, "no pod template"))?;
        let mut spec = template
            .get("spec")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| unsupported(&at, "no pod spec"))?;
        let uses_api = spec.get("automountServiceAccountToken") != Some(&json!(false));
        for key in [
            "serviceAccountName",
            "serviceAccount",
            "automountServiceAccountToken",
            "priorityClassName",
            "tolerations",
            "topologySpreadConstraints",
            "affinity",
            "nodeSelector",
        ] {
            spec.remove(key);
        }
        if spec.remove("hostPID").is_some_and(|v| v == json!(true)) {
            changes.push(format!(
                "{at}: hostPID dropped (podman kube play 4.3 ignores it; the pod has its own PID namespace)"
            ));
        }
        let pod_context = spec.get("securityContext").cloned().unwrap_or(json!({}));
        let mut readiness = Vec::new();
        let mut annotations = Map::new();
        let containers = spec
            .get_mut("containers")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| unsupported(&at, "no containers"))?;
        for container in containers.iter_mut() {
            let name = container["name"].as_str().unwrap_or_default().to_owned();
            let at = format!("{at}: container {name}");
            let container = container
                .as_object_mut()
                .ok_or_else(|| unsupported(&at, "not an object"))?;
            if let Some(probe) = container.get("readinessProbe") {
                readiness.push(readiness_of(&at, &name, probe, container)?);
            }
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                container.remove(probe);
            }
            if let Some(image) = container.get("image").and_then(Value::as_str)
                && let Some((prefix, replacement)) = options
                    .images
                    .iter()
                    .find(|(prefix, _)| image.starts_with(prefix.as_str()))
            {
                changes.push(format!(
                    "{at}: image {image} replaced by {replacement} ({prefix}…)"
                ));
                container.insert("image".into(), json!(replacement));
            }
            // Podman applies the container's securityContext; the pod's
            // user and group are copied down so they are not lost.
            let context = container
                .entry("securityContext")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| unsupported(&at, "securityContext is not an object"))?;
            for key in ["runAsUser", "runAsGroup", "runAsNonRoot"] {
                if let Some(value) = pod_context.get(key) {
                    context.entry(key).or_insert_with(|| value.clone());
                }
            }
            let added = context
                .get("capabilities")
                .and_then(|capabilities| capabilities.get("add"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let adds = |cap: &str| added.iter().any(|a| a.as_str() == Some(cap));
            if let (true, Some(default)) =
                (adds("BPF") || adds("PERFMON"), &options.default_seccomp)
            {
                let file = "vigil-bpf.json".to_owned();
                if !seccomp_profiles.iter().any(|(name, _)| *name == file) {
                    seccomp_profiles.push((file.clone(), bpf_seccomp(&at, default)?));
                }
                annotations.insert(
                    format!("container.seccomp.security.alpha.kubernetes.io/{name}"),
                    json!(format!("localhost/{file}")),
                );
                changes.push(format!(
                    "{at}: seccomp is podman's default profile with bpf allowed for CAP_BPF and perf_event_open for CAP_PERFMON (localhost/{file}; podman's own allows them only with CAP_SYS_ADMIN)"
                ));
            }
            let mut env = resolve_env(
                &at,
                container.get("env"),
                objects,
                &object.namespace,
                &object.name,
                ip,
                options,
            )?;
            if uses_api && options.kube_api_url.is_some() {
                env.push(
                    json!({"name": "KUBECONFIG", "value": format!("{KUBECONFIG_DIR}/config")}),
                );
                container
                    .entry("volumeMounts")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .ok_or_else(|| unsupported(&at, "volumeMounts is not a list"))?
                    .push(json!({"name": "play-kubeconfig", "mountPath": KUBECONFIG_DIR, "readOnly": true}));
            }
            container.insert("env".into(), Value::Array(env));
        }
        if let (true, Some(url)) = (uses_api, &options.kube_api_url) {
            // Qualified with the namespace below, as every ConfigMap volume.
            let name = format!("{}-kubeconfig", object.name);
            documents.push(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": config_map_name(&object.namespace, &name)},
                "data": {"config": kubeconfig(url, &object.namespace)},
            }));
            spec.entry("volumes")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| unsupported(&at, "volumes is not a list"))?
                .push(json!({"name": "play-kubeconfig", "configMap": {"name": name}}));
            changes.push(format!(
                "{at}: its service account token is a kubeconfig naming {url} (KUBECONFIG={KUBECONFIG_DIR}/config)"
            ));
        }
        changes.push(format!(
            "{at}: probes removed (podman runs httpGet probes with curl inside the image); readiness is polled from the host"
        ));
        // Volumes: ConfigMaps by their qualified names, claim templates as
        // podman volumes owned by the pod's fsGroup.
        if let Some(list) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
            for volume in list.iter_mut() {
                if let Some(name) = volume.pointer("/configMap/name").and_then(Value::as_str) {
                    let name = config_map_name(&object.namespace, name);
                    volume["configMap"]["name"] = json!(name);
                }
                if volume.get("secret").is_some() {
                    return Err(unsupported(
                        &at,
                        "secret volumes are not supported by this generator",
                    ));
                }
            }
        }
        let fs_group = pod_context.get("fsGroup").and_then(Value::as_u64);
        for claim in object
            .value
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let claim_name = claim
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .ok_or_else(|| unsupported(&at, "a volume claim template without a name"))?;
            let volume_name = format!("{}-{claim_name}", object.name);
            let mut annotations = Map::new();
            if let Some(group) = fs_group {
                // Kubernetes makes the volume writable to fsGroup; podman
                // creates it owned by root unless told.
                annotations.insert("volume.podman.io/uid".into(), json!(group.to_string()));
                annotations.insert("volume.podman.io/gid".into(), json!(group.to_string()));
            }
            documents.push(json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": volume_name, "annotations": annotations},
                "spec": claim.get("spec").cloned().unwrap_or(json!({})),
            }));
            spec.entry("volumes")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| unsupported(&at, "volumes is not a list"))?
                .push(json!({"name": claim_name, "persistentVolumeClaim": {"claimName": volume_name}}));
            volumes.push(volume_name);
            changes.push(format!(
                "{at}: volume claim template {claim_name} is the podman volume {}-{claim_name}",
                object.name
            ));
        }
        let labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": object.name, "labels": labels, "annotations": annotations},
            "spec": spec,
        });
        pods.push((
            PlayPod {
                name: object.name.clone(),
                namespace: object.namespace.clone(),
                workload: at,
                ip,
                readiness,
            },
            pod,
        ));
    }

    // Services: each name → the address of the one pod it selects.
    let mut aliases: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
    for service in objects.iter().filter(|o| o.kind == "Service") {
        let at = service.id();
        let selector = service
            .value
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .ok_or_else(|| unsupported(&at, "a Service without a selector"))?;
        let selected: Vec<&(PlayPod, Value)> = pods
            .iter()
            .filter(|(pod, value)| {
                pod.namespace == service.namespace
                    && selector
                        .iter()
                        .all(|(key, want)| value["metadata"]["labels"].get(key) == Some(want))
            })
            .collect();
        let [(pod, value)] = selected.as_slice() else {
            return Err(unsupported(
                &at,
                format!(
                    "selects {} pods; a host alias names exactly one",
                    selected.len()
                ),
            ));
        };
        for port in service
            .value
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let number = port.get("port").and_then(Value::as_u64).unwrap_or(0);
            let target = match port.get("targetPort") {
                Some(Value::String(name)) => named_port(value, name),
                Some(other) => other.as_u64(),
                None => Some(number),
            };
            if target != Some(number) {
                changes.push(format!(
                    "{at}: port {number} is the pod's port {} (no Service proxy: clients must use the pod's port)",
                    target.map_or("?".to_owned(), |t| t.to_string())
                ));
            }
        }
        let (name, namespace) = (&service.name, &service.namespace);
        aliases.entry(pod.ip).or_default().extend([
            name.clone(),
            format!("{name}.{namespace}"),
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}.svc.cluster.local"),
        ]);
    }
    let host_aliases: Vec<Value> = aliases
        .iter()
        .map(|(ip, names)| json!({"ip": ip.to_string(), "hostnames": names}))
        .collect();
    for (play_pod, pod) in &mut pods {
        pod["spec"]["hostAliases"] = json!(host_aliases);
        // Podman 4.3 publishes every containerPort on the host's port of
        // the same number, so two pods with an admin port 9090 collide (and
        // NATS with a server already on 4222). Pods are reached by address.
        let mut removed = false;
        for container in pod["spec"]["containers"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            removed |= container
                .as_object_mut()
                .and_then(|c| c.remove("ports"))
                .is_some();
        }
        if removed {
            changes.push(format!(
                "{}: container ports removed (podman 4.3 would publish each on the host); reach the pod at {}",
                play_pod.workload, play_pod.ip
            ));
        }
    }

    let mut yaml = String::new();
    for document in documents.iter().chain(pods.iter().map(|(_, pod)| pod)) {
        yaml.push_str("---\n");
        yaml.push_str(&document.to_string());
        yaml.push('\n');
    }
    Ok(Play {
        yaml,
        pods: pods.into_iter().map(|(pod, _)| pod).collect(),
        volumes,
        changes,
        seccomp_profiles,
    })
}

/// Podman's default seccomp profile with `bpf` allowed for `CAP_BPF` and
/// `perf_event_open` for `CAP_PERFMON` (as containerd >= 1.7 and CRI-O >=
/// 1.25 allow them), instead of only for `CAP_SYS_ADMIN`.
fn bpf_seccomp(at: &str, default: &str) -> Result<String, PlayError> {
    let mut profile: Value = serde_json::from_str(default).map_err(|error| {
        unsupported(
            at,
            format!("the default seccomp profile is not JSON: {error}"),
        )
    })?;
    let syscalls = profile
        .get_mut("syscalls")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| unsupported(at, "the default seccomp profile has no syscalls list"))?;
    const GATED: [(&str, &str); 2] = [("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")];
    // Take the two calls out of every rule, then add one allow and one
    // refusal (EPERM, as podman's) per call, keyed on its own capability.
    for rule in syscalls.iter_mut() {
        if let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) {
            names.retain(|name| !GATED.iter().any(|(call, _)| name.as_str() == Some(call)));
        }
    }
    syscalls.retain(|rule| {
        rule.get("names")
            .and_then(Value::as_array)
            .is_none_or(|n| !n.is_empty())
    });
    for (call, cap) in GATED {
        syscalls.push(
            json!({"names": [call], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}}),
        );
        syscalls.push(json!({"names": [call], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": [cap]}}));
    }
    Ok(profile.to_string())
}

/// Where a pod that uses the API finds its kubeconfig.
const KUBECONFIG_DIR: &str = "/var/run/vigil-play";

/// A kubeconfig for `url` with no credentials (the play's API server is a
/// test double without authentication).
fn kubeconfig(url: &str, namespace: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "play", "cluster": {"server": url}}],
        "users": [{"name": "play", "user": {}}],
        "contexts": [{"name": "play", "context": {"cluster": "play", "user": "play", "namespace": namespace}}],
        "current-context": "play",
    })
    .to_string()
}

/// The number of the container port called `name` in a pod.
fn named_port(pod: &Value, name: &str) -> Option<u64> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("containerPort")?
        .as_u64()
}

fn readiness_of(
    at: &str,
    container_name: &str,
    probe: &Value,
    container: &Map<String, Value>,
) -> Result<Readiness, PlayError> {
    let get = probe
        .get("httpGet")
        .ok_or_else(|| unsupported(at, "a readiness probe that is not httpGet"))?;
    let path = get
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    let port = match get.get("port") {
        Some(Value::String(name)) => container
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64),
        Some(other) => other.as_u64(),
        None => None,
    }
    .and_then(|port| u16::try_from(port).ok())
    .ok_or_else(|| unsupported(at, "the readiness probe's port is not a container port"))?;
    Ok(Readiness {
        container: container_name.to_owned(),
        port,
        path,
    })
}

/// Env values as the kubelet would set them: `valueFrom` resolved from
/// Secrets, ConfigMaps and the pod's fields, then `$(VAR)` expanded from
/// earlier variables (podman 4.3 does neither for Secrets or `$(VAR)`).
fn resolve_env(
    at: &str,
    env: Option<&Value>,
    objects: &[Object],
    namespace: &str,
    pod_name: &str,
    ip: Ipv4Addr,
    options: &Options,
) -> Result<Vec<Value>, PlayError> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    for var in env.and_then(Value::as_array).into_iter().flatten() {
        let name = var
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| unsupported(at, "an env variable without a name"))?
            .to_owned();
        let at = format!("{at}: env {name}");
        let value = if let Some(value) = var.get("value").and_then(Value::as_str) {
            expand(value, &resolved)
        } else if let Some(source) = var.get("valueFrom") {
            if let Some(key_ref) = source.get("secretKeyRef") {
                secret_value(&at, objects, namespace, key_ref)?
            } else if let Some(key_ref) = source.get("configMapKeyRef") {
                let (map, key) = key_ref_names(&at, key_ref)?;
                find(objects, "ConfigMap", namespace, map)
                    .and_then(|o| o.value.pointer(&format!("/data/{key}")))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        unsupported(&at, format!("no key {key} in ConfigMap {namespace}/{map}"))
                    })?
            } else if let Some(field) = source
                .pointer("/fieldRef/fieldPath")
                .and_then(Value::as_str)
            {
                match field {
                    "metadata.name" => pod_name.to_owned(),
                    "metadata.namespace" => namespace.to_owned(),
                    "spec.nodeName" => options.node_name.clone(),
                    "status.podIP" => ip.to_string(),
                    other => return Err(unsupported(&at, format!("fieldRef {other}"))),
                }
            } else {
                return Err(unsupported(&at, "a valueFrom this generator does not know"));
            }
        } else {
            String::new()
        };
        resolved.push((name, value));
    }
    Ok(resolved
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect())
}

fn key_ref_names<'a>(at: &str, key_ref: &'a Value) -> Result<(&'a str, &'a str), PlayError> {
    let name = key_ref.get("name").and_then(Value::as_str);
    let key = key_ref.get("key").and_then(Value::as_str);
    name.zip(key)
        .ok_or_else(|| unsupported(at, "a key reference without name or key"))
}

fn find<'a>(objects: &'a [Object], kind: &str, namespace: &str, name: &str) -> Option<&'a Object> {
    objects
        .iter()
        .find(|o| o.kind == kind && o.namespace == namespace && o.name == name)
}

fn secret_value(
    at: &str,
    objects: &[Object],
    namespace: &str,
    key_ref: &Value,
) -> Result<String, PlayError> {
    let (name, key) = key_ref_names(at, key_ref)?;
    let object = find(objects, "Secret", namespace, name)
        .ok_or_else(|| unsupported(at, format!("no Secret {namespace}/{name} in the overlay")))?;
    // kustomize folds long base64 values over lines; the API server
    // ignores the line breaks, k8s-openapi's decoder does not.
    let mut value = object.value.clone();
    if let Some(data) = value.get_mut("data").and_then(Value::as_object_mut) {
        for encoded in data.values_mut() {
            if let Some(text) = encoded.as_str() {
                *encoded = json!(text.split_whitespace().collect::<String>());
            }
        }
    }
    let secret: Secret = serde_json::from_value(value)
        .map_err(|error| unsupported(at, format!("Secret {namespace}/{name}: {error}")))?;
    if let Some(value) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Ok(value.clone());
    }
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| unsupported(at, format!("no key {key} in Secret {namespace}/{name}")))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| {
        unsupported(
            at,
            format!("key {key} of Secret {namespace}/{name} is not UTF-8"),
        )
    })
}

/// Kubernetes' `$(VAR)` expansion: a reference to an earlier variable is
/// replaced, `$$` is a literal `$`, anything else stays as written.
fn expand(value: &str, earlier: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
            && let Some((_, found)) = earlier.iter().rev().find(|(n, _)| n == name)
        {
            out.push_str(found);
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expansion_follows_the_kubelet() {
        let earlier = vec![("P".to_owned(), "secret".to_owned())];
        assert_eq!(expand("nats://u:$(P)@h", &earlier), "nats://u:secret@h");
        assert_eq!(expand("$$(P) $(Q) $x", &earlier), "$(P) $(Q) $x");
        assert_eq!(expand("$argon2id$v=19$m=1", &earlier), "$argon2id$v=19$m=1");
    }
}
