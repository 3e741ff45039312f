//! From parsed conditions to predicates that are cheap to evaluate: macros
//! inlined, lists expanded into hash sets or Aho-Corasick automata, globs
//! and regexes compiled once, numeric fields compared as numbers. Fields
//! we cannot provide are collected in [`Compiler::unsupported`], so the
//! caller can refuse to run a condition that would depend on them.

use std::{
    borrow::Cow,
    cell::{OnceCell, RefCell},
    collections::{BTreeSet, HashMap},
    net::IpAddr,
};

use aho_corasick::AhoCorasick;
use vigil_proto::v1::Event;

use crate::{
    condition::{self, Compare, Expr, Item, Op, Quantifier, Rhs, Transformer},
    fields::{Field, Side, Value, is_numeric},
    hash::FastSet,
    loader::MacroDef,
};

/// Sets up to this size are scanned rather than hashed.
const SMALL_SET: usize = 6;

/// A compiled condition.
#[derive(Debug)]
pub enum Pred {
    Const(bool),
    And(Box<[Pred]>),
    Or(Box<[Pred]>),
    Not(Box<Pred>),
    Test(Box<Test>),
}

#[derive(Debug)]
pub struct Operand {
    pub field: Field,
    transformers: Box<[Transformer]>,
}

#[derive(Debug)]
pub struct Test {
    pub lhs: Operand,
    pub matcher: Matcher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub enum Matcher {
    Exists,
    Eq(String),
    Ne(String),
    Num(NumOp, i64),
    InStr(FastSet<String>),
    /// Sets of up to [`SMALL_SET`] strings: comparing beats hashing.
    InSmall(Box<[String]>),
    InNum(FastSet<i64>),
    Intersects(FastSet<String>),
    Contains(String),
    ContainsAny(AhoCorasick),
    ContainsAll(Vec<String>),
    IContains(String),
    StartsWith(Box<[String]>),
    EndsWith(Box<[String]>),
    /// The literal text every pattern starts with is checked first: most
    /// values fail there without running the glob automaton.
    Glob(globset::GlobSet, String),
    Regex(regex::Regex),
    Pmatch(Box<[String]>),
    Cidr(Box<[(IpAddr, u8)]>),
    Field(Op, Operand),
}

/// What went wrong, with the byte offset in the condition when known.
#[derive(Debug)]
pub struct CompileError {
    pub offset: Option<usize>,
    pub message: String,
    /// The name, when the error is a field this engine does not know
    /// (what Falco's `skip-if-unknown-filter` lets a rule be skipped for).
    pub unknown_field: Option<String>,
}

/// What `b64()` is reported as: base64 decoding is not implemented.
pub const B64: &str = "b64()";

pub struct Compiler<'a> {
    pub lists: &'a HashMap<String, Vec<String>>,
    pub macros: &'a HashMap<String, MacroDef>,
    /// Parsed macro bodies, so a macro used by many rules is parsed once.
    pub parsed: &'a HashMap<String, Expr>,
    /// Unsupported fields (and transformers) met since the last
    /// [`Compiler::take_unsupported`]: a predicate using one is a stand-in
    /// that must not be evaluated.
    pub unsupported: RefCell<BTreeSet<String>>,
}

impl<'a> Compiler<'a> {
    pub fn new(
        lists: &'a HashMap<String, Vec<String>>,
        macros: &'a HashMap<String, MacroDef>,
        parsed: &'a HashMap<String, Expr>,
    ) -> Self {
        Self {
            lists,
            macros,
            parsed,
            unsupported: RefCell::default(),
        }
    }

    /// The unsupported names met since the last call.
    pub fn take_unsupported(&self) -> BTreeSet<String> {
        std::mem::take(&mut self.unsupported.borrow_mut())
    }

