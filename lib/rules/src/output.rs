//! Output templates: free text with `%field` placeholders, parsed once when
//! the rule compiles, so a misspelt field is a load error rather than a
//! `<NA>` discovered in production.

use vigil_proto::v1::Event;

use crate::fields::{Field, Value};

/// What Falco prints for a field with no value.
pub const NOT_AVAILABLE: &str = "<NA>";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field { name: String, field: Field },
}

/// A parsed output template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTemplate {
    pieces: Vec<Piece>,
}

/// A field's value as Falco's JSON `output_fields` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Null,
    Number(i64),
    Text(String),
}

/// A template rendered for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Every field the template references, in order, missing ones as Null.
    pub fields: Vec<(String, FieldValue)>,
}

/// An output template naming a field this engine does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("output uses unknown field %{0}")]
pub struct UnknownField(pub String);

impl OutputTemplate {
    /// Parses `template`; the error names the unknown field.
    pub fn parse(template: &str) -> Result<Self, UnknownField> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(at) = rest.find('%') {
            let (text, after) = rest.split_at(at);
            let after = &after[1..];
            let name = field_name_at(after);
            if name.is_empty() {
                // A lone `%` is text.
                push_text(&mut pieces, &rest[..=at]);
                rest = after;
                continue;
            }
            push_text(&mut pieces, text);
            let field = Field::parse(name).ok_or_else(|| UnknownField(name.to_owned()))?;
            pieces.push(Piece::Field {
                name: name.to_owned(),
                field,
            });
            rest = &after[name.len()..];
        }
        push_text(&mut pieces, rest);
        Ok(Self { pieces })
    }

    /// The unsupported fields the template names: they print `<NA>`.
    pub fn unsupported(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Field {
                field: Field::Unsupported(name),
                ..
            } => Some(name.as_str()),
            _ => None,
        })
    }

    pub fn render(&self, event: &Event) -> Rendered {
        let mut text = String::new();
        let mut fields: Vec<(String, FieldValue)> = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Field { name, field } => {
                    let value = match field.extract(event) {
                        Value::Absent => FieldValue::Null,
                        Value::Num(n) => FieldValue::Number(n),
                        other => FieldValue::Text(other.render().unwrap_or_default()),
                    };
                    match &value {
                        FieldValue::Null => text.push_str(NOT_AVAILABLE),
                        FieldValue::Number(n) => text.push_str(&n.to_string()),
                        FieldValue::Text(s) => text.push_str(s),
                    }
                    if !fields.iter().any(|(n, _)| n == name) {
                        fields.push((name.clone(), value));
                    }
                }
            }
        }
        Rendered { text, fields }
    }
}

/// The field name starting `s`: letters, digits, `_`, inner dots and an
/// optional `[argument]`. A trailing dot ends the sentence, not the name.
fn field_name_at(s: &str) -> &str {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return "";
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(s.len());
    if s[end..].starts_with('[')
        && let Some(close) = s[end..].find(']')
    {
        return &s[..end + close + 1];
    }
    s[..end].trim_end_matches('.')
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Text(previous)) = pieces.last_mut() {
        previous.push_str(text);
    } else {
        pieces.push(Piece::Text(text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{Ancestor, EventType};

    use super::*;

    #[test]
    fn fields_are_substituted_and_typed() {
        let template =
            OutputTemplate::parse("Ran %proc.name (pid=%proc.pid, parent %proc.aname[1]) at 100% in %container.id. %fd.name")
                .unwrap();
        let event = Event {
            r#type: EventType::Exec as i32,
            comm: "sh".into(),
            pid: 7,
            ancestors: vec![Ancestor {
                comm: "bash".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let rendered = template.render(&event);
        assert_eq!(
            rendered.text,
            "Ran sh (pid=7, parent bash) at 100% in host. <NA>"
        );
        assert_eq!(rendered.fields.len(), 5);
        assert_eq!(
            rendered.fields[1],
            ("proc.pid".into(), FieldValue::Number(7))
        );
        assert_eq!(rendered.fields[4], ("fd.name".into(), FieldValue::Null));
    }

    #[test]
    fn unknown_fields_fail_at_parse_time() {
        let error = OutputTemplate::parse("x=%proc.nmae").unwrap_err();
        assert_eq!(error, UnknownField("proc.nmae".into()));
        assert_eq!(error.to_string(), "output uses unknown field %proc.nmae");
        let template = OutputTemplate::parse("p=%container.privileged %proc.name").unwrap();
        assert_eq!(
            template.unsupported().collect::<Vec<_>>(),
            ["container.privileged"]
        );
    }
}
