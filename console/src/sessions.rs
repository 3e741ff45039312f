//! Login sessions in the key-value bucket `VIGIL_CONSOLE_SESSIONS`, so that
//! every console replica behind the Service knows every session: a login on
//! one is valid on all, a logout on one ends it on all.
//!
//! The key is the SHA-256 of the cookie's token, never the token: whoever
//! can read the bucket still cannot present a session. The value names the
//! user, not the role, which is looked up in the configuration on each
//! request. A session ends at its expiry time, checked on every read; the
//! bucket's `max_age` (the session lifetime) removes what nobody reads again.
//! The value is private to the console's replicas, so it is JSON here rather
//! than a message in proto/.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_bus::{
    async_nats::jetstream::{self, kv},
    topology::{self, BucketSpec},
};
use vigil_service::clock;

use crate::auth::{self, AuthError, Principal, Role, Verified};

/// The bucket; its `max_age` is replaced by the configured session lifetime.
pub const SESSIONS_BUCKET: BucketSpec = BucketSpec {
    name: "VIGIL_CONSOLE_SESSIONS",
    description: "Console login sessions, by SHA-256 of the session token, shared by every console.",
    max_age: Duration::from_secs(8 * 3600),
};

#[derive(Debug, thiserror::Error)]
#[error("cannot store the session in {bucket}: {reason}")]
pub struct StoreError {
    bucket: &'static str,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    user: String,
    csrf: String,
    expires_ns: u64,
}

/// A new session: the cookie value and its CSRF token.
pub struct NewSession {
    pub token: String,
    pub principal: Principal,
}

pub struct Sessions {
    kv: kv::Store,
    ttl: Duration,
}

impl Sessions {
    /// Opens (creating if missing) the bucket.
    pub async fn open(
        js: &jetstream::Context,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Self, topology::TopologyError> {
        let spec = BucketSpec {
            max_age: ttl,
            ..SESSIONS_BUCKET
        };
        let kv = topology::ensure_bucket(js, &spec, replicas).await?;
        Ok(Self { kv, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for a user whose password was checked.
    pub async fn create(&self, verified: Verified) -> Result<NewSession, StoreError> {
        let token = auth::random_token();
        let stored = Stored {
            user: verified.user,
            csrf: auth::random_token(),
            expires_ns: clock::wall_ns().saturating_add(self.ttl.as_nanos() as u64),
        };
        let value = serde_json::to_vec(&stored).map_err(store_error)?;
        self.kv
            .put(auth::sha256_hex(&token), value.into())
            .await
            .map_err(store_error)?;
        Ok(NewSession {
            token,
            principal: Principal {
                user: stored.user,
                role: verified.role,
                csrf: Some(stored.csrf),
            },
        })
    }

    /// The session's user, with their current role; `role_of` says who
    /// still exists and as what.
    pub async fn principal(
        &self,
        token: &str,
        role_of: impl Fn(&str) -> Option<Role>,
    ) -> Result<Principal, AuthError> {
        let key = auth::sha256_hex(token);
        let value = match self.kv.get(&key).await {
            Ok(Some(value)) => value,
            Ok(None) => return Err(AuthError::UnknownSession),
            Err(error) => {
                tracing::error!(message = "Cannot read sessions.", error = %store_error(error));
                return Err(AuthError::SessionStore);
            }
        };
        let stored: Stored = serde_json::from_slice(&value).map_err(|error| {
            crate::metrics::error("malformed_payload", "session");
            tracing::warn!(message = "Unparseable session refused.", %error);
            AuthError::UnknownSession
        })?;
        if stored.expires_ns <= clock::wall_ns() {
            // Refused either way; removing it only saves the bucket's expiry the work.
            if let Err(error) = self.end(token).await {
                tracing::warn!(message = "Expired session not removed.", %error);
            }
            return Err(AuthError::UnknownSession);
        }
        let role = role_of(&stored.user).ok_or(AuthError::UnknownSession)?;
        Ok(Principal {
            user: stored.user,
            role,
            csrf: Some(stored.csrf),
        })
    }

    /// Ends the session on every replica.
    pub async fn end(&self, token: &str) -> Result<(), StoreError> {
        self.kv
            .purge(auth::sha256_hex(token))
            .await
            .map_err(store_error)
    }
}

fn store_error(reason: impl ToString) -> StoreError {
    crate::metrics::error("session_store", "sessions");
    StoreError {
        bucket: SESSIONS_BUCKET.name,
        reason: reason.to_string(),
    }
}
