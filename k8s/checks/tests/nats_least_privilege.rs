//! Least privilege on a real nats-server started with what
//! `vigil-nats-creds` generates (one nkey per service and per node,
//! `vigil_bus::access`): every abuse of issue 16 is refused by the server,
//! and every service's own work still goes through. TLS: with the server
//! requiring it, a plaintext client is refused and a service connects with
//! the CA, its certificate and its nkey through `vigil_bus::connect`.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use tokio::sync::mpsc;
use vigil_bus::topology::{self, ConsumerSpec};
use vigil_bus::{ConnectOptions, Security, TlsFiles, subject};
use vigil_k8s_checks::nats_creds;
use vigil_testkit::NatsServer;

const WAIT: Duration = Duration::from_secs(5);
const NODES: [&str; 2] = ["node-1", "node-2"];

struct Deployment {
    server: NatsServer,
    seeds: BTreeMap<String, PathBuf>,
    _dir: tempfile::TempDir,
}

/// Credentials for two nodes and a server using them, with `server_extra`
/// (a `tls {}` block) in its config.
fn deploy(server_extra: &str) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<String> = NODES.iter().map(|n| (*n).to_owned()).collect();
    let credentials =
        nats_creds::generate(dir.path(), &nodes, &["falcosidekick".to_owned()]).unwrap();
    let seeds = credentials
        .into_iter()
        .map(|c| (c.user, c.seed_file))
        .collect();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!("{server_extra}\nmax_payload: 1MB\ninclude ./auth.conf\n"),
    )
    .unwrap();
    let server = NatsServer::start_with_config(&conf, &[]);
    Deployment {
        server,
        seeds,
        _dir: dir,
    }
}

/// One credential's connection, with the server's error reports.
struct User {
    name: String,
    client: async_nats::Client,
    js: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

impl User {
    async fn connect(deployment: &Deployment, name: &str) -> Self {
        let seed = std::fs::read_to_string(&deployment.seeds[name]).unwrap();
        let (tx, errors) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event.to_string());
                }
            })
            .connect(deployment.server.url())
            .await
            .unwrap_or_else(|e| panic!("{name} cannot log in with its nkey: {e}"));
        let mut js = jetstream::new(client.clone());
        js.set_timeout(WAIT);
        Self {
            name: name.to_owned(),
            client,
            js,
            errors,
        }
    }

    async fn ensure_consumer(&self, spec: &ConsumerSpec) -> PullConsumer {
        topology::ensure_consumer(&self.js, spec, 1)
            .await
            .unwrap_or_else(|e| panic!("{} cannot ensure {}: {e:?}", self.name, spec.durable_name))
    }

    /// A JetStream publish the stream confirms.
    async fn publish(&self, subject: &str) {
        let ack = self
            .js
            .publish(subject.to_owned(), "x".into())
            .await
            .unwrap();
        ack.await
            .unwrap_or_else(|e| panic!("{} cannot publish to {subject}: {e}", self.name));
    }

    /// Pulls one message and acks it, JetStream confirming the ack.
    async fn take_one(&self, consumer: &PullConsumer) -> String {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(WAIT)
            .messages()
            .await
            .unwrap();
        let message = batch
            .next()
            .await
            .unwrap_or_else(|| panic!("{}: nothing to pull", self.name))
            .unwrap();
        message
            .double_ack()
            .await
            .unwrap_or_else(|e| panic!("{} cannot ack: {e}", self.name));
        message.subject.to_string()
    }

    /// Publishes on `subject` and waits for the server's permission violation.
    async fn refused_publish(&mut self, subject: &str) {
        self.client
            .publish(subject.to_owned(), "{}".into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        self.expect_violation("Publish", subject).await;
    }

    async fn refused_subscribe(&mut self, subject: &str) {
        let _subscription = self.client.subscribe(subject.to_owned()).await.unwrap();
        self.client.flush().await.unwrap();
        self.expect_violation("Subscription", subject).await;
    }

    async fn expect_violation(&mut self, what: &str, subject: &str) {
        let wanted = format!("Permissions Violation for {what} to \"{subject}\"").to_lowercase();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(event) = self.errors.recv().await {
                if event.to_lowercase().contains(&wanted) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            found,
            Ok(true),
            "{}: the server did not refuse {what} to {subject}",
            self.name
        );
    }
}

