//! The control API over mutual TLS (issue 16): a real responder (cluster
//! mode, fake Kubernetes API, real nats-server) serving gRPC with
//! certificates from a CA made for the test, called by real TLS clients.
//!
//! - no client certificate, or one from another CA: refused at the
//!   handshake, no handler runs, nothing is recorded;
//! - a certificate whose identity has no role (a collector's): PERMISSION_DENIED;
//! - a read-only identity (the CLI's): lists, may not quarantine;
//! - the console's identity quarantines, and the record says who asked from
//!   the certificate and the user it vouches for; the body's `requested_by`
//!   is only a claim.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

mod common;

use std::{net::SocketAddr, path::Path};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use tonic::{
    Code, Request,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};
use vigil_fake_kube::{FakeKube, Rbac};
use vigil_grpc_auth::{TlsConfig, certs::Authority, vouch};
use vigil_proto::v1::{
    ActionKind, ListQuarantinedRequest, PodRef, QuarantineRequest,
    responder_client::ResponderClient,
};
use vigil_responder::{Config, KubeConfig, Mode, kube_actions};
use vigil_service::Health;
use vigil_testkit::NatsServer;

fn rbac() -> Rbac {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../k8s/base/rbac/responder.yaml"
    );
    Rbac::from_manifest(manifest, "vigil-responder").unwrap()
}

fn web_pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-7", "containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap()
}

fn tls(dir: &Path, name: &str) -> TlsConfig {
    TlsConfig {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
        ca: dir.join("ca.pem"),
    }
}

fn free_loopback() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn client(tls: &TlsConfig, address: SocketAddr) -> ResponderClient<Channel> {
    ResponderClient::new(tls.channel(&format!("https://{address}"), None).unwrap())
}

fn quarantine_web(requested_by: &str) -> QuarantineRequest {
    QuarantineRequest {
        target: Some(PodRef {
            namespace: "shop".into(),
            pod: "web-1".into(),
        }),
        requested_by: requested_by.into(),
        reason: "reverse shell".into(),
        finding_id: String::new(),
        dry_run: false,
    }
}

