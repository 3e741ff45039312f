//! Publishing findings, pipelined in windows.

use vigil_bus::{PublishError, Publisher, TraceContext, codec, subject};
use vigil_proto::v1::Finding;

use crate::metrics;

/// Publishes awaited per window: async-nats blocks once 5000 acks are in
/// flight, so an unbounded batch of findings must never be sent at once.
const PUBLISH_WINDOW: usize = 256;

/// Publishes `findings` and returns once JetStream has stored all of them.
/// Each finding's id is its message id, so a repeat is discarded.
pub async fn publish_findings(
    publisher: &Publisher,
    findings: &[Finding],
    trace: &TraceContext,
) -> Result<(), PublishError> {
    for window in findings.chunks(PUBLISH_WINDOW) {
        let mut pending = Vec::with_capacity(window.len());
        for finding in window {
            let subject = subject::findings(finding.priority(), &finding.namespace);
            let payload = codec::encode(finding);
            let ack = publisher
                .send(subject.clone(), &finding.id, &trace.child(), payload)
                .await?;
            pending.push((finding, subject, ack));
        }
        for (finding, subject, ack) in pending {
            let ack = ack.await.map_err(|source| PublishError::Confirm {
                subject: subject.clone(),
                message_id: finding.id.clone(),
                source,
            })?;
            if ack.duplicate {
                continue;
            }
            ::metrics::counter!(metrics::FINDINGS, "rule" => finding.name.clone()).increment(1);
            tracing::info!(
                message = "Published finding.",
                id = %finding.id, rule = %finding.name, %subject,
                container_id = %finding.container_id, node = %finding.node
            );
        }
    }
    Ok(())
}
