//! A small YAML tree with positions, converted from saphyr's marked nodes,
//! so the loader can say file, line and column of everything it rejects.

use std::borrow::Cow;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use crate::LoadError;

#[derive(Clone, Debug)]
pub struct Node {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// For a scalar written on one line exactly as its value reads (plain,
    /// or quoted without escapes): the column of its first character, so
    /// an offset in the value is a column in the file.
    pub text_column: Option<usize>,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Scalar(_) => "a scalar",
            Kind::Seq(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses `text` (one rules file) into its single document's root.
pub fn parse(file: &str, text: &str) -> Result<Option<Node>, LoadError> {
    let documents = MarkedYamlOwned::load_from_str(&lenient(text)).map_err(|error| {
        let marker = error.marker();
        LoadError::at(
            file,
            marker.line(),
            marker.col() + 1,
            format!("invalid YAML: {}", error.info()),
        )
    })?;
    match documents.into_iter().next() {
        Some(root) => convert(file, root).map(Some),
        None => Ok(None),
    }
}

/// Falco's YAML library (yaml-cpp) accepts a closing flow bracket at the
/// parent key's indentation after quoted items (upstream files do this);
/// saphyr refuses it. Lines holding only closing brackets get one more
/// space: no content moves, so every reported position stays exact.
fn lenient(text: &str) -> Cow<'_, str> {
    let closing_only = |line: &str| {
        let trimmed = line.trim();
        trimmed.starts_with([']', '}'])
            && trimmed.chars().all(|c| matches!(c, ']' | '}' | ',' | ' '))
    };
    if !text.lines().any(closing_only) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if closing_only(line) {
            out.push(' ');
        }
        out.push_str(line);
    }
    Cow::Owned(out)
}

fn convert(file: &str, node: MarkedYamlOwned) -> Result<Node, LoadError> {
    let line = node.span.start.line();
    let column = node.span.start.col() + 1;
    let width = (node.span.end.line() == line)
        .then(|| node.span.end.col().checked_sub(node.span.start.col()))
        .flatten();
    let kind = match node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => Kind::Null,
        YamlDataOwned::Value(ScalarOwned::String(s)) => Kind::Scalar(s),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Kind::Scalar(b.to_string()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Kind::Scalar(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Kind::Scalar(f.to_string()),
        YamlDataOwned::Representation(s, _, _) => Kind::Scalar(s),
        YamlDataOwned::Tagged(_, inner) => return convert(file, *inner),
        YamlDataOwned::Sequence(items) => Kind::Seq(
            items
                .into_iter()
                .map(|item| convert(file, item))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(entries) => {
            let mut map = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let key = convert(file, key)?;
                let Kind::Scalar(name) = key.kind else {
                    return Err(LoadError::at(
                        file,
                        key.line,
                        key.column,
                        "expected a scalar mapping key".into(),
                    ));
                };
                map.push((name, convert(file, value)?));
            }
            Kind::Map(map)
        }
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
            return Err(LoadError::at(
                file,
                line,
                column,
                "unsupported YAML value (aliases are not allowed)".into(),
            ));
        }
    };
    let text_column = match (&kind, width) {
        (Kind::Scalar(text), Some(width)) => {
            let chars = text.chars().count();
            // As written, or between two quotes.
            (width == chars)
                .then_some(column)
                .or_else(|| (width == chars + 2).then_some(column + 1))
        }
        _ => None,
    };
    Ok(Node {
        line,
        column,
        text_column,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_brackets_at_key_indentation_are_accepted() {
        let text = "- list: a\n  items: [\n    \"x\",\n    \"y\"\n  ]\n- list: b\n  items: [z]\n";
        let root = parse("f", text).unwrap().unwrap();
        let Kind::Seq(items) = root.kind else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].line, items[1].column), (6, 3));
    }

    #[test]
    fn scalars_written_as_they_read_know_where_their_text_starts() {
        let text = "a: x = 1\nb: 'x = 1'\nc: 'it''s'\nd: >\n  x = 1\n";
        let root = parse("f", text).unwrap().unwrap();
        let columns: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| root.get(k).unwrap().text_column)
            .collect();
        assert_eq!(columns, [Some(4), Some(5), None, None]);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let error = parse("f.yaml", "- rule: a\n  desc: [unclosed\n").unwrap_err();
        assert_eq!(error.file, "f.yaml");
        assert!(error.line >= 2, "{error}");
        assert!(error.message.contains("invalid YAML"), "{error}");
    }
}
