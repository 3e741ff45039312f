//! The scorer's gRPC over mutual TLS (issue 16): the real server
//! (`grpc::serve`) with certificates from a CA made for the test, called by
//! real TLS clients. No client certificate, or one from another CA: refused
//! at the handshake; an identity without a role (a collector's):
//! PERMISSION_DENIED; the read-only CLI and the console: they read.

#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::{net::SocketAddr, path::Path, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};
use vigil_anomaly_scorer::{
    Config,
    grpc::{self, Shared},
};
use vigil_grpc_auth::{TlsConfig, certs::Authority};
use vigil_proto::v1::{AnomalyScore, GetScoreRequest, anomaly_scorer_client::AnomalyScorerClient};

fn tls(dir: &Path, name: &str) -> TlsConfig {
    TlsConfig {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
        ca: dir.join("ca.pem"),
    }
}

fn client(tls: &TlsConfig, address: SocketAddr) -> AnomalyScorerClient<Channel> {
    AnomalyScorerClient::new(tls.channel(&format!("https://{address}"), None).unwrap())
}

fn query() -> GetScoreRequest {
    GetScoreRequest {
        container_id: "c-1".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn only_known_identities_read_scores() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    Authority::new("test CA")
        .unwrap()
        .write_all(
            dir,
            &["anomaly-scorer", "scorer-cli", "console", "collector"],
        )
        .unwrap();
    let rogue = dir.join("rogue");
    Authority::new("rogue CA")
        .unwrap()
        .write_all(&rogue, &["scorer-cli"])
        .unwrap();

    // Off loopback, as in a cluster: TLS is what makes it valid.
    let config = Config {
        grpc_listen: "0.0.0.0:9464".parse().unwrap(),
        grpc_tls: Some(tls(dir, "anomaly-scorer")),
        ..Default::default()
    };
    let transport = grpc::transport(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shared = Arc::new(Shared::default());
    shared.record(&AnomalyScore {
        container_id: "c-1".into(),
        score: 0.9,
        ..Default::default()
    });
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(grpc::serve(
        listener,
        transport,
        shared.clone(),
        shutdown.clone(),
    ));

    // No client certificate.
    let anonymous = Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            std::fs::read(dir.join("ca.pem")).unwrap(),
        )))
        .unwrap()
        .connect_lazy();
    let refused = AnomalyScorerClient::new(anonymous)
        .get_score(query())
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::Ok);
    assert_ne!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // The CLI's identity from another CA.
    let mut forged = tls(&rogue, "scorer-cli");
    forged.ca = dir.join("ca.pem");
    let refused = client(&forged, address)
        .get_score(query())
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Genuine, but no role.
    let denied = client(&tls(dir, "collector"), address)
        .get_score(query())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    for reader in ["scorer-cli", "console"] {
        let score = client(&tls(dir, reader), address)
            .get_score(query())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(score.score, 0.9, "{reader}");
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[test]
fn plaintext_off_loopback_must_be_chosen() {
    let load = |env: &[(&str, &str)]| {
        vigil_service::config::load::<Config>(
            "anomaly-scorer",
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    assert!(load(&[]).is_ok(), "the default listens on loopback");
    let error = load(&[("VIGIL_ANOMALY_SCORER__GRPC_LISTEN", "0.0.0.0:9464")]).unwrap_err();
    assert!(error.to_string().contains("grpc_tls"), "{error}");
    let dev = load(&[
        ("VIGIL_ANOMALY_SCORER__GRPC_LISTEN", "0.0.0.0:9464"),
        ("VIGIL_ANOMALY_SCORER__GRPC_PLAINTEXT", "true"),
    ]);
    assert!(dev.is_ok(), "{dev:?}");
}
