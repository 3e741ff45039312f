//! `vigil-rules`: the Falco rule language over Vigil events.
//!
//! ```text
//! rules files ──yaml──▶ Definitions (lists, macros, rules; append/override applied in file order)
//!             ──compile──▶ RuleSet (predicates, rules bucketed by evt.type)
//!             ──matching(event)──▶ the rules that fire
//! ```
//!
//! Every rule that matches an event fires (Falco's `rule_matching: all`):
//! first-match shadowing is one of Falco's most complained-about behaviours.
//! No I/O beyond reading the rule files named by the caller.

mod args;
pub mod compile;
pub mod condition;
mod fd;
pub mod fields;
mod hash;
pub mod loader;
pub mod output;
mod select;
mod yaml;

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
};

use vigil_proto::v1::{Event, Priority};

use crate::{
    compile::{CompileError, Compiler, Pred},
    condition::{Compare, Expr, Item, Op, Operand, Rhs},
    fields::unsupported_reason,
    loader::{Definitions, ExceptionDef, ExceptionValue, RuleDef},
    output::OutputTemplate,
};
pub use loader::Position;
pub use select::{Reason, Selection, SelectionError};

/// A rules file that does not load: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl LoadError {
    pub fn at(file: &str, line: usize, column: usize, message: String) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub source: String,
    pub output: OutputTemplate,
    pub condition: Pred,
    /// The `evt.type` values the rule can match; `None` = every event.
    pub event_types: Option<BTreeSet<String>>,
}

impl Rule {
    /// Whether the rule fires on `event`. The compiled condition leaves out
    /// the `evt.type` tests the index guarantees, so they are checked here.
    pub fn matches(&self, event: &Event) -> bool {
        let type_ok = self
            .event_types
            .as_ref()
            .is_none_or(|types| types.contains(fields::evt_type(event)));
        type_ok && self.condition.eval(event)
    }
}

/// Which syscalls the loaded rules need the collector to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Syscalls {
    /// At least one rule has no `evt.type` restriction.
    All,
    Only(BTreeSet<String>),
}

/// Counts of what was loaded, for reports and logs. Every defined rule is
/// counted once: enabled, disabled, skipped or of another source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lists: usize,
    pub macros: usize,
    pub rules_defined: usize,
    /// Rules that run.
    pub rules_enabled: usize,
    /// Off in their file or by the configuration's selection.
    pub rules_disabled: usize,
    /// Selected, but needing fields this engine cannot provide or does
    /// not know (with `skip-if-unknown-filter`): reported by name.
    pub rules_skipped: usize,
    /// Rules for other sources (`k8s_audit`, plugins): loaded, not evaluated.
    pub rules_other_source: usize,
}

/// A defined rule, running or not, and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub position: Position,
    /// `Ok` when it runs, otherwise why not.
    pub state: Result<(), Reason>,
}

/// Everything wrong with a set of rules files and a selection, found in
/// one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors {
    pub files: Vec<LoadError>,
    pub selection: Vec<SelectionError>,
    /// What loaded with a warning meanwhile (as [`RuleSet::warnings`]), so
    /// a validator can show everything at once.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines = self.files.iter().map(ToString::to_string);
        let lines = lines.chain(self.selection.iter().map(ToString::to_string));
        write!(f, "{}", lines.collect::<Vec<_>>().join("\n"))
    }
}

impl LoadErrors {
    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.selection.is_empty()
    }
}

/// Rules files applied in order, collecting every error, then compiled.
#[derive(Debug, Default)]
pub struct Loader {
    definitions: Definitions,
    errors: Vec<LoadError>,
}

impl Loader {
    /// Applies a rules file given as text; `name` is what errors cite.
    pub fn source(&mut self, name: &str, text: &str) {
        let errors = self.definitions.load(name, text);
        self.errors.extend(errors);
    }

