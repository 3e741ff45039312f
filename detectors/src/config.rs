//! The detectors' configuration: `[nats]`, `[admin]`, `[log]` plus `[rules]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigil_proto::v1::Priority;
use vigil_rules::Selection;
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
/// enabled), then `files`, then each of `directories`' `*.yaml` files by
/// name, so local files can append to or override what came before. Then
/// the selection decides which of the defined rules run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    pub default_pack: bool,
    pub files: Vec<PathBuf>,
    /// Directories of rules files (a mounted ConfigMap): every `*.yaml`
    /// in file-name order; hidden entries are left out.
    pub directories: Vec<PathBuf>,
    /// Rules turned on by name, even if their file disables them.
    pub enable_rules: Vec<String>,
    /// Rules turned off by name.
    pub disable_rules: Vec<String>,
    /// Rules turned on when they carry one of these tags.
    pub enable_tags: Vec<String>,
    /// Rules turned off when they carry one of these tags.
    pub disable_tags: Vec<String>,
    /// Rules below this priority never run.
    pub min_priority: MinPriority,
    /// How often rules files and directories are checked for changes
    /// (0 = only on SIGHUP).
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
            directories: Vec::new(),
            enable_rules: Vec::new(),
            disable_rules: Vec::new(),
            enable_tags: Vec::new(),
            disable_tags: Vec::new(),
            min_priority: MinPriority(Priority::Debug),
            watch_interval_ms: 2_000,
            max_in_flight: 64,
        }
    }
}

impl RulesConfig {
    /// Which of the defined rules run.
    pub fn selection(&self) -> Selection {
        Selection {
            enable_rules: self.enable_rules.clone(),
            disable_rules: self.disable_rules.clone(),
            enable_tags: self.enable_tags.clone(),
            disable_tags: self.disable_tags.clone(),
            min_priority: self.min_priority.0,
        }
    }
}

/// A priority written as in rules files (`warning`, `CRITICAL`, `info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct MinPriority(pub Priority);

impl TryFrom<String> for MinPriority {
    type Error = vigil_proto::UnknownPriority;

    fn try_from(label: String) -> Result<Self, Self::Error> {
        Priority::parse_label(&label).map(MinPriority)
    }
}

impl From<MinPriority> for String {
    fn from(priority: MinPriority) -> Self {
        priority.0.label().to_owned()
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
        let rules = &self.rules;
        if !rules.default_pack && rules.files.is_empty() && rules.directories.is_empty() {
            problems.add(
                "rules.files",
                "no rules: the default pack is off and no files or directories are listed",
            );
        }
        if rules.max_in_flight == 0 {
            problems.add("rules.max_in_flight", "must be at least 1");
        }
        // Every file must load now, and the selection must name rules and
        // tags that exist: each error is a problem of its own.
        if let Err(errors) = crate::engine::load(rules) {
            for error in errors.files {
                problems.add("rules", error);
            }
            for error in errors.selection {
                problems.add(&format!("rules.{}", error.list), &error.message);
            }
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
