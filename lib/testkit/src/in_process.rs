//! A service's `run(config, health, shutdown)` in a task of the test's own
//! runtime, as every service's component tests use it, and the waiting and
//! connecting those tests share.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_bus::{BusConnection, ConnectOptions, connect::connect};
use vigil_service::Health;

use crate::NatsServer;

/// A service running as a task; [`InProcess::stop`] shuts it down as on
/// SIGTERM and checks that it ended well.
pub struct InProcess<E> {
    pub health: Health,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

impl<E: std::fmt::Debug + Send + 'static> InProcess<E> {
    /// Spawns `run(health, shutdown)` and waits until `health` reports
    /// ready; panics when `run` ends first or after `patience`.
    pub async fn start<Fut>(
        what: &str,
        health: Health,
        patience: Duration,
        run: impl FnOnce(Health, CancellationToken) -> Fut,
    ) -> Self
    where
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(health.clone(), shutdown.clone()));
        let deadline = tokio::time::Instant::now() + patience;
        while !health.is_ready() {
            assert!(!task.is_finished(), "{what} stopped before it was ready");
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} to become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        InProcess {
            health,
            shutdown,
            task,
        }
    }

    /// Whether `run` has returned (a service must keep running).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels as on SIGTERM and checks that `run` returned Ok in time.
    pub async fn stop(self, patience: Duration) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(patience, self.task)
            .await
            .expect("run returns promptly on shutdown")
            .expect("run does not panic");
        result.expect("run returns Ok on shutdown");
    }
}

/// Polls `check` every 20 ms until it yields a value; panics after `patience`.
pub async fn poll<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bus connection to the test's server, as a test client named `client`.
pub async fn bus(server: &NatsServer, client: &str) -> BusConnection {
    let options = ConnectOptions {
        url: server.url(),
        client_name: client.to_owned(),
    };
    connect(&options, &CancellationToken::new())
        .await
        .expect("connect to the test's nats-server")
}
