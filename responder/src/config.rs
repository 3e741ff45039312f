//! The responder's configuration: `[nats]`, `[admin]`, `[log]` plus the
//! containment policy.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use vigil_proto::v1::Priority;
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

use crate::decide::Policy;

pub const DEFAULT_MIN_PRIORITY: &str = "warning";
pub const DEFAULT_PROTECTED_NAMESPACES: &[&str] = &["kube-system", "vigil-system"];
pub const DEFAULT_FREEZE_TIMEOUT_MS: u64 = 2_000;
/// Long enough to act on what arrived while the agent was restarting or
/// NATS was away; short enough that a new durable consumer, which starts at
/// the beginning of the 7-day findings stream, does not freeze pods for
/// last week's findings.
pub const DEFAULT_MAX_FINDING_AGE_MS: u64 = 3_600_000;
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node; only findings with the same `node` are acted on.
    pub node_name: String,
    /// Record what would be done (outcome DRY_RUN) without doing it.
    pub dry_run: bool,
    /// Findings below this priority are acknowledged and ignored.
    pub min_priority: String,
    /// Pods in these namespaces are never acted on (outcome REFUSED).
    pub protected_namespaces: Vec<String>,
    /// How long a freeze may take before it is reported FAILED.
    pub freeze_timeout_ms: u64,
    /// Findings older than this (by their wall-clock time) are ignored.
    pub max_finding_age_ms: u64,
    /// Where the cgroup hierarchies are mounted (v2 at the root or at
    /// `unified/`, the v1 freezer at `freezer/`).
    pub cgroup_root: PathBuf,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            dry_run: false,
            min_priority: DEFAULT_MIN_PRIORITY.to_owned(),
            protected_namespaces: DEFAULT_PROTECTED_NAMESPACES
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
            freeze_timeout_ms: DEFAULT_FREEZE_TIMEOUT_MS,
            max_finding_age_ms: DEFAULT_MAX_FINDING_AGE_MS,
            cgroup_root: PathBuf::from(DEFAULT_CGROUP_ROOT),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// `min_priority` did not parse (only reachable without `validate`).
#[derive(Debug, thiserror::Error)]
#[error("min_priority: {0:?} is not a priority")]
pub struct PriorityError(pub String);

impl Config {
    /// The decision policy this configuration describes.
    pub fn policy(&self) -> Result<Policy, PriorityError> {
        let min_priority = Priority::from_label(&self.min_priority)
            .ok_or_else(|| PriorityError(self.min_priority.clone()))?;
        Ok(Policy {
            node: self.node_name.clone(),
            min_priority,
            protected_namespaces: self
                .protected_namespaces
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
            max_finding_age_ns: self.max_finding_age_ms.saturating_mul(1_000_000),
            dry_run: self.dry_run,
        })
    }

    pub fn freeze_timeout(&self) -> Duration {
        Duration::from_millis(self.freeze_timeout_ms)
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        if let Err(error) = Priority::parse_label(&self.min_priority) {
            problems.add("min_priority", error);
        }
        if self
            .protected_namespaces
            .iter()
            .any(|n| n.trim().is_empty())
        {
            problems.add("protected_namespaces", "names must not be empty");
        }
        problems.positive("freeze_timeout_ms", self.freeze_timeout_ms);
        problems.positive("max_finding_age_ms", self.max_finding_age_ms);
        if !self.cgroup_root.is_absolute() {
            problems.add(
                "cgroup_root",
                format!("{} is not an absolute path", self.cgroup_root.display()),
            );
        }
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
        let policy = config.policy().unwrap();
        assert!(!policy.dry_run);
        assert_eq!(policy.min_priority, Priority::Warning);
        assert!(policy.protected_namespaces.contains("kube-system"));
        assert!(policy.protected_namespaces.contains("vigil-system"));
        assert_eq!(config.freeze_timeout(), Duration::from_secs(2));
        assert_eq!(config.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn environment_overrides_the_policy() {
        let config = load(&[
            ("VIGIL_RESPONDER__DRY_RUN", "true"),
            ("VIGIL_RESPONDER__MIN_PRIORITY", "CRITICAL"),
            ("VIGIL_RESPONDER__PROTECTED_NAMESPACES", "[\"prod\"]"),
        ])
        .unwrap();
        let policy = config.policy().unwrap();
        assert!(policy.dry_run);
        assert_eq!(policy.min_priority, Priority::Critical);
        assert_eq!(policy.protected_namespaces.len(), 1);
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let error = load(&[
            ("VIGIL_RESPONDER__MIN_PRIORITY", "loud"),
            ("VIGIL_RESPONDER__FREEZE_TIMEOUT_MS", "0"),
            ("VIGIL_RESPONDER__MAX_FINDING_AGE_MS", "0"),
            ("VIGIL_RESPONDER__CGROUP_ROOT", "sys/fs/cgroup"),
            ("VIGIL_RESPONDER__PROTECTED_NAMESPACES", "[\"\"]"),
            ("VIGIL_RESPONDER__NODE_NAME", " "),
        ])
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 6, "{text}");
        for key in [
            "min_priority",
            "freeze_timeout_ms",
            "max_finding_age_ms",
            "cgroup_root",
            "protected_namespaces",
            "node_name",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let mistyped = load(&[("VIGIL_RESPONDER__DRY_RUN", "maybe")]).unwrap_err();
        assert!(mistyped.to_string().contains("dry_run"), "{mistyped}");
    }
}
