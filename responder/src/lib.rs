//! `vigil-responder`: contains what the detectors find, as the response
//! policy says, and records every action and every refusal.
//!
//! ```text
//! VIGIL_FINDINGS ──(consumer "responder-<node>" or "responder-CLUSTER")──▶ consume: decode, check
//!   ──▶ decide: handled before? (KV), policy and scope, contained already? (KV), rate limits
//!   ──▶ act: freeze / kill / cut network on the node; label, NetworkPolicy, annotate, evict via the API
//!   ──▶ record: ActionRecord per action on vigil.actions.<node>.<outcome>
//!   ──▶ settle: quarantine state and handled mark (KV), then ack; or redeliver
//! ```
//!
//! The path reads top to bottom in `actor.rs` ([`Responder`]): one actor, which
//! also carries out the gRPC service's manual quarantines and releases
//! (`[grpc] listen`). Errors say whether a retry can help
//! ([`RespondError::retryable`]): a finding is redelivered only then, and
//! settled otherwise. An action that fails is not such an error: it is a
//! FAILED record, and the finding is settled.
//!
//! Every action is a row of [`actions::TABLE`]:
//!
//! | action (policy `kind`) | level | executor | undone on release by |
//! | --- | --- | --- | --- |
//! | `freeze` | node | cgroup freezer | `thaw` |
//! | `kill_process` | node | pidfd signal, inside the pod's cgroup | — |
//! | `kill_container` | node | `cgroup.kill` or SIGKILL to each pid | — |
//! | `network_cut` | node | nft table in the pod's network namespace | `network_restore` |
//! | `quarantine` | cluster | deny-all NetworkPolicy and pod label | `release` |
//! | `annotate` | cluster | pod annotations | — |
//! | `evict` | cluster | Eviction subresource | — |
//! | `delete_pod` | cluster | pod deletion | — |
//!
//! Record ids are the finding id plus the action, so a finding redelivered
//! after a crash, which finds its actions already done, produces records
//! that JetStream discards. A manual request's records start with the
//! request's own id instead, so a person's quarantine of a pod that a
//! finding already contained is kept, with who asked.

pub mod actions;
mod actor;
mod config;
pub mod decide;
pub mod grpc;
pub mod kube_actions;
pub mod limits;
pub mod metrics;
pub mod netns;
mod node;
pub mod policy;
pub mod record;
pub mod state;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil_bus::{ConnectError, consume, topology};
use vigil_service::{
    Health,
    runner::{self, Connected, Wiring},
};

pub use actor::{BY_POLICY, MalformedFinding, ManualError, RespondError, Responder};
pub use config::{Config, GrpcConfig, KubeConfig, Mode};
pub use kube_actions::{KUBE_PERMISSIONS, KubeError};
use policy::{Policy, PolicyError};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "responder";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("cannot set up the Kubernetes client: {0}")]
    Kube(#[from] KubeError),
    #[error("cannot serve gRPC on {address}: {source}")]
    Grpc {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs until `shutdown` fires: consume findings, decide, act, record, ack;
/// and serve the control API when configured.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let policy = config.policy()?;
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[&topology::ACTIONS],
    };
    runner::serve(wiring, health, shutdown, |connected| {
        respond(&config, policy, connected)
    })
    .await
}

async fn respond(config: &Config, policy: Policy, connected: Connected) -> Result<(), Error> {
    let (bus, replicas) = (&connected.bus, connected.replicas);
    let shutdown = connected.shutdown.clone();
    let spec = if config.mode == Mode::Cluster {
        topology::responder_cluster_consumer()
    } else {
        topology::responder_consumer(&config.node_name)
    };
    let state = state::State::open(&bus.jetstream, &spec.durable_name, replicas).await?;
    let kube = if config.kube.enabled {
        Some(kube_actions::Kube::connect(&config.kube, policy.protected_labels.clone()).await?)
    } else {
        None
    };
    let responder = Arc::new(Responder::new(
        config,
        policy,
        state,
        connected.publisher(),
        kube,
    ));
    let grpc = grpc::serve_configured(config, responder.clone(), shutdown.clone()).await?;
    let consumer = topology::ensure_consumer(&bus.jetstream, &spec, replicas).await?;

    connected.ready();
    tracing::info!(
        message = "Acting on findings.",
        node = %config.node_name, mode = ?config.mode, dry_run = config.dry_run,
        consumer = %spec.durable_name, grpc = ?grpc.as_ref().map(|g| g.address)
    );
    consume::run(consumer, shutdown, 1, move |delivery| {
        let responder = responder.clone();
        async move { responder.handle(delivery).await }
    })
    .await;
    if let Some(grpc) = grpc {
        grpc.stopped().await;
    }
    Ok(())
}
