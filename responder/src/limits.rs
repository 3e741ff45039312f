//! The in-process sliding-window limiter of manual quarantines and
//! releases. The limits on findings are counted in NATS instead, shared by
//! all replicas (`State::take_slot`).

use std::collections::{BTreeMap, VecDeque};

use crate::policy::Limit;

/// The verdict for one containment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over a limit: the pod's own (`per_pod`) or the global one.
    Limited {
        per_pod: bool,
    },
}

#[derive(Debug)]
pub struct RateLimiter {
    per_pod: Limit,
    global: Limit,
    /// Times (ns) of containments in the window, per pod and overall.
    pods: BTreeMap<String, VecDeque<u64>>,
    all: VecDeque<u64>,
}

impl RateLimiter {
    pub fn new(per_pod: Limit, global: Limit) -> Self {
        Self {
            per_pod,
            global,
            pods: BTreeMap::new(),
            all: VecDeque::new(),
        }
    }

    /// Admits (and counts) a containment of `pod` at monotonic time `now_ns`.
    pub fn admit(&mut self, pod: &str, now_ns: u64) -> Admission {
        let pod_window = seconds_ns(self.per_pod.per_seconds);
        let global_window = seconds_ns(self.global.per_seconds);
        expire(&mut self.all, now_ns, global_window);
        self.pods.retain(|_, admitted| {
            expire(admitted, now_ns, pod_window);
            !admitted.is_empty()
        });
        let admitted = self.pods.entry(pod.to_owned()).or_default();
        let per_pod = admitted.len() >= usize_of(self.per_pod.max);
        if per_pod || self.all.len() >= usize_of(self.global.max) {
            if admitted.is_empty() {
                self.pods.remove(pod);
            }
            return Admission::Limited { per_pod };
        }
        admitted.push_back(now_ns);
        self.all.push_back(now_ns);
        Admission::Allowed
    }
}

fn expire(times: &mut VecDeque<u64>, now_ns: u64, window_ns: u64) {
    while times
        .front()
        .is_some_and(|t| now_ns.saturating_sub(*t) >= window_ns)
    {
        times.pop_front();
    }
}

fn seconds_ns(seconds: u64) -> u64 {
    seconds.saturating_mul(1_000_000_000)
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn limiter() -> RateLimiter {
        RateLimiter::new(
            Limit {
                max: 1,
                per_seconds: 60,
            },
            Limit {
                max: 3,
                per_seconds: 10,
            },
        )
    }

    #[test]
    fn one_containment_per_pod_per_window() {
        let mut limits = limiter();
        assert_eq!(limits.admit("a", 0), Admission::Allowed);
        assert_eq!(limits.admit("a", S), Admission::Limited { per_pod: true });
        assert_eq!(
            limits.admit("a", 2 * S),
            Admission::Limited { per_pod: true }
        );
        assert_eq!(limits.admit("a", 60 * S), Admission::Allowed);
    }

    #[test]
    fn the_global_limit_spans_pods() {
        let mut limits = limiter();
        for pod in ["a", "b", "c"] {
            assert_eq!(limits.admit(pod, 0), Admission::Allowed);
        }
        assert_eq!(limits.admit("d", S), Admission::Limited { per_pod: false });
        assert_eq!(limits.admit("e", 10 * S), Admission::Allowed);
    }
}
