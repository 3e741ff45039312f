//! `vigil-forwarder`: delivers every finding (rule, anomaly, collector
//! drops) as Falco's JSON alert to Falcosidekick's HTTP input, generic
//! webhooks and RFC 5424 syslog, at least once.
//!
//! ```text
//! VIGIL_FINDINGS ─┬─(durable forwarder-<a>)──▶ Falco alert ──▶ output a ──▶ ack / nak with back-off
//!                 └─(durable forwarder-<b>)──▶ Falco alert ──▶ output b ──▶ ack / nak with back-off
//! ```
//!
//! Each output reads the stream through its own durable consumer. A finding
//! is acknowledged on an output's consumer only once that output accepted
//! it, so every enabled output gets every finding; an output that is down
//! or answers an error has its findings redelivered with exponential
//! back-off (a delayed nak, never given up), while the other outputs'
//! consumers go on at their own pace. One consumer shared by all outputs
//! would have to hold each finding until the slowest output took it: a
//! down output would fill the consumer's unacknowledged window and stall
//! the healthy ones, and every retry would resend to outputs that had
//! already accepted. Findings carry no order across outputs.

mod config;
mod http;
pub mod metrics;
mod output;
pub mod syslog;

use std::{sync::Arc, time::Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use vigil_bus::{
    ConnectError, Delivery, Disposition, codec, consume, publish::FALCO_JSON, topology,
};
use vigil_falco::Alert;
use vigil_proto::v1::Finding;
use vigil_service::{
    Health, clock,
    runner::{self, Connected, Wiring},
};

pub use config::{Config, OutputConfig, OutputKind, Transport};
pub use output::{BuildError, SendError, Sender};

/// The service name: config file section, env prefix, metric prefix.
pub const SERVICE: &str = "forwarder";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Output(#[from] BuildError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
}

/// One enabled output and how it retries.
struct Output {
    config: OutputConfig,
    sender: Sender,
}

/// Runs until `shutdown` fires: one consume loop per enabled output.
pub async fn run(config: Config, health: Health, shutdown: CancellationToken) -> Result<(), Error> {
    metrics::describe();
    let outputs = config
        .outputs
        .iter()
        .filter(|output| output.enabled)
        .map(|output| {
            Ok(Arc::new(Output {
                config: output.clone(),
                sender: Sender::new(output)?,
            }))
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    let wiring = Wiring {
        service: SERVICE,
        node: &config.node_name,
        nats: &config.nats,
        streams: &[&topology::FINDINGS],
    };
    runner::serve(wiring, health, shutdown, |connected| {
        forward(outputs, connected)
    })
    .await
}

async fn forward(outputs: Vec<Arc<Output>>, connected: Connected) -> Result<(), Error> {
    let mut loops = tokio::task::JoinSet::new();
    for output in outputs {
        let consumer = topology::ensure_consumer(
            &connected.bus.jetstream,
            &topology::forwarder_consumer(&output.config.name),
            connected.replicas,
        )
        .await?;
        let shutdown = connected.shutdown.clone();
        let max_in_flight = output.config.max_in_flight;
        tracing::info!(
            message = "Forwarding findings.",
            output = %output.config.name,
            kind = ?output.config.kind
        );
        loops.spawn(consume::run(
            consumer,
            shutdown,
            max_in_flight,
            move |delivery| deliver(output.clone(), delivery),
        ));
    }
    connected.ready();
    while let Some(joined) = loops.join_next().await {
        if let Err(error) = joined {
            tracing::error!(message = "An output's consume loop failed.", %error);
        }
    }
    Ok(())
}

/// decode → Falco alert → hand to the output → ack, or nak with back-off.
async fn deliver(output: Arc<Output>, delivery: Delivery) -> Disposition {
    let name = output.config.name.clone();
    let finding = match codec::decode::<Finding>(
        &delivery.payload,
        &delivery.subject,
        delivery.stream_sequence,
    ) {
        Ok(finding) => finding,
        Err(error) => {
            ::metrics::counter!(metrics::REJECTED, "output" => name, "reason" => "malformed_payload")
                .increment(1);
            return Disposition::Reject {
                reason: error.to_string(),
            };
        }
    };
    let header = delivery
        .headers
        .as_ref()
        .and_then(|headers| headers.get(FALCO_JSON))
        .map(|value| value.as_str());
    let (alert, header_error) = Alert::from_finding(&finding, header);
    if let Some(error) = header_error {
        ::metrics::counter!(metrics::BAD_HEADERS, "output" => name.clone()).increment(1);
        tracing::warn!(message = "Forwarding a finding without its broken Falco JSON header.", output = %name, %error);
    }
    if delivery.delivered > 1 {
        ::metrics::counter!(metrics::RETRIES, "output" => name.clone()).increment(1);
    }
    // The delivery joins the trace of the batch that raised the finding.
    let span = tracing::info_span!("forward", vigil.output = %name, vigil.finding = %finding.id);
    vigil_bus::trace::continue_trace(&span, &delivery.trace);
    let started = Instant::now();
    match output.sender.send(&alert).instrument(span).await {
        Ok(()) => {
            ::metrics::counter!(metrics::DELIVERED, "output" => name.clone()).increment(1);
            ::metrics::histogram!(metrics::SEND_SECONDS, "output" => name.clone())
                .record(started.elapsed().as_secs_f64());
            let age_ns = clock::wall_ns().saturating_sub(finding.time_ns);
            ::metrics::histogram!(metrics::DELIVERY_SECONDS, "output" => name)
                .record(age_ns as f64 / 1e9);
            Disposition::Ack
        }
        Err(error) if !error.retryable() => {
            ::metrics::counter!(metrics::REJECTED, "output" => name, "reason" => error.reason())
                .increment(1);
            Disposition::Reject {
                reason: format!("finding {}: {error}", finding.id),
            }
        }
        Err(error) => {
            ::metrics::counter!(metrics::FAILED, "output" => name, "reason" => error.reason())
                .increment(1);
            Disposition::Retry {
                reason: format!("finding {}: {error}", finding.id),
                delay: output.config.back_off(delivery.delivered),
            }
        }
    }
}
