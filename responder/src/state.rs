//! What the responder remembers, in NATS key-value buckets so that a
//! restarted agent (or another replica of the cluster actor) knows it too:
//!
//! * which findings each consumer has handled, so a redelivered finding, or
//!   the same finding published again, acts once;
//! * which pods are in quarantine and what is in force on them, so a flood
//!   of findings for one pod contains it once, and a release knows what to
//!   undo;
//! * how many containments each rate-limit window has taken, so the limits
//!   hold across all replicas.

use async_nats::jetstream::{
    self,
    kv::{CreateErrorKind, Store},
};
use vigil_bus::{codec, topology};
use vigil_proto::v1::{ActionKind, Finding, PodRef, QuarantineState};

/// How often a quarantine update is retried when another writer got in first.
const CAS_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("key-value bucket {bucket}: {message}")]
    Kv {
        bucket: &'static str,
        message: String,
    },
    #[error("key-value bucket {bucket}: entry {key} does not decode: {message}")]
    Corrupt {
        bucket: &'static str,
        key: String,
        message: String,
    },
    #[error(
        "key-value bucket {bucket}: {key}: gave up after {CAS_ATTEMPTS} conflicting updates: {last}"
    )]
    Contended {
        bucket: &'static str,
        key: String,
        last: String,
    },
}

impl StateError {
    /// Whether trying again may succeed: NATS away or busy, or writers in
    /// each other's way, may clear; an entry that does not decode will not.
    pub fn retryable(&self) -> bool {
        match self {
            StateError::Kv { .. } | StateError::Contended { .. } => true,
            StateError::Corrupt { .. } => false,
        }
    }
}

