//! Drops as findings: a flooding attacker who fills the ring buffer or the
//! channel must not blind the system silently. Every interval the drop
//! totals are compared with the previous interval's; past the threshold a
//! Finding (source INTERNAL, "Collector dropped events") goes to
//! `vigil.findings.<priority>._`, with an id that names the run and the
//! interval, so a retried publish is de-duplicated.
//!
//! A finding that is not delivered (NATS away) is not given up: its counts
//! are merged into the next interval's finding, which is tried every
//! interval until JetStream stores it. Each finding also carries the run's
//! running totals, so a copy stored late and then counted again by a merged
//! one can be told apart.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_bus::{Publisher, TraceContext, async_nats::connection::State, codec, subject};
use vigil_proto::v1::{Finding, FindingSource, Priority};

use crate::{
    metrics,
    publish::{Bus, DropCounts},
};

/// The finding's rule name.
pub const FINDING_NAME: &str = "Collector dropped events";

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
    /// Kernel and user-space totals as of the last check.
    seen: Drops,
    interval: u64,
    /// Drops raised in a finding not delivered yet.
    pending: Option<Pending>,
}

/// Kernel and user-space drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Drops {
    kernel: u64,
    userspace: u64,
}

impl Drops {
    fn total(self) -> u64 {
        self.kernel + self.userspace
    }
}

/// What an undelivered finding reports: the drops of the intervals it
/// merges, and the last of those intervals that had drops (its id).
#[derive(Clone, Copy, Debug)]
struct Pending {
    drops: Drops,
    intervals: u64,
    last: u64,
}

impl DropMonitor {
    pub fn new(node: &str, run_id: &str, config: DropsConfig, counts: DropCounts) -> Self {
        Self {
            node: node.to_owned(),
            run_id: run_id.to_owned(),
            config,
            counts,
            seen: Drops::default(),
            interval: 0,
            pending: None,
        }
    }

    /// Ends an interval: the finding for its drops if they reach the
    /// threshold, merged with those of a finding not delivered yet (which
    /// is then offered again even without new drops).
    pub fn check(&mut self) -> Option<Finding> {
        self.interval += 1;
        let totals = Drops {
            kernel: self.counts.kernel.as_ref().map_or(0, |k| k.total()),
            userspace: self
                .counts
                .userspace
                .load(std::sync::atomic::Ordering::Relaxed),
        };
        let new = Drops {
            kernel: totals.kernel.saturating_sub(self.seen.kernel),
            userspace: totals.userspace.saturating_sub(self.seen.userspace),
        };
        self.seen = Drops {
            kernel: totals.kernel.max(self.seen.kernel),
            userspace: totals.userspace.max(self.seen.userspace),
        };
        let pending = match self.pending {
            Some(mut pending) => {
                pending.intervals += 1;
                if new.total() > 0 {
                    pending.drops.kernel += new.kernel;
                    pending.drops.userspace += new.userspace;
                    pending.last = self.interval;
                }
                pending
            }
            None if new.total() >= self.config.threshold => Pending {
                drops: new,
                intervals: 1,
                last: self.interval,
            },
            None => return None,
        };
        self.pending = Some(pending);
        Some(self.finding(pending))
    }

    /// The last finding [`check`](Self::check) gave was stored.
    pub fn delivered(&mut self) {
        self.pending = None;
    }

