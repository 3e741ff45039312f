//! Learns Localhost seccomp and AppArmor profiles, and the manifest patch
//! that applies them, from what the collector saw of a workload; confines a
//! process with such a profile; runs the breakout catalog against it.
//!
//! A learned profile goes through a log-only phase first (seccomp
//! `SCMP_ACT_LOG`, AppArmor complain mode): profiles learned from too short
//! an observation break workloads. `vigil-profile check` reports what the
//! profile would have blocked during that phase; `--enforce` writes the
//! enforcing version.

pub mod apparmor;
pub mod catalog;
pub mod confine;
pub mod learn;
pub mod patch;
pub mod seccomp;
pub mod source;
pub mod syscalls;
