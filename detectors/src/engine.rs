//! Which rules run: the default pack shipped in the binary plus configured
//! files, compiled by `vigil-rules`, swappable at run time.
//!
//! Reloads build a complete new rule set first and swap it in only when it
//! compiled, so a broken edit never leaves the service without rules.

use std::sync::{Arc, RwLock};

use vigil_rules::{LoadError, RuleSet};

use crate::config::RulesConfig;

/// The default pack, in load order (base lists and macros first). Embedded,
/// so the binary carries its rules wherever it runs.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "detectors/rules/base.yaml",
        include_str!("../rules/base.yaml"),
    ),
    (
        "detectors/rules/process.yaml",
        include_str!("../rules/process.yaml"),
    ),
    (
        "detectors/rules/files.yaml",
        include_str!("../rules/files.yaml"),
    ),
    (
        "detectors/rules/escape.yaml",
        include_str!("../rules/escape.yaml"),
    ),
    (
        "detectors/rules/network.yaml",
        include_str!("../rules/network.yaml"),
    ),
];

/// Loads the configured rules: the pack, then each file in order.
pub fn load(config: &RulesConfig) -> Result<RuleSet, LoadError> {
    let mut texts = Vec::with_capacity(config.files.len());
    for path in &config.files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::at(&name, 0, 0, format!("cannot read the rules file: {e}")))?;
        texts.push((name, text));
    }
    let mut sources: Vec<(&str, &str)> = Vec::new();
    if config.default_pack {
        sources.extend_from_slice(DEFAULT_PACK);
    }
    sources.extend(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())));
    RuleSet::load_sources(&sources)
}

/// The rule set in use; readers take a snapshot per batch.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Arc<RuleSet>>,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        Self {
            current: RwLock::new(Arc::new(rules)),
        }
    }

    pub fn snapshot(&self) -> Arc<RuleSet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer never panics while holding the lock, but a poisoned
            // lock still holds a complete rule set.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, rules: RuleSet) {
        let rules = Arc::new(rules);
        match self.current.write() {
            Ok(mut guard) => *guard = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pack_loads_alone_and_under_local_files() {
        let pack = load(&RulesConfig::default()).unwrap();
        assert!(pack.rules().len() >= 80, "{}", pack.rules().len());
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.yaml");
        std::fs::write(
            &local,
            "- rule: Local rule\n  desc: d\n  condition: exec_ok and proc.name in (shell_binaries)\n  output: o\n  priority: info\n",
        )
        .unwrap();
        let config = RulesConfig {
            files: vec![local],
            ..RulesConfig::default()
        };
        let both = load(&config).unwrap();
        assert_eq!(
            both.rules().len(),
            pack.rules().len() + 1,
            "local file sees the pack's macros"
        );
    }
}
