//! Real containers: podman with runc, placed where a kubelet with the
//! cgroupfs driver puts a pod's containers (`--cgroup-parent
//! kubepods/besteffort/pod<uid>`), so the collector, detectors and responder
//! meet exactly what they meet on a node: runc's own set-up stages, an
//! overlay root file system, the runtime's container id in the cgroup path.
//!
//! Images come from `scripts/image-base` (a debootstrap root file system;
//! no registry is reachable here). A container that exits while starting is
//! reported with its logs.

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::OnceLock,
    time::Duration,
};

/// What to run.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// Image name; [`base_image`] when `None`.
    pub image: Option<String>,
    /// Entrypoint and arguments.
    pub command: Vec<String>,
    /// Extra `podman run` arguments (`--network=none`, `--cap-add=…`, `-v …`).
    pub run_args: Vec<String>,
    /// Pod UID for the cgroup parent; a new one when `None`.
    pub pod_uid: Option<String>,
}

impl ContainerSpec {
    /// The base image running `command`.
    pub fn new<S: Into<String>>(command: impl IntoIterator<Item = S>) -> Self {
        Self {
            image: None,
            command: command.into_iter().map(Into::into).collect(),
            run_args: Vec::new(),
            pod_uid: None,
        }
    }

    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    pub fn run_arg(mut self, arg: impl Into<String>) -> Self {
        self.run_args.push(arg.into());
        self
    }

    pub fn pod_uid(mut self, uid: impl Into<String>) -> Self {
        self.pod_uid = Some(uid.into());
        self
    }

    /// The base image running a bash script: `prelude`, then a heartbeat
    /// that writes a growing counter to `/tmp/beat` every 0.1 s, so a test
    /// sees whether the container's processes really run ([`Container::runs`]).
    /// The script has `pause SECONDS`, a sleep that execs nothing (a read
    /// timing out on a fifo), so waiting adds no events of its own.
    pub fn script(prelude: &str) -> Self {
        Self::new([
            "bash".to_owned(),
            "-c".to_owned(),
            format!(
                "mkfifo /tmp/tick && exec 9<>/tmp/tick\n\
                 pause() {{ read -t \"$1\" -u 9; }}\n\
                 {prelude}\n\
                 n=0; while :; do n=$((n+1)); echo $n > /tmp/beat; pause 0.1; done\n"
            ),
        ])
    }
}

/// A [`ContainerSpec::script`] prelude: once the test listens on
/// 127.0.0.1:`port` inside the container's network namespace
/// ([`Container::listen_in_netns`]), a process of the container connects and
/// echoes every line back on that established connection.
pub fn echo_client_prelude(port: u16) -> String {
    format!(
        "(until {{ exec 3<>/dev/tcp/127.0.0.1/{port}; }} 2>/dev/null; do pause 0.05; done; exec cat <&3 >&3) &"
    )
}

/// A running container, removed (with its processes) on drop.
#[derive(Debug)]
pub struct Container {
    /// The runtime's 64-hex container id, as it appears in the cgroup path.
    pub id: String,
    /// Host pid of the container's first process.
    pub pid: u32,
    pub pod_uid: String,
    /// Cgroup path in the unified hierarchy, relative to its root
    /// (`kubepods/besteffort/pod<uid>/libpod-<id>`).
    pub cgroup_path: String,
}

impl Container {
    /// Starts `spec` detached and waits until its first process runs.
    pub fn start(spec: &ContainerSpec) -> std::io::Result<Self> {
        let pod_uid = spec
            .pod_uid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let image = match &spec.image {
            Some(image) => image.clone(),
            None => base_image()?,
        };
        let output = podman()
            .arg("run")
            .arg("--detach")
            .arg(format!("--cgroup-parent=kubepods/besteffort/pod{pod_uid}"))
            .args(&spec.run_args)
            .arg(&image)
            .args(&spec.command)
            .output()?;
        let id = String::from_utf8_lossy(&checked("podman run", output)?.stdout)
            .trim()
            .to_owned();
        let mut container = Self {
            id,
            pid: 0,
            pod_uid,
            cgroup_path: String::new(),
        };
        let (running, pid) = container.state()?;
        if !running || pid == 0 {
            return Err(std::io::Error::other(format!(
                "container {} ({:?}) exited while starting; its logs:\n{}",
                container.id,
                spec.command,
                container.logs()
            )));
        }
        container.pid = pid;
        container.cgroup_path = unified_cgroup_of(pid)?;
        Ok(container)
    }

