//! Clocks. Kernel event timestamps are CLOCK_MONOTONIC (`bpf_ktime_get_ns`);
//! latency from a syscall to a finding or an action is measured on the same
//! clock, on the same node.

use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC now, in nanoseconds: comparable with `Event.kernel_time_ns`.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Wall-clock now, in nanoseconds since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Converts a CLOCK_MONOTONIC timestamp to wall-clock ns, using the current
/// offset between the two clocks.
pub fn monotonic_to_wall_ns(monotonic: u64) -> u64 {
    let offset = wall_ns().saturating_sub(monotonic_ns());
    monotonic.saturating_add(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_advances_and_converts_near_now() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
        let wall = monotonic_to_wall_ns(b);
        assert!(wall.abs_diff(wall_ns()) < 1_000_000_000);
    }
}
