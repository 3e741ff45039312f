//! One consume loop per owned event partition, started and stopped as the
//! assignment changes.
//!
//! Each partition has its own durable consumer
//! (`topology::anomaly_scorer_partition_consumer`), so a partition changes
//! hands with its position: the new owner continues where the old one
//! acked. A hand-over may overlap briefly: the old owner finishes the batch
//! it is handling, and batches it had pulled but not handled are redelivered
//! to the new owner after the consumer's ack wait. Delivery is at least once
//! and everything published carries a message id derived from the window,
//! so JetStream drops the duplicates of an overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_bus::async_nats::jetstream::{self, consumer::PullConsumer};
use vigil_bus::{consume, subject, topology};

use crate::{Pipeline, assignment, metrics};

/// Back-off before a partition whose consumer could not be created is
/// tried again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Where the wanted partitions come from.
pub(crate) enum Source {
    /// An explicit list (`partitions` in the configuration): no membership.
    Static(BTreeSet<u32>),
    /// The rendezvous share of this member among the live ones.
    Members {
        me: String,
        members: watch::Receiver<BTreeSet<String>>,
    },
}

impl Source {
    fn wanted(&mut self) -> BTreeSet<u32> {
        match self {
            Source::Static(partitions) => partitions.clone(),
            Source::Members { me, members } => assignment::owned(&members.borrow_and_update(), me)
                .into_iter()
                .collect(),
        }
    }

    fn describe(&self) -> (String, usize) {
        match self {
            Source::Static(_) => ("static".to_owned(), 1),
            Source::Members { me, members } => (me.clone(), members.borrow().len()),
        }
    }

    /// Waits for the next change; a static list never changes, and a
    /// closed membership (the follower ended) keeps the last share.
    async fn changed(&mut self) {
        if let Source::Members { members, .. } = self
            && members.changed().await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }
}

struct Lane {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The running partitions of this instance.
pub(crate) struct Lanes {
    js: jetstream::Context,
    replicas: usize,
    pipeline: Pipeline,
    running: BTreeMap<u32, Lane>,
}

impl Lanes {
    pub fn new(js: jetstream::Context, replicas: usize, pipeline: Pipeline) -> Self {
        Self {
            js,
            replicas,
            pipeline,
            running: BTreeMap::new(),
        }
    }

    /// Follows `source` until `shutdown`, publishing the running partitions
    /// on `owned` after every change.
    pub async fn run(
        mut self,
        mut source: Source,
        owned: watch::Sender<Vec<u32>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let wanted = source.wanted();
            let before: Vec<u32> = self.running.keys().copied().collect();
            let complete = self.reconcile(&wanted, &shutdown).await;
            let after: Vec<u32> = self.running.keys().copied().collect();
            if before != after {
                report(&source, &before, &after);
                owned.send_replace(after);
            }
            let retry = async {
                if complete {
                    std::future::pending().await
                } else {
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = source.changed() => {}
                () = retry => {}
            }
        }
        self.stop(self.running.keys().copied().collect()).await;
        ::metrics::gauge!(metrics::PARTITIONS).set(0.0);
        owned.send_replace(Vec::new());
    }

    /// Stops the partitions no longer wanted, then starts the new ones;
    /// false when some could not be started (retried later).
    async fn reconcile(&mut self, wanted: &BTreeSet<u32>, shutdown: &CancellationToken) -> bool {
        let lost: BTreeSet<u32> = self
            .running
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        if !lost.is_empty() {
            // A stopped lane's container windows go with it.
            self.stop(lost).await;
        }
        if shutdown.is_cancelled() {
            return true;
        }
        // Consumers are created concurrently: a lone instance starting
        // takes all 16 at once.
        let gained: Vec<u32> = wanted
            .iter()
            .filter(|p| !self.running.contains_key(p))
            .copied()
            .collect();
        let created = futures::future::join_all(gained.iter().map(|&partition| {
            let spec = topology::anomaly_scorer_partition_consumer(partition);
            let js = self.js.clone();
            let replicas = self.replicas;
            async move { topology::ensure_consumer(&js, &spec, replicas).await }
        }))
        .await;
        let mut complete = true;
        for (partition, consumer) in gained.into_iter().zip(created) {
            match consumer {
                Ok(consumer) => self.start(partition, consumer, shutdown),
                Err(error) => {
                    metrics::error("consumer_failed", "rebalance");
                    tracing::warn!(message = "Cannot consume partition; retrying.", partition, %error);
                    complete = false;
                }
            }
        }
        complete
    }

    fn start(&mut self, partition: u32, consumer: PullConsumer, shutdown: &CancellationToken) {
        let stop = shutdown.child_token();
        let lane = self.pipeline.lane();
        let task = tokio::spawn(consume::run(consumer, stop.clone(), 1, move |delivery| {
            lane.clone().handle(delivery)
        }));
        self.running.insert(partition, Lane { stop, task });
    }

    /// Cancels the lanes of `partitions` and waits until each has settled
    /// the batch it was handling.
    async fn stop(&mut self, partitions: BTreeSet<u32>) {
        let lanes: Vec<(u32, Lane)> = partitions
            .into_iter()
            .filter_map(|p| self.running.remove(&p).map(|lane| (p, lane)))
            .collect();
        for (_, lane) in &lanes {
            lane.stop.cancel();
        }
        for (partition, lane) in lanes {
            if let Err(error) = lane.task.await {
                tracing::error!(message = "Partition task failed.", partition, %error);
            }
        }
    }
}

/// Logs and counts one change of the owned partitions.
fn report(source: &Source, before: &[u32], after: &[u32]) {
    let gained: Vec<u32> = after
        .iter()
        .filter(|p| !before.contains(p))
        .copied()
        .collect();
    let lost: Vec<u32> = before
        .iter()
        .filter(|p| !after.contains(p))
        .copied()
        .collect();
    let (member, members) = source.describe();
    ::metrics::gauge!(metrics::PARTITIONS).set(after.len() as f64);
    ::metrics::counter!(metrics::REBALANCES).increment(1);
    tracing::info!(
        message = "Owned partitions changed.",
        %member,
        members,
        owned = ?after,
        ?gained,
        ?lost,
        of = subject::EVENT_PARTITIONS,
    );
}
