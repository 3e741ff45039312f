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
    /// `nats://host:port`, or several separated by commas for a cluster;
    /// `nats://user:password@host:port` logs in as that user.
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
    let target = Target::parse(&options.url);
    let url = target.servers.as_str();
    let mut delay = FIRST_RETRY;
    let mut attempt: u32 = 0;
    let client = loop {
        attempt += 1;
        let login = match &target.credentials {
            Some((user, password)) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            None => async_nats::ConnectOptions::new(),
        };
        let connecting = login
            .name(&options.client_name)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .event_callback(|event| async move {
                metrics::counter!("vigil_bus_connection_events_total", "event" => event_label(&event)).increment(1);
                tracing::info!(message = "NATS connection event.", %event);
            })
            .connect(url);
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return Err(ConnectError::Cancelled { url: url.to_owned() }),
            outcome = connecting => outcome,
        };
        match outcome {
            Ok(client) => break client,
            Err(error) => {
                tracing::warn!(
                    message = "NATS not reachable yet; retrying.",
                    url, attempt, retry_in_ms = delay.as_millis() as u64, %error
                );
                tokio::select! {
                    () = shutdown.cancelled() => return Err(ConnectError::Cancelled { url: url.to_owned() }),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    };
    let info = client.server_info();
    if !version_at_least(&info.version, MIN_SERVER_VERSION) {
        return Err(ConnectError::ServerTooOld {
            url: url.to_owned(),
            version: info.version,
        });
    }
    let jetstream = jetstream::new(client.clone());
    if jetstream.query_account().await.is_err() {
        return Err(ConnectError::NoJetStream {
            url: url.to_owned(),
        });
    }
    tracing::info!(message = "Connected to NATS.", url, server_version = %info.version, attempts = attempt);
    Ok(BusConnection { client, jetstream })
}

/// The servers of a `nats.url` and the login written into it. async-nats
/// sends no user and password written in a URL, so they are taken out and
/// given to it as options; the URLs without them are what is logged.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    servers: String,
    credentials: Option<(String, String)>,
}

impl Target {
    fn parse(url: &str) -> Self {
        let mut credentials = None;
        let servers: Vec<String> = url
            .split(',')
            .map(|server| {
                let server = server.trim();
                let Some((scheme, rest)) = server.split_once("://") else {
                    return server.to_owned();
                };
                // The last '@' ends the login: a password may hold one.
                let Some((login, host)) = rest.rsplit_once('@') else {
                    return server.to_owned();
                };
                let (user, password) = login.split_once(':').unwrap_or((login, ""));
                credentials.get_or_insert_with(|| (percent_decode(user), percent_decode(password)));
                format!("{scheme}://{host}")
            })
            .collect();
        Self {
            servers: servers.join(","),
            credentials,
        }
    }
}

/// `%XX` escapes decoded (a URL's login may be written escaped); anything
/// else, including a stray `%`, kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn logins_are_taken_out_of_the_urls() {
        assert_eq!(
            Target::parse("nats://127.0.0.1:4222"),
            Target {
                servers: "nats://127.0.0.1:4222".into(),
                credentials: None
            }
        );
        assert_eq!(
            Target::parse("nats://scorer:p%40ss:w@rd@a:4222, nats://b:4222"),
            Target {
                servers: "nats://a:4222,nats://b:4222".into(),
                credentials: Some(("scorer".into(), "p@ss:w@rd".into()))
            }
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
    }

    #[test]
    fn server_versions_are_compared_numerically() {
        assert!(version_at_least("2.10.0", (2, 10)));
        assert!(version_at_least("v2.15.1", (2, 10)));
        assert!(!version_at_least("2.9.10", (2, 10)));
        assert!(version_at_least("3.0.0", (2, 10)));
        assert!(!version_at_least("garbage", (2, 10)));
    }
}
