//! `vigil-detectors --config <file>`: see the library for what it does.
//! `vigil-detectors syscalls [--rules FILE]... [--no-default-pack]` prints
//! the syscalls the rules need, one per line, for the collector's filter.
//! `vigil-detectors rules validate|list|fields`: tools for rule authors
//! (`rules.rs`).

mod rules;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use vigil_detectors::{RulesConfig, SERVICE, engine, run};
use vigil_rules::Syscalls;

/// Evaluates detection rules over event batches and publishes findings.
#[derive(Parser)]
#[command(name = "vigil-detectors", version)]
struct Args {
    /// TOML configuration file; `VIGIL_DETECTORS__<KEY>` variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the syscalls the rules need (`*` when a rule needs every event).
    Syscalls {
        /// Rules files loaded after the default pack.
        #[arg(long = "rules")]
        rules: Vec<PathBuf>,
        /// Leave the default pack out.
        #[arg(long)]
        no_default_pack: bool,
    },
    /// Check, list and document rules.
    #[command(subcommand)]
    Rules(rules::Command),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Syscalls {
            rules,
            no_default_pack,
        }) => syscalls(rules, !no_default_pack),
        Some(Command::Rules(command)) => rules::run(command, args.config.as_deref()),
        None => vigil_service::process::main(SERVICE, args.config.as_deref(), run),
    }
}

fn syscalls(files: Vec<PathBuf>, default_pack: bool) -> ExitCode {
    let config = RulesConfig {
        files,
        default_pack,
        ..RulesConfig::default()
    };
    match engine::load(&config) {
        Ok(rules) => {
            match rules.syscalls() {
                Syscalls::All => println!("*"),
                Syscalls::Only(names) => names.iter().for_each(|n| println!("{n}")),
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("vigil-detectors: {errors}");
            ExitCode::FAILURE
        }
    }
}