/// The CLI binary with `name`'s certificate; returns (success, stdout, stderr).
async fn cli(dir: &Path, name: &str, address: SocketAddr, args: &[&str]) -> (bool, String, String) {
    let tls = tls(dir, name);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-responder-cli"));
    command
        .arg("--server")
        .arg(format!("https://{address}"))
        .arg("--tls-cert")
        .arg(&tls.cert)
        .arg("--tls-key")
        .arg(&tls.key)
        .arg("--tls-ca")
        .arg(&tls.ca)
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_console_identity_acts_and_it_cannot_be_spoofed() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    Authority::new("test CA")
        .unwrap()
        .write_all(dir, &["responder", "console", "responder-cli", "collector"])
        .unwrap();
    // The same identity as the console, from a CA the responder does not trust.
    let rogue = dir.join("rogue");
    Authority::new("rogue CA")
        .unwrap()
        .write_all(&rogue, &["console"])
        .unwrap();

    let server = NatsServer::start();
    let fake = FakeKube::start(rbac()).await.unwrap();
    fake.put_pod(&web_pod()).unwrap();
    let address = free_loopback();
    let mut config = Config {
        node_name: "cluster-actor-0".into(),
        mode: Mode::Cluster,
        kube: KubeConfig {
            enabled: true,
            api_url: Some(fake.url()),
            timeout_ms: 2_000,
        },
        grpc_tls: Some(tls(dir, "responder")),
        ..config(&server)
    };
    config.grpc.listen = Some(address);
    let bus = bus(&server).await;
    let service = Running::start(config, Health::default()).await;

    // No client certificate: the server's CA is trusted, but the handshake
    // needs the client's too.
    let anonymous = Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            std::fs::read(dir.join("ca.pem")).unwrap(),
        )))
        .unwrap()
        .connect_lazy();
    let refused = ResponderClient::new(anonymous)
        .list_quarantined(ListQuarantinedRequest {})
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::Ok);
    assert_ne!(
        refused.code(),
        Code::PermissionDenied,
        "refused by a handler, not at the handshake: {refused:?}"
    );

    // A console certificate from another CA (trusting our server's CA).
    let mut forged = tls(&rogue, "console");
    forged.ca = dir.join("ca.pem");
    let refused = client(&forged, address)
        .quarantine(quarantine_web("alice"))
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Plaintext to a TLS port.
    let plaintext = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy();
    assert!(
        ResponderClient::new(plaintext)
            .list_quarantined(ListQuarantinedRequest {})
            .await
            .is_err()
    );

    // A collector's certificate is genuine but has no role here.
    let mut collector = client(&tls(dir, "collector"), address);
    let denied = collector
        .quarantine(quarantine_web("collector"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("spiffe://vigil/collector"),
        "{denied:?}"
    );
    let denied = collector
        .list_quarantined(ListQuarantinedRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // The CLI's identity reads but does not act (gRPC and the binary).
    let mut reader = client(&tls(dir, "responder-cli"), address);
    let listed = reader
        .list_quarantined(ListQuarantinedRequest {})
        .await
        .unwrap();
    assert!(listed.into_inner().pods.is_empty());
    let denied = reader.quarantine(quarantine_web("bob")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("may only read"), "{denied:?}");
    let (ok, _, err) = cli(
        dir,
        "responder-cli",
        address,
        &["quarantine", "shop/web-1", "--by", "bob"],
    )
    .await;
    assert!(!ok, "the read-only CLI quarantined");
    assert!(err.contains("may only read"), "{err}");
    assert!(
        records(&bus).await.is_empty(),
        "a refused call left records"
    );
    assert!(
        fake.requests().iter().all(|r| r.verb == "get"),
        "a refused call wrote to the API: {:?}",
        fake.requests()
    );

    // The console acts for its signed-in user; the body claims someone else.
    let mut request = Request::new(quarantine_web("root (spoofed)"));
    vouch(&mut request, "alice").unwrap();
    let reply = client(&tls(dir, "console"), address)
        .quarantine(request)
        .await
        .unwrap()
        .into_inner();
    let quarantine = reply
        .actions
        .iter()
        .find(|r| r.kind() == ActionKind::Quarantine)
        .unwrap();
    let expected = "alice via spiffe://vigil/console (claimed \"root (spoofed)\")";
    assert_eq!(quarantine.requested_by, expected);
    let recorded = records(&bus).await;
    assert!(!recorded.is_empty());
    assert!(
        recorded.iter().all(|(_, r)| r.requested_by == expected),
        "{recorded:?}"
    );
    let labels = fake
        .pod("shop", "web-1")
        .and_then(|p| p.metadata.labels)
        .unwrap_or_default();
    assert!(
        labels.contains_key(kube_actions::QUARANTINE_LABEL),
        "{labels:?}"
    );

    // Now the reader sees it, through the CLI binary too.
    let (ok, out, err) = cli(dir, "responder-cli", address, &["list"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("shop/web-1") && out.contains(expected),
        "{out}"
    );
    service.stop().await;
}

#[test]
fn plaintext_off_loopback_must_be_chosen() {
    let load = |env: &[(&str, &str)]| {
        vigil_service::config::load::<Config>(
            "responder",
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let error = load(&[("VIGIL_RESPONDER__GRPC__LISTEN", "0.0.0.0:50061")]).unwrap_err();
    assert!(error.to_string().contains("grpc_tls"), "{error}");
    let dev = load(&[
        ("VIGIL_RESPONDER__GRPC__LISTEN", "0.0.0.0:50061"),
        ("VIGIL_RESPONDER__GRPC_PLAINTEXT", "true"),
    ])
    .unwrap();
    assert!(dev.grpc_plaintext);
    let missing = load(&[
        ("VIGIL_RESPONDER__GRPC__LISTEN", "0.0.0.0:50061"),
        ("VIGIL_RESPONDER__GRPC_TLS__CERT", "/nonexistent/cert.pem"),
        ("VIGIL_RESPONDER__GRPC_TLS__KEY", "/nonexistent/key.pem"),
        ("VIGIL_RESPONDER__GRPC_TLS__CA", "/nonexistent/ca.pem"),
    ])
    .unwrap_err();
    for key in ["grpc_tls.cert", "grpc_tls.key", "grpc_tls.ca"] {
        assert!(missing.to_string().contains(key), "{key}: {missing}");
    }
}
