//! Every service container of every overlay starts with exactly the
//! configuration its manifest gives it: the files of its ConfigMap volumes
//! at their mount paths, and its environment, with `$(VAR)` references,
//! field references and Secret and ConfigMap keys resolved from the rendered
//! objects. Each real service binary (target/debug/vigil-<svc>) runs with
//! that configuration against a real nats-server (started with the
//! overlay's NATS users) and must never exit 78 (configuration error): in
//! the dev overlay every service must become healthy (`/healthz` 200: logged
//! in, streams and consumers in place), in prod log in to NATS (its R3
//! streams need three servers).
//!
//! What differs from a cluster, and how:
//! - Paths: a ConfigMap volume's files are written under a temporary root
//!   and a hostPath volume maps to the same path on this host; every mount
//!   path named in the args, the environment or a config file is rewritten
//!   to where it lives here (`/etc/vigil` → `<tmp>/etc/vigil`,
//!   `/host/sys/fs/cgroup` → `/sys/fs/cgroup`).
//! - Addresses: NATS's Service name (`vigil-nats.vigil.svc.cluster.local:4222`)
//!   becomes the test server; each `0.0.0.0:<port>` a pod listens on becomes
//!   a free loopback port (the ports themselves are checked against the
//!   Services in `listen_addresses_match_the_services_that_target_them`).
//! - Values made at install: Secrets an operator creates (prod) get
//!   placeholder values of the documented shape (`OPERATOR_SECRETS`);
//!   `fieldRef`s get a test node and pod name.
//! - The Kubernetes API: a service with a `[kube]` section gets
//!   `VIGIL_<SVC>__KUBE__API_URL` = a fake API server (`vigil_fake_kube`),
//!   as in-cluster service-account config does not exist here.
//! - NATS: one server with the overlay's `auth.conf` (users, passwords,
//!   permissions) and the base's single-server `nats.conf` (prod's is a
//!   three-node cluster).
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, PodSpec, Secret};
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_k8s_checks::render::{k8s_dir, overlays, render};
use vigil_k8s_checks::{Object, pss};
use vigil_testkit::{NatsServer, require_root};

/// Secrets the operator creates at install (k8s/README.md), with a value of
/// the shape the README asks for: (name, key) → value; `*` is any key.
const OPERATOR_SECRETS: &[(&str, &str, &str)] = &[
    ("vigil-nats-users", "*", "install-time-password"),
    (
        "vigil-console-users",
        "users",
        r#"[{name = "admin", role = "responder", token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}]"#,
    ),
];

/// Services whose configuration has a `[kube]` section.
const KUBE_SERVICES: &[&str] = &["collector", "responder"];

/// How long a service may take to log in to NATS (the collector loads its
/// eBPF programs first).
const PATIENCE: Duration = Duration::from_secs(60);

const CONNECTED: &str = "Connected to NATS.";

/// One service container as its manifest runs it, ready to start here.
struct Prepared {
    /// `overlay Kind/ns/name container`, for messages.
    at: String,
    /// `responder`, `console`, ...
    service: String,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Config files written for it (local path, text).
    files: Vec<(PathBuf, String)>,
    /// Where its admin endpoint (container port `admin`) listens here.
    admin: Option<SocketAddr>,
    /// The HTTP paths of its readiness and liveness probes, as the manifest
    /// gives them: the binary must answer both once healthy.
    probe_paths: Vec<String>,
}

struct Rendered {
    overlay: String,
    objects: Vec<Object>,
}

fn rendered() -> Vec<Rendered> {
    overlays()
        .unwrap()
        .iter()
        .map(|dir| Rendered {
            overlay: dir.file_name().unwrap().to_string_lossy().into_owned(),
            objects: render(dir).unwrap_or_else(|e| panic!("{e}")),
        })
        .collect()
}

