//! The response policy, from YAML: which findings to act on, with which
//! actions, and what is never touched.
//!
//! Loading checks everything it can before the service starts: the YAML and
//! its keys (unknown keys are errors), then every value that must mean
//! something (priorities, patterns, limits, action parameters). All problems
//! are reported at once, each as `file:line:column: what is wrong`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    path::Path,
};

use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;
use vigil_proto::v1::{ActionKind, Finding, FindingSource, Priority};

use crate::actions::{self, Level};

/// The policy shipped with Vigil, used when no `policy_file` is configured.
pub const DEFAULT_POLICY: &str = include_str!("../policy/default.yaml");
/// Where [`DEFAULT_POLICY`] comes from, for messages.
pub const DEFAULT_POLICY_NAME: &str = "responder/policy/default.yaml (built in)";
/// The line of [`DEFAULT_POLICY`] that says where it enforces (nowhere).
const DEFAULT_ENFORCE_LINE: &str = "enforce: { namespaces: [], pod_labels: {} }";

/// The default policy's text with its `enforce` set to `enforce` (a YAML
/// flow mapping such as `{ all: true }` or `{ namespaces: [shop] }`): what
/// the demo and the end-to-end tests run, since the shipped default only
/// records what it would do.
pub fn default_policy_enforcing(enforce: &str) -> String {
    DEFAULT_POLICY.replacen(DEFAULT_ENFORCE_LINE, &format!("enforce: {enforce}"), 1)
}

/// Protected when the policy names none: Kubernetes' own and Vigil's (the
/// node agents in vigil-system, the other services in vigil).
pub const DEFAULT_PROTECTED_NAMESPACES: &[&str] = &["kube-system", "vigil-system", "vigil"];
/// Protected when the policy names none: the opt-out label for any pod.
pub const DEFAULT_PROTECTED_LABELS: &[(&str, &str)] = &[("vigil.dev/protected", "true")];

/// Manual actions allowed when the policy says nothing (`rate_limits.manual`).
pub const DEFAULT_MANUAL_LIMIT: Limit = Limit {
    max: 10,
    per_seconds: 60,
};

/// A policy that could not be loaded: every problem, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("invalid response policy {source_name}:\n  {}", problems.join("\n  "))]
pub struct PolicyError {
    pub source_name: String,
    pub problems: Vec<String>,
}

/// One thing the responder can do to a container or pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Freeze,
    KillProcess,
    KillContainer,
    NetworkCut,
    Quarantine,
    Annotate,
    Evict,
    DeletePod,
}

impl Action {
    /// The name used in policies, record ids and metric labels.
    pub fn label(self) -> &'static str {
        actions::entry(self).label
    }

    pub fn kind(self) -> ActionKind {
        actions::entry(self).kind
    }

    /// Carried out by the agent on the container's node (cgroups, namespaces);
    /// the others go through the Kubernetes API.
    pub fn is_node_level(self) -> bool {
        actions::entry(self).level == Level::Node
    }
}

/// Signal for the kill actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KillSignal {
    #[default]
    Kill,
    Term,
}

impl KillSignal {
    /// The signal's name without `SIG`.
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Kill => "KILL",
            KillSignal::Term => "TERM",
        }
    }
}

/// An action as a policy rule lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionSpec {
    pub action: Action,
    /// Record DRY_RUN instead of acting, for this action only.
    pub dry_run: bool,
    pub signal: KillSignal,
}

/// A sliding-window limit: at most `max` containments per `per_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub per_seconds: u64,
}

/// Where the policy's actions are carried out; everywhere else they are
/// recorded as DRY_RUN. The shipped default enforces nowhere (a safe first
/// install: detection first); a policy without `enforce` enforces
/// everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforce {
    pub all: bool,
    /// Every pod in any of these namespaces.
    pub namespaces: BTreeSet<String>,
    /// Any pod carrying one of these labels with this value.
    pub pod_labels: BTreeMap<String, String>,
}

