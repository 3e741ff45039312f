//! The forwarder's configuration: `[nats]`, `[admin]`, `[log]` plus one
//! `[[outputs]]` table per destination.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

/// A delivery attempt must end before JetStream's ack wait (30 s) would
/// redeliver the finding while it is still being sent.
const MAX_TIMEOUT_MS: u64 = 20_000;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Names this instance in its NATS client name.
    pub node_name: String,
    pub outputs: Vec<OutputConfig>,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            outputs: Vec::new(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Falcosidekick's HTTP input: one Falco alert per POST.
    Falcosidekick,
    /// Any HTTP endpoint taking one Falco alert per POST, with extra headers.
    Webhook,
    /// RFC 5424 syslog, the Falco alert as the message.
    Syslog,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One message per datagram (RFC 5426).
    #[default]
    Udp,
    /// Octet-counted frames on one connection (RFC 6587).
    Tcp,
}

/// One destination. Each has its own durable consumer
/// (`forwarder-<name>`), so the name must stay the same across restarts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Lower case letters, digits and `-`.
    pub name: String,
    pub kind: OutputKind,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// HTTP kinds: `http://` or `https://` URL the alerts are POSTed to.
    #[serde(default)]
    pub url: String,
    /// HTTP kinds: extra request headers (an `Authorization`, for example).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Syslog: `host:port` of the receiver.
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub transport: Transport,
    /// Syslog facility code, 0–23 (16 = local0).
    #[serde(default = "facility")]
    pub facility: u8,
    /// Findings being delivered to this output at once.
    #[serde(default = "max_in_flight")]
    pub max_in_flight: usize,
    /// How long one attempt may take.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Wait before the first retry of a failed finding; doubled on each
    /// further failure up to `retry_max_ms`.
    #[serde(default = "retry_first_ms")]
    pub retry_first_ms: u64,
    #[serde(default = "retry_max_ms")]
    pub retry_max_ms: u64,
}

fn enabled() -> bool {
    true
}
fn facility() -> u8 {
    16
}
fn max_in_flight() -> usize {
    32
}
fn timeout_ms() -> u64 {
    10_000
}
fn retry_first_ms() -> u64 {
    200
}
fn retry_max_ms() -> u64 {
    30_000
}

