//! A filtered view of findings as a file: CSV for spreadsheets, JSON (the
//! API's own finding objects) for scripts.

use std::{fmt::Write, sync::Arc};

use vigil_rules::fields::iso8601;

use crate::views::FindingView;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("export format {other:?}: must be csv or json")),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

const COLUMNS: [&str; 14] = [
    "time",
    "id",
    "priority",
    "source",
    "rule",
    "namespace",
    "pod",
    "node",
    "container_id",
    "incident_id",
    "tactics",
    "techniques",
    "tags",
    "output",
];

/// The content type and body of `findings` in `format`.
pub fn render(format: Format, findings: &[Arc<FindingView>]) -> (&'static str, String) {
    match format {
        Format::Csv => ("text/csv; charset=utf-8", csv(findings)),
        Format::Json => (
            "application/json",
            serde_json::to_string_pretty(findings).unwrap_or_else(|_| "[]".to_owned()),
        ),
    }
}

fn csv(findings: &[Arc<FindingView>]) -> String {
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for f in findings {
        let time = iso8601((f.time_ms * 1e6) as u64);
        let row = [
            time.as_str(),
            &f.id,
            f.priority,
            f.source,
            &f.rule,
            &f.namespace,
            &f.pod,
            &f.node,
            &f.container_id,
            &f.incident_id,
            &f.tactics.join(";"),
            &f.techniques.join(";"),
            &f.tags.join(";"),
            &f.output,
        ];
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}", field(value));
        }
        out.push_str("\r\n");
    }
    out
}

/// One CSV field (RFC 4180). Text a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) gets a leading `'`: an attacker chooses what
/// lands in a finding's output (file names, command lines).
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\"\nbye"), "\"say \"\"hi\"\"\nbye\"");
        assert_eq!(field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(field("-1,2"), "\"'-1,2\"");
    }

    #[test]
    fn formats_are_csv_or_json_only() {
        assert_eq!(Format::parse("csv"), Ok(Format::Csv));
        assert!(Format::parse("xlsx").unwrap_err().contains("csv or json"));
    }
}
