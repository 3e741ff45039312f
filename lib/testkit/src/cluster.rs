//! A three-node NATS cluster on loopback (three nats-server processes,
//! routes between them, JetStream with a store each) and the pipeline's
//! services against it, for the chaos suite: nodes and services can be
//! killed (SIGKILL) and restarted one at a time.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{
    ServiceProcess, ServiceSpec, http_get,
    nats::{find_binary, free_port},
    pipeline::{spawn_service, wait_all_healthy},
    wait_until,
};

/// Streams on this cluster are replicated to every node.
pub const CLUSTER_REPLICAS: usize = 3;
const CLUSTER_SIZE: usize = 3;
/// How long a node may take to start and catch up with JetStream's meta group.
const NODE_READY: Duration = Duration::from_secs(30);

/// One nats-server of the cluster.
struct ClusterNode {
    name: String,
    client_port: u16,
    monitor_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl ClusterNode {
    fn launch(&mut self, binary: &Path) -> Result<(), String> {
        let child = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Accepting clients, and its JetStream is current with the cluster
    /// (the monitoring endpoint's `/healthz` answers 200 only then).
    fn ready(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.client_port)).is_ok()
            && http_get(([127, 0, 0, 1], self.monitor_port).into(), "/healthz")
                .is_some_and(|(status, _)| status == 200)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Three nats-servers routed to each other, JetStream on each; killed on drop.
pub struct NatsCluster {
    binary: PathBuf,
    nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts the three nodes and waits until each is ready (JetStream
    /// meta leader elected and every node current).
    pub fn start() -> Result<Self, String> {
        let binary = find_binary();
        let dir = tempfile::Builder::new()
            .prefix("vigil-nats-cluster-")
            .tempdir()
            .map_err(|e| format!("cannot create the cluster's directory: {e}"))?;
        let route_ports: Vec<u16> = (0..CLUSTER_SIZE).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
            .collect();
        let mut nodes = Vec::new();
        for (index, route_port) in route_ports.iter().enumerate() {
            let name = format!("n{index}");
            let (client_port, monitor_port) = (free_port(), free_port());
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            let text = format!(
                "server_name: {name}\n\
                 listen: \"127.0.0.1:{client_port}\"\n\
                 http: \"127.0.0.1:{monitor_port}\"\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{\n  name: vigil-chaos\n  listen: \"127.0.0.1:{route_port}\"\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            std::fs::write(&config, text)
                .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
            nodes.push(ClusterNode {
                log: dir.path().join(format!("{name}.log")),
                name,
                client_port,
                monitor_port,
                config,
                child: None,
            });
        }
        let mut cluster = Self { binary, nodes, dir };
        for node in &mut cluster.nodes {
            node.launch(&cluster.binary)?;
        }
        for index in 0..CLUSTER_SIZE {
            cluster.wait_ready(index)?;
        }
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of one node.
    pub fn node_url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The server name of node `index` (`n0`, `n1`, `n2`).
    pub fn node_name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// Kills node `index` with SIGKILL (a crash).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts node `index` again on its ports and store and waits until it
    /// is current with the cluster.
    pub fn restart(&mut self, index: usize) -> Result<(), String> {
        self.nodes[index].kill();
        self.nodes[index].launch(&self.binary)?;
        self.wait_ready(index)
    }

    /// The directory holding the nodes' configs, stores and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn wait_ready(&self, index: usize) -> Result<(), String> {
        let node = &self.nodes[index];
        wait_until(NODE_READY, || node.ready().then_some(())).ok_or_else(|| {
            format!(
                "NATS node {} not ready within {NODE_READY:?}; its log:\n{}",
                node.name,
                node.log_text()
            )
        })
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// Vigil's services as processes against a [`NatsCluster`], streams at
/// [`CLUSTER_REPLICAS`]; services stopped before the cluster on drop.
pub struct ClusterPipeline {
    pub services: Vec<ServiceProcess>,
    pub cluster: NatsCluster,
    pub node: String,
    pub dir: tempfile::TempDir,
    binaries: PathBuf,
    started: usize,
}

impl ClusterPipeline {
    /// Starts the cluster, then each service from `binaries` (the cargo
    /// target profile directory) with `nats.stream_replicas = 3`, and waits
    /// until every `/healthz` is 200.
    pub fn start(binaries: &Path, node: &str, services: &[ServiceSpec]) -> Result<Self, String> {
        let cluster = NatsCluster::start()?;
        let dir = tempfile::Builder::new()
            .prefix("vigil-cluster-pipeline-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut pipeline = Self {
            services: Vec::new(),
            cluster,
            node: node.to_owned(),
            dir,
            binaries: binaries.to_owned(),
            started: 0,
        };
        for spec in services {
            pipeline.spawn(spec)?;
        }
        pipeline.wait_healthy(Duration::from_secs(60))?;
        Ok(pipeline)
    }

    /// Starts one more service process (its own `NODE_NAME` setting, if
    /// any, overrides the pipeline's node), connected to one node in turn:
    /// the client learns the other nodes from the cluster and moves to
    /// them when its node goes away.
    pub fn spawn(&mut self, spec: &ServiceSpec) -> Result<&mut ServiceProcess, String> {
        let spec = spec
            .clone()
            .with("NATS__STREAM_REPLICAS", &CLUSTER_REPLICAS.to_string());
        let process = spawn_service(
            &self.binaries,
            self.dir.path(),
            &self.node,
            &self.seed_url(),
            &spec,
            self.started,
        )?;
        self.started += 1;
        self.services.push(process);
        self.services
            .last_mut()
            .ok_or_else(|| "no service".to_owned())
    }

    /// Kills service `index` with SIGKILL and starts it again from its spec
    /// (a new log file); the new process takes its place in `services`.
    pub fn kill_and_restart(&mut self, index: usize) -> Result<(), String> {
        let mut old = self.services.remove(index);
        old.kill();
        let spec = old.spec.clone();
        let process = spawn_service(
            &self.binaries,
            self.dir.path(),
            &self.node,
            &self.seed_url(),
            &spec,
            self.started,
        )?;
        self.started += 1;
        self.services.insert(index, process);
        Ok(())
    }

    /// The node the next process connects to first, in turn, so the
    /// services spread over the nodes and a node's crash moves some of them
    /// (the client learns the other nodes from the cluster).
    fn seed_url(&self) -> String {
        self.cluster.node_url(self.started % self.cluster.size())
    }

    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        wait_all_healthy(&mut self.services, timeout)
    }

    /// Every service's log, each under its name.
    pub fn logs(&self) -> String {
        self.services
            .iter()
            .map(|s| format!("--- {} ---\n{}", s.name, s.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ClusterPipeline {
    fn drop(&mut self) {
        // Services before the cluster, so they shut down cleanly.
        self.services.clear();
    }
}