    pub fn compile(&self, expr: &Expr, stack: &mut Vec<String>) -> Result<Pred, CompileError> {
        Ok(match expr {
            Expr::And(parts) => and(parts
                .iter()
                .map(|p| self.compile(p, stack))
                .collect::<Result<Vec<_>, _>>()?),
            Expr::Or(parts) => or(parts
                .iter()
                .map(|p| self.compile(p, stack))
                .collect::<Result<Vec<_>, _>>()?),
            Expr::Not(inner) => not(self.compile(inner, stack)?),
            Expr::Macro { name, offset } => self.expand(name, *offset, stack)?,
            Expr::Compare(compare) => self.compare(compare).map_err(|mut error| {
                error.offset = Some(compare.offset);
                error
            })?,
        })
    }

    fn expand(
        &self,
        name: &str,
        offset: usize,
        stack: &mut Vec<String>,
    ) -> Result<Pred, CompileError> {
        let Some(body) = self.parsed.get(name) else {
            let message = if self.macros.contains_key(name) {
                format!("macro `{name}` does not parse")
            } else {
                format!("unknown macro `{name}`")
            };
            return Err(CompileError {
                offset: Some(offset),
                message,
                unknown_field: None,
            });
        };
        if stack.iter().any(|m| m == name) {
            return Err(CompileError {
                offset: Some(offset),
                message: format!(
                    "macro `{name}` refers to itself through {}",
                    stack.join(" → ")
                ),
                unknown_field: None,
            });
        }
        stack.push(name.to_owned());
        let result = self.compile(body, stack).map_err(|error| CompileError {
            // The offset is inside the macro, so name the macro instead.
            offset: Some(offset),
            message: format!("in macro `{name}`: {}", error.message),
            unknown_field: error.unknown_field,
        });
        stack.pop();
        result
    }

    fn operand(&self, operand: &condition::Operand) -> Result<Operand, CompileError> {
        let field = Field::parse(&operand.field).ok_or_else(|| CompileError {
            offset: None,
            message: format!("unknown field `{}`", operand.field),
            unknown_field: Some(operand.field.clone()),
        })?;
        if let Field::Unsupported(name) = &field {
            self.unsupported.borrow_mut().insert(name.clone());
        }
        if operand.transformers.contains(&Transformer::B64) {
            self.unsupported.borrow_mut().insert(B64.to_owned());
        }
        Ok(Operand {
            field,
            transformers: operand.transformers.clone().into_boxed_slice(),
        })
    }

    /// Values of a set, with list names expanded and list-item quotes removed.
    fn values(&self, items: &[Item]) -> Vec<String> {
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item::Bare(name) => match self.lists.get(name) {
                    Some(list) => values.extend(list.iter().map(|v| unquote(v).to_owned())),
                    None => values.push(name.clone()),
                },
                Item::Quoted(value) => values.push(value.clone()),
            }
        }
        values
    }

    fn compare(&self, compare: &Compare) -> Result<Pred, CompileError> {
        let lhs = self.operand(&compare.lhs)?;
        if matches!(lhs.field, Field::Unsupported(_)) {
            // Recorded as unsupported; still check the right side's fields.
            if let Rhs::Field(other) = &compare.rhs {
                self.operand(other)?;
            }
            return Ok(Pred::Const(false));
        }
        let numeric = is_numeric(&lhs.field) && lhs.transformers.is_empty()
            || lhs.transformers.last() == Some(&Transformer::Len);
        let matcher = match &compare.rhs {
            Rhs::None => Matcher::Exists,
            Rhs::Field(other) => Matcher::Field(compare.op, self.operand(other)?),
            Rhs::Value(item) => {
                let values = [item.text().to_owned()];
                scalar_matcher(compare.op, &values, Quantifier::Any, numeric, &lhs.field)
                    .map_err(invalid)?
            }
            Rhs::Set(items) => {
                set_matcher(compare.op, self.values(items), numeric, &lhs.field).map_err(invalid)?
            }
            Rhs::Quantified(quantifier, items) => scalar_matcher(
                compare.op,
                &self.values(items),
                *quantifier,
                numeric,
                &lhs.field,
            )
            .map_err(invalid)?,
        };
        Ok(Pred::Test(Box::new(Test { lhs, matcher })))
    }
}

