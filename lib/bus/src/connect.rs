//! Connecting to NATS: retry with back-off until it answers, then refuse a
//! server too old for the JetStream features Vigil relies on.

use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

/// Consumer `filter_subjects`, stream metadata and key-value buckets need
/// 2.10; 2.9 silently drops the fields it does not know.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// How to reach NATS.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `nats://host:port`, or several separated by commas for a cluster.
    pub url: String,
    /// Client name shown by the server (`vigil-collector@node-1`).
    pub client_name: String,
}

/// A connected client and its JetStream context.
#[derive(Clone, Debug)]
pub struct BusConnection {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("shut down before NATS at {url} answered")]
    Cancelled { url: String },
    #[error("nats-server {version} at {url} is too old: Vigil needs {}.{} or newer", MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1)]
    ServerTooOld { url: String, version: String },
    #[error("nats-server at {url} has JetStream disabled (start it with -js)")]
    NoJetStream { url: String },
}

/// Connects, retrying with exponential back-off (logging each failure) until
/// the server answers or `shutdown` fires.
pub async fn connect(
    options: &ConnectOptions,
    shutdown: &CancellationToken,
) -> Result<BusConnection, ConnectError> {
    let mut delay = FIRST_RETRY;
    let mut attempt: u32 = 0;
    let client = loop {
        attempt += 1;
        let connecting = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .event_callback(|event| async move {
                metrics::counter!("vigil_bus_connection_events_total", "event" => event_label(&event)).increment(1);
                tracing::info!(message = "NATS connection event.", %event);
            })
            .connect(options.url.as_str());
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return Err(ConnectError::Cancelled { url: options.url.clone() }),
            outcome = connecting => outcome,
        };
        match outcome {
            Ok(client) => break client,
            Err(error) => {
                tracing::warn!(
                    message = "NATS not reachable yet; retrying.",
                    url = %options.url, attempt, retry_in_ms = delay.as_millis() as u64, %error
                );
                tokio::select! {
                    () = shutdown.cancelled() => return Err(ConnectError::Cancelled { url: options.url.clone() }),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    };
    let info = client.server_info();
    if !version_at_least(&info.version, MIN_SERVER_VERSION) {
        return Err(ConnectError::ServerTooOld {
            url: options.url.clone(),
            version: info.version,
        });
    }
    let jetstream = jetstream::new(client.clone());
    if jetstream.query_account().await.is_err() {
        return Err(ConnectError::NoJetStream {
            url: options.url.clone(),
        });
    }
    tracing::info!(message = "Connected to NATS.", url = %options.url, server_version = %info.version, attempts = attempt);
    Ok(BusConnection { client, jetstream })
}

fn event_label(event: &async_nats::Event) -> &'static str {
    match event {
        async_nats::Event::Connected => "connected",
        async_nats::Event::Disconnected => "disconnected",
        async_nats::Event::LameDuckMode => "lame_duck",
        async_nats::Event::SlowConsumer(_) => "slow_consumer",
        async_nats::Event::ServerError(_) => "server_error",
        async_nats::Event::ClientError(_) => "client_error",
        _ => "other",
    }
}

/// True when `version` ("2.10.7", "v2.15.1-beta") is at least `min`.
fn version_at_least(version: &str, min: (u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_are_compared_numerically() {
        assert!(version_at_least("2.10.0", (2, 10)));
        assert!(version_at_least("v2.15.1", (2, 10)));
        assert!(!version_at_least("2.9.10", (2, 10)));
        assert!(version_at_least("3.0.0", (2, 10)));
        assert!(!version_at_least("garbage", (2, 10)));
    }
}
