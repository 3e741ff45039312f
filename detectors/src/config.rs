//! The detectors' configuration: `[nats]`, `[admin]`, `[log]` plus the
//! settings of the built-in rules.

use serde::{Deserialize, Serialize};
use vigil_proto::v1::Priority;
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

use crate::rules::RuleSettings;

/// Reverse-shell (4444) and Stratum mining-pool (3333, 5555, 14444) ports.
pub const DEFAULT_SUSPICIOUS_PORTS: &[u16] = &[4444, 3333, 5555, 14444];
pub const DEFAULT_SUSPICIOUS_PORT_PRIORITY: &str = "critical";
/// See `rules/shell.rs` for why a shell is only a notice by default.
pub const DEFAULT_SHELL_PRIORITY: &str = "notice";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names this instance in its NATS client name.
    pub node_name: String,
    /// Destination ports that raise "Outbound connection to suspicious
    /// port"; an empty list disables the rule.
    pub suspicious_ports: Vec<u16>,
    /// Priority of that rule's findings (`notice`, `warning`, `critical`, ...).
    pub suspicious_port_priority: String,
    /// Priority of "Shell spawned in container" findings.
    pub shell_priority: String,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            suspicious_ports: DEFAULT_SUSPICIOUS_PORTS.to_vec(),
            suspicious_port_priority: DEFAULT_SUSPICIOUS_PORT_PRIORITY.to_owned(),
            shell_priority: DEFAULT_SHELL_PRIORITY.to_owned(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// A priority key that did not parse (only reachable without `validate`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {value:?} is not a priority")]
pub struct PriorityError {
    pub key: &'static str,
    pub value: String,
}

impl Config {
    /// The rule settings, with priorities parsed.
    pub fn rule_settings(&self) -> Result<RuleSettings, PriorityError> {
        Ok(RuleSettings {
            shell_priority: priority("shell_priority", &self.shell_priority)?,
            suspicious_ports: self.suspicious_ports.clone(),
            suspicious_port_priority: priority(
                "suspicious_port_priority",
                &self.suspicious_port_priority,
            )?,
        })
    }
}

fn priority(key: &'static str, value: &str) -> Result<Priority, PriorityError> {
    Priority::from_label(value).ok_or_else(|| PriorityError {
        key,
        value: value.to_owned(),
    })
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        for (key, value) in [
            ("shell_priority", &self.shell_priority),
            ("suspicious_port_priority", &self.suspicious_port_priority),
        ] {
            if let Err(error) = Priority::parse_label(value) {
                problems.add(key, error);
            }
        }
        if self.suspicious_ports.contains(&0) {
            problems.add("suspicious_ports", "port 0 cannot be connected to");
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
            "detectors",
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(&[]).unwrap();
        assert_eq!(config.suspicious_ports, DEFAULT_SUSPICIOUS_PORTS);
        let settings = config.rule_settings().unwrap();
        assert_eq!(settings.shell_priority, Priority::Notice);
        assert_eq!(settings.suspicious_port_priority, Priority::Critical);
        assert!(!config.node_name.is_empty());
    }

    #[test]
    fn environment_overrides_rule_settings() {
        let config = load(&[
            ("VIGIL_DETECTORS__SUSPICIOUS_PORTS", "[1234, 4444]"),
            ("VIGIL_DETECTORS__SHELL_PRIORITY", "WARNING"),
        ])
        .unwrap();
        assert_eq!(config.suspicious_ports, [1234, 4444]);
        assert_eq!(
            config.rule_settings().unwrap().shell_priority,
            Priority::Warning
        );
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let error = load(&[
            ("VIGIL_DETECTORS__SHELL_PRIORITY", "loud"),
            ("VIGIL_DETECTORS__SUSPICIOUS_PORT_PRIORITY", "urgent"),
            ("VIGIL_DETECTORS__SUSPICIOUS_PORTS", "[0]"),
            ("VIGIL_DETECTORS__NODE_NAME", " "),
        ])
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 4, "{text}");
        for key in [
            "shell_priority",
            "suspicious_port_priority",
            "suspicious_ports",
            "node_name",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let unknown = load(&[("VIGIL_DETECTORS__SUSPICIOUS_PORT", "[1]")]).unwrap_err();
        assert!(unknown.to_string().contains("suspicious_port"), "{unknown}");
    }
}