impl Enforce {
    /// Enforcement everywhere: what a policy without `enforce` gets.
    pub fn everywhere() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// Whether actions on a pod in `namespace` with `labels` are carried out.
    pub fn covers(&self, namespace: &str, labels: &HashMap<String, String>) -> bool {
        self.all
            || self.namespaces.contains(namespace)
            || self
                .pod_labels
                .iter()
                .any(|(key, value)| labels.get(key) == Some(value))
    }
}

/// The loaded policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub dry_run: bool,
    pub enforce: Enforce,
    pub protected_namespaces: BTreeSet<String>,
    pub protected_labels: BTreeMap<String, String>,
    pub per_pod: Limit,
    pub global: Limit,
    /// Manual quarantines and releases (gRPC), over all callers.
    pub manual: Limit,
    pub max_finding_age_ns: u64,
    pub rules: Vec<Rule>,
    /// The namespaces Vigil runs in: protected whatever the policy's
    /// `protected` says (see [`Policy::protecting_vigil`]).
    vigil_namespaces: BTreeSet<String>,
}

/// One policy rule: a match and what to do.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    matcher: Matcher,
    pub actions: Vec<ActionSpec>,
}

/// Rules are told apart by name (names are unique in a policy).
impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Rule {}

#[derive(Clone, Debug, Default)]
struct Matcher {
    rule_names: BTreeSet<String>,
    rule_pattern: Option<Regex>,
    min_priority: Option<Priority>,
    tags: Vec<String>,
    source: Option<FindingSource>,
    min_score: Option<f64>,
    namespaces: BTreeSet<String>,
    labels: BTreeMap<String, String>,
}

impl Policy {
    /// Loads the policy from `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| PolicyError {
            source_name: name.clone(),
            problems: vec![format!("cannot read: {error}")],
        })?;
        Self::parse(&text, &name)
    }

    /// The built-in default policy.
    pub fn default_policy() -> Result<Self, PolicyError> {
        Self::parse(DEFAULT_POLICY, DEFAULT_POLICY_NAME)
    }

    /// Parses and checks a policy; `source_name` names it in messages.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let doc: PolicyDoc = serde_saphyr::from_str(text).map_err(|error| PolicyError {
            source_name: source_name.to_owned(),
            problems: vec![yaml_problem(source_name, &error)],
        })?;
        let mut problems = Problems {
            file: source_name,
            list: Vec::new(),
        };
        let policy = doc.compile(&mut problems);
        if problems.list.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError {
                source_name: source_name.to_owned(),
                problems: problems.list,
            })
        }
    }

    /// The first rule that matches `finding`.
    pub fn select(&self, finding: &Finding) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.matcher.matches(finding))
    }

    /// Protects `namespaces`, where this responder and the rest of Vigil
    /// run, whatever the policy file lists: a policy that forgets them must
    /// not let a finding, forged or not, turn Vigil against itself.
    pub fn protecting_vigil<'n>(mut self, namespaces: impl IntoIterator<Item = &'n str>) -> Self {
        self.vigil_namespaces.extend(
            namespaces
                .into_iter()
                .map(str::trim)
                .filter(|ns| !ns.is_empty())
                .map(str::to_owned),
        );
        self
    }

    /// Why `finding`'s pod must not be touched, if it must not.
    pub fn protection(&self, namespace: &str, labels: &HashMap<String, String>) -> Option<String> {
        if self.vigil_namespaces.contains(namespace) {
            return Some(format!(
                "namespace {namespace} is protected: Vigil runs there, whatever the policy lists"
            ));
        }
        if self.protected_namespaces.contains(namespace) {
            return Some(format!("namespace {namespace} is protected"));
        }
        self.protected_labels
            .iter()
            .find(|(key, value)| labels.get(*key) == Some(*value))
            .map(|(key, value)| format!("pods labelled {key}={value} are protected"))
    }
}

