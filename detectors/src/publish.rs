//! Publishing findings, pipelined in windows.

use vigil_bus::{PublishError, Publisher, TraceContext, codec, publish::FALCO_JSON, subject};

use crate::{finding::Raised, metrics};

/// Publishes awaited per window: async-nats blocks once 5000 acks are in
/// flight across the client, and many batches publish at once.
const PUBLISH_WINDOW: usize = 64;

/// Publishes `raised` and returns once JetStream has stored all of them.
/// Each finding's id is its message id, so a repeat is discarded. The Falco
/// JSON form rides in the `Vigil-Falco-Json` header.
pub async fn publish_findings(
    publisher: &Publisher,
    raised: &[Raised],
    trace: &TraceContext,
) -> Result<(), PublishError> {
    for window in raised.chunks(PUBLISH_WINDOW) {
        let mut pending = Vec::with_capacity(window.len());
        for Raised {
            finding,
            falco_json,
        } in window
        {
            let subject = subject::findings(finding.priority(), &finding.namespace);
            let payload = codec::encode(finding);
            let ack = publisher
                .send_with_headers(
                    subject.clone(),
                    &finding.id,
                    trace,
                    payload,
                    &[(FALCO_JSON, falco_json.as_str())],
                )
                .await?;
            pending.push((finding, subject, ack));
        }
        for (finding, subject, ack) in pending {
            let ack = Publisher::confirm(ack, subject.clone(), &finding.id).await?;
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
