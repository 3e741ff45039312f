//! Containers that recently raised a rule finding: their windows never
//! train a baseline, so an attacker whom the rules already saw cannot teach
//! the scorer that the attack is normal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_bus::{async_nats, codec, subject};
use vigil_proto::v1::{Finding, FindingSource};

use crate::metrics;

pub struct RuleFindings {
    hold: Duration,
    seen: Mutex<HashMap<String, Instant>>,
}

impl RuleFindings {
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(&self, container_id: &str) {
        if container_id.is_empty() {
            return;
        }
        if let Ok(mut seen) = self.seen.lock() {
            let now = Instant::now();
            // Forget expired entries as we go, so the table stays bounded
            // by the containers flagged within `hold`.
            seen.retain(|_, at| now.duration_since(*at) < self.hold);
            seen.insert(container_id.to_owned(), now);
        }
    }

    /// Whether `container_id` raised a rule finding within `hold`.
    pub fn holds(&self, container_id: &str) -> bool {
        self.seen.lock().is_ok_and(|seen| {
            seen.get(container_id)
                .is_some_and(|at| at.elapsed() < self.hold)
        })
    }

    /// Follows every finding published (core subscription: only the live
    /// flow matters) until `shutdown`, recording rule findings.
    pub async fn follow(
        &self,
        client: async_nats::Client,
        shutdown: CancellationToken,
    ) -> Result<(), async_nats::SubscribeError> {
        let mut findings = client.subscribe(subject::FINDINGS_ALL).await?;
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = findings.next() => message,
            };
            let Some(message) = message else {
                return Ok(());
            };
            match codec::decode::<Finding>(&message.payload, &message.subject, 0) {
                Ok(finding) if finding.source == FindingSource::Rule as i32 => {
                    self.record(&finding.container_id);
                }
                Ok(_) => {}
                Err(error) => {
                    metrics::error("malformed_finding", "taint");
                    tracing::warn!(message = "Undecodable finding ignored.", %error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flagged_container_is_held_until_the_hold_expires() {
        let taint = RuleFindings::new(Duration::from_secs(3600));
        taint.record("c1");
        taint.record("");
        assert!(taint.holds("c1"));
        assert!(!taint.holds("c2"));
        assert!(!taint.holds(""));
        let expired = RuleFindings::new(Duration::ZERO);
        expired.record("c1");
        assert!(!expired.holds("c1"));
    }
}