/// The install step: the admin credential ensures every stream and bucket.
async fn install(deployment: &Deployment) -> User {
    let admin = User::connect(deployment, "admin").await;
    topology::ensure_all(&admin.js, 1).await.unwrap();
    admin
}

const NON_PRODUCERS: [&str; 6] = [
    "collector-node-1",
    "responder-node-1",
    "responder-cluster",
    "console",
    "forwarder",
    "anomaly-scorer",
];

#[tokio::test]
async fn forged_findings_from_each_non_producer_credential_are_refused() {
    let deployment = deploy("");
    install(&deployment).await;
    // Only the detectors publish a finding that names a pod's namespace at
    // any priority; the scorer only warnings.
    let detectors = User::connect(&deployment, "detectors").await;
    detectors.publish("vigil.findings.critical.shop").await;
    let scorer = User::connect(&deployment, "anomaly-scorer").await;
    scorer.publish("vigil.findings.warning.shop").await;
    for name in NON_PRODUCERS {
        let mut user = User::connect(&deployment, name).await;
        user.refused_publish("vigil.findings.critical.shop").await;
        if name != "anomaly-scorer" {
            user.refused_publish("vigil.findings.warning.shop").await;
        }
    }
}

#[tokio::test]
async fn a_collector_credential_publishes_only_its_own_nodes_events() {
    let deployment = deploy("");
    install(&deployment).await;
    let mut collector = User::connect(&deployment, "collector-node-1").await;
    collector.publish(&subject::events("node-1", 3)).await;
    collector
        .refused_publish(&subject::events("node-2", 3))
        .await;
    collector.refused_publish("vigil.events.node-1.3.x").await;
    collector.refused_subscribe(subject::EVENTS_ALL).await;
    let mut other = User::connect(&deployment, "collector-node-2").await;
    other.publish(&subject::events("node-2", 0)).await;
    other.refused_publish(&subject::events("node-1", 0)).await;
    for name in ["detectors", "anomaly-scorer", "responder-node-1", "console"] {
        let mut user = User::connect(&deployment, name).await;
        user.refused_publish(&subject::events("node-1", 0)).await;
    }
}