fn kv_error(bucket: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StateError {
    move |error| StateError::Kv {
        bucket,
        message: error.to_string(),
    }
}

/// The key of a pod in the quarantine bucket: `<namespace>.<pod>` when the
/// finding names the pod, else its UID or container id (a node agent
/// without pod metadata still remembers what it froze).
pub fn pod_key(namespace: &str, pod: &str, pod_uid: &str, container_id: &str) -> String {
    let name = if !pod.is_empty() {
        format!("{namespace}.{pod}")
    } else if !pod_uid.is_empty() {
        format!("uid.{pod_uid}")
    } else {
        format!("container.{container_id}")
    };
    topology::kv_key(&name)
}

pub fn finding_pod_key(finding: &Finding) -> String {
    pod_key(
        &finding.namespace,
        &finding.pod,
        &finding.pod_uid,
        &finding.container_id,
    )
}

#[derive(Clone)]
pub struct State {
    handled: Store,
    quarantine: Store,
    limits: Store,
    /// Prefix of this consumer's keys in the handled bucket.
    consumer: String,
}

impl State {
    pub async fn open(
        js: &jetstream::Context,
        consumer: &str,
        replicas: usize,
    ) -> Result<Self, topology::TopologyError> {
        Ok(Self {
            handled: topology::ensure_bucket(js, &topology::RESPONDER_FINDINGS_BUCKET, replicas)
                .await?,
            quarantine: topology::ensure_bucket(js, &topology::QUARANTINE_BUCKET, replicas).await?,
            limits: topology::ensure_bucket(js, &topology::RESPONDER_LIMITS_BUCKET, replicas)
                .await?,
            consumer: topology::kv_key(consumer),
        })
    }

    fn handled_key(&self, finding_id: &str) -> String {
        format!("{}.{}", self.consumer, topology::kv_key(finding_id))
    }

    /// Whether this consumer has already handled `finding_id`.
    pub async fn was_handled(&self, finding_id: &str) -> Result<bool, StateError> {
        let bucket = topology::RESPONDER_FINDINGS_BUCKET.name;
        let found = self
            .handled
            .get(self.handled_key(finding_id))
            .await
            .map_err(|e| kv_error(bucket)(&e))?;
        Ok(found.is_some())
    }

    /// Remembers that `finding_id` was handled, with the ids of its records.
    pub async fn mark_handled(
        &self,
        finding_id: &str,
        record_ids: &[String],
    ) -> Result<(), StateError> {
        let bucket = topology::RESPONDER_FINDINGS_BUCKET.name;
        self.handled
            .put(self.handled_key(finding_id), record_ids.join(",").into())
            .await
            .map(|_| ())
            .map_err(|e| kv_error(bucket)(&e))
    }

    pub async fn quarantined(&self, key: &str) -> Result<Option<QuarantineState>, StateError> {
        let bucket = topology::QUARANTINE_BUCKET.name;
        let Some(bytes) = self
            .quarantine
            .get(key)
            .await
            .map_err(|e| kv_error(bucket)(&e))?
        else {
            return Ok(None);
        };
        codec::decode::<QuarantineState>(&bytes, key, 0)
            .map(Some)
            .map_err(|error| StateError::Corrupt {
                bucket,
                key: key.to_owned(),
                message: error.to_string(),
            })
    }

    /// Adds `kinds` to the actions in force on the pod (creating its entry),
    /// safely against other writers (compare and set on the revision).
    pub async fn add_active(
        &self,
        key: &str,
        template: &QuarantineState,
        kinds: &[ActionKind],
    ) -> Result<(), StateError> {
        self.modify(key, |current| {
            let mut state = current.unwrap_or_else(|| template.clone());
            for kind in kinds {
                if !state.active.contains(&(*kind as i32)) {
                    state.active.push(*kind as i32);
                }
            }
            fill_missing(&mut state, template);
            Some(state)
        })
        .await
    }

    /// Removes `kinds` from the actions in force; the entry goes when none is left.
    pub async fn remove_active(&self, key: &str, kinds: &[ActionKind]) -> Result<(), StateError> {
        self.modify(key, |current| {
            let mut state = current?;
            state
                .active
                .retain(|active| !kinds.iter().any(|k| *k as i32 == *active));
            (!state.active.is_empty()).then_some(state)
        })
        .await
    }

    /// Every pod in quarantine.
    pub async fn list(&self) -> Result<Vec<QuarantineState>, StateError> {
        use futures::StreamExt;
        let bucket = topology::QUARANTINE_BUCKET.name;
        let mut keys = match self.quarantine.keys().await {
            Ok(keys) => keys,
            Err(error) => return Err(kv_error(bucket)(&error)),
        };
        let mut states = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| kv_error(bucket)(&e))?;
            if let Some(state) = self.quarantined(&key).await? {
                states.push(state);
            }
        }
        Ok(states)
    }

    /// Takes one of the `max` slots of the counter `key` (a scope and
    /// window); false when none is left. Compare-and-set, so two replicas
    /// cannot both take the last slot.
    pub async fn take_slot(&self, key: &str, max: u32) -> Result<bool, StateError> {
        let bucket = topology::RESPONDER_LIMITS_BUCKET.name;
        let mut last_error = String::new();
        for _ in 0..CAS_ATTEMPTS {
            let entry = self
                .limits
                .entry(key)
                .await
                .map_err(|e| kv_error(bucket)(&e))?
                .filter(|e| e.operation == jetstream::kv::Operation::Put);
            let taken = match &entry {
                Some(entry) => slot_count(&entry.value).ok_or_else(|| StateError::Corrupt {
                    bucket,
                    key: key.to_owned(),
                    message: "not a decimal count".to_owned(),
                })?,
                None => 0,
            };
            if taken >= max {
                return Ok(false);
            }
            let value = (taken + 1).to_string().into_bytes().into();
            let result = match &entry {
                Some(entry) => self
                    .limits
                    .update(key, value, entry.revision)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => match self.limits.create(key, value).await {
                    Ok(_) => Ok(()),
                    Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                        Err(error.to_string())
                    }
                    Err(error) => return Err(kv_error(bucket)(&error)),
                },
            };
            match result {
                Ok(()) => return Ok(true),
                // Another replica took a slot in between: count again.
                Err(error) => last_error = error,
            }
        }
        Err(StateError::Contended {
            bucket,
            key: key.to_owned(),
            last: last_error,
        })
    }

    async fn modify(
        &self,
        key: &str,
        change: impl Fn(Option<QuarantineState>) -> Option<QuarantineState>,
    ) -> Result<(), StateError> {
        let bucket = topology::QUARANTINE_BUCKET.name;
        let mut last_error = String::new();
        for _ in 0..CAS_ATTEMPTS {
            let entry = self
                .quarantine
                .entry(key)
                .await
                .map_err(|e| kv_error(bucket)(&e))?
                .filter(|e| e.operation == jetstream::kv::Operation::Put);
            let current = match &entry {
                Some(entry) => Some(
                    codec::decode::<QuarantineState>(&entry.value, key, entry.revision).map_err(
                        |error| StateError::Corrupt {
                            bucket,
                            key: key.to_owned(),
                            message: error.to_string(),
                        },
                    )?,
                ),
                None => None,
            };
            let result = match (change(current), &entry) {
                (None, None) => return Ok(()),
                (None, Some(_)) => {
                    return self
                        .quarantine
                        .delete(key)
                        .await
                        .map_err(|e| kv_error(bucket)(&e));
                }
                (Some(state), Some(entry)) => self
                    .quarantine
                    .update(key, codec::encode(&state), entry.revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                (Some(state), None) => {
                    match self.quarantine.create(key, codec::encode(&state)).await {
                        Ok(_) => Ok(()),
                        Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                            Err(error.to_string())
                        }
                        Err(error) => return Err(kv_error(bucket)(&error)),
                    }
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Someone else wrote in between: read again and redo.
                Err(error) => last_error = error,
            }
        }
        Err(StateError::Contended {
            bucket,
            key: key.to_owned(),
            last: last_error,
        })
    }
}