    /// `podman exec` in the container; the exec'd process is a child of
    /// runc's exec stage, as `kubectl exec` would make it.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> std::io::Result<Output> {
        podman().arg("exec").arg(&self.id).args(args).output()
    }

    /// Whether the container still runs, and its first process's host pid.
    pub fn state(&self) -> std::io::Result<(bool, u32)> {
        let output = podman()
            .args(["inspect", "--format", "{{.State.Running}} {{.State.Pid}}"])
            .arg(&self.id)
            .output()?;
        let text = String::from_utf8_lossy(&checked("podman inspect", output)?.stdout).into_owned();
        let mut fields = text.split_whitespace();
        let running = fields.next() == Some("true");
        let pid = fields.next().and_then(|pid| pid.parse().ok()).unwrap_or(0);
        Ok((running, pid))
    }

    /// Everything the container wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        match podman().arg("logs").arg(&self.id).output() {
            Ok(output) => format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => format!("(podman logs failed: {error})"),
        }
    }

    /// `path` inside the container's root file system, seen from the host.
    pub fn path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(path.trim_start_matches('/'))
    }

    /// The heartbeat counter of a [`ContainerSpec::script`] container.
    pub fn heartbeat(&self) -> Option<u64> {
        std::fs::read_to_string(self.path("/tmp/beat"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the heartbeat of a [`ContainerSpec::script`] container moves
    /// within `patience`: its processes are scheduled, not frozen.
    pub fn runs(&self, patience: Duration) -> bool {
        let before = self.heartbeat();
        crate::wait_until(patience, || {
            (self.heartbeat().is_some() && self.heartbeat() != before).then_some(())
        })
        .is_some()
    }

    /// Whether the container's cgroup reports itself frozen.
    pub fn is_frozen(&self) -> bool {
        vigil_cgroup::Hierarchies::detect()
            .is_frozen(&self.cgroup_path)
            .unwrap_or(false)
    }

    /// A TCP listener on 127.0.0.1:`port` inside the container's network
    /// namespace (a `--network=none` container has only loopback): the
    /// socket is made by a thread that enters the namespace, and stays
    /// there after the thread ends. Traffic never leaves that namespace.
    pub fn listen_in_netns(&self, port: u16) -> std::io::Result<std::net::TcpListener> {
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", self.pid))?;
        std::thread::spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            std::net::TcpListener::bind(("127.0.0.1", port))
        })
        .join()
        .map_err(|_| std::io::Error::other("the thread entering the network namespace panicked"))?
    }

    /// An HTTP GET of 127.0.0.1:`port` from inside the container's network
    /// namespace, as a kubelet's HTTP probe reaches a pod: by a thread that
    /// enters the namespace, not by a process of the container. Status and
    /// body, or `None` when nothing answers.
    pub fn http_get_in_netns(
        &self,
        port: u16,
        path: &str,
    ) -> std::io::Result<Option<(u16, String)>> {
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", self.pid))?;
        let path = path.to_owned();
        std::thread::spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            Ok(crate::http_get(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                &path,
            ))
        })
        .join()
        .map_err(|_| std::io::Error::other("the thread entering the network namespace panicked"))?
    }

    /// Waits up to `timeout` for the container to exit.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        crate::wait_until(timeout, || {
            matches!(self.state(), Ok((false, _)) | Err(_)).then_some(())
        })
        .is_some()
    }
}

