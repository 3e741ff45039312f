//! `vigil-collector --config <file>`: see the library for what it does.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use vigil_collector::{SERVICE, run};

/// Every event is allocated on the ring-buffer (or source) thread and freed
/// on the publisher's; glibc's allocator serialised the two on its arena
/// lock and spent a third of the collector's CPU in malloc and free
/// (perf, 60k events/s). mimalloc frees across threads without that lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads process, file, network and other syscall events from the kernel
/// (eBPF; the syscalls are configured by `kernel.syscalls`) or a
/// recording, and publishes them as event batches on NATS JetStream.
#[derive(Parser)]
#[command(name = "vigil-collector", version)]
struct Args {
    /// TOML configuration file; `VIGIL_COLLECTOR__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    vigil_service::process::main(SERVICE, args.config.as_deref(), run)
}