fn invalid(message: String) -> CompileError {
    CompileError {
        offset: None,
        message,
        unknown_field: None,
    }
}

/// Removes the quotes of a list item written as `'"a b"'`.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

fn parse_num(value: &str) -> Result<i64, String> {
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => value.parse::<i64>().ok(),
    };
    parsed.ok_or_else(|| format!("expected a number, found {value:?}"))
}

fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    match value.split_once('/') {
        Some((ip, bits)) => Some((ip.parse().ok()?, bits.parse().ok()?)),
        None => {
            let ip: IpAddr = value.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

fn set_matcher(
    op: Op,
    values: Vec<String>,
    numeric: bool,
    field: &Field,
) -> Result<Matcher, String> {
    Ok(match op {
        Op::In if matches!(field, Field::FdNet(_)) => cidrs(&values)?,
        Op::In if numeric => Matcher::InNum(
            values
                .iter()
                .map(|v| parse_num(v))
                .collect::<Result<_, _>>()?,
        ),
        Op::In if values.len() <= SMALL_SET => Matcher::InSmall(values.into_boxed_slice()),
        Op::In => Matcher::InStr(values.into_iter().collect()),
        Op::Intersects => Matcher::Intersects(values.into_iter().collect()),
        Op::Pmatch => Matcher::Pmatch(
            values
                .into_iter()
                .map(|v| v.trim_end_matches('/').to_owned())
                .collect(),
        ),
        other => return Err(format!("operator {other:?} does not take a list")),
    })
}

fn cidrs(values: &[String]) -> Result<Matcher, String> {
    let nets = values
        .iter()
        .map(|v| parse_cidr(v).ok_or_else(|| format!("expected an IP network, found {v:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Matcher::Cidr(nets.into_boxed_slice()))
}

fn scalar_matcher(
    op: Op,
    values: &[String],
    quantifier: Quantifier,
    numeric: bool,
    field: &Field,
) -> Result<Matcher, String> {
    let first = values.first().cloned().unwrap_or_default();
    let num_op = match op {
        Op::Eq => Some(NumOp::Eq),
        Op::Ne => Some(NumOp::Ne),
        Op::Lt => Some(NumOp::Lt),
        Op::Le => Some(NumOp::Le),
        Op::Gt => Some(NumOp::Gt),
        Op::Ge => Some(NumOp::Ge),
        _ => None,
    };
    if let Some(num_op) = num_op {
        if matches!(field, Field::FdNet(_)) && matches!(op, Op::Eq) {
            return cidrs(values);
        }
        let ordering = !matches!(op, Op::Eq | Op::Ne);
        if numeric || ordering {
            return Ok(Matcher::Num(num_op, parse_num(&first)?));
        }
        return Ok(if op == Op::Eq {
            Matcher::Eq(first)
        } else {
            Matcher::Ne(first)
        });
    }
    Ok(match op {
        Op::Contains | Op::BContains => match (values, quantifier) {
            ([one], _) => Matcher::Contains(one.clone()),
            (_, Quantifier::Any) => Matcher::ContainsAny(
                AhoCorasick::new(values).map_err(|e| format!("cannot build matcher: {e}"))?,
            ),
            (_, Quantifier::All) => Matcher::ContainsAll(values.to_vec()),
        },
        Op::IContains => Matcher::IContains(first.to_lowercase()),
        Op::StartsWith | Op::BStartsWith => Matcher::StartsWith(values.into()),
        Op::EndsWith => Matcher::EndsWith(values.into()),
        Op::Glob | Op::IGlob => {
            let mut set = globset::GlobSetBuilder::new();
            for value in values {
                let glob = globset::GlobBuilder::new(value)
                    .literal_separator(true)
                    .case_insensitive(op == Op::IGlob)
                    .build()
                    .map_err(|e| format!("invalid glob {value:?}: {e}"))?;
                set.add(glob);
            }
            let prefix = common_literal_prefix(values, op == Op::IGlob);
            Matcher::Glob(
                set.build().map_err(|e| format!("invalid glob: {e}"))?,
                prefix,
            )
        }
        Op::Regex => Matcher::Regex(
            regex::Regex::new(&format!("^(?:{first})$"))
                .map_err(|e| format!("invalid regex {first:?}: {e}"))?,
        ),
        other => return Err(format!("operator {other:?} needs a list of values")),
    })
}

/// The longest prefix free of glob syntax shared by all patterns ("" for
/// case-insensitive globs).
fn common_literal_prefix(patterns: &[String], case_insensitive: bool) -> String {
    if case_insensitive {
        return String::new();
    }
    let literal = |p: &str| -> String {
        p.chars()
            .take_while(|c| !matches!(c, '*' | '?' | '[' | '{' | '\\'))
            .collect()
    };
    let mut prefix = patterns.first().map(|p| literal(p)).unwrap_or_default();
    for pattern in patterns.iter().skip(1) {
        let other = literal(pattern);
        let common = prefix
            .char_indices()
            .zip(other.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        prefix.truncate(common);
    }
    prefix
}

fn and(parts: Vec<Pred>) -> Pred {
    let mut kept = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Pred::Const(true) => {}
            Pred::Const(false) => return Pred::Const(false),
            Pred::And(inner) => kept.extend(inner.into_vec()),
            other => kept.push(other),
        }
    }
    match kept.len() {
        0 => Pred::Const(true),
        1 => kept.remove(0),
        _ => Pred::And(kept.into_boxed_slice()),
    }
}

fn or(parts: Vec<Pred>) -> Pred {
    let mut kept = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Pred::Const(false) => {}
            Pred::Const(true) => return Pred::Const(true),
            Pred::Or(inner) => kept.extend(inner.into_vec()),
            other => kept.push(other),
        }
    }
    match kept.len() {
        0 => Pred::Const(false),
        1 => kept.remove(0),
        _ => Pred::Or(kept.into_boxed_slice()),
    }
}

pub fn not(inner: Pred) -> Pred {
    match inner {
        Pred::Const(b) => Pred::Const(!b),
        Pred::Not(inner) => *inner,
        other => Pred::Not(Box::new(other)),
    }
}

pub fn and_not(condition: Pred, exception: Pred) -> Pred {
    and(vec![condition, not(exception)])
}

pub fn any_of(parts: Vec<Pred>) -> Pred {
    or(parts)
}

pub fn all_of(parts: Vec<Pred>) -> Pred {
    and(parts)
}

/// Removes top-level `evt.type` tests that the evt.type index already
/// guarantees: the rule only meets events whose type is in `types`, which
/// is the intersection of those tests' sets.
pub fn drop_implied_types(pred: Pred, types: &BTreeSet<String>) -> Pred {
    let implied = |part: &Pred| match part {
        Pred::Test(test)
            if test.lhs.field == Field::EvtType && test.lhs.transformers.is_empty() =>
        {
            match &test.matcher {
                Matcher::Eq(value) => types.iter().all(|t| t == value),
                Matcher::InStr(set) => types.iter().all(|t| set.contains(t)),
                Matcher::InSmall(set) => types.iter().all(|t| set.contains(t)),
                _ => false,
            }
        }
        _ => false,
    };
    match pred {
        Pred::And(parts) => and(parts
            .into_vec()
            .into_iter()
            .filter(|p| !implied(p))
            .collect()),
        other if implied(&other) => Pred::Const(true),
        other => other,
    }
}

/// Orders every conjunction so that selective, cheap tests (a path prefix,
/// a name in a set) run before broad ones (a flag, `!=`, nested logic):
/// most events then fail on the first test. Predicates have no side
/// effects, so the order does not change results.
pub fn reorder(pred: Pred) -> Pred {
    match pred {
        Pred::And(parts) => {
            let mut parts: Vec<Pred> = parts.into_vec().into_iter().map(reorder).collect();
            parts.sort_by_key(cost);
            Pred::And(parts.into_boxed_slice())
        }
        Pred::Or(parts) => Pred::Or(parts.into_vec().into_iter().map(reorder).collect()),
        Pred::Not(inner) => Pred::Not(Box::new(reorder(*inner))),
        other => other,
    }
}

/// 0: selective string tests; 1: broad tests; 2: nested logic.
fn cost(pred: &Pred) -> u8 {
    let Pred::Test(test) = pred else {
        return 2;
    };
    let broad_field = matches!(
        test.lhs.field,
        Field::EvtIsOpenRead
            | Field::EvtIsOpenWrite
            | Field::EvtIsOpenExec
            | Field::EvtFailed
            | Field::ProcIsExeFromMemfd
            | Field::ProcIsContainerRuntimeSetup
            | Field::EvtType
            | Field::ContainerId
    );
    let broad_matcher = matches!(
        test.matcher,
        Matcher::Ne(_) | Matcher::Num(..) | Matcher::Exists | Matcher::Field(..)
    );
    u8::from(broad_field || broad_matcher)
}

/// The `evt.type` values a predicate can be true for; `None` means any.
pub fn event_types(pred: &Pred) -> Option<BTreeSet<String>> {
    match pred {
        Pred::Const(false) => Some(BTreeSet::new()),
        Pred::Const(true) | Pred::Not(_) => None,
        Pred::Test(test)
            if test.lhs.field == Field::EvtType && test.lhs.transformers.is_empty() =>
        {
            match &test.matcher {
                Matcher::Eq(value) => Some([value.clone()].into()),
                Matcher::InStr(values) => Some(values.iter().cloned().collect()),
                Matcher::InSmall(values) => Some(values.iter().cloned().collect()),
                _ => None,
            }
        }
        Pred::Test(_) => None,
        Pred::And(parts) => parts.iter().filter_map(event_types).reduce(|a, b| &a & &b),
        Pred::Or(parts) => {
            let mut all = BTreeSet::new();
            for part in parts.iter() {
                all.extend(event_types(part)?);
            }
            Some(all)
        }
    }
}

impl Pred {
    pub fn eval(&self, event: &Event) -> bool {
        self.eval_in(&EvalCtx::new(event))
    }

    /// Evaluates with a context shared by all rules an event meets.
    pub fn eval_in(&self, ctx: &EvalCtx<'_>) -> bool {
        match self {
            Pred::Const(b) => *b,
            Pred::And(parts) => parts.iter().all(|p| p.eval_in(ctx)),
            Pred::Or(parts) => parts.iter().any(|p| p.eval_in(ctx)),
            Pred::Not(inner) => !inner.eval_in(ctx),
            Pred::Test(test) => test.eval(ctx),
        }
    }
}

/// One event under evaluation, with the derived values that several rules
/// ask for computed at most once (command lines are built, addresses parsed).
pub struct EvalCtx<'a> {
    pub event: &'a Event,
    cmdline: OnceCell<Option<String>>,
    args: OnceCell<Option<String>>,
    ips: [OnceCell<Option<IpAddr>>; 5],
}

impl<'a> EvalCtx<'a> {
    pub fn new(event: &'a Event) -> Self {
        Self {
            event,
            cmdline: OnceCell::new(),
            args: OnceCell::new(),
            ips: Default::default(),
        }
    }

    fn cached<'c>(&'c self, field: &Field) -> Option<Value<'c>> {
        let text = |cell: &'c OnceCell<Option<String>>| {
            let value = cell.get_or_init(|| field.extract(self.event).render());
            Some(
                value
                    .as_deref()
                    .map_or(Value::Absent, |s| Value::Str(Cow::Borrowed(s))),
            )
        };
        match field {
            Field::ProcCmdline => text(&self.cmdline),
            Field::ProcArgs => text(&self.args),
            _ => None,
        }
    }

    fn ip(&self, side: Side) -> Option<IpAddr> {
        let index = match side {
            Side::Server => 0,
            Side::Client => 1,
            Side::Remote => 2,
            Side::Local => 3,
            Side::Any => 4,
        };
        *self.ips[index]
            .get_or_init(|| crate::fd::endpoint(self.event, side).and_then(|a| a.ip.parse().ok()))
    }
}

