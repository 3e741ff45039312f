//! A pod-like sandbox: what a kubelet would create for one container,
//! without Kubernetes. A kubepods-style cgroup
//! (`kubepods/besteffort/pod<uid>/<container id>`) in the unified hierarchy
//! and in the v1 freezer where the host has one; processes started in it
//! also get their own network and mount namespaces.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use vigil_cgroup::Hierarchies;

/// A sandbox, torn down on drop: thawed, its processes killed, its cgroups removed.
pub struct PodSandbox {
    pub pod_uid: String,
    pub container_id: String,
    /// Cgroup path relative to the hierarchy roots.
    pub cgroup_path: String,
    pub hierarchies: Hierarchies,
    dirs: Vec<PathBuf>,
}

impl PodSandbox {
    /// Creates the cgroups. Needs root.
    pub fn create() -> std::io::Result<Self> {
        Self::create_in(Hierarchies::detect())
    }

    pub fn create_in(hierarchies: Hierarchies) -> std::io::Result<Self> {
        let pod_uid = uuid::Uuid::new_v4().to_string();
        let container_id = crate::random_container_id();
        let cgroup_path = format!("kubepods/besteffort/pod{pod_uid}/{container_id}");
        let mut dirs = Vec::new();
        for root in [hierarchies.unified.clone(), hierarchies.freezer_v1.clone()]
            .into_iter()
            .flatten()
        {
            let dir = root.join(&cgroup_path);
            std::fs::create_dir_all(&dir)?;
            dirs.push(dir);
        }
        if dirs.is_empty() {
            return Err(std::io::Error::other(
                "no cgroup hierarchy found under /sys/fs/cgroup",
            ));
        }
        Ok(Self {
            pod_uid,
            container_id,
            cgroup_path,
            hierarchies,
            dirs,
        })
    }

    /// A command that runs `program args…` inside the sandbox: it joins the
    /// cgroups first, then new network and mount namespaces, then execs.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let joins: Vec<String> = self
            .dirs
            .iter()
            .map(|dir| format!("echo $$ > {}", dir.join("cgroup.procs").display()))
            .collect();
        let script = format!(
            "{} && exec unshare --net --mount --propagation private -- \"$@\"",
            joins.join(" && ")
        );
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(script)
            .arg("vigil-sandbox")
            .arg(program)
            .args(args);
        command
    }

    /// Spawns `program args…` inside the sandbox.
    pub fn spawn(&self, program: &str, args: &[&str]) -> std::io::Result<Child> {
        self.command(program, args).spawn()
    }

    /// Pids currently in the sandbox's unified (or only) cgroup.
    pub fn pids(&self) -> Vec<u32> {
        self.dirs
            .first()
            .and_then(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Whether the sandbox's cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        self.hierarchies
            .is_frozen(&self.cgroup_path)
            .unwrap_or(false)
    }
}

impl Drop for PodSandbox {
    fn drop(&mut self) {
        let timeout = Duration::from_secs(2);
        // Thaw both hierarchies: a frozen task cannot die.
        let _ = self.hierarchies.thaw(&self.cgroup_path, timeout);
        if let Some(dir) = self.hierarchies.freezer_dir(&self.cgroup_path) {
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
        }
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in &self.dirs {
            // Remove the container cgroup, then the now empty pod and qos levels.
            let mut current = Some(dir.as_path());
            for _ in 0..3 {
                let Some(path) = current else { break };
                if std::fs::remove_dir(path).is_err() {
                    break;
                }
                current = path.parent();
            }
        }
    }
}