impl Matcher {
    fn matches(&self, finding: &Finding) -> bool {
        (self.rule_names.is_empty() || self.rule_names.contains(&finding.name))
            && self
                .rule_pattern
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(&finding.name))
            && self
                .min_priority
                .is_none_or(|min| finding.priority() >= min)
            && self.tags.iter().all(|tag| finding.tags.contains(tag))
            && self.source.is_none_or(|source| finding.source() == source)
            && self.min_score.is_none_or(|min| finding.score >= min)
            && (self.namespaces.is_empty() || self.namespaces.contains(&finding.namespace))
            && self
                .labels
                .iter()
                .all(|(key, value)| finding.pod_labels.get(key) == Some(value))
    }
}

/// Problems found while checking a parsed policy.
struct Problems<'a> {
    file: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, what: impl fmt::Display) {
        let location = spanned.referenced;
        self.list.push(format!(
            "{}:{}:{}: {what}",
            self.file,
            location.line(),
            location.column()
        ));
    }
}

fn yaml_problem(file: &str, error: &serde_saphyr::Error) -> String {
    // The message of serde-saphyr carries its own position description; the
    // prefix makes it `file:line:column:` like every other problem.
    match error.location() {
        Some(location) => format!("{file}:{}:{}: {error}", location.line(), location.column()),
        None => format!("{file}: {error}"),
    }
}

// What the YAML holds, before checking.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    dry_run: bool,
    enforce: Option<EnforceDoc>,
    #[serde(default)]
    protected: ProtectedDoc,
    rate_limits: RateLimitsDoc,
    max_finding_age_seconds: Spanned<u64>,
    rules: Spanned<Vec<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectedDoc {
    #[serde(default = "default_protected_namespaces")]
    namespaces: Vec<Spanned<String>>,
    #[serde(default = "default_protected_labels")]
    labels: BTreeMap<String, String>,
}

impl Default for ProtectedDoc {
    fn default() -> Self {
        Self {
            namespaces: default_protected_namespaces(),
            labels: default_protected_labels(),
        }
    }
}