impl Rendered {
    fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == namespace && o.name == name)
    }

    fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Result<String, String> {
        if let Some(object) = self.find("Secret", namespace, name) {
            let secret: Secret = serde_json::from_value(object.value.clone()).unwrap();
            let bytes = secret
                .data
                .unwrap_or_default()
                .remove(key)
                .ok_or_else(|| format!("Secret {namespace}/{name} has no key {key}"))?;
            return String::from_utf8(bytes.0)
                .map_err(|_| format!("Secret {namespace}/{name} key {key} is not UTF-8"));
        }
        OPERATOR_SECRETS
            .iter()
            .find(|(secret, k, _)| *secret == name && (*k == key || *k == "*"))
            .map(|(_, _, value)| (*value).to_owned())
            .ok_or_else(|| {
                format!("Secret {namespace}/{name} is neither rendered nor made by the operator")
            })
    }

    fn config_map(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
        let object = self
            .find("ConfigMap", namespace, name)
            .ok_or_else(|| format!("no ConfigMap {namespace}/{name}"))?;
        let map: ConfigMap = serde_json::from_value(object.value.clone()).unwrap();
        Ok(map.data.unwrap_or_default())
    }

    /// The environment of `container` as the kubelet would set it.
    fn environment(
        &self,
        workload: &Object,
        container: &Container,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        for var in container.env.iter().flatten() {
            let value = self.env_value(workload, var, &env)?;
            env.retain(|(name, _)| name != &var.name);
            env.push((var.name.clone(), value));
        }
        if container.env_from.is_some() {
            return Err("envFrom is not supported by this check".to_owned());
        }
        Ok(env)
    }

    fn env_value(
        &self,
        workload: &Object,
        var: &EnvVar,
        earlier: &[(String, String)],
    ) -> Result<String, String> {
        let ns = workload.namespace.as_str();
        if let Some(value) = &var.value {
            return Ok(expand(value, earlier));
        }
        let from = var
            .value_from
            .as_ref()
            .ok_or_else(|| format!("env {} has neither value nor valueFrom", var.name))?;
        if let Some(field) = &from.field_ref {
            return match field.field_path.as_str() {
                "spec.nodeName" => Ok("test-node".to_owned()),
                "metadata.name" => Ok(format!("{}-0", workload.name)),
                "metadata.namespace" => Ok(ns.to_owned()),
                other => Err(format!("env {}: fieldRef {other} unknown here", var.name)),
            };
        }
        if let Some(key) = &from.secret_key_ref {
            return self.secret_value(ns, &key.name, &key.key);
        }
        if let Some(key) = &from.config_map_key_ref {
            return self
                .config_map(ns, &key.name)?
                .remove(&key.key)
                .ok_or_else(|| format!("ConfigMap {ns}/{} has no key {}", key.name, key.key));
        }
        Err(format!("env {}: unsupported valueFrom", var.name))
    }

    /// `host:port` of NATS's client Service, as the manifests name it.
    fn nats_address(&self) -> String {
        let service = self.find("Service", "vigil", "vigil-nats").unwrap();
        let port = service
            .value
            .pointer("/spec/ports")
            .and_then(|p| p.as_array())
            .and_then(|ports| ports.iter().find(|p| p["name"] == "client"))
            .and_then(|p| p["port"].as_i64())
            .unwrap();
        format!("vigil-nats.vigil.svc.cluster.local:{port}")
    }

    /// A nats-server with this overlay's users and the base's single-server
    /// configuration; its store and files live in `dir`.
    fn start_nats(&self, dir: &Path) -> NatsServer {
        let data = self.config_map("vigil", &self.nats_config_name()).unwrap();
        for (file, text) in &data {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let single = std::fs::read_to_string(k8s_dir().join("base/nats/nats.conf")).unwrap();
        std::fs::write(dir.join("nats.conf"), single).unwrap();
        let nats = self.find("StatefulSet", "vigil", "vigil-nats").unwrap();
        let spec = pod_spec(nats);
        let env = self.environment(nats, &spec.containers[0]).unwrap();
        NatsServer::start_with_config(&dir.join("nats.conf"), &env)
    }

    fn nats_config_name(&self) -> String {
        self.objects
            .iter()
            .find(|o| o.kind == "ConfigMap" && o.name.starts_with("vigil-nats-config"))
            .map(|o| o.name.clone())
            .unwrap()
    }

    /// Every Vigil service container, prepared under `root`.
    fn prepare_all(&self, root: &Path, nats_url: &str) -> Vec<Prepared> {
        let mut prepared = Vec::new();
        for workload in &self.objects {
            if pss::pod_template(workload).is_none() || workload.name == "vigil-nats" {
                continue;
            }
            let spec = pod_spec(workload);
            for container in &spec.containers {
                let at = format!(
                    "{} {} container {}",
                    self.overlay,
                    workload.id(),
                    container.name
                );
                let dir = root.join(format!("{}-{}", workload.name, container.name));
                prepared.push(
                    self.prepare(workload, &spec, container, &dir, nats_url)
                        .unwrap_or_else(|e| panic!("{at}: {e}")),
                );
            }
        }
        prepared
    }

    fn prepare(
        &self,
        workload: &Object,
        spec: &PodSpec,
        container: &Container,
        root: &Path,
        nats_url: &str,
    ) -> Result<Prepared, String> {
        let at = format!(
            "{} {} container {}",
            self.overlay,
            workload.id(),
            container.name
        );
        let binary_name = binary_of(container)?;
        let service = binary_name.trim_start_matches("vigil-").to_owned();
        // Mount path → where it is here, longest first so nested mounts win.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        let mut files = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            if mount.sub_path.is_some() {
                return Err(format!(
                    "mount {}: subPath is not supported here",
                    mount.name
                ));
            }
            let volume = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .ok_or_else(|| format!("mount {} names no volume", mount.name))?;
            let local = if let Some(map) = &volume.config_map {
                if map.items.is_some() {
                    return Err(format!(
                        "volume {}: items are not supported here",
                        volume.name
                    ));
                }
                let local = root.join(mount.mount_path.trim_start_matches('/'));
                for (file, text) in self.config_map(&workload.namespace, &map.name)? {
                    files.push((local.join(file), text));
                }
                local
            } else if let Some(host) = &volume.host_path {
                PathBuf::from(&host.path)
            } else {
                root.join(mount.mount_path.trim_start_matches('/'))
            };
            mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), local));
        }
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let mut listens = BTreeMap::new();
        let nats_address = self.nats_address();
        let mut rewrite = |text: &str| -> String {
            let mut out = text.replace(&nats_address, nats_url);
            for (path, local) in &mounts {
                out = replace_path(&out, path, local);
            }
            rewrite_listens(&out, &mut listens)
        };
        let files = files
            .into_iter()
            .map(|(path, text)| (path, rewrite(&text)))
            .collect::<Vec<_>>();
        let env = self
            .environment(workload, container)?
            .into_iter()
            .map(|(name, value)| (name, rewrite(&value)))
            .collect();
        if container.command.is_some() {
            return Err(format!("{at}: command overrides the image's entrypoint"));
        }
        let args = container
            .args
            .iter()
            .flatten()
            .map(|arg| rewrite(arg))
            .collect();
        let admin = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("admin"))
            .and_then(|p| listens.get(&format!("0.0.0.0:{}", p.container_port)))
            .copied();
        let probe_paths = [&container.readiness_probe, &container.liveness_probe]
            .into_iter()
            .flatten()
            .filter_map(|probe| probe.http_get.as_ref()?.path.clone())
            .collect();
        Ok(Prepared {
            at,
            binary: vigil_testkit::binary(&binary_name),
            service,
            args,
            env,
            files,
            admin,
            probe_paths,
        })
    }
}

