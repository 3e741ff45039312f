//! The responder's configuration: `[nats]`, `[admin]`, `[log]`, the process
//! mode, the response policy file, `[grpc]` and `[kube]`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use vigil_grpc_auth::{Roles, TlsConfig, Transport};
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

use crate::policy::{Policy, PolicyError};

pub const DEFAULT_FREEZE_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_CGROUP_ROOT: &str = vigil_cgroup::DEFAULT_ROOT;
pub const DEFAULT_KUBE_TIMEOUT_MS: u64 = 5_000;

/// What this process does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Node agent (DaemonSet): node-level actions for findings of this node.
    #[default]
    Node,
    /// Cluster actor (Deployment): Kubernetes API actions for every node.
    Cluster,
    /// Both, for findings of this node (one-node clusters, the demo).
    Both,
}

impl Mode {
    pub fn node_actions(self) -> bool {
        matches!(self, Mode::Node | Mode::Both)
    }

    pub fn cluster_actions(self) -> bool {
        matches!(self, Mode::Cluster | Mode::Both)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node; a node agent acts only on findings with the same `node`.
    pub node_name: String,
    pub mode: Mode,
    /// The namespace this process runs in (in Kubernetes, `metadata.namespace`
    /// through the downward API): protected whatever the policy says.
    pub own_namespace: Option<String>,
    /// Where the rest of Vigil runs (NATS, the other services, the other
    /// responders): protected like `own_namespace`.
    pub vigil_namespaces: Vec<String>,
    /// Record what would be done (outcome DRY_RUN) without doing it,
    /// whatever the policy says.
    pub dry_run: bool,
    /// The response policy (YAML); the built-in default when unset.
    pub policy_file: Option<PathBuf>,
    /// How long a freeze may take before it is reported FAILED.
    pub freeze_timeout_ms: u64,
    /// Where the cgroup hierarchies are mounted (v2 at the root or at
    /// `unified/`, the v1 freezer at `freezer/`).
    pub cgroup_root: PathBuf,
    pub grpc: GrpcConfig,
    /// The control API's mutual TLS (cert, key, CA); required when
    /// `grpc.listen` is reachable from other hosts, unless `grpc_plaintext`.
    pub grpc_tls: Option<TlsConfig>,
    /// Serve the control API without TLS or identities (dev only): every
    /// caller may quarantine, and `requested_by` is what it says.
    pub grpc_plaintext: bool,
    /// Which client certificate identities may act (quarantine, release)
    /// and which may only list.
    pub grpc_roles: Roles,
    pub kube: KubeConfig,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

/// The control API (`vigil.v1.Responder`: quarantine, release, list).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Address to serve on; no gRPC server when unset.
    pub listen: Option<SocketAddr>,
}

/// The Kubernetes API, for cluster-level actions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeConfig {
    pub enabled: bool,
    /// API server URL; unset means in-cluster config or kubeconfig.
    pub api_url: Option<String>,
    /// Per request, retries included.
    pub timeout_ms: u64,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_url: None,
            timeout_ms: DEFAULT_KUBE_TIMEOUT_MS,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            mode: Mode::default(),
            own_namespace: None,
            vigil_namespaces: Vec::new(),
            dry_run: false,
            policy_file: None,
            freeze_timeout_ms: DEFAULT_FREEZE_TIMEOUT_MS,
            cgroup_root: PathBuf::from(DEFAULT_CGROUP_ROOT),
            grpc: GrpcConfig::default(),
            grpc_tls: None,
            grpc_plaintext: false,
            grpc_roles: Roles::default(),
            kube: KubeConfig::default(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// The response policy: the configured file, else the built-in one,
    /// with this process's own and Vigil's namespaces protected.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        let policy = match &self.policy_file {
            Some(path) => Policy::load(path)?,
            None => Policy::default_policy()?,
        };
        let vigil = self.own_namespace.iter().chain(&self.vigil_namespaces);
        Ok(policy.protecting_vigil(vigil.map(String::as_str)))
    }

    /// How the control API talks to callers, when it is served; problems
    /// (plaintext off loopback without `grpc_plaintext`, unreadable TLS
    /// files) are reported under `grpc_tls` / `grpc_plaintext`.
    pub fn grpc_transport(&self, problems: &mut Problems) -> Option<Transport> {
        let listen = self.grpc.listen?;
        Transport::from_config(
            "grpc_",
            listen,
            self.grpc_tls.as_ref(),
            self.grpc_plaintext,
            &self.grpc_roles,
            problems,
        )
    }

    pub fn freeze_timeout(&self) -> Duration {
        Duration::from_millis(self.freeze_timeout_ms)
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        problems.positive("freeze_timeout_ms", self.freeze_timeout_ms);
        problems.positive("kube.timeout_ms", self.kube.timeout_ms);
        if !self.cgroup_root.is_absolute() {
            problems.add(
                "cgroup_root",
                format!("{} is not an absolute path", self.cgroup_root.display()),
            );
        }
        if self.mode.cluster_actions() && !self.kube.enabled {
            problems.add(
                "kube.enabled",
                format!(
                    "mode {:?} acts through the Kubernetes API, so kube.enabled must be true",
                    self.mode
                ),
            );
        }
        if let Err(error) = self.policy() {
            problems.add("policy_file", error);
        }
        self.grpc_transport(problems);
    }
}