fn default_protected_labels() -> BTreeMap<String, String> {
    DEFAULT_PROTECTED_LABELS
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn default_protected_namespaces() -> Vec<Spanned<String>> {
    DEFAULT_PROTECTED_NAMESPACES
        .iter()
        .map(|name| {
            Spanned::new(
                (*name).to_owned(),
                serde_saphyr::Location::UNKNOWN,
                serde_saphyr::Location::UNKNOWN,
            )
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnforceDoc {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    namespaces: Vec<Spanned<String>>,
    pod_labels: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitsDoc {
    per_pod: LimitDoc,
    global: LimitDoc,
    manual: Option<LimitDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitDoc {
    max: Spanned<u32>,
    per_seconds: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    name: Spanned<String>,
    #[serde(rename = "match", default)]
    when: MatchDoc,
    actions: Spanned<Vec<ActionDoc>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchDoc {
    /// Exact rule (or model) names, any of.
    #[serde(default)]
    rules: Vec<String>,
    /// A regular expression the rule name must match (unanchored).
    rule_pattern: Option<Spanned<String>>,
    min_priority: Option<Spanned<String>>,
    /// Every one of these tags.
    #[serde(default)]
    tags: Vec<String>,
    source: Option<SourceDoc>,
    min_score: Option<Spanned<f64>>,
    /// Any of these namespaces.
    #[serde(default)]
    namespaces: Vec<String>,
    /// Every one of these pod labels, with this value.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SourceDoc {
    Rule,
    Anomaly,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionDoc {
    kind: Spanned<Action>,
    #[serde(default)]
    dry_run: bool,
    signal: Option<Spanned<KillSignal>>,
}

impl PolicyDoc {
    fn compile(self, problems: &mut Problems<'_>) -> Policy {
        let mut protected_namespaces = BTreeSet::new();
        for namespace in self.protected.namespaces {
            if namespace.value.trim().is_empty() {
                problems.at(&namespace, "protected namespace names must not be empty");
            }
            protected_namespaces.insert(namespace.value);
        }
        if self.max_finding_age_seconds.value == 0 {
            problems.at(
                &self.max_finding_age_seconds,
                "max_finding_age_seconds must be at least 1",
            );
        }
        if self.rules.value.is_empty() {
            problems.at(
                &self.rules,
                "rules: the policy has no rule, so it would never act",
            );
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for rule in self.rules.value {
            if !names.insert(rule.name.value.clone()) {
                problems.at(
                    &rule.name,
                    format!("rule name {:?} is used twice", rule.name.value),
                );
            }
            rules.push(rule.compile(problems));
        }
        let enforce = match self.enforce {
            Some(doc) => doc.compile(&protected_namespaces, problems),
            None => Enforce::everywhere(),
        };
        Policy {
            dry_run: self.dry_run,
            enforce,
            protected_namespaces,
            protected_labels: self.protected.labels,
            per_pod: self.rate_limits.per_pod.compile("per_pod", problems),
            global: self.rate_limits.global.compile("global", problems),
            manual: self
                .rate_limits
                .manual
                .map_or(DEFAULT_MANUAL_LIMIT, |limit| {
                    limit.compile("manual", problems)
                }),
            max_finding_age_ns: self
                .max_finding_age_seconds
                .value
                .saturating_mul(1_000_000_000),
            rules,
            vigil_namespaces: BTreeSet::new(),
        }
    }
}

impl EnforceDoc {
    fn compile(self, protected: &BTreeSet<String>, problems: &mut Problems<'_>) -> Enforce {
        let mut enforce = Enforce {
            all: self.all,
            ..Enforce::default()
        };
        for namespace in self.namespaces {
            if namespace.value.trim().is_empty() {
                problems.at(&namespace, "enforce.namespaces: names must not be empty");
            } else if protected.contains(&namespace.value) {
                problems.at(
                    &namespace,
                    format!(
                        "enforce.namespaces: {} is protected, so nothing there is ever acted on",
                        namespace.value
                    ),
                );
            } else if self.all {
                problems.at(
                    &namespace,
                    "enforce.namespaces: all: true already enforces every namespace",
                );
            }
            enforce.namespaces.insert(namespace.value);
        }
        if let Some(labels) = self.pod_labels {
            if labels.value.keys().any(|key| key.trim().is_empty()) {
                problems.at(&labels, "enforce.pod_labels: label keys must not be empty");
            }
            if self.all && !labels.value.is_empty() {
                problems.at(
                    &labels,
                    "enforce.pod_labels: all: true already enforces every pod",
                );
            }
            enforce.pod_labels = labels.value;
        }
        enforce
    }
}

impl LimitDoc {
    fn compile(self, which: &str, problems: &mut Problems<'_>) -> Limit {
        if self.max.value == 0 {
            problems.at(
                &self.max,
                format!("rate_limits.{which}.max must be at least 1"),
            );
        }
        if self.per_seconds.value == 0 {
            problems.at(
                &self.per_seconds,
                format!("rate_limits.{which}.per_seconds must be at least 1"),
            );
        }
        Limit {
            max: self.max.value,
            per_seconds: self.per_seconds.value,
        }
    }
}

impl RuleDoc {
    fn compile(self, problems: &mut Problems<'_>) -> Rule {
        if self.name.value.trim().is_empty() {
            problems.at(&self.name, "rule names must not be empty");
        }
        if self.actions.value.is_empty() {
            problems.at(
                &self.actions,
                format!("rule {:?} lists no action", self.name.value),
            );
        }
        let mut seen = BTreeSet::new();
        let mut actions = Vec::new();
        for doc in self.actions.value {
            let action = doc.kind.value;
            if !seen.insert(action) {
                problems.at(
                    &doc.kind,
                    format!("action {} is listed twice in one rule", action.label()),
                );
            }
            if let Some(signal) = &doc.signal
                && !matches!(action, Action::KillProcess | Action::KillContainer)
            {
                problems.at(
                    signal,
                    format!(
                        "signal applies to kill actions only, not {}",
                        action.label()
                    ),
                );
            }
            actions.push(ActionSpec {
                action,
                dry_run: doc.dry_run,
                signal: doc.signal.map(|s| s.value).unwrap_or_default(),
            });
        }
        Rule {
            name: self.name.value,
            matcher: self.when.compile(problems),
            actions,
        }
    }
}

impl MatchDoc {
    fn compile(self, problems: &mut Problems<'_>) -> Matcher {
        let rule_pattern = self
            .rule_pattern
            .and_then(|pattern| match Regex::new(&pattern.value) {
                Ok(regex) => Some(regex),
                Err(error) => {
                    // regex explains over several lines; keep one problem per line.
                    let why = error
                        .to_string()
                        .lines()
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" ");
                    problems.at(
                        &pattern,
                        format!("rule_pattern is not a valid regex: {why}"),
                    );
                    None
                }
            });
        let min_priority =
            self.min_priority
                .and_then(|label| match Priority::parse_label(&label.value) {
                    Ok(priority) => Some(priority),
                    Err(error) => {
                        problems.at(&label, format!("min_priority: {error}"));
                        None
                    }
                });
        if let Some(score) = &self.min_score
            && !(0.0..=1.0).contains(&score.value)
        {
            problems.at(
                score,
                format!("min_score {} is outside [0, 1]", score.value),
            );
        }
        Matcher {
            rule_names: self.rules.into_iter().collect(),
            rule_pattern,
            min_priority,
            tags: self.tags,
            source: self.source.map(|source| match source {
                SourceDoc::Rule => FindingSource::Rule,
                SourceDoc::Anomaly => FindingSource::Anomaly,
            }),
            min_score: self.min_score.map(|s| s.value),
            namespaces: self.namespaces.into_iter().collect(),
            labels: self.labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(name: &str, priority: Priority) -> Finding {
        Finding {
            id: "f1".into(),
            name: name.into(),
            priority: priority as i32,
            source: FindingSource::Rule as i32,
            namespace: "shop".into(),
            ..Default::default()
        }
    }

    const HEADER: &str = "rate_limits:\n  per_pod: { max: 1, per_seconds: 60 }\n  global: { max: 5, per_seconds: 60 }\nmax_finding_age_seconds: 60\n";

    fn parse(rules: &str) -> Result<Policy, PolicyError> {
        Policy::parse(&format!("{HEADER}{rules}"), "test.yaml")
    }

    #[test]
    fn the_default_policy_loads_and_freezes_warnings_from_rules() {
        let policy = Policy::default_policy().unwrap();
        assert!(
            DEFAULT_POLICY.contains(DEFAULT_ENFORCE_LINE),
            "default_policy_enforcing replaces this line"
        );
        assert!(!policy.dry_run);
        assert!(policy.protected_namespaces.contains("kube-system"));
        assert!(policy.protected_namespaces.contains("vigil-system"));
        let rule = policy
            .select(&finding("Read of /etc/shadow", Priority::Warning))
            .unwrap();
        assert_eq!(rule.actions[0].action, Action::Freeze);
        assert!(
            policy
                .select(&finding("Read of /etc/shadow", Priority::Notice))
                .is_none()
        );
        let weak_anomaly = Finding {
            source: FindingSource::Anomaly as i32,
            score: 0.5,
            ..finding("syscall-iforest", Priority::Critical)
        };
        assert!(policy.select(&weak_anomaly).is_none());
        let strong = Finding {
            score: 0.95,
            ..weak_anomaly
        };
        assert_eq!(
            policy.select(&strong).unwrap().name,
            "freeze-strong-anomalies"
        );
    }

    #[test]
    fn the_shipped_default_enforces_nowhere_and_a_policy_without_enforce_everywhere() {
        let shipped = Policy::default_policy().unwrap();
        let labels = HashMap::new();
        assert_eq!(shipped.enforce, Enforce::default());
        assert!(!shipped.enforce.covers("shop", &labels));
        let written = parse("rules:\n  - name: r\n    actions: [{ kind: freeze }]\n").unwrap();
        assert!(written.enforce.covers("shop", &labels));
        let all = Policy::parse(&default_policy_enforcing("{ all: true }"), "all.yaml").unwrap();
        assert!(all.enforce.covers("anything", &labels));
        assert_eq!(all.rules.len(), shipped.rules.len());
    }

    #[test]
    fn a_bad_enforce_names_file_line_and_column() {
        let error = parse(
            "protected: { namespaces: [kube-system] }\nenforce:\n  namespaces: [\"\", kube-system]\n  pod_labels: { \"\": x }\nrules:\n  - name: r\n    actions: [{ kind: freeze }]\n",
        )
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 3, "{text}");
        for expected in [
            "test.yaml:7:16: enforce.namespaces: names must not be empty",
            "test.yaml:7:20: enforce.namespaces: kube-system is protected",
            "test.yaml:8:15: enforce.pod_labels: label keys must not be empty",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        let both = parse(
            "enforce: { all: true, namespaces: [shop] }\nrules:\n  - name: r\n    actions: [{ kind: freeze }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("test.yaml:5:36: enforce.namespaces: all: true"),
            "{both}"
        );
        let unknown = parse(
            "enforce: { namespace: [shop] }\nrules:\n  - name: r\n    actions: [{ kind: freeze }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            unknown.contains("test.yaml:5:") && unknown.contains("namespace"),
            "{unknown}"
        );
    }

    #[test]
    fn every_match_condition_must_hold_and_the_first_rule_wins() {
        let policy = parse(
            r#"
rules:
  - name: shells-in-shop
    match:
      rule_pattern: "(?i)shell"
      rules: ["Terminal shell in container", "Reverse shell"]
      tags: [mitre_execution]
      namespaces: [shop]
      labels: { app: web }
    actions:
      - kind: kill_process
        signal: TERM
      - kind: network_cut
        dry_run: true
  - name: anything-critical
    match: { min_priority: critical }
    actions: [{ kind: freeze }]
"#,
        )
        .unwrap();
        let mut shell = Finding {
            tags: vec!["mitre_execution".into(), "container".into()],
            pod_labels: [("app".to_owned(), "web".to_owned())].into(),
            ..finding("Reverse shell", Priority::Notice)
        };
        let rule = policy.select(&shell).unwrap();
        assert_eq!(rule.name, "shells-in-shop");
        assert_eq!(
            rule.actions,
            vec![
                ActionSpec {
                    action: Action::KillProcess,
                    dry_run: false,
                    signal: KillSignal::Term
                },
                ActionSpec {
                    action: Action::NetworkCut,
                    dry_run: true,
                    signal: KillSignal::Kill
                },
            ]
        );
        shell.pod_labels.insert("app".into(), "db".into());
        assert!(policy.select(&shell).is_none(), "label differs");
        shell.priority = Priority::Critical as i32;
        assert_eq!(policy.select(&shell).unwrap().name, "anything-critical");
    }

    #[test]
    fn protection_by_namespace_and_by_label() {
        let policy = parse(
            "protected:\n  labels: { vigil.dev/protected: \"true\" }\nrules:\n  - name: r\n    actions: [{ kind: freeze }]\n",
        )
        .unwrap();
        let none = HashMap::new();
        assert!(policy.protection("kube-system", &none).is_some());
        assert!(policy.protection("vigil-system", &none).is_some());
        assert_eq!(policy.protection("shop", &none), None);
        let labelled = [("vigil.dev/protected".to_owned(), "true".to_owned())].into();
        let reason = policy.protection("shop", &labelled).unwrap();
        assert!(reason.contains("vigil.dev/protected=true"), "{reason}");
    }

    #[test]
    fn vigils_namespaces_are_protected_though_the_policy_does_not_list_them() {
        let text = "protected:\n  namespaces: [kube-system]\nrules:\n  - name: r\n    actions: [{ kind: freeze }]\n";
        let none = HashMap::new();
        let forgetful = parse(text).unwrap();
        assert_eq!(forgetful.protection("vigil", &none), None, "not listed");
        let policy = forgetful.protecting_vigil(["vigil", "vigil-system"]);
        let reason = policy.protection("vigil", &none).unwrap();
        assert!(reason.contains("Vigil runs there"), "{reason}");
        assert!(policy.protection("vigil-system", &none).is_some());
        assert!(policy.protection("kube-system", &none).is_some());
        assert_eq!(policy.protection("shop", &none), None);
        let unset = parse(text).unwrap().protecting_vigil([" "]);
        assert_eq!(
            unset.protection("", &none),
            None,
            "a blank namespace is no namespace"
        );
    }

    #[test]
    fn manual_actions_are_limited_by_default_and_as_the_policy_says() {
        let rules = "rules:\n  - name: r\n    actions: [{ kind: freeze }]\n";
        assert_eq!(parse(rules).unwrap().manual, DEFAULT_MANUAL_LIMIT);
        let header = HEADER.replacen(
            "rate_limits:\n",
            "rate_limits:\n  manual: { max: 2, per_seconds: 600 }\n",
            1,
        );
        let policy = Policy::parse(&format!("{header}{rules}"), "test.yaml").unwrap();
        assert_eq!(
            policy.manual,
            Limit {
                max: 2,
                per_seconds: 600
            }
        );
        let zero = HEADER.replacen(
            "rate_limits:\n",
            "rate_limits:\n  manual: { max: 0, per_seconds: 600 }\n",
            1,
        );
        let error = Policy::parse(&format!("{zero}{rules}"), "test.yaml").unwrap_err();
        assert!(error.to_string().contains("test.yaml:2:"), "{error}");
        assert!(
            error.to_string().contains("rate_limits.manual.max"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_policy_names_file_line_and_every_problem() {
        let error = parse(
            r#"
rules:
  - name: one
    match:
      min_priority: loud
      rule_pattern: "(unclosed"
      min_score: 2
    actions:
      - kind: freeze
        signal: KILL
      - kind: freeze
  - name: one
    actions: []
"#,
        )
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 7, "{text}");
        for expected in [
            "test.yaml:9:21: min_priority",
            "test.yaml:10:21: rule_pattern is not a valid regex",
            "test.yaml:11:18: min_score 2 is outside [0, 1]",
            "test.yaml:14:17: signal applies to kill actions only",
            "test.yaml:15:15: action freeze is listed twice",
            "test.yaml:16:11: rule name \"one\" is used twice",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert!(
            text.contains("test.yaml:17:14: rule \"one\" lists no action"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_fail_with_their_line() {
        let unknown = parse("rules:\n  - name: r\n    actoins: []\n").unwrap_err();
        let text = unknown.to_string();
        assert!(text.contains("test.yaml:7:"), "{text}");
        assert!(text.contains("actoins"), "{text}");
        let unknown_action = parse("rules:\n  - name: r\n    actions: [{ kind: explode }]\n")
            .unwrap_err()
            .to_string();
        assert!(unknown_action.contains("test.yaml:7:"), "{unknown_action}");
        assert!(unknown_action.contains("explode"), "{unknown_action}");
        let missing = Policy::parse("rules: []\n", "short.yaml")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("short.yaml"), "{missing}");
        assert!(missing.contains("rate_limits"), "{missing}");
    }
}
