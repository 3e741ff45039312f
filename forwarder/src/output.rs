//! An output: where alerts go and how one is handed over.

use vigil_falco::Alert;

use crate::{
    config::{OutputConfig, OutputKind},
    http::HttpOutput,
    syslog::SyslogOutput,
};

/// Why an attempt failed. Every kind but [`SendError::TooLarge`] may pass
/// with time (the receiver comes back, the overload ends), so it is retried.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("{target} answered {status}")]
    Status { target: String, status: u16 },
    #[error("{target} did not answer within {timeout_ms} ms")]
    Timeout { target: String, timeout_ms: u64 },
    #[error("writing to {target} failed: {detail}")]
    Write { target: String, detail: String },
    #[error("the message is {size} bytes, more than {target} can carry ({limit})")]
    TooLarge {
        target: String,
        size: usize,
        limit: usize,
    },
}

impl SendError {
    /// The `reason` label of the failure metrics.
    pub fn reason(&self) -> String {
        match self {
            SendError::Connect { .. } => "connect".to_owned(),
            SendError::Status { status, .. } => format!("status_{status}"),
            SendError::Timeout { .. } => "timeout".to_owned(),
            SendError::Write { .. } => "write".to_owned(),
            SendError::TooLarge { .. } => "too_large".to_owned(),
        }
    }

    /// Whether another attempt can succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, SendError::TooLarge { .. })
    }
}

/// Building an output failed (its TLS roots, for instance).
#[derive(Debug, thiserror::Error)]
#[error("output {name}: {detail}")]
pub struct BuildError {
    pub name: String,
    pub detail: String,
}

/// How an output hands alerts over; built once, used by every delivery.
pub enum Sender {
    Http(Box<HttpOutput>),
    Syslog(SyslogOutput),
}

impl Sender {
    pub fn new(config: &OutputConfig) -> Result<Sender, BuildError> {
        match config.kind {
            OutputKind::Falcosidekick | OutputKind::Webhook => {
                HttpOutput::new(config).map(|output| Sender::Http(Box::new(output)))
            }
            OutputKind::Syslog => Ok(Sender::Syslog(SyslogOutput::new(config))),
        }
    }

    /// Returns once the receiver accepted `alert`: an HTTP 2xx answer, or
    /// the syslog message handed to the kernel whole.
    pub async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        match self {
            Sender::Http(output) => output.send(alert).await,
            Sender::Syslog(output) => output.send(alert).await,
        }
    }
}
