//! Fixtures for the console's tests: a real nats-server, the console started
//! in-process, a vigil.v1.Responder gRPC server that records actions on the
//! actions stream as the responder does, and a small HTTP/1.0 client.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test fixtures: a failed set-up should panic with its cause; not every test uses every helper"
)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString};
use futures::StreamExt;
use prost::Message;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;
use vigil_bus::{Publisher, TraceContext, async_nats::jetstream, codec, subject, topology};
use vigil_console::{Config, UserConfig, auth::Role};
use vigil_proto::v1::{
    ActionKind, ActionOutcome, ActionRecord, Ancestor, Event, Finding, ListQuarantinedReply,
    ListQuarantinedRequest, PodRef, Priority, QuarantineReply, QuarantineRequest, ReleaseReply,
    ReleaseRequest,
    responder_server::{Responder, ResponderServer},
};
use vigil_testkit::NatsServer;

pub const RESPONDER_PASSWORD: &str = "ann-password";
pub const READER_TOKEN: &str = "rob-token-0123";

/// An argon2id hash with the smallest cost, so debug-build tests log in fast;
/// the console verifies whatever cost the hash names.
pub fn cheap_hash(password: &str) -> String {
    let params = Params::new(8, 1, 1, None).unwrap();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"vigil-test-salt!").unwrap();
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

pub fn users() -> Vec<UserConfig> {
    vec![
        UserConfig {
            name: "ann".into(),
            role: Role::Responder,
            password_hash: cheap_hash(RESPONDER_PASSWORD),
            token_sha256: String::new(),
        },
        UserConfig {
            name: "rob".into(),
            role: Role::ReadOnly,
            password_hash: cheap_hash("rob-password"),
            token_sha256: hex::encode(Sha256::digest(READER_TOKEN.as_bytes())),
        },
    ]
}

pub fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web/dist")
}

pub struct Running {
    pub nats: NatsServer,
    pub addr: SocketAddr,
    pub js: jetstream::Context,
    pub shutdown: CancellationToken,
    pub responder_calls: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn console_config(nats_url: &str, grpc_url: &str) -> Config {
    let mut config = Config::default();
    config.nats.url = nats_url.to_owned();
    config.node_name = "test-node".into();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.http.web_dir = web_dir();
    config.responder.grpc_url = grpc_url.to_owned();
    config.users = users();
    config
}

/// NATS, a test responder and a console, all running.
pub async fn start() -> Running {
    let nats = NatsServer::start();
    let client = vigil_bus::async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let shutdown = CancellationToken::new();
    let responder_calls = Arc::new(Mutex::new(Vec::new()));
    let grpc = start_responder(js.clone(), responder_calls.clone(), shutdown.clone()).await;
    let config = console_config(&nats.url(), &format!("http://{grpc}")).await;
    let addr = start_console(config, &shutdown).await;
    Running {
        nats,
        addr,
        js,
        shutdown,
        responder_calls,
    }
}

pub async fn start_console(config: Config, shutdown: &CancellationToken) -> SocketAddr {
    let console = vigil_console::start(config, vigil_service::Health::default(), shutdown.clone())
        .await
        .unwrap();
    let addr = console.addr;
    tokio::spawn(console.stopped());
    addr
}

/// Stands in for the responder's gRPC API (see the report: the real one was
/// not merged when these tests were written): it records what it was asked
/// and publishes the action record, as the responder's contract says.
struct TestResponder {
    publisher: Publisher,
    calls: Arc<Mutex<Vec<String>>>,
}

impl TestResponder {
    async fn record(
        &self,
        kind: ActionKind,
        target: &PodRef,
        requested_by: &str,
        finding_id: &str,
        reason: &str,
        dry_run: bool,
    ) -> Result<ActionRecord, tonic::Status> {
        let outcome = if dry_run {
            ActionOutcome::DryRun
        } else {
            ActionOutcome::Succeeded
        };
        let record = ActionRecord {
            id: format!("{finding_id}:{}:{}", kind.as_str_name(), uuid_like()),
            finding_id: finding_id.to_owned(),
            kind: kind as i32,
            outcome: outcome as i32,
            dry_run,
            reason: reason.to_owned(),
            node: "test-node".into(),
            pod: target.pod.clone(),
            namespace: target.namespace.clone(),
            policy: "manual".into(),
            requested_by: requested_by.to_owned(),
            time_ns: vigil_service::clock::wall_ns(),
            ..Default::default()
        };
        self.publisher
            .publish(
                subject::actions("test-node", outcome),
                &record.id,
                &TraceContext::new_root(),
                codec::encode(&record),
            )
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(record)
    }
}

fn uuid_like() -> u64 {
    vigil_service::clock::monotonic_ns()
}

#[tonic::async_trait]
impl Responder for TestResponder {
    async fn quarantine(
        &self,
        request: tonic::Request<QuarantineRequest>,
    ) -> Result<tonic::Response<QuarantineReply>, tonic::Status> {
        let r = request.into_inner();
        let target = r.target.unwrap_or_default();
        self.calls.lock().unwrap().push(format!(
            "quarantine {}/{} by {}",
            target.namespace, target.pod, r.requested_by
        ));
        let record = self
            .record(
                ActionKind::Quarantine,
                &target,
                &r.requested_by,
                &r.finding_id,
                &r.reason,
                r.dry_run,
            )
            .await?;
        Ok(tonic::Response::new(QuarantineReply {
            actions: vec![record],
        }))
    }