impl OutputConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Wait before delivery attempt number `delivered` + 1 of a finding
    /// whose attempt `delivered` failed: exponential from `retry_first_ms`.
    pub fn back_off(&self, delivered: i64) -> Duration {
        let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let ms = self
            .retry_first_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms);
        Duration::from_millis(ms)
    }

    fn validate(&self, index: usize, problems: &mut Problems) {
        let key = |field: &str| format!("outputs[{index}].{field}");
        let valid_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            problems.add(
                &key("name"),
                format!(
                    "{:?} must be lower case letters, digits and '-' (it names a durable consumer)",
                    self.name
                ),
            );
        }
        match self.kind {
            OutputKind::Falcosidekick | OutputKind::Webhook => self.validate_http(&key, problems),
            OutputKind::Syslog => self.validate_syslog(&key, problems),
        }
        if self.max_in_flight == 0 {
            problems.add(&key("max_in_flight"), "must be at least 1");
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            problems.add(
                &key("timeout_ms"),
                format!("must be 1 to {MAX_TIMEOUT_MS} (below JetStream's ack wait)"),
            );
        }
        if self.retry_first_ms == 0 || self.retry_first_ms > self.retry_max_ms {
            problems.add(
                &key("retry_first_ms"),
                "must be at least 1 and at most retry_max_ms",
            );
        }
    }

    fn validate_http(&self, key: &dyn Fn(&str) -> String, problems: &mut Problems) {
        match self.url.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => problems.add(
                &key("url"),
                format!("{:?} is not an http:// or https:// URL", self.url),
            ),
        }
        for (name, value) in &self.headers {
            if http::HeaderName::try_from(name.as_str()).is_err() {
                problems.add(&key("headers"), format!("{name:?} is not a header name"));
            }
            if http::HeaderValue::try_from(value.as_str()).is_err() {
                problems.add(
                    &key("headers"),
                    format!("the value of {name:?} is not a valid header value"),
                );
            }
        }
        if !self.address.is_empty() {
            problems.add(&key("address"), "is for syslog outputs; HTTP ones take url");
        }
    }

    fn validate_syslog(&self, key: &dyn Fn(&str) -> String, problems: &mut Problems) {
        let port = self
            .address
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(port))) if !host.is_empty() && port > 0) {
            problems.add(
                &key("address"),
                format!("{:?} is not host:port", self.address),
            );
        }
        if self.facility > 23 {
            problems.add(&key("facility"), "must be 0 to 23");
        }
        if !self.url.is_empty() || !self.headers.is_empty() {
            problems.add(&key("url"), "url and headers are for HTTP outputs");
        }
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        if !self.outputs.iter().any(|output| output.enabled) {
            problems.add("outputs", "no enabled output: nothing to forward to");
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, output) in self.outputs.iter().enumerate() {
            output.validate(index, problems);
            if !names.insert(output.name.as_str()) {
                problems.add(
                    &format!("outputs[{index}].name"),
                    format!("{:?} is used twice", output.name),
                );
            }
        }
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

    fn load(file: &str) -> Result<Config, vigil_service::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forwarder.toml");
        std::fs::write(&path, file).unwrap();
        vigil_service::config::load("forwarder", Some(&path), std::iter::empty())
    }

    #[test]
    fn outputs_of_every_kind_load_with_defaults() {
        let config = load(
            r#"
            [[outputs]]
            name = "sidekick"
            kind = "falcosidekick"
            url = "http://falcosidekick:2801/"
            [[outputs]]
            name = "siem"
            kind = "webhook"
            url = "https://siem.example/hook"
            headers = { Authorization = "Bearer t" }
            [[outputs]]
            name = "syslog"
            kind = "syslog"
            address = "syslog.example:6514"
            transport = "tcp"
            "#,
        )
        .unwrap();
        assert_eq!(config.outputs.len(), 3);
        let syslog = &config.outputs[2];
        assert_eq!((syslog.transport, syslog.facility), (Transport::Tcp, 16));
        assert_eq!(config.outputs[1].headers["Authorization"], "Bearer t");
        assert!(config.outputs.iter().all(|o| o.enabled));
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let error = load(
            r#"
            [[outputs]]
            name = "Bad Name"
            kind = "webhook"
            url = "ftp://x"
            headers = { "bad header" = "v" }
            timeout_ms = 60000
            [[outputs]]
            name = "s"
            kind = "syslog"
            address = "no-port"
            facility = 24
            max_in_flight = 0
            [[outputs]]
            name = "s"
            kind = "syslog"
            address = "h:514"
            retry_first_ms = 0
            "#,
        )
        .unwrap_err()
        .to_string();
        for key in [
            "outputs[0].name",
            "outputs[0].url",
            "outputs[0].headers",
            "outputs[0].timeout_ms",
            "outputs[1].address",
            "outputs[1].facility",
            "outputs[1].max_in_flight",
            "outputs[2].name: \"s\" is used twice",
            "outputs[2].retry_first_ms",
        ] {
            assert!(error.contains(key), "{key} missing from {error}");
        }
        let none = load("").unwrap_err().to_string();
        assert!(none.contains("no enabled output"), "{none}");
        let unknown = load("[[outputs]]\nname = \"a\"\nkind = \"kafka\"\n").unwrap_err();
        assert!(unknown.to_string().contains("kafka"), "{unknown}");
    }

    #[test]
    fn back_off_doubles_up_to_the_maximum() {
        let output = OutputConfig {
            retry_first_ms: 100,
            retry_max_ms: 1_000,
            ..load("[[outputs]]\nname = \"a\"\nkind = \"syslog\"\naddress = \"h:514\"\n")
                .unwrap()
                .outputs[0]
                .clone()
        };
        let waits: Vec<u64> = (1..=6)
            .map(|delivered| output.back_off(delivered).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(output.back_off(i64::MAX).as_millis(), 1_000);
    }
}
