//! Drops as findings: a flooding attacker who fills the ring buffer or the
//! channel must not blind the system silently. Every interval the drop
//! totals are compared with the previous interval's; past the threshold a
//! Finding (source INTERNAL, "Collector dropped events") goes to
//! `vigil.findings.<priority>._`, with an id that names the run and the
//! interval, so a retried publish is de-duplicated.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_bus::{Publisher, TraceContext, codec, subject};
use vigil_proto::v1::{Finding, FindingSource, Priority};

use crate::{metrics, publish::DropCounts};

/// The finding's rule name.
pub const FINDING_NAME: &str = "Collector dropped events";
const PUBLISH_ATTEMPTS: u32 = 3;

/// `[drops]`: when lost events become a finding.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DropsConfig {
    /// Kernel plus user-space drops within one interval that raise a finding.
    pub threshold: u64,
    /// Length of an interval in milliseconds.
    pub interval_ms: u64,
    /// Priority of the finding (Falco's lowercase names).
    pub priority: String,
}

impl Default for DropsConfig {
    fn default() -> Self {
        Self {
            threshold: 1,
            interval_ms: 10_000,
            priority: "critical".to_owned(),
        }
    }
}

impl DropsConfig {
    pub fn validate(&self, problems: &mut vigil_service::Problems) {
        problems.positive("drops.threshold", self.threshold);
        problems.positive("drops.interval_ms", self.interval_ms);
        if let Err(error) = Priority::parse_label(&self.priority) {
            problems.add("drops.priority", error);
        }
    }

    fn priority(&self) -> Priority {
        Priority::parse_label(&self.priority).unwrap_or(Priority::Critical)
    }
}

/// Turns running drop totals into findings, one interval at a time.
#[derive(Debug)]
pub struct DropMonitor {
    node: String,
    run_id: String,
    config: DropsConfig,
    counts: DropCounts,
    seen: (u64, u64),
    interval: u64,
}

impl DropMonitor {
    pub fn new(node: &str, run_id: &str, config: DropsConfig, counts: DropCounts) -> Self {
        Self {
            node: node.to_owned(),
            run_id: run_id.to_owned(),
            config,
            counts,
            seen: (0, 0),
            interval: 0,
        }
    }

    /// Ends an interval: the finding for its drops, if they reach the threshold.
    pub fn check(&mut self) -> Option<Finding> {
        self.interval += 1;
        let kernel_total = self.counts.kernel.as_ref().map_or(0, |k| k.total());
        let userspace_total = self
            .counts
            .userspace
            .load(std::sync::atomic::Ordering::Relaxed);
        let kernel = kernel_total.saturating_sub(self.seen.0);
        let userspace = userspace_total.saturating_sub(self.seen.1);
        self.seen = (
            kernel_total.max(self.seen.0),
            userspace_total.max(self.seen.1),
        );
        let total = kernel + userspace;
        (total >= self.config.threshold).then(|| self.finding(kernel, userspace))
    }

    fn finding(&self, kernel: u64, userspace: u64) -> Finding {
        let seconds = self.config.interval_ms as f64 / 1000.0;
        let output = format!(
            "Collector on node {} dropped {} events in {seconds} s (kernel={kernel} userspace={userspace} threshold={})",
            self.node,
            kernel + userspace,
            self.config.threshold
        );
        let fields = [
            ("kernel_drops", kernel.to_string()),
            ("userspace_drops", userspace.to_string()),
            ("interval_ms", self.config.interval_ms.to_string()),
            ("run_id", self.run_id.clone()),
        ];
        Finding {
            id: format!(
                "collector-drops:{}:{}:{}",
                subject::token(&self.node),
                self.run_id,
                self.interval
            ),
            time_ns: vigil_service::clock::wall_ns(),
            source: FindingSource::Internal.into(),
            name: FINDING_NAME.to_owned(),
            priority: self.config.priority().into(),
            tags: vec![
                "vigil".to_owned(),
                "collector".to_owned(),
                "drops".to_owned(),
            ],
            output,
            output_fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            node: self.node.clone(),
            ..Finding::default()
        }
    }
}

/// Checks every interval until `shutdown`, publishing each finding.
pub async fn run(mut monitor: DropMonitor, publisher: Publisher, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_millis(monitor.config.interval_ms));
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Some(finding) = monitor.check() {
            tracing::warn!(message = "Events were dropped.", output = %finding.output, id = %finding.id);
            // A bus that is down must not hold up shutdown.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = publish(&publisher, &finding) => {}
            }
        }
    }
}

async fn publish(publisher: &Publisher, finding: &Finding) {
    let subject = subject::findings(finding.priority(), "");
    for attempt in 1..=PUBLISH_ATTEMPTS {
        let published = publisher
            .publish(
                subject.clone(),
                &finding.id,
                &TraceContext::new_root(),
                codec::encode(finding),
            )
            .await;
        match published {
            Ok(_) => {
                ::metrics::counter!(metrics::DROP_FINDINGS).increment(1);
                return;
            }
            Err(error) => {
                ::metrics::counter!(metrics::PUBLISH_ERRORS, "stage" => "drop_finding")
                    .increment(1);
                tracing::warn!(message = "Could not publish the drop finding.", attempt, %error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn drops_past_the_threshold_raise_one_finding_per_interval() {
        let counts = DropCounts::default();
        let config = DropsConfig {
            threshold: 10,
            priority: "warning".into(),
            ..DropsConfig::default()
        };
        let mut monitor = DropMonitor::new("node-1", "run-1", config, counts.clone());
        assert!(monitor.check().is_none(), "no drops");
        counts.userspace.fetch_add(9, Ordering::Relaxed);
        assert!(monitor.check().is_none(), "below the threshold");
        counts.userspace.fetch_add(25, Ordering::Relaxed);
        let finding = monitor.check().expect("past the threshold");
        assert_eq!(finding.name, FINDING_NAME);
        assert_eq!(finding.source(), FindingSource::Internal);
        assert_eq!(finding.priority(), Priority::Warning);
        assert_eq!(finding.id, "collector-drops:node-1:run-1:3");
        assert_eq!(finding.output_fields["userspace_drops"], "25");
        assert!(
            finding.output.contains("dropped 25 events"),
            "{}",
            finding.output
        );
        assert!(monitor.check().is_none(), "counted once");
    }

    #[test]
    fn a_bad_priority_is_reported_by_key() {
        let mut problems = vigil_service::Problems::default();
        DropsConfig {
            priority: "loud".into(),
            threshold: 0,
            ..DropsConfig::default()
        }
        .validate(&mut problems);
        let text = format!("{problems:?}");
        assert!(
            text.contains("drops.priority") && text.contains("drops.threshold"),
            "{text}"
        );
    }
}
