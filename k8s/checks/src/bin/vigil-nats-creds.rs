//! NATS credentials for Vigil (k8s/README.md, "NATS users"):
//!
//!   vigil-nats-creds --out DIR --node NAME [--node NAME ...] [--output NAME ...]
//!       writes DIR/auth.conf (the server's authorization block: an nkey
//!       user per service, and a collector and a responder node agent per
//!       node) and DIR/seeds/<user>.nk, one seed per user (mode 0600)
//!   vigil-nats-creds --passwords [--output NAME ...]
//!       prints the dev overlay's block (password logins; k8s/base/nats/auth.conf)
//!
//! `--output` names the forwarder's outputs (one durable each); default
//! `falcosidekick`, the one k8s/base ships.

use std::path::PathBuf;
use std::process::ExitCode;

use vigil_k8s_checks::nats_creds;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-nats-creds: {error}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut out = None;
    let mut nodes = Vec::new();
    let mut outputs = Vec::new();
    let mut passwords = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--node" => nodes.push(value()?),
            "--output" => outputs.push(value()?),
            "--passwords" => passwords = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (see the usage at the top of the source)"
                ));
            }
        }
    }
    if outputs.is_empty() {
        outputs.push("falcosidekick".to_owned());
    }
    if passwords {
        print!("{}", nats_creds::password_authorization(&outputs));
        return Ok(());
    }
    let out = out.ok_or("--out DIR is required")?;
    if nodes.is_empty() {
        return Err("at least one --node NAME is required (a collector and a responder credential per node)".to_owned());
    }
    let credentials = nats_creds::generate(&out, &nodes, &outputs).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", out.join("auth.conf").display());
    for credential in credentials {
        eprintln!(
            "wrote {} ({})",
            credential.seed_file.display(),
            credential.user
        );
    }
    Ok(())
}
