//! The whole stack as containers from the images `scripts/images` builds:
//! the rendered dev overlay, made podman-ready by `vigil_k8s_checks::podman`
//! (what podman 4.3 cannot play, k8s/README.md "Images"), is played with
//! `podman kube play` on a network of its own, and every pod's readiness
//! probe (NATS's and every service's `/healthz`) must answer 200. The pods
//! that use the Kubernetes API talk to the fake API server (`lib/fake-kube`)
//! through a kubeconfig. Prints the time from `podman kube play` to all
//! ready. Everything is torn down (`podman kube down`, the volume, the
//! network) even when the test fails.
#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use vigil_fake_kube::{FakeKube, Rbac};
use vigil_k8s_checks::podman::{Options, Play, generate};
use vigil_k8s_checks::render::{k8s_dir, render};

/// A subnet no other test uses; the network's gateway is `.1`.
const SUBNET: [u8; 3] = [10, 89, 231];
const NETWORK: &str = "vigil-kube-play";
/// Every service of the dev overlay has started in ~10 s on this machine
/// (debug images); a slow CI machine gets ample room within its budget.
const READY_WITHIN: Duration = Duration::from_secs(150);

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .env("LC_ALL", "C")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("podman {args:?}: {error} (apt-get install podman; scripts/install-deps does)")
        })
}

