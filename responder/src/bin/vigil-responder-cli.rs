//! `vigil-responder-cli`: quarantine, release and list pods through the
//! responder's gRPC control API (`vigil.v1.Responder`).
//!
//! ```text
//! vigil-responder-cli --server http://127.0.0.1:7070 quarantine shop/web-1 --by alice --reason "reverse shell"
//! vigil-responder-cli release shop/web-1 --by alice --reason "false positive"
//! vigil-responder-cli list
//! vigil-responder-cli --server https://vigil-responder.vigil.svc:50061 \
//!     --tls-cert responder-cli.pem --tls-key responder-cli-key.pem --tls-ca ca.pem list
//! ```
//!
//! With TLS the responder knows the caller by its certificate: the CLI's
//! identity (`spiffe://vigil/responder-cli`) may list; quarantine and release
//! need an operator identity, and `--by` is then recorded as a claim.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tonic::transport::Channel;
use vigil_grpc_auth::TlsConfig;
use vigil_proto::v1::{
    ActionRecord, ListQuarantinedRequest, PodRef, QuarantineRequest, ReleaseRequest,
    responder_client::ResponderClient,
};

#[derive(Parser)]
#[command(
    name = "vigil-responder-cli",
    version,
    about = "Quarantine and release pods through the Vigil responder."
)]
struct Args {
    /// The responder's gRPC address (its `[grpc] listen`).
    #[arg(
        long,
        env = "VIGIL_RESPONDER_GRPC",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    /// Client certificate (PEM) for mutual TLS; with --tls-key and --tls-ca.
    #[arg(long, env = "VIGIL_RESPONDER_CLI_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "VIGIL_RESPONDER_CLI_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA that signed the responder's certificate.
    #[arg(long, env = "VIGIL_RESPONDER_CLI_TLS_CA", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// The name to check the responder's certificate against (default: the
    /// server URL's host).
    #[arg(long)]
    tls_server_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Contain a pod now.
    Quarantine {
        /// `<namespace>/<pod>`
        target: String,
        /// Who asks (recorded in the audit trail); defaults to $USER.
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
        /// The finding that prompted this, if any.
        #[arg(long, default_value = "")]
        finding: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Undo a quarantine: thaw, restore the network, remove the label.
    Release {
        /// `<namespace>/<pod>`
        target: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Pods in quarantine now.
    List,
}

fn pod_ref(target: &str) -> anyhow::Result<PodRef> {
    match target.split_once('/') {
        Some((namespace, pod)) if !namespace.is_empty() && !pod.is_empty() => Ok(PodRef {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
        }),
        _ => bail!("target {target:?}: expected <namespace>/<pod>"),
    }
}

fn requester(by: Option<String>) -> anyhow::Result<String> {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|by| !by.trim().is_empty())
        .context("say who asks with --by (no $USER to default to)")
}

fn print(records: &[ActionRecord]) {
    for record in records {
        println!(
            "{:<16} {:<12} {}/{}  {}",
            record
                .kind()
                .as_str_name()
                .trim_start_matches("ACTION_KIND_"),
            record
                .outcome()
                .as_str_name()
                .trim_start_matches("ACTION_OUTCOME_"),
            record.namespace,
            record.pod,
            record.reason
        );
    }
}

/// A channel to the responder: mutual TLS when a certificate is given.
async fn channel(args: &Args) -> anyhow::Result<Channel> {
    let unreachable = || format!("cannot connect to the responder at {}", args.server);
    match (&args.tls_cert, &args.tls_key, &args.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => {
            let tls = TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            };
            let channel = tls.channel(&args.server, args.tls_server_name.as_deref())?;
            Ok(channel)
        }
        _ => Ok(Channel::from_shared(args.server.clone())
            .with_context(unreachable)?
            .connect()
            .await
            .with_context(unreachable)?),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = ResponderClient::new(channel(&args).await?);
    match args.command {
        Command::Quarantine {
            target,
            by,
            reason,
            finding,
            dry_run,
        } => {
            let reply = client
                .quarantine(QuarantineRequest {
                    target: Some(pod_ref(&target)?),
                    requested_by: requester(by)?,
                    reason,
                    finding_id: finding,
                    dry_run,
                })
                .await
                .context("quarantine")?;
            print(&reply.into_inner().actions);
        }
        Command::Release {
            target,
            by,
            reason,
            dry_run,
        } => {
            let reply = client
                .release(ReleaseRequest {
                    target: Some(pod_ref(&target)?),
                    requested_by: requester(by)?,
                    reason,
                    dry_run,
                })
                .await
                .context("release")?;
            print(&reply.into_inner().actions);
        }
        Command::List => {
            let reply = client
                .list_quarantined(ListQuarantinedRequest {})
                .await
                .context("list")?;
            for pod in reply.into_inner().pods {
                let target = pod.target.clone().unwrap_or_default();
                let active: Vec<&str> = pod
                    .active()
                    .map(|k| k.as_str_name().trim_start_matches("ACTION_KIND_"))
                    .collect();
                println!(
                    "{}/{}  node={} active={} finding={} by={}",
                    target.namespace,
                    target.pod,
                    pod.node,
                    active.join(","),
                    pod.finding_id,
                    pod.requested_by
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil-responder-cli: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-responder-cli: {error:#}");
            ExitCode::FAILURE
        }
    }
}
