//! `vigil-detectors rules …`: what rule authors and operators run before
//! the service does. `validate` loads files as the service would (after the
//! default pack) and prints every error and warning with its position;
//! `list` shows every rule the configuration defines and whether it runs;
//! `fields` prints the field table (`--markdown`: the reference in
//! `docs/rules/fields.md`).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Subcommand;
use vigil_detectors::{Config, RulesConfig, SERVICE, engine};
use vigil_rules::{Entry, RuleSet, fields};

#[derive(Subcommand)]
pub enum Command {
    /// Check rules files (or directories of them) loaded after the default
    /// pack: errors and warnings with file:line:column; exit 1 on an error.
    Validate {
        /// Rules files, or directories whose `*.yaml` files are loaded by name.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Leave the default pack out.
        #[arg(long)]
        no_default_pack: bool,
    },
    /// Every rule the configuration (`--config`, `VIGIL_DETECTORS__*`)
    /// defines: name, priority, tags, where it is written, and whether it
    /// runs (and why not).
    List {
        /// One JSON object per rule instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every field a rule may use, with its type and meaning.
    Fields {
        /// The Markdown reference (`docs/rules/fields.md`).
        #[arg(long)]
        markdown: bool,
    },
}

pub fn run(command: Command, config: Option<&Path>) -> ExitCode {
    match command {
        Command::Validate {
            paths,
            no_default_pack,
        } => validate(paths, !no_default_pack),
        Command::List { json } => list(config, json),
        Command::Fields { markdown } => {
            emit(&if markdown {
                fields::reference()
            } else {
                field_table()
            });
            ExitCode::SUCCESS
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn validate(paths: Vec<PathBuf>, default_pack: bool) -> ExitCode {
    let (directories, files) = paths.into_iter().partition(|p| p.is_dir());
    let config = RulesConfig {
        default_pack,
        files,
        directories,
        ..RulesConfig::default()
    };
    match engine::load(&config) {
        Ok(rules) => {
            let mut out = String::new();
            for warning in &rules.warnings {
                out.push_str(&format!("warning: {warning}\n"));
            }
            let s = &rules.summary;
            out.push_str(&format!(
                "ok: {} rules ({} enabled, {} disabled, {} skipped, {} of other sources), {} macros, {} lists; {} warnings\n",
                s.rules_defined,
                s.rules_enabled,
                s.rules_disabled,
                s.rules_skipped,
                s.rules_other_source,
                s.macros,
                s.lists,
                rules.warnings.len()
            ));
            emit(&out);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let mut out = String::new();
            for warning in &errors.warnings {
                out.push_str(&format!("warning: {warning}\n"));
            }
            for error in &errors.files {
                out.push_str(&format!("error: {error}\n"));
            }
            out.push_str(&format!("failed: {} errors\n", errors.files.len()));
            emit(&out);
            ExitCode::FAILURE
        }
    }
}

fn list(config: Option<&Path>, json: bool) -> ExitCode {
    let config: Config = match vigil_service::config::load(SERVICE, config, std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil-detectors: {error}");
            return ExitCode::from(vigil_service::process::EXIT_CONFIG);
        }
    };
    // The configuration's check loaded these rules already; this cannot fail
    // unless a file changed in between.
    let rules = match engine::load(&config.rules) {
        Ok(rules) => rules,
        Err(errors) => {
            eprintln!("vigil-detectors: {errors}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        let lines: Vec<String> = rules
            .entries()
            .iter()
            .map(|e| format!("{}\n", entry_json(e)))
            .collect();
        emit(&lines.concat());
    } else {
        emit(&entry_table(&rules));
    }
    ExitCode::SUCCESS
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "name": entry.name,
        "priority": entry.priority.label(),
        "tags": entry.tags,
        "file": entry.position.file,
        "line": entry.position.line,
        "enabled": entry.state.is_ok(),
        "reason": entry.state.as_ref().err().map(ToString::to_string),
    })
}

fn entry_table(rules: &RuleSet) -> String {
    let rows: Vec<[String; 5]> = rules
        .entries()
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.priority.label().to_owned(),
                e.tags.join(","),
                format!("{}:{}", e.position.file, e.position.line),
                match &e.state {
                    Ok(()) => "yes".to_owned(),
                    Err(reason) => format!("no ({reason})"),
                },
            ]
        })
        .collect();
    table(["RULE", "PRIORITY", "TAGS", "SOURCE", "ENABLED"], &rows)
}

fn field_table() -> String {
    let rows: Vec<[String; 3]> = fields::FIELDS
        .iter()
        .map(|s| [s.syntax(), s.kind.name().to_owned(), s.meaning.to_owned()])
        .collect();
    table(["FIELD", "TYPE", "MEANING"], &rows)
}

/// Columns padded to their widest cell; the last is not padded.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
