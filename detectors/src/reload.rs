//! Hot reload: on SIGHUP, or when a configured rules file or a rules
//! directory's content changes, compile the rules again and swap them in.
//! A set that fails to compile is logged with every error's
//! file:line:column, counted, and the running set is kept.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use vigil_rules::RuleSet;

use crate::{
    config::RulesConfig,
    engine::{self, Engine},
    metrics,
};

/// Runs until `shutdown`: watches for SIGHUP and file changes.
pub async fn watch(config: RulesConfig, engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(message = "Cannot listen for SIGHUP; reloading on file changes only.", %error);
            None
        }
    };
    let interval = Duration::from_millis(config.watch_interval_ms.max(1));
    let polling =
        config.watch_interval_ms > 0 && !(config.files.is_empty() && config.directories.is_empty());
    let mut stamps = modification_times(&config);
    loop {
        let reason = tokio::select! {
            () = shutdown.cancelled() => return,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            () = tokio::time::sleep(interval), if polling => {
                let now = modification_times(&config);
                if now == stamps { continue; }
                stamps = now;
                "file change"
            }
        };
        reload(&config, &engine, reason);
    }
}

/// Compiles the configured rules and swaps them in if they compile.
pub fn reload(config: &RulesConfig, engine: &Engine, reason: &str) -> bool {
    match engine::load(config) {
        Ok(rules) => {
            announce(&rules);
            let count = rules.rules().len();
            engine.replace(rules);
            ::metrics::counter!(metrics::RELOADS, "outcome" => "applied").increment(1);
            tracing::info!(message = "Reloaded rules.", reason, rules = count);
            true
        }
        Err(errors) => {
            ::metrics::counter!(metrics::RELOADS, "outcome" => "failed").increment(1);
            for error in &errors.files {
                tracing::error!(
                    message = "Rules do not compile; keeping the running rule set.",
                    reason, file = %error.file, line = error.line, column = error.column, %error
                );
            }
            for error in &errors.selection {
                tracing::error!(
                    message = "The rule selection names no rule; keeping the running rule set.",
                    reason, key = %format!("rules.{}", error.list), %error
                );
            }
            false
        }
    }
}

/// Logs a rule set's warnings (skipped rules by name) and sets its gauges.
pub fn announce(rules: &RuleSet) {
    for warning in &rules.warnings {
        tracing::warn!(message = "Rules loaded with a warning.", %warning);
    }
    ::metrics::gauge!(metrics::RULES_LOADED).set(rules.rules().len() as f64);
    ::metrics::gauge!(metrics::RULES_SKIPPED).set(rules.summary.rules_skipped as f64);
}

/// Each rules file (directories listed afresh, so an added or removed
/// file counts as a change) with its modification time.
fn modification_times(config: &RulesConfig) -> Vec<(PathBuf, Option<SystemTime>)> {
    let (files, _) = engine::rule_files(config);
    files
        .into_iter()
        .map(|f| {
            let modified = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, modified)
        })
        .collect()
}
