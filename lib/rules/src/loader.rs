//! Rules files: YAML items (`list`, `macro`, `rule`, `required_engine_version`)
//! applied in order across files, with Falco's replace / append / override
//! semantics. The result is [`Definitions`], which the compiler turns into
//! a rule set.

use std::collections::HashMap;

use vigil_proto::v1::Priority;

use crate::{
    LoadError,
    yaml::{Kind, Node},
};

/// The rule-language version this engine implements; files requiring a
/// newer one are refused.
pub const ENGINE_VERSION: (u64, u64, u64) = (0, 57, 0);

/// Where something was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub fn error(&self, message: String) -> LoadError {
        LoadError::at(&self.file, self.line, self.column, message)
    }
}

/// A condition with the place it (or its last appended part) came from.
#[derive(Clone, Debug)]
pub struct Condition {
    pub text: String,
    pub position: Position,
    /// Where `text` starts on `position.line` when it is written there
    /// verbatim, so an offset in it is an exact column.
    pub text_column: Option<usize>,
}

impl Condition {
    /// An error at byte `offset` of the condition: at its exact column when
    /// the text is verbatim on one line, otherwise at the condition with the
    /// offset in the message.
    pub fn error_at(&self, offset: Option<usize>, message: String) -> LoadError {
        let exact = offset.zip(self.text_column).and_then(|(offset, column)| {
            let chars = self.text.get(..offset)?.chars().count();
            Some(column + chars)
        });
        match (exact, offset) {
            (Some(column), _) => {
                LoadError::at(&self.position.file, self.position.line, column, message)
            }
            (None, Some(offset)) => self
                .position
                .error(format!("{message} (at offset {offset})")),
            (None, None) => self.position.error(message),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MacroDef {
    pub condition: Condition,
}

/// One value of an exception tuple: a scalar, or a list for `in`-like comps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExceptionValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct ExceptionDef {
    pub name: String,
    pub fields: Vec<String>,
    pub comps: Vec<String>,
    pub values: Vec<Vec<ExceptionValue>>,
    pub position: Position,
}

#[derive(Clone, Debug)]
pub struct RuleDef {
    pub name: String,
    pub desc: String,
    pub condition: Condition,
    pub output: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub exceptions: Vec<ExceptionDef>,
    pub source: String,
    /// Falco's `skip-if-unknown-filter`: a condition naming a field this
    /// engine does not know skips the rule instead of failing the load.
    pub skip_if_unknown_filter: bool,
    pub position: Position,
}

/// Everything the loaded files define, after all overrides.
#[derive(Clone, Debug, Default)]
pub struct Definitions {
    pub lists: HashMap<String, Vec<String>>,
    pub macros: HashMap<String, MacroDef>,
    /// In order of first definition.
    pub rules: Vec<RuleDef>,
    /// Counts per file kind, for reporting.
    pub counts: Counts,
    /// Ignored items and keys, with positions.
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub lists: usize,
    pub macros: usize,
    pub rules: usize,
}

/// How a key of an item combines with the earlier item of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Define,
    Append,
    Replace,
}

impl Definitions {
    /// Applies one rules file. An item that does not load is reported and
    /// the next items are still applied, so one pass finds every error.
    pub fn load(&mut self, file: &str, text: &str) -> Vec<LoadError> {
        let root = match crate::yaml::parse(file, text) {
            Ok(Some(root)) => root,
            Ok(None) => return Vec::new(),
            Err(error) => return vec![error],
        };
        let items = match &root.kind {
            Kind::Seq(items) => items,
            Kind::Null => return Vec::new(),
            _ => {
                return vec![LoadError::at(
                    file,
                    root.line,
                    root.column,
                    format!(
                        "expected a sequence of items (list, macro, rule), found {}",
                        root.describe()
                    ),
                )];
            }
        };
        items
            .iter()
            .filter_map(|item| self.item(file, item).err())
            .collect()
    }

    fn item(&mut self, file: &str, item: &Node) -> Result<(), LoadError> {
        let position = Position {
            file: file.to_owned(),
            line: item.line,
            column: item.column,
        };
        let Kind::Map(entries) = &item.kind else {
            return Err(position.error(format!(
                "expected an item mapping (list, macro, rule), found {}",
                item.describe()
            )));
        };
        if item.get("rule").is_some() {
            self.rule(item, position)
        } else if item.get("macro").is_some() {
            self.macro_item(item, position)
        } else if item.get("list").is_some() {
            self.list(item, position)
        } else if let Some(version) = item.get("required_engine_version") {
            check_engine_version(version, &position)
        } else if item.get("required_plugin_versions").is_some() {
            // Container metadata is built in; plugins do not apply.
            Ok(())
        } else {
            let keys: Vec<_> = entries.iter().map(|(k, _)| k.as_str()).collect();
            self.warnings.push(format!(
                "{}:{}:{}: ignored unknown item with keys {keys:?}",
                file, item.line, item.column
            ));
            Ok(())
        }
    }

