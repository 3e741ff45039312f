//! Configuration: a TOML file, then environment overrides, then validation.
//!
//! An override names its key path with double underscores:
//! `VIGIL_RESPONDER__NATS__URL=nats://10.0.0.1:4222` sets `nats.url` of the
//! responder. The environment is passed in as pairs, so tests never touch
//! the process environment and nothing else reads it.

use std::{fmt, net::SocketAddr, path::Path};

use figment::{
    Figment,
    providers::{Format, Toml},
    value::Value,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Problems found in a configuration, each naming its key.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records that `key` is invalid.
    pub fn add(&mut self, key: &str, message: impl fmt::Display) {
        self.0.push(format!("{key}: {message}"));
    }

    /// Checks that `value` is positive.
    pub fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.add(key, "must be greater than 0");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Semantic checks beyond what the types enforce.
pub trait Validate {
    fn validate(&self, problems: &mut Problems);
}

/// The configuration could not be loaded; lists every problem found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration for {service} ({} problem(s)):\n  - {}", problems.len(), problems.join("\n  - "))]
pub struct ConfigError {
    pub service: String,
    pub problems: Vec<String>,
}

/// Environment variable prefix of `service`: `anomaly-scorer` → `VIGIL_ANOMALY_SCORER__`.
pub fn env_prefix(service: &str) -> String {
    format!("VIGIL_{}__", service.to_ascii_uppercase().replace('-', "_"))
}

/// Loads `T` from defaults, then `file` (if any), then the `env` pairs that
/// carry this service's prefix, and validates the result.
pub fn load<T>(
    service: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    let mut problems = Vec::new();
    let mut figment = Figment::from(figment::providers::Serialized::defaults(T::default()));
    if let Some(file) = file {
        if file.is_file() {
            figment = figment.merge(Toml::file_exact(file));
        } else {
            problems.push(format!("config file {}: not found", file.display()));
        }
    }
    let prefix = env_prefix(service);
    let mut from_env = Vec::new();
    for (name, raw) in env {
        if let Some(path) = name.strip_prefix(&prefix) {
            let key = path.to_ascii_lowercase().replace("__", ".");
            let value: Value = raw.parse().unwrap_or_else(|never| match never {});
            figment = figment.merge((key.clone(), value));
            from_env.push((key, name));
        }
    }
    let origins = Origins {
        figment: &figment,
        from_env: &from_env,
    };
    if let Some(config) = extract_all::<T>(&figment, &origins, &mut problems) {
        let mut semantic = Problems::default();
        config.validate(&mut semantic);
        problems.extend(semantic.0);
        if problems.is_empty() {
            return Ok(config);
        }
    }
    Err(ConfigError {
        service: service.to_owned(),
        problems,
    })
}

/// Stops a configuration with very many bad keys from being re-read forever.
const MAX_KEY_PROBLEMS: usize = 100;

/// Extracts `T`, reporting every unknown or mistyped key rather than the
/// first: serde stops at the first one, so each bad key is recorded, taken
/// out of the merged values, and the rest read again. The configuration
/// without the bad keys is returned for the semantic checks, so they are
/// reported in the same pass (`problems` then already holds the bad keys).
fn extract_all<T: DeserializeOwned>(
    figment: &Figment,
    origins: &Origins<'_>,
    problems: &mut Vec<String>,
) -> Option<T> {
    let mut merged: Value = match figment.extract() {
        Ok(value) => value,
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| origins.describe(&e)));
            return None;
        }
    };
    let mut working = figment.clone();
    let mut bad = 0;
    loop {
        let errors = match working.extract::<T>() {
            Ok(config) => return Some(config),
            Err(errors) => errors,
        };
        let mut removed = false;
        for error in errors {
            problems.push(origins.describe(&error));
            bad += 1;
            removed |= remove_key(&mut merged, &error.path);
        }
        if !removed || bad >= MAX_KEY_PROBLEMS {
            return None;
        }
        working = Figment::from(figment::providers::Serialized::defaults(merged.clone()));
    }
}