fn slot_count(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn fill_missing(state: &mut QuarantineState, template: &QuarantineState) {
    if state.target.is_none() {
        state.target = template.target.clone();
    }
    for (field, value) in [
        (&mut state.node, &template.node),
        (&mut state.container_id, &template.container_id),
        (&mut state.cgroup_path, &template.cgroup_path),
    ] {
        if field.is_empty() {
            field.clone_from(value);
        }
    }
}

/// The state entry a finding starts.
pub fn template(
    finding: &Finding,
    node: &str,
    cgroup: &str,
    requested_by: &str,
    now_ns: u64,
) -> QuarantineState {
    QuarantineState {
        target: Some(PodRef {
            namespace: finding.namespace.clone(),
            pod: finding.pod.clone(),
        }),
        node: if finding.node.is_empty() {
            node.to_owned()
        } else {
            finding.node.clone()
        },
        container_id: finding.container_id.clone(),
        cgroup_path: cgroup.to_owned(),
        active: Vec::new(),
        finding_id: finding.id.clone(),
        requested_by: requested_by.to_owned(),
        since_ns: now_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_keys_are_valid_kv_keys_and_tell_pods_apart() {
        let valid = |key: &str| {
            !key.starts_with('.')
                && !key.ends_with('.')
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
        };
        let keys = [
            pod_key("shop", "web-1", "", ""),
            pod_key("shop", "web-2", "", ""),
            pod_key("", "", "0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", ""),
            pod_key("", "", "", "abc"),
            pod_key("odd ns", "pod*>", "", ""),
        ];
        assert_eq!(keys[0], "shop.web-1");
        assert_eq!(keys[2], "uid.0f9c2b5e-1a2b-4c3d-8e9f-0a1b2c3d4e5f");
        for key in &keys {
            assert!(valid(key), "{key}");
        }
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert_eq!(topology::kv_key(".x."), "=2Ex=2E");
        assert_eq!(topology::kv_key(""), "=00");
    }
}
