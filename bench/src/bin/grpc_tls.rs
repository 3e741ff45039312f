//! What mutual TLS costs the responder's control API (issue 16). The
//! syscall-to-freeze path (`responder_latency`) does not use gRPC, so this
//! measures the gRPC calls themselves: two responders in this process on the
//! same nats-server and fake Kubernetes API, one serving plaintext (the
//! baseline) and one mutual TLS with authorisation by identity.
//!
//! - `call`: a `ListQuarantined` round trip on an open connection (the
//!   console keeps one), p50 and p99;
//! - `connect_and_call`: a new connection (TCP, and the TLS handshake with
//!   client certificate) plus one call, p50.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use vigil_bench::{Report, quantile, results_path};
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_grpc_auth::{TlsConfig, certs::Authority};
use vigil_proto::v1::{ListQuarantinedRequest, responder_client::ResponderClient};
use vigil_responder::{Config, KubeConfig, Mode};
use vigil_service::{Health, NatsConfig};
use vigil_testkit::NatsServer;

// Each ListQuarantined watches the VIGIL_QUARANTINE bucket (an ephemeral
// consumer); 2,000 calls in a row hit the server's consumer limit, so the
// samples stay in the hundreds.
const CALLS: usize = 300;
const CONNECTIONS: usize = 60;

#[tokio::main]
async fn main() -> Result<()> {
    let server = NatsServer::start();
    let fake = FakeKube::start(Rbac::allow_all()).await?;
    let certs = tempfile::tempdir()?;
    Authority::new("bench CA")?.write_all(certs.path(), &["responder", "console"])?;
    let tls = |name: &str| TlsConfig {
        cert: certs.path().join(format!("{name}.pem")),
        key: certs.path().join(format!("{name}-key.pem")),
        ca: certs.path().join("ca.pem"),
    };
    let shutdown = CancellationToken::new();
    let plain_address = start(&server, &fake, None, &shutdown)?;
    let tls_address = start(&server, &fake, Some(tls("responder")), &shutdown)?;
    let console = tls("console");

    let plain_connect = || async move {
        Channel::from_shared(format!("http://{plain_address}"))?
            .connect()
            .await
            .context("plaintext connect")
    };
    let tls_connect = || {
        let console = console.clone();
        async move {
            let channel = console.channel(&format!("https://{tls_address}"), None)?;
            Ok::<_, anyhow::Error>(channel)
        }
    };
    wait_ready(plain_connect).await?;
    wait_ready(tls_connect).await?;

    let mut plain_calls = calls(plain_connect().await?).await?;
    let mut tls_calls = calls(tls_connect().await?).await?;
    let mut plain_connects = connects(plain_connect).await?;
    let mut tls_connects = connects(tls_connect).await?;
    shutdown.cancel();

    let mut report = Report::default();
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        report.add_with_baseline(
            &format!("grpc_tls.call_{label}"),
            quantile(&mut tls_calls, q),
            "ms",
            quantile(&mut plain_calls, q),
        );
    }
    report.add_with_baseline(
        "grpc_tls.connect_and_call_p50",
        quantile(&mut tls_connects, 0.5),
        "ms",
        quantile(&mut plain_connects, 0.5),
    );
    report.write(&results_path())?;
    Ok(())
}

/// A cluster-mode responder serving gRPC on a free loopback port.
fn start(
    server: &NatsServer,
    fake: &FakeKube,
    tls: Option<TlsConfig>,
    shutdown: &CancellationToken,
) -> Result<SocketAddr> {
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = Config {
        node_name: "bench-cluster".into(),
        mode: Mode::Cluster,
        kube: KubeConfig {
            enabled: true,
            api_url: Some(fake.url()),
            timeout_ms: 5_000,
        },
        grpc_tls: tls,
        nats: NatsConfig {
            url: server.url(),
            ..Default::default()
        },
        ..Default::default()
    };
    config.grpc.listen = Some(address);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(error) = vigil_responder::run(config, Health::default(), shutdown).await {
            eprintln!("grpc_tls: responder stopped: {error}");
        }
    });
    Ok(address)
}

async fn list(channel: Channel) -> Result<()> {
    ResponderClient::new(channel)
        .list_quarantined(ListQuarantinedRequest {})
        .await?;
    Ok(())
}

/// Until the server answers (it starts after its NATS set-up).
async fn wait_ready<F, Fut>(connect: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Channel>>,
{
    let mut last = None;
    for _ in 0..200 {
        match async { list(connect().await?).await }.await {
            Ok(()) => return Ok(()),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("never answered")))
}

fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

async fn calls(channel: Channel) -> Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let start = Instant::now();
        list(channel.clone()).await?;
        samples.push(millis(start));
    }
    Ok(samples)
}

async fn connects<F, Fut>(connect: F) -> Result<Vec<f64>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Channel>>,
{
    let mut samples = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let start = Instant::now();
        list(connect().await?).await?;
        samples.push(millis(start));
    }
    Ok(samples)
}