/// Takes `path` out of `value`; false if it is not there (an element of a
/// list, say), which ends the search for further problems.
fn remove_key(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for key in parents {
        match current {
            Value::Dict(_, dict) => match dict.get_mut(key) {
                Some(next) => current = next,
                None => return false,
            },
            _ => return false,
        }
    }
    match current {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        _ => false,
    }
}

/// Where each key came from: the file (by its full path) or an environment
/// variable (by its name).
struct Origins<'a> {
    figment: &'a Figment,
    /// (key path, variable name), in the order applied.
    from_env: &'a [(String, String)],
}

impl Origins<'_> {
    fn describe(&self, error: &figment::Error) -> String {
        let key = error.path.join(".");
        let origin = self.origin(&key, error);
        if key.is_empty() {
            format!("{}{origin}", error.kind)
        } else {
            format!("{key}: {}{origin}", error.kind)
        }
    }

    fn origin(&self, key: &str, error: &figment::Error) -> String {
        // The last provider to set a key wins, so the last variable naming
        // it (or a section holding it) is where the value came from.
        if let Some((_, name)) = self.from_env.iter().rev().find(|(set, _)| {
            set == key || key.starts_with(&format!("{set}.")) || set.starts_with(&format!("{key}."))
        }) {
            return format!(" (from environment variable {name})");
        }
        // The original providers, not the re-read values' (a second pass
        // reads a copy that no longer knows where its keys came from).
        let metadata = self.figment.find_metadata(key).or(error.metadata.as_ref());
        match metadata.and_then(|m| m.source.as_ref()) {
            Some(figment::Source::File(path)) => format!(" (from {})", path.display()),
            Some(other) => format!(" (from {other})"),
            None => String::new(),
        }
    }
}

/// Checks what every service configuration has: its node name and its
/// `[nats]` and `[log]` sections.
pub fn validate_common(
    node_name: &str,
    nats: &NatsConfig,
    log: &LogConfig,
    problems: &mut Problems,
) {
    nats.validate(problems);
    log.validate(problems);
    if node_name.trim().is_empty() {
        problems.add("node_name", "must not be empty");
    }
}

/// The node this process runs on: the kernel's host name.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `[nats]`: how every service reaches the bus.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// `nats://host:port`; several, comma-separated, for a cluster.
    pub url: String,
    /// Stream replicas: 1 on a single server, 3 on a JetStream cluster.
    pub stream_replicas: usize,
    /// This service's nkey seed file (`scripts/nats-creds`); unset: the
    /// login in the URL, if any.
    pub nkey_seed_file: Option<std::path::PathBuf>,
    /// `[nats.tls]`: CA, and this service's certificate and key where the
    /// server verifies clients; set, TLS is required.
    pub tls: Option<vigil_bus::TlsFiles>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream_replicas: 1,
            nkey_seed_file: None,
            tls: None,
        }
    }
}

impl NatsConfig {
    /// The nkey and TLS settings for `vigil_bus::connect::connect_secured`.
    pub fn security(&self) -> vigil_bus::Security {
        vigil_bus::Security {
            nkey_seed_file: self.nkey_seed_file.clone(),
            tls: self.tls.clone(),
        }
    }
}

impl Validate for NatsConfig {
    fn validate(&self, problems: &mut Problems) {
        if !self
            .url
            .split(',')
            .all(|u| u.trim().starts_with("nats://") || u.trim().starts_with("tls://"))
        {
            problems.add(
                "nats.url",
                format!("{:?} is not a nats:// or tls:// URL", self.url),
            );
        }
        if !matches!(self.stream_replicas, 1 | 3 | 5) {
            problems.add("nats.stream_replicas", "must be 1, 3 or 5");
        }
    }
}

/// `[admin]`: the HTTP endpoint for `/metrics` and `/healthz`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// `[log]`: structured logging.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A tracing filter, such as `info` or `info,vigil_collector=debug`.
    pub filter: String,
    /// `[log.otlp]`: where spans are exported.
    pub otlp: OtlpConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
            otlp: OtlpConfig::default(),
        }
    }
}