impl vigil_service::process::ServiceConfig for Config {
    fn log(&self) -> &vigil_service::LogConfig {
        &self.log
    }

    fn admin(&self) -> &vigil_service::AdminConfig {
        &self.admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, vigil_service::ConfigError> {
        vigil_service::config::load(
            "responder",
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_valid_and_cautious() {
        let config = load(&[]).unwrap();
        assert!(!config.dry_run);
        assert_eq!(config.mode, Mode::Node);
        assert!(!config.kube.enabled);
        assert_eq!(config.grpc.listen, None);
        let policy = config.policy().unwrap();
        assert!(policy.protected_namespaces.contains("kube-system"));
        assert!(policy.protected_namespaces.contains("vigil-system"));
        assert_eq!(config.freeze_timeout(), Duration::from_secs(2));
        assert_eq!(config.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn environment_overrides_mode_grpc_and_kube() {
        let config = load(&[
            ("VIGIL_RESPONDER__DRY_RUN", "true"),
            ("VIGIL_RESPONDER__MODE", "both"),
            ("VIGIL_RESPONDER__GRPC__LISTEN", "127.0.0.1:7070"),
            ("VIGIL_RESPONDER__KUBE__ENABLED", "true"),
            ("VIGIL_RESPONDER__KUBE__API_URL", "http://127.0.0.1:1"),
            // What k8s/base/services/responder.yaml sets from metadata.namespace.
            ("VIGIL_RESPONDER__OWN_NAMESPACE", "vigil-test"),
            (
                "VIGIL_RESPONDER__VIGIL_NAMESPACES",
                "[vigil-nats, vigil-web]",
            ),
        ])
        .unwrap();
        assert_eq!(config.own_namespace.as_deref(), Some("vigil-test"));
        let policy = config.policy().unwrap();
        for namespace in ["vigil-test", "vigil-nats", "vigil-web"] {
            let protection = policy.protection(namespace, &Default::default());
            assert!(
                protection.is_some_and(|why| why.contains("Vigil runs there")),
                "{namespace}"
            );
        }
        assert!(config.dry_run);
        assert_eq!(config.mode, Mode::Both);
        assert_eq!(config.grpc.listen, Some("127.0.0.1:7070".parse().unwrap()));
        assert_eq!(config.kube.api_url.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let bad_policy = dir.path().join("policy.yaml");
        std::fs::write(&bad_policy, "rules: 3\n").unwrap();
        let error = load(&[
            ("VIGIL_RESPONDER__FREEZE_TIMEOUT_MS", "0"),
            ("VIGIL_RESPONDER__CGROUP_ROOT", "sys/fs/cgroup"),
            ("VIGIL_RESPONDER__NODE_NAME", " "),
            ("VIGIL_RESPONDER__MODE", "cluster"),
            ("VIGIL_RESPONDER__POLICY_FILE", bad_policy.to_str().unwrap()),
        ])
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 5, "{text}");
        for key in [
            "freeze_timeout_ms",
            "cgroup_root",
            "node_name",
            "kube.enabled",
            "policy_file",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(text.contains("policy.yaml:1:"), "{text}");
        let mistyped = load(&[("VIGIL_RESPONDER__MODE", "everywhere")]).unwrap_err();
        assert!(mistyped.to_string().contains("mode"), "{mistyped}");
    }
}
