//! The console's configuration: `[nats]`, `[admin]`, `[log]`, plus `[http]`
//! (the browser-facing listener), `[responder]` (its gRPC address) and the
//! `[[users]]` who may log in.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

use crate::auth::{self, Role};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_name: String,
    /// Findings kept in memory for the API and for replay to new browsers;
    /// the oldest are dropped first (the stream keeps 7 days regardless).
    pub max_findings: usize,
    /// Incidents kept in memory; the one whose last finding is oldest is
    /// dropped first (its state stays in the KV bucket).
    pub max_incidents: usize,
    pub http: HttpConfig,
    pub responder: ResponderConfig,
    pub users: Vec<UserConfig>,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

/// `[http]`: where browsers reach the console.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The built front end (`npm run build` in console/web writes `dist/`).
    pub web_dir: PathBuf,
    /// How long a login lasts.
    pub session_ttl_s: u64,
    /// Mark the session cookie `Secure` (behind TLS).
    pub secure_cookies: bool,
    pub login: LoginConfig,
}

/// `[http.login]`: what a password check may cost. Each argon2 check holds
/// its memory cost (19 MiB by default) while it runs, so their number is
/// bounded, and each client address gets a few attempts a minute.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Password checks running at once (memory: this times the hash's cost).
    pub max_concurrent_checks: usize,
    /// How long a login waits for a free check before it is told to retry (429).
    pub queue_wait_ms: u64,
    /// Attempts one address may make at once, before the rate applies.
    pub burst: u32,
    /// Attempts one address regains per minute.
    pub attempts_per_minute: u32,
    /// Addresses remembered; beyond this the least recently seen is forgotten.
    pub max_addresses: usize,
}

/// `[responder]`: the responder's control API (vigil.v1.Responder).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponderConfig {
    /// `https://` with `tls`; `http://` only where the responder serves
    /// plaintext (dev, loopback).
    pub grpc_url: String,
    pub timeout_ms: u64,
    /// The console's client certificate (identity `spiffe://vigil/console`,
    /// which may quarantine and vouch for the signed-in user), key, and the
    /// CA of the responder's certificate.
    pub tls: Option<vigil_grpc_auth::TlsConfig>,
    /// The name the responder's certificate is checked against, when not
    /// the URL's host.
    pub tls_server_name: Option<String>,
}

/// One `[[users]]` entry: a password (argon2 PHC string, from
/// `vigil-console --hash-password`), a bearer token (its SHA-256, hex), or both.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub token_sha256: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            max_findings: 50_000,
            max_incidents: 10_000,
            http: HttpConfig::default(),
            responder: ResponderConfig::default(),
            users: Vec::new(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            web_dir: PathBuf::from("console/web/dist"),
            session_ttl_s: 8 * 3600,
            secure_cookies: false,
            login: LoginConfig::default(),
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            max_concurrent_checks: 4,
            queue_wait_ms: 10_000,
            burst: 5,
            attempts_per_minute: 10,
            max_addresses: 10_000,
        }
    }
}

impl LoginConfig {
    pub fn queue_wait(&self) -> Duration {
        Duration::from_millis(self.queue_wait_ms)
    }
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self {
            grpc_url: "http://127.0.0.1:50051".to_owned(),
            timeout_ms: 5_000,
            tls: None,
            tls_server_name: None,
        }
    }
}

impl ResponderConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        problems.positive("max_findings", self.max_findings as u64);
        problems.positive("max_incidents", self.max_incidents as u64);
        problems.positive("http.session_ttl_s", self.http.session_ttl_s);
        problems.positive("responder.timeout_ms", self.responder.timeout_ms);
        let login = &self.http.login;
        problems.positive(
            "http.login.max_concurrent_checks",
            login.max_concurrent_checks as u64,
        );
        problems.positive("http.login.burst", u64::from(login.burst));
        problems.positive(
            "http.login.attempts_per_minute",
            u64::from(login.attempts_per_minute),
        );
        problems.positive("http.login.max_addresses", login.max_addresses as u64);
        let url = &self.responder.grpc_url;
        match &self.responder.tls {
            Some(tls) if url.starts_with("https://") => tls.validate("responder.tls", problems),
            Some(_) => problems.add(
                "responder.grpc_url",
                format!("{url:?}: with responder.tls the URL is https://"),
            ),
            None if url.starts_with("https://") => problems.add(
                "responder.tls",
                format!("{url:?} needs the console's client certificate (cert, key, ca)"),
            ),
            None if url.starts_with("http://") => {}
            None => problems.add(
                "responder.grpc_url",
                format!("{url:?} is not an http:// or https:// URL"),
            ),
        }
        for (i, user) in self.users.iter().enumerate() {
            validate_user(i, user, &self.users[..i], problems);
        }
    }
}

fn validate_user(i: usize, user: &UserConfig, before: &[UserConfig], problems: &mut Problems) {
    let key = |field: &str| format!("users[{i}].{field}");
    if user.name.trim().is_empty() {
        problems.add(&key("name"), "must not be empty");
    } else if before.iter().any(|u| u.name == user.name) {
        problems.add(&key("name"), format!("{:?} appears twice", user.name));
    }
    if user.password_hash.is_empty() && user.token_sha256.is_empty() {
        problems.add(
            &key("password_hash"),
            "set password_hash or token_sha256 (or both)",
        );
    }
    if !user.password_hash.is_empty()
        && let Err(error) = auth::check_password_hash(&user.password_hash)
    {
        problems.add(&key("password_hash"), error);
    }
    if !user.token_sha256.is_empty() && !auth::is_sha256_hex(&user.token_sha256) {
        problems.add(&key("token_sha256"), "must be 64 hexadecimal digits");
    }
}

impl vigil_service::process::ServiceConfig for Config {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn admin(&self) -> &AdminConfig {
        &self.admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, vigil_service::ConfigError> {
        vigil_service::config::load(
            "console",
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(&[]).expect("defaults load");
        assert!(config.users.is_empty());
        assert_eq!(config.http.listen.port(), 8480);
    }

    #[test]
    fn users_come_from_the_environment() {
        let hash = auth::hash_password("pw").expect("hash");
        let users = format!("[{{name=\"ann\", role=\"responder\", password_hash=\"{hash}\"}}]");
        let config = load(&[("VIGIL_CONSOLE__USERS", &users)]).expect("loads");
        assert_eq!(config.users[0].role, Role::Responder);
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let users = "[{name=\"\"}, {name=\"bob\", password_hash=\"nope\", token_sha256=\"12\"}, {name=\"bob\", token_sha256=\"12\"}]";
        let error = load(&[
            ("VIGIL_CONSOLE__USERS", users),
            ("VIGIL_CONSOLE__RESPONDER__GRPC_URL", "localhost:1"),
            ("VIGIL_CONSOLE__MAX_FINDINGS", "0"),
            ("VIGIL_CONSOLE__HTTP__LOGIN__BURST", "0"),
        ])
        .expect_err("invalid");
        let text = error.to_string();
        for key in [
            "users[0].name",
            "users[0].password_hash",
            "users[1].password_hash",
            "users[1].token_sha256",
            "users[2].name",
            "responder.grpc_url",
            "max_findings",
            "http.login.burst",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let role = load(&[("VIGIL_CONSOLE__USERS", "[{name=\"x\", role=\"admin\"}]")])
            .expect_err("unknown role");
        assert!(role.to_string().contains("role"), "{role}");
    }
}
