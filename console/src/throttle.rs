//! What a login may cost: a per-address token bucket (a few attempts, then
//! a steady rate) checked before anything else, and a bound on password
//! checks running at once. An argon2 check holds its memory cost for as
//! long as it runs, so without the bound a burst of logins is a burst of
//! memory; with it, the rest wait briefly and are then told to retry.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{auth::CheckMemory, config::LoginConfig};

/// Why a login was not attempted; both are answered 429 with Retry-After.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("too many login attempts from {address}; retry in {} s", retry_after.as_secs())]
    RateLimited {
        address: IpAddr,
        retry_after: Duration,
    },
    #[error("too many logins in progress; retry in {} s", retry_after.as_secs())]
    Busy { retry_after: Duration },
}

impl Refused {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refused::RateLimited { retry_after, .. } | Refused::Busy { retry_after } => {
                *retry_after
            }
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Refused::RateLimited { .. } => "rate_limited",
            Refused::Busy { .. } => "busy",
        }
    }
}

struct Bucket {
    tokens: f64,
    seen: Instant,
}

/// The right to run one password check, with the memory to run it in;
/// the memory goes back to the pool when the check is done.
pub struct CheckSlot {
    _permit: OwnedSemaphorePermit,
    memory: CheckMemory,
    pool: Arc<Mutex<Vec<CheckMemory>>>,
}

impl CheckSlot {
    pub fn memory(&mut self) -> &mut CheckMemory {
        &mut self.memory
    }
}

impl Drop for CheckSlot {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(memory);
    }
}

pub struct LoginThrottle {
    checks: Arc<Semaphore>,
    /// At most one buffer per permit: taken with it, returned after.
    memory: Arc<Mutex<Vec<CheckMemory>>>,
    queue_wait: Duration,
    burst: f64,
    per_second: f64,
    max_addresses: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl LoginThrottle {
    pub fn new(config: &LoginConfig) -> Self {
        Self {
            checks: Arc::new(Semaphore::new(config.max_concurrent_checks)),
            memory: Arc::default(),
            queue_wait: config.queue_wait(),
            burst: f64::from(config.burst),
            per_second: f64::from(config.attempts_per_minute) / 60.0,
            max_addresses: config.max_addresses,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt from `address`'s allowance.
    pub fn admit(&self, address: IpAddr) -> Result<(), Refused> {
        self.admit_at(address, Instant::now())
    }

    fn admit_at(&self, address: IpAddr, now: Instant) -> Result<(), Refused> {
        let key = client_key(address);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_addresses {
            forget_least_recent(&mut buckets);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            seen: now,
        });
        let elapsed = now.saturating_duration_since(bucket.seen).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.seen = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Err(Refused::RateLimited {
            address: key,
            retry_after: whole_seconds(wait),
        })
    }

    /// Waits for a free password check, at most the configured time.
    pub async fn check_slot(&self) -> Result<CheckSlot, Refused> {
        let busy = Refused::Busy {
            retry_after: whole_seconds(self.queue_wait.as_secs_f64()),
        };
        let permit = match tokio::time::timeout(
            self.queue_wait,
            self.checks.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            // Timed out, or the semaphore closed (never: it is not closed).
            _ => return Err(busy),
        };
        let memory = self
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        Ok(CheckSlot {
            _permit: permit,
            memory,
            pool: self.memory.clone(),
        })
    }
}

/// The unit an attacker pays for: an IPv4 address, or an IPv6 /64 (one
/// host is usually given a whole /64, and could rotate through it).
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

fn forget_least_recent(buckets: &mut HashMap<IpAddr, Bucket>) {
    if let Some(oldest) = buckets
        .iter()
        .min_by_key(|(_, bucket)| bucket.seen)
        .map(|(address, _)| *address)
    {
        buckets.remove(&oldest);
    }
}

/// At least one second: `Retry-After` counts whole seconds.
fn whole_seconds(seconds: f64) -> Duration {
    Duration::from_secs(seconds.ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(burst: u32, per_minute: u32, max_addresses: usize) -> LoginThrottle {
        LoginThrottle::new(&LoginConfig {
            max_concurrent_checks: 1,
            queue_wait_ms: 50,
            burst,
            attempts_per_minute: per_minute,
            max_addresses,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_address_gets_its_burst_then_waits_for_the_rate() {
        let throttle = throttle(3, 6, 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.admit_at(ip("10.0.0.1"), start), Ok(()));
        }
        let refused = throttle.admit_at(ip("10.0.0.1"), start).expect_err("over");
        assert_eq!(refused.retry_after(), Duration::from_secs(10));
        assert_eq!(refused.label(), "rate_limited");
        // Another address is not affected.
        assert_eq!(throttle.admit_at(ip("10.0.0.2"), start), Ok(()));
        // Six a minute: one attempt back after ten seconds, not before.
        let later = start + Duration::from_secs(9);
        assert!(throttle.admit_at(ip("10.0.0.1"), later).is_err());
        let later = start + Duration::from_secs(20);
        assert_eq!(throttle.admit_at(ip("10.0.0.1"), later), Ok(()));
    }

    #[test]
    fn rotating_through_an_ipv6_prefix_or_a_mapped_address_does_not_help() {
        let throttle = throttle(1, 1, 10);
        let now = Instant::now();
        assert_eq!(throttle.admit_at(ip("2001:db8::1"), now), Ok(()));
        assert!(throttle.admit_at(ip("2001:db8::ffff:2"), now).is_err());
        assert_eq!(throttle.admit_at(ip("2001:db8:0:1::1"), now), Ok(()));
        assert_eq!(throttle.admit_at(ip("192.0.2.7"), now), Ok(()));
        assert!(throttle.admit_at(ip("::ffff:192.0.2.7"), now).is_err());
    }

    #[test]
    fn remembered_addresses_are_bounded() {
        let throttle = throttle(1, 1, 2);
        let now = Instant::now();
        assert_eq!(throttle.admit_at(ip("10.0.0.1"), now), Ok(()));
        let next = now + Duration::from_millis(1);
        assert_eq!(throttle.admit_at(ip("10.0.0.2"), next), Ok(()));
        assert_eq!(throttle.admit_at(ip("10.0.0.3"), next), Ok(()));
        let buckets = throttle.buckets.lock().expect("lock");
        assert_eq!(buckets.len(), 2);
        assert!(!buckets.contains_key(&ip("10.0.0.1")), "the oldest goes");
    }

    #[tokio::test]
    async fn checks_beyond_the_bound_wait_then_are_refused() {
        let throttle = throttle(1, 1, 1);
        let mut held = throttle.check_slot().await.expect("the only permit");
        held.memory().resize(8, argon2::Block::new());
        let Err(refused) = throttle.check_slot().await else {
            panic!("a second check while the only one is held");
        };
        assert_eq!(refused.label(), "busy");
        assert_eq!(refused.retry_after(), Duration::from_secs(1));
        drop(held);
        let mut again = throttle.check_slot().await.expect("free again");
        assert_eq!(again.memory().len(), 8, "the same memory, reused");
    }
}