    fn list(&mut self, item: &Node, position: Position) -> Result<(), LoadError> {
        let name = scalar(item, "list", &position)?;
        let items_node = item
            .get("items")
            .ok_or_else(|| position.error(format!("list {name:?}: expected key `items`")))?;
        let mut items = Vec::new();
        for value in strings(items_node, &position, &format!("list {name:?} items"))? {
            // An item naming an earlier list is replaced by its items.
            match self.lists.get(&value) {
                Some(earlier) => items.extend(earlier.iter().cloned()),
                None => items.push(value),
            }
        }
        let mode = mode(item, "items", &position)?;
        self.counts.lists += 1;
        match (mode, self.lists.get_mut(&name)) {
            (Mode::Append, Some(existing)) => existing.extend(items),
            (Mode::Append, None) => {
                return Err(position.error(format!(
                    "list {name:?}: cannot append to a list that was not defined before"
                )));
            }
            _ => {
                self.lists.insert(name, items);
            }
        }
        Ok(())
    }

    fn macro_item(&mut self, item: &Node, position: Position) -> Result<(), LoadError> {
        let name = scalar(item, "macro", &position)?;
        let condition = condition(item, &position, &format!("macro {name:?}"))?;
        let mode = mode(item, "condition", &position)?;
        self.counts.macros += 1;
        match (mode, self.macros.get_mut(&name)) {
            (Mode::Append, Some(existing)) => append_condition(&mut existing.condition, condition),
            (Mode::Append, None) => {
                return Err(position.error(format!(
                    "macro {name:?}: cannot append to a macro that was not defined before"
                )));
            }
            _ => {
                self.macros.insert(name, MacroDef { condition });
            }
        }
        Ok(())
    }

    fn rule(&mut self, item: &Node, position: Position) -> Result<(), LoadError> {
        let name = scalar(item, "rule", &position)?;
        let context = format!("rule {name:?}");
        let file = position.file.clone();
        let existing = self.rules.iter().position(|r| r.name == name);
        let is_override = item.get("override").is_some() || flag(item, "append", &position)?;
        let Kind::Map(entries) = &item.kind else {
            return Ok(());
        };
        let only_enabled = entries.iter().all(|(k, _)| k == "rule" || k == "enabled");
        match existing {
            Some(index) if is_override || only_enabled => {
                let mut rule = self.rules[index].clone();
                self.override_rule(&mut rule, item, &position, &context)?;
                self.rules[index] = rule;
            }
            None if is_override || only_enabled => {
                return Err(position.error(format!(
                    "{context}: cannot override or toggle a rule that was not defined before"
                )));
            }
            _ => {
                let rule = new_rule(item, name, position, &context)?;
                match existing {
                    Some(index) => self.rules[index] = rule,
                    None => self.rules.push(rule),
                }
                self.counts.rules += 1;
            }
        }
        for (key, _) in entries {
            if !RULE_KEYS.contains(&key.as_str()) {
                self.warnings.push(format!(
                    "{file}:{}:{}: {context}: ignored unknown key {key:?}",
                    item.line, item.column
                ));
            }
        }
        Ok(())
    }