fn checked(args: &[&str]) -> String {
    let output = podman(args);
    assert!(
        output.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `scripts/images --profile debug --no-build` (the binaries and the front
/// end scripts/test built) and the NATS image; returns the NATS image name.
fn build_images() -> String {
    let script = k8s_dir().join("../scripts/images");
    let output = Command::new(&script)
        .args(["--profile", "debug", "--no-build"])
        .args([
            "vigil-collector",
            "vigil-detectors",
            "vigil-anomaly-scorer",
            "vigil-responder",
            "vigil-console",
            "vigil-forwarder",
            "nats",
        ])
        .output()
        .unwrap_or_else(|error| panic!("{}: {error}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scripts/images failed:\n{stderr}");
    eprint!(
        "{}",
        stderr
            .lines()
            .filter(|l| l.contains("MiB"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .find(|image| image.starts_with("localhost/vigil-nats:"))
        .expect("scripts/images printed no vigil-nats image")
        .to_owned()
}

/// Removes what the play made, whatever happened.
struct Teardown {
    file: PathBuf,
    pods: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let file = self.file.to_string_lossy().into_owned();
        let down = podman(&["kube", "down", &file]);
        if !down.status.success() {
            eprintln!(
                "podman kube down: {}",
                String::from_utf8_lossy(&down.stderr)
            );
        }
        // A pod kube down did not remove (it failed half way) goes now.
        for pod in &self.pods {
            podman(&["pod", "rm", "--force", "--time", "0", pod]);
        }
        for volume in &self.volumes {
            podman(&["volume", "rm", "--force", volume]);
        }
        podman(&["network", "rm", "--force", NETWORK]);
    }
}

/// Forwards connections from every address of the host (the pods reach it
/// on their network's gateway) to the fake API server on loopback.
async fn forward_to(target: SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

fn logs_of(play: &Play, pod: &str) -> String {
    let mut out = String::new();
    for container in play
        .pods
        .iter()
        .filter(|p| p.name == pod)
        .flat_map(|p| &p.readiness)
    {
        let name = format!("{pod}-{}", container.container);
        let logs = podman(&["logs", "--tail", "15", &name]);
        out.push_str(&format!(
            "--- {name}:\n{}{}\n",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_overlay_plays_under_podman_and_every_service_gets_ready() {
    if !vigil_testkit::require_root(
        "the_dev_overlay_plays_under_podman_and_every_service_gets_ready",
    ) {
        return;
    }
    // Another run of this test (another nextest invocation on the same
    // machine) would use the same network, addresses and pod names.
    let lock_path = k8s_dir().join("../target/kube-play.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("locking {}: {error}", lock_path.display()));
    let nats_image = tokio::task::spawn_blocking(build_images).await.unwrap();

    let fake = FakeKube::start(Rbac::allow_all()).await.unwrap();
    let fake_addr: SocketAddr = fake.url().trim_start_matches("http://").parse().unwrap();
    let port = forward_to(fake_addr).await;
    let gateway = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 1);

    let objects = enforcing(render(&k8s_dir().join("overlays/dev")).unwrap());
    let play = generate(
        &objects,
        &Options {
            first_ip: Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10),
            node_name: "vigil-play-node".to_owned(),
            images: vec![("docker.io/library/nats:".to_owned(), nats_image)],
            kube_api_url: Some(format!("http://{gateway}:{port}")),
            default_seccomp: Some(
                std::fs::read_to_string("/usr/share/containers/seccomp.json").unwrap(),
            ),
        },
    )
    .unwrap();
    for change in &play.changes {
        eprintln!("podman-ready file: {change}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil-dev.yaml");
    std::fs::write(&file, &play.yaml).unwrap();
    for (name, profile) in &play.seccomp_profiles {
        std::fs::write(dir.path().join(name), profile).unwrap();
    }

    // What a killed run left would make the create fail (a forced network
    // removal also removes the pods on it).
    podman(&["network", "rm", "--force", NETWORK]);
    for pod in &play.pods {
        podman(&["pod", "rm", "--force", "--time", "0", &pod.name]);
    }
    for volume in &play.volumes {
        podman(&["volume", "rm", "--force", volume]);
    }
    checked(&[
        "network",
        "create",
        "--subnet",
        &format!("{}.{}.{}.0/24", SUBNET[0], SUBNET[1], SUBNET[2]),
        NETWORK,
    ]);
    let teardown = Teardown {
        file: file.clone(),
        pods: play.pods.iter().map(|pod| pod.name.clone()).collect(),
        // Podman 4.3 keeps a volume per ConfigMap after kube down.
        volumes: play
            .volumes
            .iter()
            .cloned()
            .chain(config_maps(&play.yaml))
            .collect(),
    };

    let mut args = vec![
        "kube".to_owned(),
        "play".to_owned(),
        "--network".to_owned(),
        NETWORK.to_owned(),
        "--seccomp-profile-root".to_owned(),
        dir.path().to_string_lossy().into_owned(),
    ];
    for pod in &play.pods {
        args.push("--ip".to_owned());
        args.push(pod.ip.to_string());
    }
    args.push(file.to_string_lossy().into_owned());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        podman(&args)
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "podman kube play failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let played = started.elapsed();

    // Every readiness probe of every pod, polled from the host.
    let mut waiting: Vec<(String, SocketAddr, String)> = play
        .pods
        .iter()
        .flat_map(|pod| {
            pod.readiness.iter().map(|probe| {
                (
                    format!("{}/{}", pod.name, probe.container),
                    SocketAddr::from((pod.ip, probe.port)),
                    probe.path.clone(),
                )
            })
        })
        .collect();
    assert_eq!(waiting.len(), 8, "NATS and seven service pods: {waiting:?}");
    let mut ready_at = Vec::new();
    while !waiting.is_empty() && started.elapsed() < READY_WITHIN {
        let mut still = Vec::new();
        for (name, addr, path) in waiting {
            let answer = tokio::task::spawn_blocking({
                let path = path.clone();
                move || vigil_testkit::http_get(addr, &path)
            })
            .await
            .unwrap();
            match answer {
                Some((200, _)) => ready_at.push((name, started.elapsed())),
                _ => still.push((name, addr, path)),
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    if !waiting.is_empty() {
        let logs: String = waiting
            .iter()
            .map(|(name, _, _)| logs_of(&play, name.split('/').next().unwrap()))
            .collect();
        panic!(
            "not ready {READY_WITHIN:?} after podman kube play: {:?}\n{logs}",
            waiting
                .iter()
                .map(|(name, addr, path)| format!("{name} (http://{addr}{path})"))
                .collect::<Vec<_>>()
        );
    }
    for (name, at) in &ready_at {
        eprintln!("ready: {name} after {:.1} s", at.as_secs_f64());
    }
    let all = ready_at.iter().map(|(_, at)| *at).max().unwrap();
    eprintln!(
        "podman kube play took {:.1} s; every service ready {:.1} s after it began",
        played.as_secs_f64(),
        all.as_secs_f64()
    );

    // The demo's attack in a real container (podman with runc, in a
    // kubepods cgroup): reading /etc/shadow must reach the findings stream,
    // seen by the collector and judged by the detectors running in their
    // images. The command line carries a token, so the finding is this
    // container's and not another test's on the same host.
    //
    // The finding names the runtime's container id: podman 4.3 ignores
    // hostPID, but the kernel gives the event's cgroup id, which the
    // collector maps to a path in the host's cgroupfs its manifest mounts
    // (`cgroup_root`), not in its own cgroup namespace.
    let nats_ip = play
        .pods
        .iter()
        .find(|p| p.name == "vigil-nats")
        .unwrap()
        .ip;
    let password = env_of(&play.yaml, "vigil-console", "VIGIL_NATS_PASSWORD");
    let client = async_nats::ConnectOptions::with_user_and_password("console".into(), password)
        .connect(format!("nats://{nats_ip}:4222"))
        .await
        .unwrap();
    let mut findings = client.subscribe("vigil.findings.>").await.unwrap();
    let mut actions = client.subscribe("vigil.actions.>").await.unwrap();
    client.flush().await.unwrap();
    let token = format!("vigil-kube-play-{}", std::process::id());
    // A heartbeat beside the attack shows whether the container's processes
    // still run once the node's responder has acted.
    let spec = vigil_testkit::ContainerSpec::script(&format!(
        "(while :; do cat /etc/shadow /tmp/{token} > /dev/null 2>&1; pause 1; done) &"
    ));
    let container = tokio::task::spawn_blocking(move || vigil_testkit::Container::start(&spec))
        .await
        .unwrap()
        .unwrap();
    let attack_started = Instant::now();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = futures::StreamExt::next(&mut findings).await {
            let payload = String::from_utf8_lossy(&message.payload).into_owned();
            if payload.contains(&token) && payload.contains("/etc/shadow") {
                return Some((message.subject.to_string(), payload));
            }
        }
        None
    })
    .await;
    let (subject, payload) = match found {
        Ok(Some(found)) => found,
        other => {
            let logs: String = ["vigil-collector", "vigil-detectors"]
                .iter()
                .map(|pod| logs_of(&play, pod))
                .collect();
            panic!(
                "no finding about the container's read of /etc/shadow within 60 s ({:?})\n{logs}",
                other.map(|_| ())
            );
        }
    };
    eprintln!(
        "finding on {subject} {:.1} s after the container started",
        attack_started.elapsed().as_secs_f64(),
    );
    assert!(
        payload.contains(&container.id),
        "the finding names the container's runtime id {}: {payload:?}",
        container.id
    );

    // Contained: the node's responder, running in its image with the
    // privileges its manifest gives, froze the container's cgroup through
    // the host's cgroupfs (`cgroup_root`) and recorded it.
    let action = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = futures::StreamExt::next(&mut actions).await {
            if message.subject.as_str().ends_with(".succeeded") {
                return Some(message.subject.to_string());
            }
        }
        None
    })
    .await;
    let container = tokio::task::spawn_blocking(move || {
        let stopped = vigil_testkit::wait_until(Duration::from_secs(30), || {
            (!container.runs(Duration::from_secs(1))).then_some(())
        });
        (container, stopped.is_some())
    })
    .await
    .unwrap();
    let (container, frozen) = container;
    if !frozen || !matches!(action, Ok(Some(_))) {
        let logs = logs_of(&play, "vigil-responder-node");
        panic!("the container was not contained (frozen {frozen}, action {action:?}):\n{logs}");
    }
    eprintln!(
        "contained {:.1} s after the container started ({:?})",
        attack_started.elapsed().as_secs_f64(),
        action
    );
    tokio::task::spawn_blocking(move || drop(container))
        .await
        .unwrap();
    drop(teardown);
    drop(lock);
}

/// The value of env variable `name` in the play's pod `pod` (each document
/// of the file is one JSON line).
fn env_of(yaml: &str, pod: &str, name: &str) -> String {
    yaml.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|doc| doc["kind"] == "Pod" && doc["metadata"]["name"] == pod)
        .flat_map(|doc| {
            doc["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .find(|var| var["name"] == name)
        .and_then(|var| var["value"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("pod {pod} has no env {name}"))
}

/// Names of the ConfigMaps in the play's file.
fn config_maps(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|doc| doc["kind"] == "ConfigMap")
        .filter_map(|doc| doc["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// The shipped response policy records dry runs only; an operator turns
/// enforcement on (k8s/README.md), as this test does for everything.
fn enforcing(mut objects: Vec<vigil_k8s_checks::Object>) -> Vec<vigil_k8s_checks::Object> {
    const SHIPPED: &str = "enforce: { namespaces: [], pod_labels: {} }";
    let mut patched = 0;
    for object in objects.iter_mut().filter(|o| o.kind == "ConfigMap") {
        let Some(data) = object.value.get_mut("data").and_then(|d| d.as_object_mut()) else {
            continue;
        };
        for text in data.values_mut() {
            if let Some(policy) = text.as_str().filter(|t| t.contains(SHIPPED)) {
                *text =
                    serde_json::Value::String(policy.replace(SHIPPED, "enforce: { all: true }"));
                patched += 1;
            }
        }
    }
    assert!(
        patched > 0,
        "no ConfigMap holds the shipped policy's `{SHIPPED}`"
    );
    objects
}
