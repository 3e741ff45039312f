//! The `vigil-collector` process: exits 0 on SIGTERM, promptly, even while
//! NATS is away and events keep coming (the synthetic source, so no BPF).

use std::path::Path;

use vigil_testkit::{Pipeline, ServiceSpec};

#[test]
fn sigterm_while_nats_is_away_exits_cleanly() {
    let spec = ServiceSpec::new("vigil-collector").with("SOURCE", "synthetic");
    let built = Path::new(env!("CARGO_BIN_EXE_vigil-collector"));
    if let Err(error) = Pipeline::sigterm_while_nats_is_away(built, &spec) {
        panic!("{error}");
    }
}
