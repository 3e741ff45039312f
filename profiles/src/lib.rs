//! Learns Localhost seccomp and AppArmor profiles from what the collector saw
//! of a workload (issue 8; being built).