impl Validate for LogConfig {
    fn validate(&self, problems: &mut Problems) {
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.filter) {
            problems.add("log.filter", error);
        }
        self.otlp.validate(problems);
    }
}

/// OpenTelemetry's own variables for the OTLP endpoint, the traces-only one first.
pub const OTEL_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// `[log.otlp]`: spans exported over OTLP/gRPC. Nothing is exported unless
/// an endpoint is set here or in OpenTelemetry's own variables.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// The collector's OTLP/gRPC address, `http://host:4317`. Empty: the
    /// first of [`OTEL_ENDPOINT_VARIABLES`] that is set, else no export.
    pub endpoint: String,
    /// How long one export may take before it is given up (and counted).
    pub timeout_ms: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            timeout_ms: 5_000,
        }
    }
}

impl Validate for OtlpConfig {
    fn validate(&self, problems: &mut Problems) {
        if let Err(problem) = check_endpoint(&self.endpoint) {
            problems.add("log.otlp.endpoint", problem);
        }
        problems.positive("log.otlp.timeout_ms", self.timeout_ms);
    }
}

impl OtlpConfig {
    /// The endpoint to export to: the configured one, else the first of
    /// OpenTelemetry's variables in `env` that is set; `None` exports
    /// nothing. An unusable variable is an error that names it.
    pub fn resolve_endpoint(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<String>, String> {
        if !self.endpoint.trim().is_empty() {
            return Ok(Some(self.endpoint.trim().to_owned()));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        for variable in OTEL_ENDPOINT_VARIABLES {
            let set = env
                .iter()
                .find(|(name, value)| name == variable && !value.trim().is_empty());
            if let Some((_, value)) = set {
                check_endpoint(value).map_err(|problem| format!("{variable}: {problem}"))?;
                return Ok(Some(value.trim().to_owned()));
            }
        }
        Ok(None)
    }
}

/// An endpoint is empty (no export) or a plain `http://host:port` gRPC
/// address: TLS to the collector is not built in.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let endpoint = endpoint.trim();
    match endpoint.strip_prefix("http://") {
        _ if endpoint.is_empty() => Ok(()),
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "{endpoint:?} is not an OTLP/gRPC address like http://otel-collector:4317"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        nats: NatsConfig,
        log: LogConfig,
        batch_max_events: u64,
    }

    impl Validate for Sample {
        fn validate(&self, problems: &mut Problems) {
            self.nats.validate(problems);
            self.log.validate(problems);
            problems.positive("batch_max_events", self.batch_max_events);
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment_override() {
        let dir = std::env::temp_dir().join(format!("vigil-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sample.toml");
        std::fs::write(
            &file,
            "batch_max_events = 10\n[nats]\nurl = \"nats://file:4222\"\n",
        )
        .unwrap();
        let config: Sample = load(
            "sample-svc",
            Some(&file),
            env(&[
                ("VIGIL_SAMPLE_SVC__NATS__URL", "nats://env:4222"),
                ("OTHER__NATS__URL", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.nats.url, "nats://env:4222");
        assert_eq!(config.batch_max_events, 10);
        assert_eq!(config.nats.security(), vigil_bus::Security::default());
    }

    #[test]
    fn nkey_and_tls_files_are_read_from_the_nats_section() {
        let config: Sample = load(
            "sample-svc",
            None,
            env(&[
                (
                    "VIGIL_SAMPLE_SVC__NATS__NKEY_SEED_FILE",
                    "/run/nats/seed.nk",
                ),
                ("VIGIL_SAMPLE_SVC__NATS__TLS__CA_FILE", "/run/nats/ca.pem"),
                ("VIGIL_SAMPLE_SVC__BATCH_MAX_EVENTS", "1"),
            ]),
        )
        .unwrap();
        let security = config.nats.security();
        assert_eq!(
            security.nkey_seed_file.as_deref(),
            Some(Path::new("/run/nats/seed.nk"))
        );
        let tls = security.tls.unwrap();
        assert_eq!(tls.ca_file, Path::new("/run/nats/ca.pem"));
        assert_eq!(tls.cert_file, None);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let error = load::<Sample>(
            "sample-svc",
            None,
            env(&[
                ("VIGIL_SAMPLE_SVC__NATS__URL", "http://wrong"),
                ("VIGIL_SAMPLE_SVC__NATS__STREAM_REPLICAS", "2"),
                ("VIGIL_SAMPLE_SVC__LOG__FILTER", "info,=[bad"),
            ]),
        )
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 4, "{text}");
        for key in [
            "nats.url",
            "nats.stream_replicas",
            "log.filter",
            "batch_max_events",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }

    #[test]
    fn every_unknown_key_is_named_with_its_file_or_variable_at_once() {
        let dir = std::env::temp_dir().join(format!("vigil-config-all-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("svc.toml");
        std::fs::write(
            &file,
            "protected_namespaces = [\"a\"]\nbatch_max_events = 0\n[nats]\nurls = \"x\"\n[log]\nformat = \"yaml\"\n",
        )
        .unwrap();
        let error = load::<Sample>(
            "sample-svc",
            Some(&file),
            env(&[("VIGIL_SAMPLE_SVC__LOG__COLOUR", "red")]),
        )
        .unwrap_err();
        let text = error.to_string();
        let path = file.display().to_string();
        for expected in [
            "protected_namespaces: unknown field: found `protected_namespaces`",
            "nats.urls: unknown field: found `urls`",
            "log.format:",
            "log.colour: unknown field",
            "batch_max_events: must be greater than 0",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
        assert_eq!(error.problems.len(), 5, "{text}");
        for problem in &error.problems {
            let origin = if problem.starts_with("log.colour") {
                "(from environment variable VIGIL_SAMPLE_SVC__LOG__COLOUR)".to_owned()
            } else if problem.starts_with("batch_max_events") {
                continue;
            } else {
                format!("(from {path})")
            };
            assert!(problem.contains(&origin), "{origin} missing from {problem}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn otlp_endpoint_from_config_then_opentelemetry_variables_else_none() {
        let configured: Sample = load(
            "sample-svc",
            None,
            env(&[
                (
                    "VIGIL_SAMPLE_SVC__LOG__OTLP__ENDPOINT",
                    "http://collector:4317",
                ),
                ("VIGIL_SAMPLE_SVC__BATCH_MAX_EVENTS", "1"),
            ]),
        )
        .unwrap();
        let standard = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ]);
        assert_eq!(
            configured.log.otlp.resolve_endpoint(standard.clone()),
            Ok(Some("http://collector:4317".to_owned()))
        );
        let plain = OtlpConfig::default();
        assert_eq!(
            plain.resolve_endpoint(standard),
            Ok(Some("http://traces:4317".to_owned()))
        );
        assert_eq!(
            plain.resolve_endpoint(env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://general:4317"
            )])),
            Ok(Some("http://general:4317".to_owned()))
        );
        assert_eq!(plain.resolve_endpoint(env(&[])), Ok(None));
        let bad = plain
            .resolve_endpoint(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]))
            .unwrap_err();
        assert!(bad.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: "), "{bad}");
    }

    #[test]
    fn a_bad_otlp_section_is_named() {
        let text = load::<Sample>(
            "sample-svc",
            None,
            env(&[
                ("VIGIL_SAMPLE_SVC__LOG__OTLP__ENDPOINT", "grpc://x"),
                ("VIGIL_SAMPLE_SVC__LOG__OTLP__TIMEOUT_MS", "0"),
            ]),
        )
        .unwrap_err()
        .to_string();
        for key in ["log.otlp.endpoint", "log.otlp.timeout_ms"] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let mistyped = load::<Sample>(
            "sample-svc",
            None,
            env(&[("VIGIL_SAMPLE_SVC__BATCH_MAX_EVENTS", "lots")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            mistyped.contains("batch_max_events") && mistyped.contains("lots"),
            "{mistyped}"
        );
        let unknown = load::<Sample>(
            "sample-svc",
            None,
            env(&[("VIGIL_SAMPLE_SVC__NATS__URLS", "x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("urls"), "{unknown}");
    }
}
