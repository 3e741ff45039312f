//! What every Vigil service shares, so each `main.rs` stays short:
//!
//! * [`config`]: typed configuration from a TOML file plus `VIGIL_<SERVICE>__…`
//!   environment overrides, with every problem reported at once;
//! * [`telemetry`]: structured logs (text or JSON) through `tracing`;
//! * [`admin`]: the `/metrics` (Prometheus) and `/healthz` endpoints;
//! * [`shutdown`]: a cancellation token fired by SIGINT or SIGTERM;
//! * [`runner`]: connect to NATS, ensure streams, run, drain within a bound.
//!
//! The rules every service follows are in `docs/specs/service.md`.

pub mod admin;
pub mod clock;
pub mod config;
pub mod process;
pub mod runner;
pub mod shutdown;
pub mod telemetry;

pub use admin::{AdminServer, Health};

/// The code quoted in `docs/specs/service.md`, compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/specs/service.md")]
pub struct ServiceSpec;
pub use config::{AdminConfig, ConfigError, LogConfig, NatsConfig, OtlpConfig, Problems, Validate};