impl Container {
    /// Removes the container as an operator would (`podman rm --force`),
    /// and fails if the runtime cannot: a container Vigil froze and then
    /// released must stay removable.
    pub fn remove(self) -> std::io::Result<()> {
        let output = podman()
            .args(["rm", "--force", "--time", "0"])
            .arg(&self.id)
            .output()?;
        checked("podman rm --force", output).map(|_| ())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // A frozen container cannot be stopped: thaw it first (both
        // hierarchies; runc on a hybrid host uses the v1 freezer).
        let _ = podman().arg("unpause").arg(&self.id).output();
        let _ = vigil_cgroup::Hierarchies::detect().thaw(&self.cgroup_path, Duration::from_secs(2));
        let _ = podman()
            .args(["rm", "--force", "--time", "0"])
            .arg(&self.id)
            .output();
    }
}

/// Runs `spec` to completion (`podman run --rm`) and returns the runtime's
/// container id with the output.
pub fn run_to_completion(spec: &ContainerSpec) -> std::io::Result<(String, Output)> {
    let pod_uid = spec
        .pod_uid
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let image = match &spec.image {
        Some(image) => image.clone(),
        None => base_image()?,
    };
    let dir = tempfile::tempdir()?;
    let cidfile = dir.path().join("cid");
    let output = podman()
        .args(["run", "--rm"])
        .arg(format!("--cidfile={}", cidfile.display()))
        .arg(format!("--cgroup-parent=kubepods/besteffort/pod{pod_uid}"))
        .args(&spec.run_args)
        .arg(&image)
        .args(&spec.command)
        .output()?;
    let id = std::fs::read_to_string(&cidfile)
        .map(|id| id.trim().to_owned())
        .map_err(|error| {
            std::io::Error::other(format!(
                "podman run wrote no container id ({error}); stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        })?;
    Ok((id, output))
}

/// The base image (`localhost/vigil-base:bookworm`), imported once per
/// machine by `scripts/image-base`.
pub fn base_image() -> std::io::Result<String> {
    static IMAGE: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    let names = IMAGE.get_or_init(|| image_script("scripts/image-base"));
    names
        .clone()
        .and_then(|names| {
            names
                .into_iter()
                .next()
                .ok_or_else(|| "no image name".into())
        })
        .map_err(std::io::Error::other)
}

/// The benign corpus's images, built once per machine by
/// `scripts/image-workloads` (images/workloads/README.md).
#[derive(Clone, Debug)]
pub struct WorkloadImages {
    /// Debian with nginx, redis, PostgreSQL, Python (`/app/.venv`), Node,
    /// cron, git, gcc, make, curl and busybox.
    pub workloads: String,
    /// Only a static binary (`static-server`), as distroless images are.
    pub distroless: String,
}

/// [`WorkloadImages`], built or found in podman's store.
pub fn workload_images() -> std::io::Result<WorkloadImages> {
    static IMAGES: OnceLock<Result<Vec<String>, String>> = OnceLock::new();
    let names = IMAGES
        .get_or_init(|| image_script("scripts/image-workloads"))
        .clone()
        .map_err(std::io::Error::other)?;
    match names.as_slice() {
        [workloads, distroless] => Ok(WorkloadImages {
            workloads: workloads.clone(),
            distroless: distroless.clone(),
        }),
        other => Err(std::io::Error::other(format!(
            "scripts/image-workloads printed {other:?}, not two image names"
        ))),
    }
}

/// Runs an image script of the workspace; the image names it printed.
fn image_script(relative: &str) -> Result<Vec<String>, String> {
    let script = workspace_root().join(relative);
    let output = Command::new(&script)
        .output()
        .map_err(|error| format!("{}: {error}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The workspace's root directory (this crate lives in `lib/testkit`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The unified-hierarchy cgroup of `pid`, relative to the hierarchy root.
pub fn unified_cgroup_of(pid: u32) -> std::io::Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_start_matches('/').to_owned())
        .ok_or_else(|| std::io::Error::other(format!("pid {pid} has no unified cgroup")))
}

fn podman() -> Command {
    let mut command = Command::new("podman");
    // Messages parsed or shown in reports stay in one language.
    command.env("LC_ALL", "C");
    command
}

fn checked(what: &str, output: Output) -> std::io::Result<Output> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(std::io::Error::other(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
