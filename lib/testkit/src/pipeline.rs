//! The whole pipeline as real processes: a nats-server and Vigil's service
//! binaries, each configured through environment overrides, each with its
//! own log file. Used by the end-to-end tests, the demo and the benchmarks.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{NatsServer, wait_until};

/// One service to start.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Binary name, which is also the service name after `vigil-`.
    pub binary: String,
    /// Extra `KEY=VALUE` settings, in the service's env-override syntax without
    /// the prefix: `("DRY_RUN", "true")` becomes `VIGIL_RESPONDER__DRY_RUN=true`.
    pub settings: Vec<(String, String)>,
}

impl ServiceSpec {
    pub fn new(binary: &str) -> Self {
        Self {
            binary: binary.to_owned(),
            settings: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_owned(), value.to_owned()));
        self
    }

    fn env_prefix(&self) -> String {
        let service = self.binary.trim_start_matches("vigil-");
        format!("VIGIL_{}__", service.to_ascii_uppercase().replace('-', "_"))
    }
}

/// A running service process, stopped with SIGTERM on drop.
pub struct ServiceProcess {
    pub name: String,
    pub admin: SocketAddr,
    pub log: PathBuf,
    /// What it was started from, so it can be started again.
    pub spec: ServiceSpec,
    child: Child,
}

impl ServiceProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `/healthz` answers 200.
    pub fn healthy(&self) -> bool {
        http_get(self.admin, "/healthz").is_some_and(|(status, _)| status == 200)
    }

    /// The Prometheus text from `/metrics`.
    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The process's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = wait_until(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        });
        if status.is_none() {
            let _ = self.child.kill();
            return self.child.wait().ok();
        }
        status
    }

    /// Kills the process with SIGKILL (a crash: no shutdown code runs) and
    /// waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop();
        }
    }
}

/// NATS plus services, torn down on drop (services first).
pub struct Pipeline {
    pub services: Vec<ServiceProcess>,
    pub nats: NatsServer,
    pub node: String,
    pub dir: tempfile::TempDir,
    binaries: PathBuf,
}

impl Pipeline {
    /// Starts a nats-server, then each service from `binaries` (the cargo
    /// target profile directory), and waits until every `/healthz` is 200.
    pub fn start(binaries: &Path, node: &str, services: &[ServiceSpec]) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-pipeline-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let nats = NatsServer::start();
        let mut pipeline = Self {
            services: Vec::new(),
            nats,
            node: node.to_owned(),
            dir,
            binaries: binaries.to_owned(),
        };
        for spec in services {
            pipeline.spawn(spec)?;
        }
        pipeline.wait_healthy(Duration::from_secs(30))?;
        Ok(pipeline)
    }

    /// Starts one more service process.
    pub fn spawn(&mut self, spec: &ServiceSpec) -> Result<&mut ServiceProcess, String> {
        let process = spawn_service(
            &self.binaries,
            self.dir.path(),
            &self.node,
            &self.nats.url(),
            spec,
            self.services.len(),
        )?;
        self.services.push(process);
        self.services
            .last_mut()
            .ok_or_else(|| "no service".to_owned())
    }

    /// Waits until every service answers `/healthz` with 200; fails early,
    /// with its log, if one exits.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        wait_all_healthy(&mut self.services, timeout)
    }

    pub fn service(&mut self, binary: &str) -> Option<&mut ServiceProcess> {
        self.services.iter_mut().find(|s| s.name == binary)
    }

    /// Starts `spec` (its binary next to `built`, a `CARGO_BIN_EXE_…` path)
    /// against its own nats-server and waits until it is healthy; stops the
    /// server, waits until the service has seen its connection drop, then
    /// sends it SIGTERM. Ok once it has exited 0; Err with its log when it
    /// exits otherwise or is still running 10 s after the signal (it is then
    /// killed). A service that waits on NATS while shutting down fails.
    pub fn sigterm_while_nats_is_away(built: &Path, spec: &ServiceSpec) -> Result<(), String> {
        let binaries = built
            .parent()
            .ok_or_else(|| format!("{} has no directory", built.display()))?;
        let mut pipeline = Self::start(binaries, "node-1", std::slice::from_ref(spec))?;
        let binary = spec.binary.as_str();
        pipeline.nats.stop();
        let service = pipeline
            .service(binary)
            .ok_or_else(|| format!("{binary} is not running"))?;
        // The client counts the drop (vigil_bus_connection_events_total);
        // once it is reconnecting, a flush would wait for the server forever.
        let noticed = wait_until(Duration::from_secs(15), || {
            service
                .metrics()
                .lines()
                .any(|line| {
                    line.starts_with("vigil_bus_connection_events_total")
                        && line.contains("event=\"disconnected\"")
                })
                .then_some(())
        });
        if noticed.is_none() {
            return Err(format!(
                "{binary} never reported the lost connection; log:\n{}",
                service.log_text()
            ));
        }
        match service.stop() {
            Some(status) if status.success() => Ok(()),
            status => Err(format!(
                "{binary} did not exit 0 within 10 s of SIGTERM with NATS away ({status:?}); log:\n{}",
                service.log_text()
            )),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Services before NATS, so they shut down cleanly.
        self.services.clear();
    }
}

/// Starts `spec`'s binary from `binaries` against `nats_url` on `node`, its
/// admin endpoint on a free port and its output in `<dir>/<binary>-<index>.log`.
pub(crate) fn spawn_service(
    binaries: &Path,
    dir: &Path,
    node: &str,
    nats_url: &str,
    spec: &ServiceSpec,
    index: usize,
) -> Result<ServiceProcess, String> {
    let binary = binaries.join(&spec.binary);
    if !binary.is_file() {
        return Err(format!("{} is not built", binary.display()));
    }
    let admin = free_addr();
    let log = dir.join(format!("{}-{index}.log", spec.binary));
    let log_file = File::create(&log).map_err(|e| e.to_string())?;
    let stderr = log_file.try_clone().map_err(|e| e.to_string())?;
    let prefix = spec.env_prefix();
    let mut command = Command::new(&binary);
    command
        .env(format!("{prefix}NATS__URL"), nats_url)
        .env(format!("{prefix}ADMIN__LISTEN"), admin.to_string())
        .env(format!("{prefix}NODE_NAME"), node)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr);
    for (key, value) in &spec.settings {
        command.env(format!("{prefix}{key}"), value);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    Ok(ServiceProcess {
        name: spec.binary.clone(),
        admin,
        log,
        spec: spec.clone(),
        child,
    })
}

/// Waits until every one of `services` answers `/healthz` with 200; fails
/// early, with its log, if one exits.
pub(crate) fn wait_all_healthy(
    services: &mut [ServiceProcess],
    timeout: Duration,
) -> Result<(), String> {
    let result = wait_until(timeout, || {
        for service in services.iter_mut() {
            if let Some(status) = service.exited() {
                return Some(Err(format!(
                    "{} exited with {status}; log:\n{}",
                    service.name,
                    service.log_text()
                )));
            }
        }
        services
            .iter()
            .all(ServiceProcess::healthy)
            .then_some(Ok(()))
    });
    result.unwrap_or_else(|| {
        let logs: Vec<String> = services
            .iter()
            .map(|s| format!("--- {} ---\n{}", s.name, s.log_text()))
            .collect();
        Err(format!(
            "services not healthy within {timeout:?}:\n{}",
            logs.join("\n")
        ))
    })
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address")
}

/// A minimal HTTP/1.0 GET: status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}