    fn finding(&self, pending: Pending) -> Finding {
        let Pending {
            drops, intervals, ..
        } = pending;
        let interval_ms = self.config.interval_ms.saturating_mul(intervals);
        let seconds = interval_ms as f64 / 1000.0;
        let output = format!(
            "Collector on node {} dropped {} events in {seconds} s (kernel={} userspace={} threshold={})",
            self.node,
            drops.total(),
            drops.kernel,
            drops.userspace,
            self.config.threshold
        );
        let fields = [
            ("kernel_drops", drops.kernel.to_string()),
            ("userspace_drops", drops.userspace.to_string()),
            ("interval_ms", interval_ms.to_string()),
            ("run_kernel_drops", self.seen.kernel.to_string()),
            ("run_userspace_drops", self.seen.userspace.to_string()),
            ("run_id", self.run_id.clone()),
        ];
        Finding {
            id: format!(
                "collector-drops:{}:{}:{}",
                subject::token(&self.node),
                self.run_id,
                pending.last
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

/// Checks every interval until `shutdown`, publishing each finding; one not
/// stored is merged into the next interval's and tried again. While the
/// client is disconnected nothing is sent: each copy would wait in its
/// buffer and arrive later as a finding of its own.
pub async fn run(mut monitor: DropMonitor, bus: Bus, shutdown: CancellationToken) {
    let interval = Duration::from_millis(monitor.config.interval_ms);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(finding) = monitor.check() else {
            continue;
        };
        tracing::warn!(message = "Events were dropped.", output = %finding.output, id = %finding.id);
        if bus.client.connection_state() != State::Connected {
            continue;
        }
        // A bus that is down must hold up neither shutdown nor the next
        // interval's merged finding.
        let stored = tokio::select! {
            () = shutdown.cancelled() => return,
            stored = tokio::time::timeout(interval, publish(&bus.publisher, &finding)) => {
                stored.unwrap_or(false)
            }
        };
        if stored {
            monitor.delivered();
        }
    }
}

/// Whether JetStream stored `finding`.
async fn publish(publisher: &Publisher, finding: &Finding) -> bool {
    let published = publisher
        .publish(
            subject::findings(finding.priority(), ""),
            &finding.id,
            &TraceContext::new_root(),
            codec::encode(finding),
        )
        .await;
    match published {
        Ok(_) => {
            ::metrics::counter!(metrics::DROP_FINDINGS).increment(1);
            true
        }
        Err(error) => {
            ::metrics::counter!(metrics::PUBLISH_ERRORS, "stage" => "drop_finding").increment(1);
            tracing::warn!(message = "Could not publish the drop finding; it is merged into the next one.", id = %finding.id, %error);
            false
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
        monitor.delivered();
        assert!(monitor.check().is_none(), "counted once");
    }

    #[test]
    fn an_undelivered_finding_is_offered_again_with_the_next_drops_merged() {
        let counts = DropCounts::default();
        let config = DropsConfig {
            threshold: 10,
            interval_ms: 1000,
            ..DropsConfig::default()
        };
        let mut monitor = DropMonitor::new("node-1", "run-1", config, counts.clone());
        counts.userspace.fetch_add(40, Ordering::Relaxed);
        let first = monitor.check().expect("past the threshold");
        assert_eq!(first.id, "collector-drops:node-1:run-1:1");
        // Not delivered: offered again, the same finding while nothing new
        // came, so a copy stored late is discarded as a duplicate.
        let again = monitor.check().expect("offered again");
        assert_eq!(again.id, first.id);
        assert_eq!(again.output_fields["userspace_drops"], "40");
        // Fewer than the threshold on their own, merged all the same.
        counts.userspace.fetch_add(3, Ordering::Relaxed);
        let merged = monitor.check().expect("merged");
        assert_eq!(merged.id, "collector-drops:node-1:run-1:3");
        assert_eq!(
            (
                merged.output_fields["userspace_drops"].as_str(),
                merged.output_fields["interval_ms"].as_str(),
                merged.output_fields["run_userspace_drops"].as_str(),
            ),
            ("43", "3000", "43")
        );
        assert!(
            merged.output.contains("dropped 43 events in 3 s"),
            "{}",
            merged.output
        );
        monitor.delivered();
        assert!(monitor.check().is_none(), "delivered: nothing left");
        counts.userspace.fetch_add(12, Ordering::Relaxed);
        let next = monitor.check().expect("new drops, a new finding");
        assert_eq!(
            (
                next.output_fields["userspace_drops"].as_str(),
                next.output_fields["run_userspace_drops"].as_str(),
            ),
            ("12", "55")
        );
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
