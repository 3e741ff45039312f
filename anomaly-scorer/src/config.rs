//! The scorer's configuration: `[nats]`, `[admin]`, `[log]` plus partitions,
//! windows, learning and the gRPC listener.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use vigil_bus::subject::EVENT_PARTITIONS;
use vigil_grpc_auth::{Roles, TlsConfig, Transport};
use vigil_service::{AdminConfig, LogConfig, NatsConfig, Problems, Validate};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_name: String,
    /// Explicit event partitions, consumed without membership (tests,
    /// operators pinning a share). Empty (the default): the instance joins
    /// the scorer members and owns its share of the live ones.
    pub partitions: Vec<u32>,
    /// Events per window, and events between two windows of a container
    /// (windows overlap when `window_stride` < `window_events`).
    pub window_events: u32,
    pub window_stride: u32,
    /// Windows a workload learns from before its model is fitted.
    pub learning_windows: u32,
    /// Accepted windows between two refits (0: never refit).
    pub retrain_every: u32,
    /// A finding needs a score above both this and every training window's.
    pub finding_min_score: f64,
    /// Features named in a finding's explanation.
    pub explain_top: u32,
    /// How long after a rule finding a container's windows are kept out of
    /// learning and retraining.
    pub rule_finding_hold_seconds: u64,
    /// gRPC listener (`AnomalyScorer`, health, reflection); loopback by
    /// default: off this host it needs `grpc_tls` (or `grpc_plaintext`).
    pub grpc_listen: SocketAddr,
    /// Mutual TLS for gRPC (cert, key, CA).
    pub grpc_tls: Option<TlsConfig>,
    /// Serve gRPC without TLS off loopback (dev only).
    pub grpc_plaintext: bool,
    /// Which client certificate identities may query (operators and readers
    /// both may; nothing here writes).
    pub grpc_roles: Roles,
    pub nats: NatsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: vigil_service::config::default_node_name(),
            partitions: Vec::new(),
            window_events: 64,
            window_stride: 32,
            learning_windows: 50,
            retrain_every: 50,
            finding_min_score: crate::scorer::DEFAULT_MIN_SCORE,
            explain_top: 5,
            rule_finding_hold_seconds: 24 * 3600,
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            grpc_tls: None,
            grpc_plaintext: false,
            grpc_roles: Roles::default(),
            nats: NatsConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// How gRPC talks to callers; problems go under `grpc_tls` /
    /// `grpc_plaintext`.
    pub fn grpc_transport(&self, problems: &mut Problems) -> Option<Transport> {
        Transport::from_config(
            "grpc_",
            self.grpc_listen,
            self.grpc_tls.as_ref(),
            self.grpc_plaintext,
            &self.grpc_roles,
            problems,
        )
    }
}

impl Validate for Config {
    fn validate(&self, problems: &mut Problems) {
        self.grpc_transport(problems);
        vigil_service::config::validate_common(&self.node_name, &self.nats, &self.log, problems);
        if let Some(p) = self.partitions.iter().find(|&&p| p >= EVENT_PARTITIONS) {
            problems.add(
                "partitions",
                format!("partition {p} does not exist (0..{EVENT_PARTITIONS})"),
            );
        }
        problems.positive("window_events", u64::from(self.window_events));
        problems.positive("window_stride", u64::from(self.window_stride));
        if self.window_stride > self.window_events {
            problems.add("window_stride", "must not exceed window_events");
        }
        if self.learning_windows < 5 {
            problems.add(
                "learning_windows",
                "at least 5 (the model cross-fits 5 folds)",
            );
        }
        if !(0.0..=1.0).contains(&self.finding_min_score) {
            problems.add("finding_min_score", "must be within [0, 1]");
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

    fn load(env: &[(&str, &str)]) -> Result<Config, vigil_service::ConfigError> {
        vigil_service::config::load(
            "anomaly-scorer",
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn membership_is_the_default_and_a_list_pins_partitions() {
        assert!(load(&[]).expect("defaults").partitions.is_empty());
        let explicit = load(&[("VIGIL_ANOMALY_SCORER__PARTITIONS", "[3, 1, 3]")]).expect("list");
        assert_eq!(explicit.partitions, [3, 1, 3]);
        let error = load(&[("VIGIL_ANOMALY_SCORER__INSTANCE_COUNT", "2")])
            .expect_err("instance_count no longer exists");
        assert!(error.to_string().contains("instance_count"), "{error}");
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let error = load(&[
            ("VIGIL_ANOMALY_SCORER__PARTITIONS", "[16]"),
            ("VIGIL_ANOMALY_SCORER__WINDOW_STRIDE", "100"),
            ("VIGIL_ANOMALY_SCORER__LEARNING_WINDOWS", "2"),
            ("VIGIL_ANOMALY_SCORER__FINDING_MIN_SCORE", "1.5"),
        ])
        .expect_err("invalid");
        let text = error.to_string();
        for key in [
            "partitions",
            "window_stride",
            "learning_windows",
            "finding_min_score",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }
}