    /// Applies `override: {key: append|replace}` (or the legacy `append: true`).
    fn override_rule(
        &self,
        rule: &mut RuleDef,
        item: &Node,
        position: &Position,
        context: &str,
    ) -> Result<(), LoadError> {
        for key in [
            "condition",
            "output",
            "desc",
            "priority",
            "tags",
            "exceptions",
            "enabled",
        ] {
            if item.get(key).is_none() {
                continue;
            }
            let mode = match mode(item, key, position)? {
                // `rule` + `enabled` alone toggles the rule.
                Mode::Define if key == "enabled" => Mode::Replace,
                Mode::Define => {
                    return Err(position.error(format!(
                        "{context}: key `{key}` needs an `override` entry (append or replace)"
                    )));
                }
                mode => mode,
            };
            let append = mode == Mode::Append;
            match key {
                "condition" => {
                    let new = condition(item, position, context)?;
                    if append {
                        append_condition(&mut rule.condition, new);
                    } else {
                        rule.condition = new;
                    }
                }
                "output" | "desc" => {
                    let value = scalar(item, key, position)?;
                    let target = if key == "output" {
                        &mut rule.output
                    } else {
                        &mut rule.desc
                    };
                    if append {
                        target.push(' ');
                        target.push_str(&value);
                    } else {
                        *target = value;
                    }
                }
                "priority" if !append => rule.priority = priority(item, position, context)?,
                "enabled" if !append => rule.enabled = flag(item, "enabled", position)?,
                "tags" => {
                    let tags = tags(item, position, context)?;
                    if append {
                        rule.tags.extend(tags);
                    } else {
                        rule.tags = tags;
                    }
                }
                "exceptions" => {
                    let new = exceptions(item, position, context)?;
                    if append {
                        merge_exceptions(&mut rule.exceptions, new)?;
                    } else {
                        rule.exceptions = require_fields(new)?;
                    }
                }
                _ => {
                    return Err(position.error(format!("{context}: `{key}` cannot be appended")));
                }
            }
        }
        Ok(())
    }
}

const RULE_KEYS: &[&str] = &[
    "rule",
    "desc",
    "condition",
    "output",
    "priority",
    "tags",
    "enabled",
    "exceptions",
    "source",
    "override",
    "append",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
];

fn new_rule(
    item: &Node,
    name: String,
    position: Position,
    context: &str,
) -> Result<RuleDef, LoadError> {
    for key in ["condition", "output", "priority"] {
        if item.get(key).is_none() {
            return Err(position.error(format!("{context}: expected key `{key}`")));
        }
    }
    Ok(RuleDef {
        desc: optional_scalar(item, "desc", &position)?.unwrap_or_default(),
        condition: condition(item, &position, context)?,
        output: scalar(item, "output", &position)?,
        priority: priority(item, &position, context)?,
        tags: tags(item, &position, context)?,
        enabled: match item.get("enabled") {
            Some(_) => flag(item, "enabled", &position)?,
            None => true,
        },
        exceptions: require_fields(exceptions(item, &position, context)?)?,
        source: optional_scalar(item, "source", &position)?.unwrap_or_else(|| "syscall".into()),
        skip_if_unknown_filter: flag(item, "skip-if-unknown-filter", &position)?,
        name,
        position,
    })
}

fn append_condition(existing: &mut Condition, new: Condition) {
    existing.text.push(' ');
    existing.text.push_str(&new.text);
    existing.position = new.position;
    // Offsets now count from the start of the earlier text.
    existing.text_column = None;
}

fn merge_exceptions(
    existing: &mut Vec<ExceptionDef>,
    new: Vec<ExceptionDef>,
) -> Result<(), LoadError> {
    for exception in new {
        match existing.iter_mut().find(|e| e.name == exception.name) {
            // One field: every appended value joins the `in` list.
            Some(earlier) if earlier.fields.len() == 1 => {
                let values: Vec<String> = exception
                    .values
                    .into_iter()
                    .flatten()
                    .flat_map(|v| match v {
                        ExceptionValue::One(s) => vec![s],
                        ExceptionValue::Many(list) => list,
                    })
                    .collect();
                earlier.values.push(vec![ExceptionValue::Many(values)]);
            }
            Some(earlier) => {
                if let Some(row) = exception
                    .values
                    .iter()
                    .find(|r| r.len() != earlier.fields.len())
                {
                    return Err(exception.position.error(format!(
                        "exception {:?}: expected tuples of {} values, found {}",
                        exception.name,
                        earlier.fields.len(),
                        row.len()
                    )));
                }
                earlier.values.extend(exception.values);
            }
            None if exception.fields.is_empty() => {
                return Err(exception.position.error(format!(
                    "exception {:?}: expected key `fields` (no earlier exception of that name)",
                    exception.name
                )));
            }
            None => existing.push(exception),
        }
    }
    Ok(())
}

/// Exceptions that define a shape must name their fields.
fn require_fields(exceptions: Vec<ExceptionDef>) -> Result<Vec<ExceptionDef>, LoadError> {
    match exceptions.iter().find(|e| e.fields.is_empty()) {
        Some(e) => Err(e
            .position
            .error(format!("exception {:?}: expected key `fields`", e.name))),
        None => Ok(exceptions),
    }
}

/// Values of an appended exception: tuples, or scalars as one-value tuples.
fn loose_rows(
    node: &Node,
    position: &Position,
    context: &str,
) -> Result<Vec<Vec<ExceptionValue>>, LoadError> {
    let Kind::Seq(rows) = &node.kind else {
        return Err(at(node, position).error(format!("{context}: `values` must be a sequence")));
    };
    rows.iter()
        .map(|row| match &row.kind {
            Kind::Scalar(s) => Ok(vec![ExceptionValue::One(s.clone())]),
            Kind::Seq(cells) => cells
                .iter()
                .map(|cell| match &cell.kind {
                    Kind::Scalar(s) => Ok(ExceptionValue::One(s.clone())),
                    _ => strings(cell, position, context).map(ExceptionValue::Many),
                })
                .collect(),
            _ => Err(at(row, position).error(format!("{context}: expected a tuple of values"))),
        })
        .collect()
}

fn mode(item: &Node, key: &str, position: &Position) -> Result<Mode, LoadError> {
    if let Some(overrides) = item.get("override") {
        let Kind::Map(entries) = &overrides.kind else {
            return Err(
                position.error("`override` must be a mapping of key: append|replace".into())
            );
        };
        return match entries.iter().find(|(k, _)| k == key).map(|(_, v)| &v.kind) {
            Some(Kind::Scalar(v)) if v == "append" => Ok(Mode::Append),
            Some(Kind::Scalar(v)) if v == "replace" => Ok(Mode::Replace),
            Some(_) => Err(position.error(format!(
                "override of `{key}`: expected `append` or `replace`"
            ))),
            None => Ok(Mode::Define),
        };
    }
    Ok(if flag(item, "append", position)? {
        Mode::Append
    } else {
        Mode::Define
    })
}

fn at(node: &Node, position: &Position) -> Position {
    Position {
        file: position.file.clone(),
        line: node.line,
        column: node.column,
    }
}

fn optional_scalar(
    item: &Node,
    key: &str,
    position: &Position,
) -> Result<Option<String>, LoadError> {
    match item.get(key) {
        None => Ok(None),
        Some(Node {
            kind: Kind::Scalar(s),
            ..
        }) => Ok(Some(s.clone())),
        Some(Node {
            kind: Kind::Null, ..
        }) => Ok(Some(String::new())),
        Some(node) => Err(at(node, position).error(format!(
            "`{key}`: expected a string, found {}",
            node.describe()
        ))),
    }
}

fn scalar(item: &Node, key: &str, position: &Position) -> Result<String, LoadError> {
    optional_scalar(item, key, position)?
        .ok_or_else(|| position.error(format!("expected key `{key}`")))
}

fn flag(item: &Node, key: &str, position: &Position) -> Result<bool, LoadError> {
    match optional_scalar(item, key, position)?.as_deref() {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => {
            let node = item
                .get(key)
                .map_or_else(|| position.clone(), |n| at(n, position));
            Err(node.error(format!("`{key}`: expected true or false, found {other:?}")))
        }
    }
}

fn condition(item: &Node, position: &Position, context: &str) -> Result<Condition, LoadError> {
    let node = item
        .get("condition")
        .ok_or_else(|| position.error(format!("{context}: expected key `condition`")))?;
    let Kind::Scalar(text) = &node.kind else {
        return Err(at(node, position).error(format!(
            "{context}: `condition` must be a string, found {}",
            node.describe()
        )));
    };
    Ok(Condition {
        text: text.clone(),
        position: at(node, position),
        text_column: node.text_column,
    })
}

fn priority(item: &Node, position: &Position, context: &str) -> Result<Priority, LoadError> {
    let text = scalar(item, "priority", position)?;
    Priority::from_label(&text).ok_or_else(|| {
        let node = item.get("priority").map_or_else(|| position.clone(), |n| at(n, position));
        node.error(format!(
            "{context}: expected a priority (emergency, alert, critical, error, warning, notice, informational, debug), found {text:?}"
        ))
    })
}

fn tags(item: &Node, position: &Position, context: &str) -> Result<Vec<String>, LoadError> {
    match item.get("tags") {
        None => Ok(Vec::new()),
        Some(node) => strings(node, position, &format!("{context} tags")),
    }
}

/// A sequence of scalars (a lone scalar counts as one).
fn strings(node: &Node, position: &Position, context: &str) -> Result<Vec<String>, LoadError> {
    match &node.kind {
        Kind::Null => Ok(Vec::new()),
        Kind::Scalar(s) => Ok(vec![s.clone()]),
        Kind::Seq(items) => items
            .iter()
            .map(|item| match &item.kind {
                Kind::Scalar(s) => Ok(s.clone()),
                _ => Err(at(item, position).error(format!(
                    "{context}: expected a string, found {}",
                    item.describe()
                ))),
            })
            .collect(),
        Kind::Map(_) => Err(at(node, position).error(format!(
            "{context}: expected a sequence of strings, found a mapping"
        ))),
    }
}

fn exceptions(
    item: &Node,
    position: &Position,
    context: &str,
) -> Result<Vec<ExceptionDef>, LoadError> {
    let Some(node) = item.get("exceptions") else {
        return Ok(Vec::new());
    };
    let Kind::Seq(entries) = &node.kind else {
        return Err(at(node, position).error(format!(
            "{context}: `exceptions` must be a sequence, found {}",
            node.describe()
        )));
    };
    entries
        .iter()
        .map(|entry| exception(entry, &at(entry, position), context))
        .collect()
}

fn exception(entry: &Node, position: &Position, context: &str) -> Result<ExceptionDef, LoadError> {
    let name = scalar(entry, "name", position)
        .map_err(|_| position.error(format!("{context}: exception: expected key `name`")))?;
    let context = format!("{context} exception {name:?}");
    let Some(fields_node) = entry.get("fields") else {
        // Values appended to an exception defined earlier (its fields are
        // taken from there when merging).
        let values = match entry.get("values") {
            Some(node) => loose_rows(node, position, &context)?,
            None => Vec::new(),
        };
        return Ok(ExceptionDef {
            name,
            fields: Vec::new(),
            comps: Vec::new(),
            values,
            position: position.clone(),
        });
    };
    let single = matches!(fields_node.kind, Kind::Scalar(_));
    let fields = strings(fields_node, position, &context)?;
    let comps = match entry.get("comps") {
        Some(node) => strings(node, position, &context)?,
        None if single => vec!["in".to_owned()],
        None => vec!["=".to_owned(); fields.len()],
    };
    if comps.len() != fields.len() {
        return Err(position.error(format!(
            "{context}: {} comps for {} fields",
            comps.len(),
            fields.len()
        )));
    }
    let values = match entry.get("values") {
        None => Vec::new(),
        // The single-field form lists values for one `in`-like comparison.
        Some(node) if single => vec![vec![ExceptionValue::Many(strings(
            node, position, &context,
        )?)]],
        Some(node) => tuples(node, position, &context, fields.len())?,
    };
    Ok(ExceptionDef {
        name,
        fields,
        comps,
        values,
        position: position.clone(),
    })
}

fn tuples(
    node: &Node,
    position: &Position,
    context: &str,
    width: usize,
) -> Result<Vec<Vec<ExceptionValue>>, LoadError> {
    let Kind::Seq(rows) = &node.kind else {
        return Err(at(node, position).error(format!("{context}: `values` must be a sequence")));
    };
    rows.iter()
        .map(|row| {
            let Kind::Seq(cells) = &row.kind else {
                return Err(at(row, position).error(format!(
                    "{context}: expected a tuple of {width} values, found {}",
                    row.describe()
                )));
            };
            if cells.len() != width {
                return Err(at(row, position).error(format!(
                    "{context}: expected a tuple of {width} values, found {}",
                    cells.len()
                )));
            }
            cells
                .iter()
                .map(|cell| match &cell.kind {
                    Kind::Scalar(s) => Ok(ExceptionValue::One(s.clone())),
                    _ => strings(cell, position, context).map(ExceptionValue::Many),
                })
                .collect()
        })
        .collect()
}

fn check_engine_version(node: &Node, position: &Position) -> Result<(), LoadError> {
    let Kind::Scalar(text) = &node.kind else {
        return Err(at(node, position).error("required_engine_version: expected a version".into()));
    };
    let parts: Vec<_> = text.split('.').map(str::parse::<u64>).collect();
    let required = match parts.as_slice() {
        // Old files give a bare integer: the minor version.
        [Ok(minor)] => (0, *minor, 0),
        [Ok(a), Ok(b), Ok(c)] => (*a, *b, *c),
        _ => {
            return Err(at(node, position).error(format!(
                "required_engine_version: expected a version like 0.57.0, found {text:?}"
            )));
        }
    };
    if required > ENGINE_VERSION {
        let (a, b, c) = ENGINE_VERSION;
        return Err(at(node, position).error(format!(
            "this file requires engine version {text}, this engine implements {a}.{b}.{c}"
        )));
    }
    Ok(())
}
