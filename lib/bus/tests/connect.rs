//! Connecting to a real nats-server through `vigil_bus::connect`.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_bus::{ConnectOptions, connect::connect};
use vigil_testkit::NatsServer;

/// A cluster's `nats.url` lists several servers: each is an address of its
/// own, so one that is down (port 1: nothing listens) does not keep the
/// client from the one that is up.
#[tokio::test]
async fn a_url_with_several_servers_connects_to_one_that_is_up() {
    let server = NatsServer::start();
    let options = ConnectOptions {
        url: format!("nats://127.0.0.1:1, {}", server.url()),
        client_name: "vigil-bus-test".to_owned(),
    };
    let shutdown = CancellationToken::new();
    let bus = tokio::time::timeout(Duration::from_secs(30), connect(&options, &shutdown))
        .await
        .expect("never connected to the server that is up")
        .unwrap();
    bus.client.flush().await.unwrap();
}