    /// Reads and applies a rules file.
    pub fn file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => self.source(&name, &text),
            Err(e) => self
                .errors
                .push(LoadError::at(&name, 0, 0, format!("cannot read: {e}"))),
        }
    }

    /// Compiles what was loaded, with `selection` deciding which rules run.
    pub fn build(self, selection: &Selection) -> Result<RuleSet, LoadErrors> {
        let mut errors = LoadErrors {
            files: self.errors,
            selection: selection.check(&self.definitions.rules),
            warnings: Vec::new(),
        };
        let set = RuleSet::compile(self.definitions, selection, &mut errors.files);
        if errors.is_empty() {
            Ok(set)
        } else {
            errors.warnings = set.warnings;
            Err(errors)
        }
    }
}

/// The compiled rules, bucketed by event type.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Every defined rule with its state, in load order.
    entries: Vec<Entry>,
    /// For each `evt.type` any rule names: the rules to run, in load order.
    by_type: hash::FastMap<String, Box<[u32]>>,
    /// Rules for event types no rule names: those without a type restriction.
    any_type: Box<[u32]>,
    pub summary: Summary,
    /// Ignored keys, skipped rules and outputs that print `<NA>`, each as
    /// `file:line:column: what`.
    pub warnings: Vec<String>,
}

impl RuleSet {
    /// Loads and compiles rules files, in order; the first error, if any.
    pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, LoadError> {
        let mut loader = Loader::default();
        for path in paths {
            loader.file(path.as_ref());
        }
        Self::first_error(loader)
    }

    /// Loads and compiles `(name, text)` sources, in order; the first
    /// error, if any.
    pub fn load_sources(sources: &[(&str, &str)]) -> Result<Self, LoadError> {
        let mut loader = Loader::default();
        for (name, text) in sources {
            loader.source(name, text);
        }
        Self::first_error(loader)
    }

    fn first_error(loader: Loader) -> Result<Self, LoadError> {
        loader.build(&Selection::default()).map_err(|errors| {
            let text = errors.to_string();
            errors
                .files
                .into_iter()
                .next()
                .unwrap_or_else(|| LoadError::at("", 0, 0, text))
        })
    }

    /// Compiles every rule of the event source `syscall`, so errors in
    /// disabled rules are found too; only the selected ones are indexed.
    fn compile(
        definitions: Definitions,
        selection: &Selection,
        errors: &mut Vec<LoadError>,
    ) -> Self {
        let mut parsed = HashMap::with_capacity(definitions.macros.len());
        let mut macro_errors = Vec::new();
        for (name, def) in &definitions.macros {
            match condition::parse(&def.condition.text) {
                Ok(expr) => {
                    parsed.insert(name.clone(), expr);
                }
                Err(error) => macro_errors.push(def.condition.error_at(
                    Some(error.offset),
                    format!(
                        "macro `{name}`: condition: expected {}, found {}",
                        error.expected, error.found
                    ),
                )),
            }
        }
        // The macros' map has no order; report them as written.
        macro_errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        errors.extend(macro_errors);
        let compiler = Compiler::new(&definitions.lists, &definitions.macros, &parsed);
        let mut set = RuleSet {
            summary: Summary {
                lists: definitions.counts.lists,
                macros: definitions.counts.macros,
                rules_defined: definitions.rules.len(),
                ..Summary::default()
            },
            warnings: definitions.warnings.clone(),
            ..RuleSet::default()
        };
        for def in &definitions.rules {
            let state = set.admit(&compiler, def, selection, errors);
            match &state {
                Ok(()) => set.summary.rules_enabled += 1,
                Err(Reason::Source(_)) => set.summary.rules_other_source += 1,
                Err(Reason::Unsupported(_) | Reason::UnknownField(_)) => {
                    set.summary.rules_skipped += 1;
                }
                Err(_) => set.summary.rules_disabled += 1,
            }
            set.entries.push(Entry {
                name: def.name.clone(),
                priority: def.priority,
                tags: def.tags.clone(),
                position: def.position.clone(),
                state,
            });
        }
        set.index();
        set
    }

