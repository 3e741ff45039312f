//! Which scorer instances are alive, from the `VIGIL_SCORER_MEMBERS`
//! key-value bucket (`vigil_bus::topology::SCORER_MEMBERS_BUCKET`).
//!
//! Each instance puts its member id as a key on start, refreshes it every
//! third of the bucket's `max_age` and deletes it on graceful shutdown. A
//! crashed instance's key ages out. Watching the bucket shows joins and
//! graceful leaves at once; expiry produces no watch event, so the key list
//! is re-read at every heartbeat as well.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vigil_bus::async_nats::jetstream::{self, kv};
use vigil_bus::topology::{self, SCORER_MEMBERS_BUCKET};

/// Back-off before a failed watch is opened again.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(transparent)]
    Bucket(#[from] topology::TopologyError),
    #[error("cannot write member {member} to {bucket}: {source}")]
    Put {
        member: String,
        bucket: &'static str,
        #[source]
        source: kv::PutError,
    },
    #[error("cannot list the members in {bucket}: {reason}")]
    List {
        bucket: &'static str,
        reason: String,
    },
}

/// A unique member id: the node name (in Kubernetes the pod's name) plus a
/// random suffix, so two instances with one node name never collide.
pub fn member_id(node_name: &str) -> String {
    format!(
        "{}.{:08x}",
        topology::kv_key(node_name),
        rand::random::<u32>()
    )
}

/// This instance's membership.
pub struct Membership {
    store: kv::Store,
    me: String,
    node_name: String,
}

impl Membership {
    /// Ensures the bucket and announces this instance.
    pub async fn join(
        js: &jetstream::Context,
        replicas: usize,
        node_name: &str,
    ) -> Result<Self, MembershipError> {
        let store = topology::ensure_bucket(js, &SCORER_MEMBERS_BUCKET, replicas).await?;
        let membership = Self {
            store,
            me: member_id(node_name),
            node_name: node_name.to_owned(),
        };
        membership.heartbeat().await?;
        Ok(membership)
    }

    pub fn id(&self) -> &str {
        &self.me
    }

    /// Refreshes this instance's key (the value is its node name, for
    /// operators listing the bucket).
    pub async fn heartbeat(&self) -> Result<(), MembershipError> {
        self.store
            .put(&self.me, self.node_name.clone().into_bytes().into())
            .await
            .map(|_| ())
            .map_err(|source| MembershipError::Put {
                member: self.me.clone(),
                bucket: SCORER_MEMBERS_BUCKET.name,
                source,
            })
    }

    /// The live members as the bucket lists them now, always with this one.
    pub async fn members(&self) -> Result<BTreeSet<String>, MembershipError> {
        let list = |reason: String| MembershipError::List {
            bucket: SCORER_MEMBERS_BUCKET.name,
            reason,
        };
        let keys = self.store.keys().await.map_err(|e| list(e.to_string()))?;
        let mut members: BTreeSet<String> =
            keys.try_collect().await.map_err(|e| list(e.to_string()))?;
        members.insert(self.me.clone());
        Ok(members)
    }

    /// Keeps `members` up to date until `shutdown`, then deletes this
    /// instance's key so the others take over its partitions at once.
    pub async fn follow(
        self,
        members: watch::Sender<BTreeSet<String>>,
        shutdown: CancellationToken,
    ) {
        let every = SCORER_MEMBERS_BUCKET.max_age / 3;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Watch first, then list: a member joining in between is in one or
        // the other.
        let mut changes = self.watch(&shutdown).await;
        self.refresh(&members).await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = heartbeat.tick() => {
                    if let Err(error) = self.heartbeat().await {
                        tracing::warn!(message = "Membership heartbeat failed.", member = %self.me, %error);
                    }
                    self.refresh(&members).await;
                }
                change = changes.next() => match change {
                    Some(Ok(entry)) => apply(&members, &self.me, &entry),
                    Some(Err(error)) => tracing::warn!(message = "Membership watch reported an error.", %error),
                    None => {
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(REWATCH_DELAY) => {}
                        }
                        changes = self.watch(&shutdown).await;
                        self.refresh(&members).await;
                    }
                },
            }
        }
        self.leave().await;
    }

    /// A watch on every key, or an empty stream (retried by the caller's
    /// loop) while NATS refuses one.
    async fn watch(
        &self,
        shutdown: &CancellationToken,
    ) -> futures::stream::BoxStream<'static, Result<kv::Entry, kv::WatcherError>> {
        loop {
            match self.store.watch_all().await {
                Ok(watch) => return watch.boxed(),
                Err(error) => {
                    tracing::warn!(message = "Cannot watch the scorer members; retrying.", %error);
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return futures::stream::empty().boxed(),
                () = tokio::time::sleep(REWATCH_DELAY) => {}
            }
        }
    }

    async fn refresh(&self, members: &watch::Sender<BTreeSet<String>>) {
        match self.members().await {
            Ok(now) => {
                members.send_if_modified(|known| replace(known, now));
            }
            Err(error) => tracing::warn!(message = "Cannot list the scorer members.", %error),
        }
    }

    async fn leave(&self) {
        match self.store.delete(&self.me).await {
            Ok(()) => tracing::info!(message = "Left the scorer members.", member = %self.me),
            Err(error) => {
                tracing::warn!(message = "Could not delete the member key; it expires.", member = %self.me, %error);
            }
        }
    }
}

/// Applies one watched change; this instance itself always stays in.
fn apply(members: &watch::Sender<BTreeSet<String>>, me: &str, entry: &kv::Entry) {
    members.send_if_modified(|known| match entry.operation {
        kv::Operation::Put => known.insert(entry.key.clone()),
        kv::Operation::Delete | kv::Operation::Purge => entry.key != me && known.remove(&entry.key),
    });
}

fn replace(known: &mut BTreeSet<String>, now: BTreeSet<String>) -> bool {
    if *known == now {
        return false;
    }
    *known = now;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_valid_keys_and_unique_per_instance() {
        let a = member_id("vigil-anomaly-scorer-5f7c9-x2k4q");
        let b = member_id("vigil-anomaly-scorer-5f7c9-x2k4q");
        assert_ne!(a, b);
        assert!(a.starts_with("vigil-anomaly-scorer-5f7c9-x2k4q."), "{a}");
        let odd = member_id("node one:2");
        assert!(
            odd.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=./".contains(&b)),
            "{odd}"
        );
    }
}