impl Operand {
    pub fn value<'a>(&self, event: &'a Event) -> Value<'a> {
        self.transform(self.field.extract(event))
    }

    fn value_in<'c>(&self, ctx: &'c EvalCtx<'_>) -> Value<'c> {
        let value = ctx
            .cached(&self.field)
            .unwrap_or_else(|| self.field.extract(ctx.event));
        self.transform(value)
    }

    #[inline]
    fn transform<'a>(&self, mut value: Value<'a>) -> Value<'a> {
        if self.transformers.is_empty() {
            return value;
        }
        for transformer in self.transformers.iter() {
            value = transform(*transformer, value);
        }
        value
    }
}

fn transform(transformer: Transformer, value: Value<'_>) -> Value<'_> {
    let text = match value {
        Value::Str(s) => s,
        Value::Num(n) if transformer == Transformer::Len => {
            return Value::Num(n.to_string().len() as i64);
        }
        Value::Many(v) if transformer == Transformer::Len => return Value::Num(v.len() as i64),
        other => return other,
    };
    match transformer {
        Transformer::ToLower => Value::Str(Cow::Owned(text.to_lowercase())),
        Transformer::ToUpper => Value::Str(Cow::Owned(text.to_uppercase())),
        Transformer::Len => Value::Num(text.chars().count() as i64),
        Transformer::Basename => Value::Str(match text {
            Cow::Borrowed(s) => Cow::Borrowed(s.rsplit('/').next().unwrap_or(s)),
            Cow::Owned(s) => Cow::Owned(s.rsplit('/').next().unwrap_or(&s).to_owned()),
        }),
        // Not implemented: the compiler reports rules using it as
        // unsupported, so this value never decides a rule.
        Transformer::B64 => Value::Absent,
    }
}

impl Test {
    fn eval(&self, ctx: &EvalCtx<'_>) -> bool {
        if let (Field::FdNet(side), Matcher::Cidr(nets), true) = (
            &self.lhs.field,
            &self.matcher,
            self.lhs.transformers.is_empty(),
        ) {
            return ctx
                .ip(*side)
                .is_some_and(|ip| nets.iter().any(|(net, bits)| in_network(ip, *net, *bits)));
        }
        let value = self.lhs.value_in(ctx);
        let event = ctx.event;
        match (&self.matcher, value) {
            (_, Value::Absent) => false,
            (Matcher::Exists, _) => true,
            (Matcher::InStr(set), Value::Many(values)) => {
                values.iter().all(|v| set.contains(v.as_ref()))
            }
            (Matcher::InSmall(set), Value::Many(values)) => {
                values.iter().all(|v| set.iter().any(|s| s == v))
            }
            (Matcher::Intersects(set), Value::Many(values)) => {
                values.iter().any(|v| set.contains(v.as_ref()))
            }
            (matcher, Value::Many(values)) => values.iter().any(|v| matcher.text(v, event)),
            (matcher, Value::Num(n)) => matcher.number(n, event),
            (matcher, Value::Str(s)) => matcher.text(&s, event),
        }
    }
}

impl Matcher {
    fn number(&self, n: i64, event: &Event) -> bool {
        match self {
            Matcher::Num(op, rhs) => compare_num(*op, n, *rhs),
            Matcher::InNum(set) => set.contains(&n),
            other => other.text(&n.to_string(), event),
        }
    }

    fn text(&self, value: &str, event: &Event) -> bool {
        match self {
            Matcher::Exists => true,
            Matcher::Eq(rhs) => value == rhs,
            Matcher::Ne(rhs) => value != rhs,
            Matcher::Num(op, rhs) => value
                .parse::<i64>()
                .is_ok_and(|n| compare_num(*op, n, *rhs)),
            Matcher::InStr(set) | Matcher::Intersects(set) => set.contains(value),
            Matcher::InSmall(set) => set.iter().any(|s| s == value),
            Matcher::InNum(set) => value.parse::<i64>().is_ok_and(|n| set.contains(&n)),
            Matcher::Contains(needle) => value.contains(needle.as_str()),
            Matcher::ContainsAny(automaton) => automaton.is_match(value),
            Matcher::ContainsAll(needles) => needles.iter().all(|n| value.contains(n.as_str())),
            Matcher::IContains(needle) => value.to_lowercase().contains(needle.as_str()),
            Matcher::StartsWith(prefixes) => prefixes.iter().any(|p| value.starts_with(p.as_str())),
            Matcher::EndsWith(suffixes) => suffixes.iter().any(|s| value.ends_with(s.as_str())),
            Matcher::Glob(set, prefix) => value.starts_with(prefix.as_str()) && set.is_match(value),
            Matcher::Regex(regex) => regex.is_match(value),
            Matcher::Pmatch(prefixes) => prefixes.iter().any(|p| path_prefix(p, value)),
            Matcher::Cidr(nets) => value
                .parse::<IpAddr>()
                .is_ok_and(|ip| nets.iter().any(|(net, bits)| in_network(ip, *net, *bits))),
            Matcher::Field(op, other) => match other.value(event).render() {
                Some(rhs) => match op {
                    Op::Eq => value == rhs,
                    Op::Ne => value != rhs,
                    Op::Contains => value.contains(&rhs),
                    Op::StartsWith => value.starts_with(&rhs),
                    Op::EndsWith => value.ends_with(&rhs),
                    _ => false,
                },
                None => false,
            },
        }
    }
}

fn compare_num(op: NumOp, lhs: i64, rhs: i64) -> bool {
    match op {
        NumOp::Eq => lhs == rhs,
        NumOp::Ne => lhs != rhs,
        NumOp::Lt => lhs < rhs,
        NumOp::Le => lhs <= rhs,
        NumOp::Gt => lhs > rhs,
        NumOp::Ge => lhs >= rhs,
    }
}

/// `prefix` matches `path` itself and anything below it, component-wise.
fn path_prefix(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() {
        // `/` after trimming: everything absolute is below the root.
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_networks() {
        assert!(path_prefix("/tmp/hello", "/tmp/hello"));
        assert!(path_prefix("/tmp/hello", "/tmp/hello/x"));
        assert!(!path_prefix("/tmp/hello", "/tmp/hello_world"));
        assert!(path_prefix("", "/etc"));
        let net = |s: &str| parse_cidr(s).unwrap();
        let (n, b) = net("169.254.0.0/16");
        assert!(in_network("169.254.169.254".parse().unwrap(), n, b));
        assert!(!in_network("169.255.0.1".parse().unwrap(), n, b));
        let (n, b) = net("0.0.0.0/0");
        assert!(in_network("8.8.8.8".parse().unwrap(), n, b));
        assert_eq!(unquote("'\"a b\"'"), "\"a b\"");
        assert_eq!(unquote("\"a b\""), "a b");
        let globs = |v: &[&str]| {
            common_literal_prefix(
                &v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                false,
            )
        };
        assert_eq!(globs(&["/proc/*/mem"]), "/proc/");
        assert_eq!(globs(&["/proc/*/mem", "/pro[c]"]), "/pro");
        assert_eq!(globs(&["/etc/x", "/var"]), "/");
    }
}
