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
mod yaml;

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
};

use vigil_proto::v1::{Event, Priority};

use crate::{
    compile::{Compiler, Pred},
    condition::{Compare, Expr, Item, Op, Operand, Rhs},
    loader::{Definitions, ExceptionDef, ExceptionValue, RuleDef},
    output::OutputTemplate,
};

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

/// Counts of what was loaded, for reports and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lists: usize,
    pub macros: usize,
    pub rules_defined: usize,
    pub rules_enabled: usize,
    pub rules_disabled: usize,
    /// Rules for other sources (`k8s_audit`, plugins): loaded, not evaluated.
    pub rules_other_source: usize,
}

/// The compiled rules, bucketed by event type.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// For each `evt.type` any rule names: the rules to run, in load order.
    by_type: hash::FastMap<String, Box<[u32]>>,
    /// Rules for event types no rule names: those without a type restriction.
    any_type: Box<[u32]>,
    pub summary: Summary,
    pub warnings: Vec<String>,
}

impl RuleSet {
    /// Loads and compiles rules files, in order.
    pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, LoadError> {
        let mut definitions = Definitions::default();
        for path in paths {
            let path = path.as_ref();
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| LoadError::at(&name, 0, 0, format!("cannot read: {e}")))?;
            definitions.load(&name, &text)?;
        }
        Self::compile(definitions)
    }

    /// Loads and compiles `(name, text)` sources, in order.
    pub fn load_sources(sources: &[(&str, &str)]) -> Result<Self, LoadError> {
        let mut definitions = Definitions::default();
        for (name, text) in sources {
            definitions.load(name, text)?;
        }
        Self::compile(definitions)
    }

    pub fn compile(definitions: Definitions) -> Result<Self, LoadError> {
        let mut parsed = HashMap::with_capacity(definitions.macros.len());
        for (name, def) in &definitions.macros {
            let expr = condition::parse(&def.condition.text).map_err(|error| {
                def.condition
                    .position
                    .error(format!("macro `{name}`: condition: {error}"))
            })?;
            parsed.insert(name.clone(), expr);
        }
        let compiler = Compiler {
            lists: &definitions.lists,
            macros: &definitions.macros,
            parsed: &parsed,
        };
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
            if !def.enabled {
                set.summary.rules_disabled += 1;
                continue;
            }
            if def.source != "syscall" {
                set.summary.rules_other_source += 1;
                continue;
            }
            set.rules.push(compile_rule(&compiler, def)?);
        }
        set.summary.rules_enabled = set.rules.len();
        set.index();
        Ok(set)
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

    pub fn rules(&self) -> &[Rule] {
        &self.rules
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

fn compile_rule(compiler: &Compiler<'_>, def: &RuleDef) -> Result<Rule, LoadError> {
    let context = format!("rule {:?}", def.name);
    let expr = condition::parse(&def.condition.text).map_err(|error| {
        def.condition
            .position
            .error(format!("{context}: condition: {error}"))
    })?;
    let mut stack = Vec::new();
    let mut pred = compiler.compile(&expr, &mut stack).map_err(|error| {
        let at = error
            .offset
            .map(|o| format!(" (at offset {o})"))
            .unwrap_or_default();
        def.condition
            .position
            .error(format!("{context}: condition: {}{at}", error.message))
    })?;
    let exceptions = exceptions(&def.exceptions)
        .and_then(|expr| compiler.compile(&expr, &mut stack).map_err(|e| e.message))
        .map_err(|message| {
            def.position
                .error(format!("{context}: exceptions: {message}"))
        })?;
    pred = compile::and_not(pred, exceptions);
    let event_types = compile::event_types(&pred);
    if let Some(types) = &event_types {
        pred = compile::drop_implied_types(pred, types);
    }
    let pred = compile::reorder(pred);
    let output = OutputTemplate::parse(&def.output)
        .map_err(|message| def.position.error(format!("{context}: {message}")))?;
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
