//! Connecting to NATS: retry with back-off until it answers, then refuse a
//! server too old for the JetStream features Vigil relies on. A service
//! logs in with its nkey (or a password in the URL) and, where the server
//! requires it, over TLS with the cluster's CA and its own certificate.

use std::path::{Path, PathBuf};
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

/// How a client proves who it is and protects the connection (`[nats]`
/// settings of every service; all optional: no nkey and no TLS is the
/// plaintext, password-in-URL or anonymous login of dev and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// File holding this service's nkey seed (`SU...`, from
    /// `scripts/nats-creds`): the client signs the server's challenge with
    /// it; the seed never leaves the process.
    pub nkey_seed_file: Option<PathBuf>,
    /// TLS to the server; required when set.
    pub tls: Option<TlsFiles>,
}

/// PEM files for TLS to NATS.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// This client's certificate and key, where the server verifies clients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
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
    #[error("nkey seed file {path}: {reason}")]
    NkeySeed { path: PathBuf, reason: String },
    #[error("TLS file {path}: {reason}")]
    TlsFile { path: PathBuf, reason: String },
    #[error("TLS to NATS: cert_file and key_file go together (one is set, not the other)")]
    TlsClientCertificateHalf,
}

/// Connects, retrying with exponential back-off (logging each failure) until
/// the server answers or `shutdown` fires. Anonymous or with the login of
/// the URL, without TLS: [`connect_secured`] with no [`Security`].
pub async fn connect(
    options: &ConnectOptions,
    shutdown: &CancellationToken,
) -> Result<BusConnection, ConnectError> {
    connect_secured(options, &Security::default(), shutdown).await
}

/// [`connect`] with an nkey and TLS as `security` says. A missing or
/// malformed seed or TLS file is an error at once, not a retry.
pub async fn connect_secured(
    options: &ConnectOptions,
    security: &Security,
    shutdown: &CancellationToken,
) -> Result<BusConnection, ConnectError> {
    let seed = security
        .nkey_seed_file
        .as_deref()
        .map(read_nkey_seed)
        .transpose()?;
    if let Some(tls) = &security.tls {
        check_tls_files(tls)?;
    }
    let target = Target::parse(&options.url);
    let url = target.servers.as_str();
    // Each server its own address: async-nats reads a string as one URL.
    let servers: Vec<&str> = url.split(',').collect();
    let mut delay = FIRST_RETRY;
    let mut attempt: u32 = 0;
    let client = loop {
        attempt += 1;
        let login = match (&seed, &target.credentials) {
            (Some(seed), _) => async_nats::ConnectOptions::with_nkey(seed.clone()),
            (None, Some((user, password))) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            (None, None) => async_nats::ConnectOptions::new(),
        };
        let connecting = with_tls(login, security.tls.as_ref())
            .name(&options.client_name)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .event_callback(|event| async move {
                metrics::counter!("vigil_bus_connection_events_total", "event" => event_label(&event)).increment(1);
                tracing::info!(message = "NATS connection event.", %event);
            })
            .connect(servers.as_slice());
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

/// The seed in `path`: one line starting `SU` (a user's nkey seed).
fn read_nkey_seed(path: &Path) -> Result<String, ConnectError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConnectError::NkeySeed {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    let seed = text.trim();
    if !seed.starts_with("SU") || seed.contains(char::is_whitespace) {
        return Err(ConnectError::NkeySeed {
            path: path.to_owned(),
            reason: "not a user nkey seed (one line starting with SU)".to_owned(),
        });
    }
    Ok(seed.to_owned())
}

/// Every TLS file exists and is readable, and a client certificate comes
/// with its key, so a typo is reported once instead of retried forever.
fn check_tls_files(tls: &TlsFiles) -> Result<(), ConnectError> {
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err(ConnectError::TlsClientCertificateHalf);
    }
    for path in [
        Some(&tls.ca_file),
        tls.cert_file.as_ref(),
        tls.key_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        std::fs::File::open(path).map_err(|error| ConnectError::TlsFile {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    }
    Ok(())
}

fn with_tls(
    options: async_nats::ConnectOptions,
    tls: Option<&TlsFiles>,
) -> async_nats::ConnectOptions {
    let Some(tls) = tls else {
        return options;
    };
    let options = options
        .require_tls(true)
        .add_root_certificates(tls.ca_file.clone());
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => options.add_client_certificate(cert.clone(), key.clone()),
        _ => options,
    }
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
    fn bad_credential_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        std::fs::write(&seed, "not a seed\n").unwrap();
        let error = read_nkey_seed(&seed).unwrap_err().to_string();
        assert!(error.contains("seed") && error.contains("SU"), "{error}");
        std::fs::write(&seed, "SUAB\n").unwrap();
        assert_eq!(read_nkey_seed(&seed).unwrap(), "SUAB");
        let missing = dir.path().join("missing.pem");
        let error = check_tls_files(&TlsFiles {
            ca_file: missing.clone(),
            cert_file: None,
            key_file: None,
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
        let half = check_tls_files(&TlsFiles {
            ca_file: seed.clone(),
            cert_file: Some(seed),
            key_file: None,
        });
        assert!(matches!(half, Err(ConnectError::TlsClientCertificateHalf)));
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