    async fn release(
        &self,
        request: tonic::Request<ReleaseRequest>,
    ) -> Result<tonic::Response<ReleaseReply>, tonic::Status> {
        let r = request.into_inner();
        let target = r.target.unwrap_or_default();
        self.calls.lock().unwrap().push(format!(
            "release {}/{} by {}",
            target.namespace, target.pod, r.requested_by
        ));
        let record = self
            .record(
                ActionKind::Release,
                &target,
                &r.requested_by,
                "manual",
                &r.reason,
                r.dry_run,
            )
            .await?;
        Ok(tonic::Response::new(ReleaseReply {
            actions: vec![record],
        }))
    }

    async fn list_quarantined(
        &self,
        _: tonic::Request<ListQuarantinedRequest>,
    ) -> Result<tonic::Response<ListQuarantinedReply>, tonic::Status> {
        Ok(tonic::Response::new(ListQuarantinedReply::default()))
    }
}

async fn start_responder(
    js: jetstream::Context,
    calls: Arc<Mutex<Vec<String>>>,
    shutdown: CancellationToken,
) -> SocketAddr {
    topology::ensure_stream(&js, &topology::ACTIONS, 1)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ResponderServer::new(TestResponder {
        publisher: Publisher::new(js),
        calls,
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move { shutdown.cancelled().await },
            ),
    );
    addr
}

/// A finding about `pod` in `namespace`, with a process chain.
pub fn finding(id: &str, namespace: &str, pod: &str, priority: Priority) -> Finding {
    let ancestor = |pid, comm: &str| Ancestor {
        pid,
        comm: comm.into(),
        exe_path: format!("/bin/{comm}"),
        cmdline: vec![comm.into()],
    };
    Finding {
        id: id.to_owned(),
        time_ns: vigil_service::clock::wall_ns(),
        name: "Read sensitive file untrusted".into(),
        priority: priority as i32,
        tags: vec!["filesystem".into(), "mitre_credential_access".into()],
        output: format!("Sensitive file opened for reading (file=/etc/shadow pod={pod})"),
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        node: "test-node".into(),
        container_id: "c0ffee".into(),
        events: vec![Event {
            pid: 42,
            comm: "tail".into(),
            exe_path: "/usr/bin/tail".into(),
            cmdline: vec!["tail".into(), "-f".into(), "/etc/shadow".into()],
            ancestors: vec![ancestor(7, "sh"), ancestor(1, "containerd-shim")],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub async fn publish_finding(js: &jetstream::Context, finding: &Finding) {
    let subject = subject::findings(finding.priority(), &finding.namespace);
    js.publish(subject, finding.encode_to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` message of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// HTTP/1.0 (so the answer ends when the connection closes).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    exchange(stream, addr, method, path, headers, body).await
}

/// [`http`] from another loopback address (127.0.0.0/8 is all local), as a
/// different client would come.
pub async fn http_from(
    source: std::net::Ipv4Addr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    exchange(stream, addr, method, path, &[], body).await
}

async fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_string(&mut raw))
        .await
        .expect("answer within 120 s")
        .unwrap();
    parse_answer(&raw)
}

fn parse_answer(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A logged-in browser-like session: its cookie and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Session {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    let answer = http(addr, "POST", "/api/login", &[], Some(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let csrf = answer.json()["csrf"].as_str().unwrap().to_owned();
    Session { cookie, csrf }
}

impl Session {
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Answer {
        http(addr, "GET", path, &[("Cookie", &self.cookie)], None).await
    }

    pub async fn post(&self, addr: SocketAddr, path: &str, body: &str) -> Answer {
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
        ];
        http(addr, "POST", path, &headers, Some(body)).await
    }
}

/// Reads server-sent events from `/api/stream`.
pub struct Sse {
    reader: BufReader<TcpStream>,
}

impl Sse {
    pub async fn open(addr: SocketAddr, cookie: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/stream HTTP/1.0\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Self { reader }
    }

    /// The next event (name, data) within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, String)> {
        tokio::time::timeout(timeout, async {
            let (mut event, mut data) = (String::new(), String::new());
            let mut line = String::new();
            loop {
                line.clear();
                if self.reader.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !event.is_empty() || !data.is_empty() {
                        return Some((event, data));
                    }
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Whether the server ends the stream within `timeout` (events before
    /// the end are read and dropped).
    pub async fn ends_within(&mut self, timeout: Duration) -> bool {
        let mut line = String::new();
        tokio::time::timeout(timeout, async {
            loop {
                line.clear();
                match self.reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// The first event named `name` whose data satisfies `matches`.
    pub async fn find(
        &mut self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (event, data) = self.next(left).await?;
            if event == name {
                let value: Value = serde_json::from_str(&data).ok()?;
                if matches(&value) {
                    return Some(value);
                }
            }
        }
    }
}

/// Waits for the console to have read a finding.
pub async fn wait_for_finding(addr: SocketAddr, session: &Session, id: &str) -> Value {
    for _ in 0..300 {
        let answer = session.get(addr, "/api/findings").await;
        if let Some(found) = answer
            .json()
            .as_array()
            .and_then(|l| l.iter().find(|f| f["id"] == id).cloned())
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("finding {id} never appeared in /api/findings");
}

/// The next message on a stream's subjects, decoded.
pub async fn next_on<M: Message + Default>(
    js: &jetstream::Context,
    spec: &topology::StreamSpec,
    matches: impl Fn(&M) -> bool,
) -> Option<M> {
    let stream = js.get_stream(spec.name).await.ok()?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .ok()?;
    let mut messages = consumer.messages().await.ok()?;
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = messages.next().await {
            if let Ok(decoded) = M::decode(message.payload.as_ref())
                && matches(&decoded)
            {
                return Some(decoded);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
