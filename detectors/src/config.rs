//! The detectors' configuration: `[nats]`, `[admin]`, `[log]` plus `[rules]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names this instance in its NATS client name and findings' `hostname`.
    pub node_name: String,
    pub rules: RulesConfig,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

/// Which rules files are loaded, in order: the default pack first (when
/// enabled), then `files`, so local files can append to or override it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    pub default_pack: bool,
    pub files: Vec<PathBuf>,
    /// How often rules files are checked for changes (0 = only on SIGHUP).
    pub watch_interval_ms: u64,
    /// Event batches evaluated while earlier ones wait for JetStream to
    /// confirm their findings.
    pub max_in_flight: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            default_pack: true,
            files: Vec::new(),
            watch_interval_ms: 2_000,
            max_in_flight: 64,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            rules: RulesConfig::default(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        if !self.rules.default_pack && self.rules.files.is_empty() {
            problems.add(
                "rules.files",
                "no rules: the default pack is off and no files are listed",
            );
        }
        if self.rules.max_in_flight == 0 {
            problems.add("rules.max_in_flight", "must be at least 1");
        }
        // Every file must load now; a broken file at start is a config error.
        if let Err(error) = crate::engine::load(&self.rules) {
            problems.add("rules.files", error);
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
    fn defaults_are_valid_and_load_the_pack() {
        let config = load(&[]).unwrap();
        assert!(config.rules.default_pack);
        assert!(config.rules.files.is_empty());
        assert!(!config.node_name.is_empty());
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let error = load(&[
            ("VIGIL_DETECTORS__RULES__DEFAULT_PACK", "false"),
            ("VIGIL_DETECTORS__RULES__MAX_IN_FLIGHT", "0"),
            ("VIGIL_DETECTORS__NODE_NAME", " "),
        ])
        .unwrap_err();
        let text = error.to_string();
        for key in ["rules.files", "rules.max_in_flight", "node_name"] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let unknown = load(&[("VIGIL_DETECTORS__RULES__FILE", "[]")]).unwrap_err();
        assert!(unknown.to_string().contains("file"), "{unknown}");
    }

    #[test]
    fn a_broken_rules_file_is_a_config_error_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            "- rule: R\n  desc: d\n  condition: proc.nmae = sh\n  output: o\n  priority: info\n",
        )
        .unwrap();
        let files = format!("[{:?}]", path.display().to_string());
        let error = load(&[("VIGIL_DETECTORS__RULES__FILES", &files)]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("bad.yaml:3:14"), "{text}");
        assert!(text.contains("proc.nmae"), "{text}");
    }
}