#[tokio::test]
async fn service_credentials_cannot_delete_rewrite_or_update_what_others_own() {
    let deployment = deploy("");
    let admin = install(&deployment).await;
    let detectors = User::connect(&deployment, "detectors").await;
    detectors
        .ensure_consumer(&topology::detectors_consumer())
        .await;
    let responder = User::connect(&deployment, "responder-node-1").await;
    responder
        .ensure_consumer(&topology::responder_consumer("node-1"))
        .await;

    let mut console = User::connect(&deployment, "console").await;
    console
        .refused_publish("$JS.API.CONSUMER.DELETE.VIGIL_FINDINGS.responder-node-1")
        .await;
    console
        .refused_publish("$JS.API.CONSUMER.MSG.NEXT.VIGIL_FINDINGS.responder-node-1")
        .await;
    console
        .refused_publish("$JS.ACK.VIGIL_FINDINGS.responder-node-1.1.1.1.0.0")
        .await;
    let mut scorer = User::connect(&deployment, "anomaly-scorer").await;
    scorer
        .refused_publish("$JS.API.CONSUMER.CREATE.VIGIL_EVENTS.detectors.vigil.events.node-9.>")
        .await;
    scorer
        .refused_publish("$JS.API.CONSUMER.DURABLE.CREATE.VIGIL_EVENTS.detectors")
        .await;
    scorer
        .refused_publish("$JS.API.CONSUMER.DELETE.VIGIL_EVENTS.detectors")
        .await;
    let mut other_node = User::connect(&deployment, "responder-node-2").await;
    other_node
        .refused_publish("$JS.API.CONSUMER.CREATE.VIGIL_FINDINGS.responder-node-1")
        .await;
    other_node
        .refused_publish("$JS.API.CONSUMER.MSG.NEXT.VIGIL_FINDINGS.responder-node-1")
        .await;
    for name in [
        "collector-node-1",
        "detectors",
        "anomaly-scorer",
        "responder-node-1",
        "responder-cluster",
        "console",
        "forwarder",
    ] {
        let mut user = User::connect(&deployment, name).await;
        user.refused_publish("$JS.API.STREAM.UPDATE.VIGIL_FINDINGS")
            .await;
        user.refused_publish("$JS.API.STREAM.DELETE.VIGIL_EVENTS")
            .await;
        user.refused_publish("$JS.API.STREAM.PURGE.VIGIL_FINDINGS")
            .await;
    }

    // The console may create ordered consumers on the name-less subject; the
    // server refuses a durable named in the body there, so it cannot rewrite
    // the responder's filter that way either.
    let rewrite = serde_json::json!({
        "stream_name": "VIGIL_FINDINGS",
        "config": {
            "durable_name": "responder-node-1",
            "filter_subject": "vigil.findings.debug.nowhere",
            "ack_policy": "explicit",
            "deliver_policy": "all",
        },
    });
    let reply = console
        .client
        .request(
            "$JS.API.CONSUMER.CREATE.VIGIL_FINDINGS",
            rewrite.to_string().into(),
        )
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.get("error").is_some(), "accepted: {reply}");

    // What the server holds is unchanged.
    let mut findings = admin.js.get_stream("VIGIL_FINDINGS").await.unwrap();
    let info = findings.info().await.unwrap();
    assert_eq!(info.config.max_age, topology::FINDINGS.max_age);
    let mut consumer: PullConsumer = findings.get_consumer("responder-node-1").await.unwrap();
    let consumer = consumer.info().await.unwrap();
    assert_eq!(
        consumer.config.filter_subject,
        topology::responder_consumer("node-1").filter_subject
    );
    let mut events = admin.js.get_stream("VIGIL_EVENTS").await.unwrap();
    let mut detectors_consumer: PullConsumer = events.get_consumer("detectors").await.unwrap();
    let detectors_consumer = detectors_consumer.info().await.unwrap();
    assert_eq!(
        detectors_consumer.config.filter_subject,
        topology::detectors_consumer().filter_subject
    );
    assert!(events.info().await.unwrap().config.subjects == [subject::EVENTS_ALL]);
}

