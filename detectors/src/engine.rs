//! Which rules run: the default pack shipped in the binary plus configured
//! files and directories, compiled by `vigil-rules` with the configured
//! selection, swappable at run time.
//!
//! Reloads build a complete new rule set first and swap it in only when it
//! compiled, so a broken edit never leaves the service without rules.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use vigil_rules::{LoadError, LoadErrors, Loader, RuleSet};

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

/// Loads the configured rules: the pack, then each file, then each
/// directory's files, in order; every error of every file at once.
pub fn load(config: &RulesConfig) -> Result<RuleSet, LoadErrors> {
    let (files, unreadable) = rule_files(config);
    let mut loader = Loader::default();
    if config.default_pack {
        for (name, text) in DEFAULT_PACK {
            loader.source(name, text);
        }
    }
    for file in &files {
        loader.file(file);
    }
    match loader.build(&config.selection()) {
        Ok(rules) if unreadable.is_empty() => Ok(rules),
        Ok(rules) => Err(LoadErrors {
            files: unreadable,
            warnings: rules.warnings,
            ..LoadErrors::default()
        }),
        Err(mut errors) => {
            errors.files.splice(0..0, unreadable);
            Err(errors)
        }
    }
}

/// The configured files, then every `*.yaml` of each directory by name,
/// and the directories that cannot be listed. Hidden entries (a mounted
/// ConfigMap's `..data`) are left out; the files in it are symbolic links
/// that `*.yaml` names reach.
pub fn rule_files(config: &RulesConfig) -> (Vec<PathBuf>, Vec<LoadError>) {
    let mut files = config.files.clone();
    let mut errors = Vec::new();
    for directory in &config.directories {
        match yaml_files(directory) {
            Ok(found) => files.extend(found),
            Err(error) => errors.push(LoadError::at(
                &directory.display().to_string(),
                0,
                0,
                format!("cannot list the rules directory: {error}"),
            )),
        }
    }
    (files, errors)
}

fn yaml_files(directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with('.') && name.ends_with(".yaml") && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
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

    #[test]
    fn a_directory_gives_its_yaml_files_by_name_and_leaves_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yaml", "notes.txt", ".hidden.yaml"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        let config = RulesConfig {
            directories: vec![dir.path().into(), dir.path().join("missing")],
            ..RulesConfig::default()
        };
        let (files, errors) = rule_files(&config);
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("missing"), "{}", errors[0]);
    }
}