    /// Compiles `def` and keeps it when it may run; its state either way.
    fn admit(
        &mut self,
        compiler: &Compiler<'_>,
        def: &RuleDef,
        selection: &Selection,
        errors: &mut Vec<LoadError>,
    ) -> Result<(), Reason> {
        if def.source != "syscall" {
            return Err(Reason::Source(def.source.clone()));
        }
        let selected = selection.decide(def);
        let context = format!("rule {:?}", def.name);
        let skipped = |reason: Reason, warnings: &mut Vec<String>| {
            if selected.is_ok() {
                let at = &def.condition.position;
                warnings.push(format!(
                    "{}:{}:{}: {context} is skipped: it {reason}",
                    at.file,
                    at.line,
                    at.column,
                    reason = match &reason {
                        Reason::Unsupported(fields) => fields
                            .iter()
                            .map(|f| format!("needs {f} ({})", unsupported_reason(f)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => format!("names an {other}"),
                    }
                ));
            }
            selected.clone().and(Err(reason))
        };
        let rule = match compile_rule(compiler, def) {
            Ok(rule) => rule,
            Err(Failure::Unknown(field, _)) if def.skip_if_unknown_filter => {
                return skipped(Reason::UnknownField(field), &mut self.warnings);
            }
            Err(Failure::Unknown(_, error) | Failure::Invalid(error)) => {
                errors.push(error);
                return selected;
            }
        };
        let unsupported = compiler.take_unsupported();
        if !unsupported.is_empty() {
            let fields = unsupported.into_iter().collect();
            return skipped(Reason::Unsupported(fields), &mut self.warnings);
        }
        if selected.is_ok() {
            for field in rule.output.unsupported() {
                let at = &def.position;
                self.warnings.push(format!(
                    "{}:{}:{}: {context}: output field %{field} prints {} ({})",
                    at.file,
                    at.line,
                    at.column,
                    output::NOT_AVAILABLE,
                    unsupported_reason(field)
                ));
            }
            self.rules.push(rule);
        }
        selected
    }

    fn index(&mut self) {
        let mut types = BTreeSet::new();
        for rule in &self.rules {
            if let Some(own) = &rule.event_types {
                types.extend(own.iter().cloned());
            } else {
                self.warnings.push(format!(
                    "rule {:?} has no evt.type restriction: it runs on every event",
                    rule.name
                ));
            }
        }
        let ids = |keep: &dyn Fn(&Rule) -> bool| -> Box<[u32]> {
            self.rules
                .iter()
                .enumerate()
                .filter(|(_, r)| keep(r))
                .map(|(i, _)| i as u32)
                .collect()
        };
        self.any_type = ids(&|r| r.event_types.is_none());
        let by_type = types
            .into_iter()
            .map(|t| {
                let list = ids(&|r| r.event_types.as_ref().is_none_or(|s| s.contains(&t)));
                (t, list)
            })
            .collect();
        self.by_type = by_type;
    }

    /// The rules that run.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every defined rule, running or not, in load order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The rules that match `event`, in load order. An event meets only the
    /// rules of its `evt.type`.
    pub fn matching<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a Rule> + 'a {
        let ctx = compile::EvalCtx::new(event);
        self.candidates(event)
            .iter()
            .map(|i| &self.rules[*i as usize])
            // The index already checked the event type.
            .filter(move |rule| rule.condition.eval_in(&ctx))
    }

    /// Indices of the rules `event` is evaluated against.
    pub fn candidates(&self, event: &Event) -> &[u32] {
        self.by_type
            .get(fields::evt_type(event))
            .unwrap_or(&self.any_type)
    }

    /// The syscalls the loaded rules need.
    pub fn syscalls(&self) -> Syscalls {
        if !self.any_type.is_empty() {
            return Syscalls::All;
        }
        Syscalls::Only(self.by_type.keys().cloned().collect())
    }
}

/// Why a rule does not compile.
enum Failure {
    /// A field this engine does not know, by name.
    Unknown(String, LoadError),
    Invalid(LoadError),
}

fn compile_rule(compiler: &Compiler<'_>, def: &RuleDef) -> Result<Rule, Failure> {
    // Unsupported names from an earlier rule that failed are not this one's.
    compiler.take_unsupported();
    let context = format!("rule {:?}", def.name);
    let expr = condition::parse(&def.condition.text).map_err(|error| {
        Failure::Invalid(def.condition.error_at(
            Some(error.offset),
            format!(
                "{context}: condition: expected {}, found {}",
                error.expected, error.found
            ),
        ))
    })?;
    let failed = |error: CompileError, located: LoadError| match error.unknown_field {
        Some(field) => Failure::Unknown(field, located),
        None => Failure::Invalid(located),
    };
    let mut stack = Vec::new();
    let mut pred = compiler.compile(&expr, &mut stack).map_err(|error| {
        let message = format!("{context}: condition: {}", error.message);
        let located = def.condition.error_at(error.offset, message);
        failed(error, located)
    })?;
    let exceptions = exceptions(&def.exceptions).map_err(|message| {
        Failure::Invalid(
            def.position
                .error(format!("{context}: exceptions: {message}")),
        )
    })?;
    let exceptions = compiler.compile(&exceptions, &mut stack).map_err(|error| {
        let located = def
            .position
            .error(format!("{context}: exceptions: {}", error.message));
        failed(error, located)
    })?;
    pred = compile::and_not(pred, exceptions);
    let event_types = compile::event_types(&pred);
    if let Some(types) = &event_types {
        pred = compile::drop_implied_types(pred, types);
    }
    let pred = compile::reorder(pred);
    let output = OutputTemplate::parse(&def.output).map_err(|error| {
        Failure::Unknown(
            error.0.clone(),
            def.position.error(format!("{context}: {error}")),
        )
    })?;
    Ok(Rule {
        name: def.name.clone(),
        desc: def.desc.clone(),
        priority: def.priority,
        tags: def.tags.clone(),
        source: def.source.clone(),
        output,
        event_types,
        condition: pred,
    })
}

/// Exceptions as one condition: the tuples of all exceptions OR-ed, each an
/// AND of `field comp value`.
fn exceptions(defs: &[ExceptionDef]) -> Result<Expr, String> {
    let mut tuples = Vec::new();
    for def in defs {
        for values in &def.values {
            let mut parts = Vec::with_capacity(values.len());
            for ((field, comp), value) in def.fields.iter().zip(&def.comps).zip(values) {
                parts.push(exception_test(field, comp, value)?);
            }
            tuples.push(Expr::And(parts));
        }
    }
    Ok(Expr::Or(tuples))
}

fn exception_test(field: &str, comp: &str, value: &ExceptionValue) -> Result<Expr, String> {
    // Reuse the condition parser for the operator, so the spelling is Falco's.
    let probe = format!("a.b {comp} x");
    let op = match condition::parse(&probe) {
        Ok(Expr::Compare(c)) => c.op,
        _ if comp == "exists" => Op::Exists,
        _ => return Err(format!("unknown comparison {comp:?} for field {field}")),
    };
    let rhs = match (value, op.takes_set()) {
        (ExceptionValue::Many(items), _) => {
            Rhs::Set(items.iter().map(|i| Item::Bare(i.clone())).collect())
        }
        // A list name or single value for `in`.
        (ExceptionValue::One(item), true) => Rhs::Set(vec![Item::Bare(item.clone())]),
        (ExceptionValue::One(item), false) => Rhs::Value(Item::Quoted(item.clone())),
    };
    Ok(Expr::Compare(Compare {
        lhs: Operand {
            field: field.to_owned(),
            transformers: Vec::new(),
        },
        op,
        rhs,
        offset: 0,
    }))
}
