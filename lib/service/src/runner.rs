//! The one way a service runs against NATS: connect (or give up when shut
//! down first), ensure the streams it publishes to, do the service's work,
//! then mark it not ready, drain the client, each within a bound, and log
//! that it stopped. Every service's `run` goes through [`serve`], so none can hang
//! on SIGTERM while NATS is away.

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;
use vigil_bus::{
    BusConnection, ConnectError, ConnectOptions, Publisher,
    connect::connect_secured,
    topology::{self, StreamSpec, TopologyError},
};

use crate::{Health, NatsConfig};

/// How long shutdown waits for NATS to confirm what the client still holds
/// (acks, the last publishes). Unflushed acks only mean redelivery, which
/// deterministic message ids absorb; with the server gone a flush would
/// wait for it forever.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the work may take to finish what it holds once shutdown has
/// fired. Past it the work is dropped: what it had not settled stays
/// unacknowledged and is redelivered, as after a crash. Waits on a NATS
/// that has gone away (a request times out only after seconds, then is
/// retried) must not keep the process from exiting.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`serve`] needs to know about the service.
#[derive(Clone, Copy, Debug)]
pub struct Wiring<'a> {
    /// `collector`, `detectors`, …: the client is named `vigil-<service>@<node>`.
    pub service: &'a str,
    pub node: &'a str,
    pub nats: &'a NatsConfig,
    /// Streams the service publishes to or reads, ensured before the work starts.
    pub streams: &'a [&'static StreamSpec],
}

/// The connection handed to the service's work.
#[derive(Clone, Debug)]
pub struct Connected {
    pub bus: BusConnection,
    /// `nats.stream_replicas`, for the consumers and buckets the work ensures.
    pub replicas: usize,
    /// Fires on SIGINT or SIGTERM: the work then finishes what is in hand
    /// and returns.
    pub shutdown: CancellationToken,
    health: Health,
}

impl Connected {
    /// `/healthz` answers 200 from now on: call it once consumers are in place.
    pub fn ready(&self) {
        self.health.set_ready(true);
    }

    /// A publisher on this connection.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.bus.jetstream.clone())
    }
}

/// Connects as `wiring` says, ensures its streams and runs `work` until it
/// returns (after `shutdown`, within [`DRAIN_TIMEOUT`]). Returns Ok at once
/// when shutdown comes before NATS answers. Whatever `work` returns,
/// readiness is withdrawn and the client drained for at most
/// [`FLUSH_TIMEOUT`] before this returns.
pub async fn serve<F, Fut, E>(
    wiring: Wiring<'_>,
    health: Health,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), E>
where
    F: FnOnce(Connected) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<ConnectError> + From<TopologyError>,
{
    let options = ConnectOptions {
        url: wiring.nats.url.clone(),
        client_name: format!("vigil-{}@{}", wiring.service, wiring.node),
    };
    let bus = match connect_secured(&options, &wiring.nats.security(), &shutdown).await {
        Ok(bus) => bus,
        Err(ConnectError::Cancelled { .. }) => {
            tracing::info!(message = "Stopped before NATS answered.");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    health.watch_connection(bus.client.clone());
    let replicas = wiring.nats.stream_replicas;
    for spec in wiring.streams {
        topology::ensure_stream(&bus.jetstream, spec, replicas).await?;
    }
    let client = bus.client.clone();
    let work = work(Connected {
        bus,
        replicas,
        shutdown: shutdown.clone(),
        health: health.clone(),
    });
    tokio::pin!(work);
    let result = tokio::select! {
        result = &mut work => result,
        () = shutdown.cancelled() => match tokio::time::timeout(DRAIN_TIMEOUT, &mut work).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(message = "The service did not finish in time; stopping anyway.", timeout = ?DRAIN_TIMEOUT);
                Ok(())
            }
        },
    };
    health.set_ready(false);
    match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(message = "Could not flush the NATS client on shutdown.", %error);
        }
        Err(_) => {
            tracing::warn!(message = "NATS did not confirm the flush in time; exiting anyway.", timeout = ?FLUSH_TIMEOUT);
        }
    }
    tracing::info!(message = "Stopped.");
    result
}