#[tokio::test]
async fn every_service_does_its_own_work_with_its_nkey() {
    let deployment = deploy("");
    // A service may create a stream it uses that is missing...
    let collector = User::connect(&deployment, "collector-node-1").await;
    topology::ensure_stream(&collector.js, &topology::EVENTS, 1)
        .await
        .unwrap();
    // ...and the admin ensures the rest at install.
    install(&deployment).await;
    collector.publish(&subject::events("node-1", 3)).await;
    collector.publish("vigil.findings.critical._").await;

    let detectors = User::connect(&deployment, "detectors").await;
    let events = detectors
        .ensure_consumer(&topology::detectors_consumer())
        .await;
    assert_eq!(detectors.take_one(&events).await, "vigil.events.node-1.3");
    detectors.publish("vigil.findings.critical.shop").await;

    let scorer = User::connect(&deployment, "anomaly-scorer").await;
    let partition = scorer
        .ensure_consumer(&topology::anomaly_scorer_partition_consumer(3))
        .await;
    assert_eq!(scorer.take_one(&partition).await, "vigil.events.node-1.3");
    scorer.publish(&subject::scores("shop")).await;
    scorer.publish("vigil.findings.warning.shop").await;
    let members = topology::ensure_bucket(&scorer.js, &topology::SCORER_MEMBERS_BUCKET, 1)
        .await
        .unwrap();
    members.put("scorer-0", "x".into()).await.unwrap();
    // Its guard reads findings without a consumer.
    let mut guard = scorer
        .client
        .subscribe(subject::FINDINGS_ALL)
        .await
        .unwrap();
    scorer.client.flush().await.unwrap();

    let responder = User::connect(&deployment, "responder-node-1").await;
    let own = responder
        .ensure_consumer(&topology::responder_consumer("node-1"))
        .await;
    let taken = responder.take_one(&own).await;
    assert!(taken.starts_with("vigil.findings."), "{taken}");
    responder.publish("vigil.actions.node-1.succeeded").await;
    for bucket in [
        &topology::RESPONDER_FINDINGS_BUCKET,
        &topology::QUARANTINE_BUCKET,
        &topology::RESPONDER_LIMITS_BUCKET,
    ] {
        let store = topology::ensure_bucket(&responder.js, bucket, 1)
            .await
            .unwrap();
        store.put("shop.web", "x".into()).await.unwrap();
        assert_eq!(
            store.get("shop.web").await.unwrap().as_deref(),
            Some(&b"x"[..])
        );
    }
    let cluster = User::connect(&deployment, "responder-cluster").await;
    cluster
        .ensure_consumer(&topology::responder_cluster_consumer())
        .await;

    let forwarder = User::connect(&deployment, "forwarder").await;
    let output = forwarder
        .ensure_consumer(&topology::forwarder_consumer("falcosidekick"))
        .await;
    assert!(
        forwarder
            .take_one(&output)
            .await
            .starts_with("vigil.findings.")
    );

    let console = User::connect(&deployment, "console").await;
    let stream = console.js.get_stream("VIGIL_FINDINGS").await.unwrap();
    let ordered = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap_or_else(|e| panic!("console cannot read findings: {e}"));
    let mut feed = ordered.messages().await.unwrap();
    let first = tokio::time::timeout(WAIT, feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.subject.starts_with("vigil.findings."));
    console.publish(&subject::audit("acknowledge")).await;
    let incidents = topology::ensure_bucket(&console.js, &topology::INCIDENTS_BUCKET, 1)
        .await
        .unwrap();
    incidents.put("shop.web", "open".into()).await.unwrap();

    // A finding published now reaches the scorer's guard.
    detectors.publish("vigil.findings.critical.shop").await;
    let seen = tokio::time::timeout(WAIT, guard.next())
        .await
        .unwrap()
        .unwrap();
    assert!(seen.subject.starts_with("vigil.findings."));
}

/// A CA, the server's certificate for 127.0.0.1 and a client certificate,
/// as PEM files in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vigil-nats-ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]);
    let (client_cert, client_key) = leaf(vec!["detectors.vigil".to_owned()]);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_file = write("ca.pem", &ca.pem());
    (
        ca_file,
        write("server.pem", &server_cert),
        write("server-key.pem", &server_key),
        write("client.pem", &client_cert),
        write("client-key.pem", &client_key),
    )
}

#[tokio::test]
async fn with_tls_required_a_plaintext_client_is_refused_and_services_connect_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, server_cert, server_key, client_cert, client_key) = certificates(certs.path());
    let deployment = deploy(&format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 2\n}}",
        server_cert.display(),
        server_key.display(),
        ca.display()
    ));
    let seed = std::fs::read_to_string(&deployment.seeds["detectors"]).unwrap();

    let plaintext = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .connect(deployment.server.url())
        .await;
    assert!(plaintext.is_err(), "a plaintext client was let in");

    let no_client_cert = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .require_tls(true)
        .add_root_certificates(ca.clone())
        .connect(deployment.server.url())
        .await;
    assert!(
        no_client_cert.is_err(),
        "a client without a certificate was let in"
    );

    let options = ConnectOptions {
        url: deployment.server.url(),
        client_name: "vigil-detectors@test".to_owned(),
    };
    let security = Security {
        nkey_seed_file: Some(deployment.seeds["detectors"].clone()),
        tls: Some(TlsFiles {
            ca_file: ca,
            cert_file: Some(client_cert),
            key_file: Some(client_key),
        }),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let bus = tokio::time::timeout(
        WAIT,
        vigil_bus::connect::connect_secured(&options, &security, &shutdown),
    )
    .await
    .expect("no connection over TLS")
    .unwrap();
    topology::ensure_stream(&bus.jetstream, &topology::FINDINGS, 1)
        .await
        .unwrap();
    bus.jetstream
        .publish("vigil.findings.critical.shop", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
}
