//! `vigil-console --config <file>`: see the library for what it does.
//! `vigil-console --hash-password` reads a password on stdin and prints the
//! argon2 hash to put in `[[users]] password_hash`.

use std::{io::BufRead, path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_console::{SERVICE, auth, run};

/// The console gateway: live findings for browsers, incidents and their workflows.
#[derive(Parser)]
#[command(name = "vigil-console", version)]
struct Args {
    /// TOML configuration file; `VIGIL_CONSOLE__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read a password from stdin, print its argon2 hash and exit.
    #[arg(long)]
    hash_password: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.hash_password {
        return hash_stdin();
    }
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}

fn hash_stdin() -> ExitCode {
    let mut line = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("vigil-console: cannot read the password from stdin: {error}");
        return ExitCode::FAILURE;
    }
    match auth::hash_password(line.trim_end_matches(['\r', '\n'])) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("vigil-console: cannot hash the password: {error}");
            ExitCode::FAILURE
        }
    }
}
