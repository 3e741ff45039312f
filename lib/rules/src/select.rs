//! Which defined rules run: the files' `enabled`, then the configuration's
//! selection (tags, then names, then a minimum priority), then whether the
//! engine can evaluate them at all.

use std::fmt;

use vigil_proto::v1::Priority;

use crate::loader::RuleDef;

/// Rules turned on or off by configuration, applied after the files.
///
/// Precedence: a rule starts as its file says; `enable_tags` turns on the
/// rules carrying one of the tags and `disable_tags` turns off those
/// carrying one (disable wins for a rule with both); then `enable_rules`
/// and `disable_rules` by exact name, which beat tags; finally a rule below
/// `min_priority` never runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub enable_rules: Vec<String>,
    pub disable_rules: Vec<String>,
    pub enable_tags: Vec<String>,
    pub disable_tags: Vec<String>,
    pub min_priority: Priority,
}

/// Why a defined rule does not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `enabled: false` in its file.
    File,
    /// Named in `disable_rules`.
    Name,
    /// Carries a tag named in `disable_tags`.
    Tag(String),
    /// Below `min_priority`.
    Priority,
    /// For another event source (`k8s_audit`, plugins): loaded, not evaluated.
    Source(String),
    /// Its condition needs fields the events do not carry.
    Unsupported(Vec<String>),
    /// Names a field this engine does not know, and opted into skipping
    /// (`skip-if-unknown-filter: true`).
    UnknownField(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::File => write!(f, "disabled in its file"),
            Reason::Name => write!(f, "disabled by name in the configuration"),
            Reason::Tag(tag) => write!(f, "disabled by tag {tag:?} in the configuration"),
            Reason::Priority => write!(f, "below the minimum priority"),
            Reason::Source(source) => write!(f, "source {source:?} is not evaluated"),
            Reason::Unsupported(fields) => write!(f, "needs unsupported {}", fields.join(", ")),
            Reason::UnknownField(field) => {
                write!(f, "unknown field {field} (skip-if-unknown-filter)")
            }
        }
    }
}

/// A name or tag in the selection that no defined rule has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{list}: {message}")]
pub struct SelectionError {
    /// `enable_rules`, `disable_rules`, `enable_tags` or `disable_tags`.
    pub list: &'static str,
    pub message: String,
}

impl Selection {
    /// Whether the configuration lets `rule` run, before the engine's own
    /// limits.
    pub(crate) fn decide(&self, rule: &RuleDef) -> Result<(), Reason> {
        let has = |tags: &[String]| tags.iter().find(|t| rule.tags.contains(t)).cloned();
        let mut verdict = if rule.enabled {
            Ok(())
        } else {
            Err(Reason::File)
        };
        if has(&self.enable_tags).is_some() {
            verdict = Ok(());
        }
        if let Some(tag) = has(&self.disable_tags) {
            verdict = Err(Reason::Tag(tag));
        }
        if self.enable_rules.contains(&rule.name) {
            verdict = Ok(());
        }
        if self.disable_rules.contains(&rule.name) {
            verdict = Err(Reason::Name);
        }
        if (rule.priority as i32) < (self.min_priority as i32) {
            verdict = Err(Reason::Priority);
        }
        verdict
    }

    /// Every name and tag that matches no defined rule (a typo would
    /// otherwise leave a noisy rule running or a wanted one off), and every
    /// name listed both to enable and to disable.
    pub(crate) fn check(&self, rules: &[RuleDef]) -> Vec<SelectionError> {
        let mut errors = Vec::new();
        let named = |name: &String| rules.iter().any(|r| &r.name == name);
        let tagged = |tag: &String| rules.iter().any(|r| r.tags.contains(tag));
        for (list, values) in [
            ("enable_rules", &self.enable_rules),
            ("disable_rules", &self.disable_rules),
        ] {
            errors.extend(values.iter().filter(|v| !named(v)).map(|v| SelectionError {
                list,
                message: format!("no rule is named {v:?}"),
            }));
        }
        for (list, values) in [
            ("enable_tags", &self.enable_tags),
            ("disable_tags", &self.disable_tags),
        ] {
            errors.extend(
                values
                    .iter()
                    .filter(|v| !tagged(v))
                    .map(|v| SelectionError {
                        list,
                        message: format!("no rule has the tag {v:?}"),
                    }),
            );
        }
        errors.extend(
            self.enable_rules
                .iter()
                .filter(|name| self.disable_rules.contains(name))
                .map(|name| SelectionError {
                    list: "disable_rules",
                    message: format!("{name:?} is also in enable_rules"),
                }),
        );
        errors
    }
}
