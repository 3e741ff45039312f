//! The condition language: a recursive-descent parser from text to [`Expr`].
//!
//! Precedence, lowest first: `or`, `and`, `not`. A bare identifier in
//! predicate position is a macro; a bare word inside `( … )` after `in`,
//! `intersects` or `pmatch` is a value or a list name, never a macro.
//! Parsing is purely syntactic: fields, macros and lists are resolved by the
//! compiler, so a macro may be parsed before the lists it uses are known.

/// Nesting depth beyond which a condition is refused rather than risking
/// the stack (libsinsp uses the same bound).
const MAX_DEPTH: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A macro reference, with its byte offset in the condition.
    Macro {
        name: String,
        offset: usize,
    },
    Compare(Compare),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub lhs: Operand,
    pub op: Op,
    pub rhs: Rhs,
    /// Byte offset of the left-hand side in the condition text.
    pub offset: usize,
}

/// A field, possibly wrapped in transformers (`tolower(proc.name)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operand {
    /// Full field name including any `[argument]`.
    pub field: String,
    /// Innermost first.
    pub transformers: Vec<Transformer>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transformer {
    ToLower,
    ToUpper,
    Basename,
    B64,
    Len,
}

impl Transformer {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "tolower" => Self::ToLower,
            "toupper" => Self::ToUpper,
            "basename" => Self::Basename,
            "b64" => Self::B64,
            "len" => Self::Len,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
    In,
    Intersects,
    Pmatch,
    Exists,
}

impl Op {
    fn keyword(word: &str) -> Option<Self> {
        Some(match word {
            "contains" => Self::Contains,
            "icontains" => Self::IContains,
            "bcontains" => Self::BContains,
            "startswith" => Self::StartsWith,
            "bstartswith" => Self::BStartsWith,
            "endswith" => Self::EndsWith,
            "glob" => Self::Glob,
            "iglob" => Self::IGlob,
            "regex" => Self::Regex,
            "in" => Self::In,
            "intersects" => Self::Intersects,
            "pmatch" => Self::Pmatch,
            "exists" => Self::Exists,
            _ => return None,
        })
    }

    /// Operators whose right side is a set.
    pub fn takes_set(self) -> bool {
        matches!(self, Self::In | Self::Intersects | Self::Pmatch)
    }
}

/// A value written in a condition or list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Unquoted: may name a list when inside a set.
    Bare(String),
    Quoted(String),
}

impl Item {
    pub fn text(&self) -> &str {
        match self {
            Self::Bare(s) | Self::Quoted(s) => s,
        }
    }
}

/// How a string operator applies to a list of values (Falco 0.44 modifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rhs {
    /// `exists` has no right side.
    None,
    Value(Item),
    /// `( a, b, listname )` or a bare list name after a set operator.
    Set(Vec<Item>),
    /// `startswith oneof (…)` and friends.
    Quantified(Quantifier, Vec<Item>),
    /// `val(field)` or a transformed field: compare with another field.
    Field(Operand),
}

/// A syntax error: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: expected {expected}, found {found}")]
pub struct SyntaxError {
    pub offset: usize,
    pub expected: String,
    pub found: String,
}

pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
    let mut parser = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or_expr()?;
    parser.skip_ws();
    if parser.pos < text.len() {
        return Err(parser.error("`and`, `or` or the end of the condition"));
    }
    Ok(expr)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, expected: &str) -> SyntaxError {
        let found: String = self.rest().chars().take(24).collect();
        SyntaxError {
            offset: self.pos,
            expected: expected.to_owned(),
            found: if found.is_empty() {
                "the end of the condition".to_owned()
            } else {
                format!("{found:?}")
            },
        }
    }

    /// Consumes `word` if it is the next token and is followed by a blank,
    /// `(` or the end (keywords need a separator).
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        let Some(after) = rest.strip_prefix(word) else {
            return false;
        };
        let ok = after
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '(' || c == ')');
        if ok {
            self.pos += word.len();
        }
        ok
    }

    fn expect_char(&mut self, c: char, what: &str) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn descend(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("less nesting (depth limit 100)"));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr, SyntaxError> {
        self.descend()?;
        let mut parts = vec![self.and_expr()?];
        while self.keyword("or") {
            parts.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, SyntaxError> {
        let mut parts = vec![self.not_expr()?];
        while self.keyword("and") {
            parts.push(self.not_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not_expr(&mut self) -> Result<Expr, SyntaxError> {
        if self.keyword("not") {
            self.descend()?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, SyntaxError> {
        self.skip_ws();
        if self.peek() == Some('(') {
            self.pos += 1;
            let inner = self.or_expr()?;
            self.expect_char(')', "`)`")?;
            return Ok(inner);
        }
        let offset = self.pos;
        let name = self.identifier();
        if name.is_empty() {
            return Err(self.error("a field, a macro, `not` or `(`"));
        }
        let lhs = if let Some(transformer) = self.transformer_call(&name) {
            self.transformed(transformer)?
        } else if name.contains('.') {
            Operand {
                field: self.with_argument(name)?,
                transformers: Vec::new(),
            }
        } else {
            return Ok(Expr::Macro { name, offset });
        };
        let (op, rhs) = self.comparison()?;
        Ok(Expr::Compare(Compare {
            lhs,
            op,
            rhs,
            offset,
        }))
    }

    /// Identifier characters of field and macro names.
    fn identifier(&mut self) -> String {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        self.pos += end;
        rest[..end].to_owned()
    }

    /// `name` followed by `(` when `name` is a transformer.
    fn transformer_call(&mut self, name: &str) -> Option<Transformer> {
        let transformer = Transformer::parse(name)?;
        if self.peek() == Some('(') {
            self.pos += 1;
            Some(transformer)
        } else {
            None
        }
    }

    /// The operand of a transformer whose `(` was consumed.
    fn transformed(&mut self, transformer: Transformer) -> Result<Operand, SyntaxError> {
        self.skip_ws();
        let name = self.identifier();
        let mut operand = if let Some(inner) = self.transformer_call(&name) {
            self.transformed(inner)?
        } else if name.contains('.') {
            Operand {
                field: self.with_argument(name)?,
                transformers: Vec::new(),
            }
        } else {
            return Err(self.error("a field inside the transformer"));
        };
        self.expect_char(')', "`)` closing the transformer")?;
        operand.transformers.push(transformer);
        Ok(operand)
    }

    /// Appends a `[argument]` directly following a field name.
    fn with_argument(&mut self, mut name: String) -> Result<String, SyntaxError> {
        if self.peek() != Some('[') {
            return Ok(name);
        }
        let rest = self.rest();
        let Some(end) = rest.find(']') else {
            return Err(self.error("`]` closing the field argument"));
        };
        let argument = rest[1..end].trim_matches(|c| c == '"' || c == '\'');
        name.push('[');
        name.push_str(argument);
        name.push(']');
        self.pos += end + 1;
        Ok(name)
    }

    fn comparison(&mut self) -> Result<(Op, Rhs), SyntaxError> {
        self.skip_ws();
        let rest = self.rest();
        for (symbol, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if rest.starts_with(symbol) {
                self.pos += symbol.len();
                return Ok((op, self.scalar_rhs()?));
            }
        }
        let word_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let Some(op) = Op::keyword(&rest[..word_end]) else {
            return Err(self.error("an operator (=, !=, <, contains, in, exists, ...)"));
        };
        self.pos += word_end;
        let rhs = if op == Op::Exists {
            Rhs::None
        } else if op.takes_set() {
            self.set_rhs()?
        } else {
            self.modified_or_scalar()?
        };
        Ok((op, rhs))
    }

    fn modified_or_scalar(&mut self) -> Result<Rhs, SyntaxError> {
        for (word, quantifier) in [
            ("oneof", Quantifier::Any),
            ("anyof", Quantifier::Any),
            ("allof", Quantifier::All),
        ] {
            let save = self.pos;
            if self.keyword(word) {
                self.skip_ws();
                if self.peek() == Some('(') {
                    match self.set_rhs()? {
                        Rhs::Set(items) => return Ok(Rhs::Quantified(quantifier, items)),
                        _ => return Err(self.error("a list of values")),
                    }
                }
                self.pos = save;
            }
        }
        self.scalar_rhs()
    }

    fn scalar_rhs(&mut self) -> Result<Rhs, SyntaxError> {
        self.skip_ws();
        let save = self.pos;
        let word = self.identifier();
        if word == "val" && self.peek() == Some('(') {
            self.pos += 1;
            self.skip_ws();
            let name = self.identifier();
            let field = self.with_argument(name)?;
            self.expect_char(')', "`)` closing val(")?;
            return Ok(Rhs::Field(Operand {
                field,
                transformers: Vec::new(),
            }));
        }
        if let Some(transformer) = self.transformer_call(&word) {
            return Ok(Rhs::Field(self.transformed(transformer)?));
        }
        self.pos = save;
        Ok(Rhs::Value(self.item()?))
    }

    fn set_rhs(&mut self) -> Result<Rhs, SyntaxError> {
        self.skip_ws();
        if self.peek() != Some('(') {
            // A bare list name.
            let item = self.item()?;
            return Ok(Rhs::Set(vec![item]));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(Rhs::Set(items));
        }
        loop {
            items.push(self.item()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(Rhs::Set(items));
                }
                _ => return Err(self.error("`,` or `)` in the list")),
            }
        }
    }

    /// A quoted string or a bare word (no blanks, parentheses, commas,
    /// `=` or quotes).
    fn item(&mut self) -> Result<Item, SyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some(quote @ ('"' | '\'')) => self.quoted(quote).map(Item::Quoted),
            _ => {
                let rest = self.rest();
                let end = rest
                    .find(|c: char| {
                        c.is_whitespace() || matches!(c, '(' | ')' | ',' | '=' | '"' | '\'')
                    })
                    .unwrap_or(rest.len());
                if end == 0 {
                    return Err(self.error("a value"));
                }
                self.pos += end;
                Ok(Item::Bare(rest[..end].to_owned()))
            }
        }
    }

    fn quoted(&mut self, quote: char) -> Result<String, SyntaxError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c if c == quote => {
                    self.pos += index + 1;
                    return Ok(value);
                }
                c => value.push(c),
            }
        }
        self.pos = start;
        Err(self.error("a closing quote"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: &str, op: Op, rhs: Rhs) -> Compare {
        Compare {
            lhs: Operand {
                field: field.into(),
                transformers: vec![],
            },
            op,
            rhs,
            offset: 0,
        }
    }

    fn strip(expr: Expr) -> Expr {
        match expr {
            Expr::And(v) => Expr::And(v.into_iter().map(strip).collect()),
            Expr::Or(v) => Expr::Or(v.into_iter().map(strip).collect()),
            Expr::Not(e) => Expr::Not(Box::new(strip(*e))),
            Expr::Macro { name, .. } => Expr::Macro { name, offset: 0 },
            Expr::Compare(c) => Expr::Compare(Compare { offset: 0, ..c }),
        }
    }

    fn bare(s: &str) -> Item {
        Item::Bare(s.into())
    }

    #[test]
    fn precedence_is_or_and_not() {
        let expr = strip(parse("a or not b and c").unwrap());
        let m = |n: &str| Expr::Macro {
            name: n.into(),
            offset: 0,
        };
        assert_eq!(
            expr,
            Expr::Or(vec![
                m("a"),
                Expr::And(vec![Expr::Not(Box::new(m("b"))), m("c")])
            ])
        );
    }

    #[test]
    fn operators_values_and_sets() {
        let expr = strip(
            parse("evt.type in (open, openat) and fd.name startswith '/etc/' and proc.aname[2]=sh and fd.sport<1024 and not(proc.name exists)")
                .unwrap(),
        );
        let Expr::And(parts) = expr else {
            panic!("not an and: {expr:?}")
        };
        assert_eq!(
            parts[0],
            Expr::Compare(cmp(
                "evt.type",
                Op::In,
                Rhs::Set(vec![bare("open"), bare("openat")])
            ))
        );
        assert_eq!(
            parts[1],
            Expr::Compare(cmp(
                "fd.name",
                Op::StartsWith,
                Rhs::Value(Item::Quoted("/etc/".into()))
            ))
        );
        assert_eq!(
            parts[2],
            Expr::Compare(cmp("proc.aname[2]", Op::Eq, Rhs::Value(bare("sh"))))
        );
        assert_eq!(
            parts[3],
            Expr::Compare(cmp("fd.sport", Op::Lt, Rhs::Value(bare("1024"))))
        );
        assert_eq!(
            parts[4],
            Expr::Not(Box::new(Expr::Compare(cmp(
                "proc.name",
                Op::Exists,
                Rhs::None
            ))))
        );
    }

    #[test]
    fn bare_values_keep_brackets_and_globs() {
        let expr = strip(parse("proc.pname in (runc:[0:PARENT], /usr/bin/*)").unwrap());
        assert_eq!(
            expr,
            Expr::Compare(cmp(
                "proc.pname",
                Op::In,
                Rhs::Set(vec![bare("runc:[0:PARENT]"), bare("/usr/bin/*")])
            ))
        );
    }

    #[test]
    fn transformers_val_and_modifiers() {
        let expr = strip(parse("tolower(proc.name) = val(proc.pname)").unwrap());
        let Expr::Compare(c) = expr else { panic!() };
        assert_eq!(c.lhs.transformers, [Transformer::ToLower]);
        assert!(matches!(c.rhs, Rhs::Field(_)));
        let expr = strip(parse("fd.name startswith oneof (/a, /b)").unwrap());
        let Expr::Compare(c) = expr else { panic!() };
        assert_eq!(
            c.rhs,
            Rhs::Quantified(Quantifier::Any, vec![bare("/a"), bare("/b")])
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        let error = parse("proc.name = sh and (fd.name").unwrap_err();
        assert!(error.expected.contains("an operator"), "{error}");
        let error = parse("proc.name = sh and (a").unwrap_err();
        assert!(error.expected.contains(')'), "{error}");
        assert_eq!(error.offset, 21);
        let error = parse("proc.name bogus x").unwrap_err();
        assert_eq!(error.offset, 10);
        assert!(parse("proc.name in (a b)").is_err());
        assert!(parse("proc.name = 'open").is_err());
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(parse(&deep).unwrap_err().expected.contains("depth"));
    }

    #[test]
    fn empty_sets_and_trailing_tokens() {
        assert_eq!(
            strip(parse("proc.name in ()").unwrap()),
            Expr::Compare(cmp("proc.name", Op::In, Rhs::Set(vec![])))
        );
        assert!(parse("a b").is_err());
    }
}
