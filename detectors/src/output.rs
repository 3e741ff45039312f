//! Falco-style output templates: free text with `%field` placeholders.
//!
//! Templates are parsed once, when a rule is built, so a misspelt field is a
//! load error rather than a `<NA>` discovered in production.

use std::collections::HashMap;

use vigil_proto::v1::Event;

use crate::fields::Field;

/// What Falco prints for a field with no value.
pub const NOT_AVAILABLE: &str = "<NA>";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("output template {template:?} uses unknown field %{field}")]
    UnknownField { template: String, field: String },
}

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

/// A template rendered for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Every field the template references that has a value for the event.
    /// Falco reports a missing field as `null`; a string map cannot, so it
    /// leaves the key out.
    pub fields: HashMap<String, String>,
}

impl OutputTemplate {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
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
            let field = Field::parse(name).ok_or_else(|| TemplateError::UnknownField {
                template: template.to_owned(),
                field: name.to_owned(),
            })?;
            pieces.push(Piece::Field {
                name: name.to_owned(),
                field,
            });
            rest = &after[name.len()..];
        }
        push_text(&mut pieces, rest);
        Ok(Self { pieces })
    }

    pub fn render(&self, event: &Event) -> Rendered {
        let mut text = String::new();
        let mut fields = HashMap::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Field { name, field } => match field.extract(event) {
                    Some(value) => {
                        text.push_str(&value);
                        fields.insert(name.clone(), value);
                    }
                    None => text.push_str(NOT_AVAILABLE),
                },
            }
        }
        Rendered { text, fields }
    }
}

/// The field name starting `s`: letters, digits, `_` and inner dots. A
/// trailing dot ends the sentence, not the name (`... by %proc.name.`).
fn field_name_at(s: &str) -> &str {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return "";
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(s.len());
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
    use super::*;

    #[test]
    fn fields_are_substituted_and_collected() {
        let template =
            OutputTemplate::parse("Ran %proc.name (pid=%proc.pid) at 100% in %container.id.")
                .unwrap();
        let event = Event {
            comm: "sh".into(),
            pid: 7,
            ..Default::default()
        };
        let rendered = template.render(&event);
        assert_eq!(rendered.text, "Ran sh (pid=7) at 100% in host.");
        assert_eq!(rendered.fields.len(), 3);
        assert_eq!(rendered.fields["proc.pid"], "7");
    }

    #[test]
    fn missing_values_print_na_and_are_left_out() {
        let template = OutputTemplate::parse("file=%fd.name").unwrap();
        let rendered = template.render(&Event::default());
        assert_eq!(rendered.text, "file=<NA>");
        assert!(rendered.fields.is_empty());
    }

    #[test]
    fn unknown_fields_fail_at_parse_time() {
        let error = OutputTemplate::parse("x=%proc.nmae").unwrap_err();
        assert!(error.to_string().contains("proc.nmae"), "{error}");
    }
}
