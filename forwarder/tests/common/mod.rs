//! Real receivers for the forwarder's outputs, started in the test: an HTTP
//! server that records what it is sent and can answer 500 first, and UDP and
//! TCP syslog listeners that parse RFC 5424.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, http::StatusCode};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    net::{TcpListener, UdpSocket},
};
use vigil_forwarder::{OutputConfig, OutputKind, Transport};

/// What a receiver got: each accepted alert, in arrival order.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<Value>>>);

impl Received {
    fn push(&self, alert: Value) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(alert);
    }

    pub fn all(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Accepted alerts by rule name (the last one of each).
    pub fn by_rule(&self) -> BTreeMap<String, Value> {
        self.all()
            .into_iter()
            .map(|alert| (alert["rule"].as_str().unwrap_or_default().to_owned(), alert))
            .collect()
    }

    /// Distinct uuids accepted.
    pub fn uuids(&self) -> std::collections::BTreeSet<String> {
        self.all()
            .iter()
            .map(|alert| alert["uuid"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// An HTTP receiver (Falcosidekick's input, a webhook).
#[derive(Clone)]
pub struct HttpReceiver {
    pub addr: SocketAddr,
    pub received: Received,
    /// Requests answered, 500s included.
    pub requests: Arc<AtomicUsize>,
    /// Headers of the last request.
    pub headers: Arc<Mutex<HeaderMap>>,
}

#[derive(Clone)]
struct HttpState {
    receiver: HttpReceiver,
    fail_first: usize,
}

impl HttpReceiver {
    /// Listens on `addr` (port 0: any) and answers 500 to the first
    /// `fail_first` requests, 200 after.
    pub async fn start(addr: SocketAddr, fail_first: usize) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the HTTP receiver");
        let receiver = HttpReceiver {
            addr: listener.local_addr().expect("its address"),
            received: Received::default(),
            requests: Arc::default(),
            headers: Arc::default(),
        };
        let app = Router::new().fallback(record).with_state(HttpState {
            receiver: receiver.clone(),
            fail_first,
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

async fn record(State(state): State<HttpState>, headers: HeaderMap, body: String) -> StatusCode {
    let seen = state.receiver.requests.fetch_add(1, Ordering::SeqCst);
    *state
        .receiver
        .headers
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = headers;
    if seen < state.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match serde_json::from_str(&body) {
        Ok(alert) => {
            state.receiver.received.push(alert);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// One RFC 5424 message, split into its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogMessage {
    pub pri: u16,
    pub version: String,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub proc_id: String,
    pub msg_id: String,
    pub structured_data: String,
    /// The message after the byte order mark, parsed as JSON.
    pub alert: Value,
}

/// Parses `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP
/// MSGID SP STRUCTURED-DATA SP BOM MSG` (structured data must be NILVALUE
/// here); panics with the message on anything else.
pub fn parse_rfc5424(text: &str) -> SyslogMessage {
    let rest = text.strip_prefix('<').unwrap_or_else(|| not_5424(text));
    let (pri, rest) = rest.split_once('>').unwrap_or_else(|| not_5424(text));
    let fields: Vec<&str> = rest.splitn(8, ' ').collect();
    let [
        version,
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        msg,
    ] = fields[..]
    else {
        not_5424(text)
    };
    let body = msg
        .strip_prefix('\u{feff}')
        .unwrap_or_else(|| not_5424(text));
    SyslogMessage {
        pri: pri.parse().unwrap_or_else(|_| not_5424(text)),
        version: version.to_owned(),
        timestamp: timestamp.to_owned(),
        hostname: hostname.to_owned(),
        app_name: app_name.to_owned(),
        proc_id: proc_id.to_owned(),
        msg_id: msg_id.to_owned(),
        structured_data: structured_data.to_owned(),
        alert: serde_json::from_str(body).unwrap_or_else(|_| not_5424(text)),
    }
}

fn not_5424(text: &str) -> ! {
    panic!("not an RFC 5424 message with a JSON body: {text:?}")
}

/// A syslog receiver over UDP or TCP (octet counting).
#[derive(Clone)]
pub struct SyslogReceiver {
    pub addr: SocketAddr,
    pub received: Received,
    pub messages: Arc<Mutex<Vec<SyslogMessage>>>,
}

impl SyslogReceiver {
    pub async fn start(transport: Transport, addr: SocketAddr) -> Self {
        let messages: Arc<Mutex<Vec<SyslogMessage>>> = Arc::default();
        let received = Received::default();
        let keep = {
            let (messages, received) = (messages.clone(), received.clone());
            move |text: &str| {
                let message = parse_rfc5424(text);
                received.push(message.alert.clone());
                messages
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(message);
            }
        };
        let addr = match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(addr).await.expect("bind the UDP receiver");
                let addr = socket.local_addr().expect("its address");
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 65_536];
                    while let Ok((len, _)) = socket.recv_from(&mut buffer).await {
                        keep(std::str::from_utf8(&buffer[..len]).expect("UTF-8 datagram"));
                    }
                });
                addr
            }
            Transport::Tcp => {
                let listener = TcpListener::bind(addr)
                    .await
                    .expect("bind the TCP receiver");
                let addr = listener.local_addr().expect("its address");
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let keep = keep.clone();
                        tokio::spawn(async move { read_frames(stream, keep).await });
                    }
                });
                addr
            }
        };
        SyslogReceiver {
            addr,
            received,
            messages,
        }
    }

    pub fn messages(&self) -> Vec<SyslogMessage> {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// RFC 6587 octet counting: `LEN SP MSG`, repeated.
async fn read_frames(stream: tokio::net::TcpStream, keep: impl Fn(&str)) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = Vec::new();
        match reader.read_until(b' ', &mut length).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = std::str::from_utf8(&length[..length.len() - 1]).expect("ASCII length");
        let len: usize = text
            .parse()
            .unwrap_or_else(|_| panic!("octet count expected, got {text:?}"));
        let mut message = vec![0u8; len];
        reader
            .read_exact(&mut message)
            .await
            .expect("a whole frame");
        keep(std::str::from_utf8(&message).expect("UTF-8 frame"));
    }
}

/// An output of `kind` with test-friendly retry timing.
pub fn output(name: &str, kind: OutputKind) -> OutputConfig {
    OutputConfig {
        name: name.to_owned(),
        kind,
        enabled: true,
        url: String::new(),
        headers: BTreeMap::new(),
        address: String::new(),
        transport: Transport::Udp,
        facility: 16,
        max_in_flight: 8,
        timeout_ms: 5_000,
        retry_first_ms: 50,
        retry_max_ms: 400,
    }
}

/// A loopback address nothing listens on yet (bound, then released).
pub async fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("its address")
}

/// Polls until `done` holds; panics naming `what` after two minutes.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    vigil_testkit::in_process::poll(what, Duration::from_secs(120), || {
        let ready = done();
        async move { ready.then_some(()) }
    })
    .await
}