fn pod_spec(object: &Object) -> PodSpec {
    pss::pod_template(object).unwrap().spec.unwrap()
}

/// The service binary a container runs: its image's name (`…/vigil-responder:tag`).
fn binary_of(container: &Container) -> Result<String, String> {
    let image = container.image.as_deref().ok_or("no image")?;
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    if name.starts_with("vigil-") {
        Ok(name.to_owned())
    } else {
        Err(format!("image {image} is not a vigil-<service> image"))
    }
}

/// Kubernetes' `$(VAR)` expansion: earlier variables of the same container;
/// an unknown reference stays as written, as the kubelet leaves it.
fn expand(value: &str, earlier: &[(String, String)]) -> String {
    let mut out = value.to_owned();
    for (name, resolved) in earlier {
        out = out.replace(&format!("$({name})"), resolved);
    }
    out
}

/// Replaces `path` where it starts a path (followed by `/`, a quote, space
/// or the end), so `/etc/vigil` does not match `/etc/vigilant`.
fn replace_path(text: &str, path: &str, local: &Path) -> String {
    let local = local.display().to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find(path) {
        let after = &rest[index + path.len()..];
        let boundary = after
            .chars()
            .next()
            .is_none_or(|c| matches!(c, '/' | '"' | '\'' | ' ' | '\n' | ','));
        out.push_str(&rest[..index]);
        out.push_str(if boundary { &local } else { path });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Each `0.0.0.0:<port>` becomes a free loopback port (the same one for the
/// same port within a container).
fn rewrite_listens(text: &str, chosen: &mut BTreeMap<String, SocketAddr>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find("0.0.0.0:") {
        out.push_str(&rest[..index]);
        let after = &rest[index + "0.0.0.0:".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let original = format!("0.0.0.0:{digits}");
        let local = *chosen.entry(original).or_insert_with(free_addr);
        out.push_str(&local.to_string());
        rest = &after[digits.len()..];
    }
    out.push_str(rest);
    out
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Starts `prepared` and waits until it has logged in to NATS. Err with the
/// reason and its output when it exits first (78 = configuration error) or
/// never gets there.
fn start(prepared: &Prepared, kube_url: &str, log_dir: &Path, ready: Ready) -> Result<(), String> {
    for (path, text) in &prepared.files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let log = log_dir.join(format!("{}.log", prepared.at.replace([' ', '/'], "_")));
    let out = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(&prepared.binary);
    command
        .args(&prepared.args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if KUBE_SERVICES.contains(&prepared.service.as_str()) {
        let prefix = vigil_service::config::env_prefix(&prepared.service);
        command.env(format!("{prefix}KUBE__API_URL"), kube_url);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", prepared.binary.display()))?;
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    let outcome = loop {
        let reached = text().contains(CONNECTED)
            && match ready {
                Ready::Connected => true,
                Ready::Healthy => prepared.admin.is_some_and(|admin| {
                    !prepared.probe_paths.is_empty()
                        && prepared.probe_paths.iter().all(|path| {
                            vigil_testkit::http_get(admin, path)
                                .is_some_and(|(code, _)| code == 200)
                        })
                }),
            };
        if reached {
            break Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            let code = status
                .code()
                .map_or("a signal".to_owned(), |c| c.to_string());
            break Err(format!("exited with {code} before it was {ready:?}"));
        }
        if started.elapsed() > PATIENCE {
            break Err(format!("was not {ready:?} within {PATIENCE:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop(&mut child);
    outcome.map_err(|why| {
        format!(
            "{}: {} {}: {why}; output:\n{}",
            prepared.at,
            prepared.binary.display(),
            prepared.args.join(" "),
            text()
        )
    })
}

/// How far a service must get.
#[derive(Clone, Copy, Debug)]
enum Ready {
    /// Logged in to NATS.
    Connected,
    /// Logged in, streams and consumers in place: every probe path the
    /// manifest gives (`/healthz` for readiness, `/livez` for liveness)
    /// answers 200.
    Healthy,
}

fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let exited =
        vigil_testkit::wait_until(Duration::from_secs(10), || child.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn fake_kube(runtime: &tokio::runtime::Runtime) -> FakeKube {
    runtime
        .block_on(FakeKube::start(Rbac::allow_all()))
        .unwrap()
}

#[test]
fn every_service_of_every_overlay_starts_with_its_manifest_configuration() {
    if !require_root("every_service_of_every_overlay_starts_with_its_manifest_configuration") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kube = fake_kube(&runtime);
    let mut failures = Vec::new();
    let mut started = Vec::new();
    for rendered in rendered() {
        let dir = tempfile::tempdir().unwrap();
        let nats_dir = dir.path().join("nats");
        std::fs::create_dir_all(&nats_dir).unwrap();
        let nats = rendered.start_nats(&nats_dir);
        let nats_url = nats.url().trim_start_matches("nats://").to_owned();
        let prepared = rendered.prepare_all(dir.path(), &nats_url);
        assert!(
            prepared.len() >= 6,
            "{}: only {} service containers",
            rendered.overlay,
            prepared.len()
        );
        // Prod's streams have three replicas, which one test server cannot
        // hold: there, logging in is as far as a service can get.
        let ready = if rendered.overlay == "prod" {
            Ready::Connected
        } else {
            Ready::Healthy
        };
        for service in &prepared {
            match start(service, &kube.url(), dir.path(), ready) {
                Ok(()) => started.push(service.at.clone()),
                Err(why) => failures.push(why),
            }
        }
    }
    println!(
        "started (dev: healthy; prod: logged in to NATS):\n  {}",
        started.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} service container(s) did not start with their manifest configuration:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_config_key_the_binary_does_not_know_fails_the_check_by_file_and_key() {
    let rendered = rendered().into_iter().find(|r| r.overlay == "dev").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No NATS is needed: the configuration is refused before any connection.
    let unreachable = "127.0.0.1:9".to_owned();
    let mut checked = Vec::new();
    for mut prepared in rendered.prepare_all(dir.path(), &unreachable) {
        let Some((path, text)) = prepared
            .files
            .iter_mut()
            .find(|(path, _)| path.ends_with(format!("{}.toml", prepared.service)))
        else {
            continue;
        };
        *text = format!("unknown_setting = true\n{text}");
        let file = path.display().to_string();
        let error = start(
            &prepared,
            "http://127.0.0.1:9",
            dir.path(),
            Ready::Connected,
        )
        .unwrap_err();
        assert!(error.contains("exited with 78"), "{error}");
        assert!(
            error.contains("unknown_setting: unknown field: found `unknown_setting`"),
            "key not named: {error}"
        );
        assert!(
            error.contains(&format!("(from {file})")),
            "file {file} not named: {error}"
        );
        checked.push(prepared.at);
    }
    assert_eq!(checked.len(), 7, "every service container: {checked:?}");
}

#[test]
fn the_shipped_response_policy_in_k8s_is_the_responders_default() {
    let shipped =
        std::fs::read_to_string(k8s_dir().join("base/services/responder-policy.yaml")).unwrap();
    let default =
        std::fs::read_to_string(k8s_dir().join("../responder/policy/default.yaml")).unwrap();
    assert_eq!(
        shipped, default,
        "k8s/base/services/responder-policy.yaml must be a copy of responder/policy/default.yaml"
    );
}

/// The port of `0.0.0.0:<port>` under `key = "..."` in a TOML text, if set.
fn toml_listen_port(text: &str, section: &str, key: &str) -> Option<u16> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).to_owned();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return v.trim().trim_matches('"').rsplit(':').next()?.parse().ok();
        }
    }
    None
}

#[test]
fn listen_addresses_match_the_services_that_target_them() {
    for rendered in rendered() {
        let overlay = &rendered.overlay;
        let console = rendered
            .find("Deployment", "vigil", "vigil-console")
            .unwrap();
        let spec = pod_spec(console);
        let container = &spec.containers[0];
        let port_of = |name: &str| {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port)
                .unwrap_or_else(|| panic!("{overlay}: console has no port {name}"))
        };
        let service = rendered.find("Service", "vigil", "vigil-console").unwrap();
        let target = service.value.pointer("/spec/ports/0/targetPort").unwrap();
        let target = target
            .as_str()
            .map(port_of)
            .or_else(|| target.as_i64().map(|p| p as i32))
            .unwrap();
        // The ConfigMap the console mounts (prod's name carries a hash).
        let map = spec
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.config_map.as_ref())
            .unwrap();
        let config = rendered.config_map("vigil", &map.name).unwrap();
        let toml = &config["console.toml"];
        assert_eq!(
            toml_listen_port(toml, "http", "listen").map(i32::from),
            Some(target),
            "{overlay}: the console must listen where Service vigil-console sends traffic"
        );
        // The responder URL is the responder's Service, at its gRPC port.
        let responder = rendered
            .find("Service", "vigil", "vigil-responder")
            .unwrap();
        let port = responder.value.pointer("/spec/ports/0/port").unwrap();
        let expected = format!("http://vigil-responder.vigil.svc.cluster.local:{port}");
        assert!(
            toml.contains(&format!("grpc_url = \"{expected}\"")),
            "{overlay}: console.toml must name {expected}:\n{toml}"
        );
        let cluster = rendered
            .find("Deployment", "vigil", "vigil-responder-cluster")
            .unwrap();
        let env = rendered
            .environment(cluster, &pod_spec(cluster).containers[0])
            .unwrap();
        let grpc = env
            .iter()
            .find(|(name, _)| name == "VIGIL_RESPONDER__GRPC__LISTEN")
            .map(|(_, value)| value.clone())
            .unwrap();
        assert_eq!(
            grpc,
            format!("0.0.0.0:{port}"),
            "{overlay}: the cluster responder serves where its Service points"
        );
    }
}
