//! The console in a real browser (Debian's Chromium, headless, driven by
//! playwright-core from console/web/tests/browser.mjs) against the real
//! pipeline pieces as processes: nats-server, `vigil-responder` (cluster
//! mode, its gRPC API, a fake Kubernetes API server) and `vigil-console`.
//!
//! A finding published on NATS must appear in the live feed (and raise a
//! browser notification: it is critical); search, filters and export of the
//! filtered view, shareable links, the finding's detail, the ATT&CK view with
//! its drill-down, the charts, and not-found views for unknown links; a
//! rehearsed (dry-run) quarantine must read as dry-run, never as contained,
//! in the incident and the list; a click on quarantine must produce an
//! action record on the actions stream (and the quarantine label on the
//! pod); a read-only user must not be able to quarantine. Screenshots go to target/console-screenshots/.
#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed step should panic with its cause"
)]

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{cheap_hash, finding, next_on, publish_finding};
use k8s_openapi::api::core::v1::Pod;
use vigil_bus::{async_nats, topology};
use vigil_proto::v1::{ActionKind, ActionOutcome, ActionRecord, Priority};
use vigil_testkit::{Pipeline, ServiceSpec};

const ANN_PASSWORD: &str = "ann-browser-pw";
const ROB_PASSWORD: &str = "rob-browser-pw";

fn web() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// The front end must have been built (scripts/test runs `npm ci` and
/// `npm run build` in console/web first); this is a failure, not a skip.
fn check_front_end() {
    let web = web();
    assert!(
        web.join("dist/index.html").is_file() && web.join("node_modules/playwright-core").is_dir(),
        "console/web is not built: run `npm --prefix console/web ci && npm --prefix console/web run build` (scripts/test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "/usr/bin/chromium missing: scripts/install-deps installs Debian's chromium package"
    );
}

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn users_setting() -> String {
    format!(
        "[{{name=\"ann\", role=\"responder\", password_hash=\"{}\"}}, {{name=\"rob\", role=\"read-only\", password_hash=\"{}\"}}]",
        cheap_hash(ANN_PASSWORD),
        cheap_hash(ROB_PASSWORD)
    )
}

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": "browser-node", "containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap()
}

/// A policy whose automatic rule never matches the test's finding, so the
/// only action is the one the click asks for.
fn policy_file(dir: &Path) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        "rate_limits:\n  per_pod: { max: 5, per_seconds: 60 }\n  global: { max: 50, per_seconds: 60 }\nmax_finding_age_seconds: 600\nrules:\n  - name: only-emergencies\n    match: { min_priority: emergency }\n    actions: [{ kind: quarantine }]\n",
    )
    .unwrap();
    path
}

struct Browser {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdin: std::process::ChildStdin,
}

impl Browser {
    fn start(url: &str, screenshots: &Path) -> Self {
        let mut child = Command::new("node")
            .arg(web().join("tests/browser.mjs"))
            .current_dir(web())
            .env("CONSOLE_URL", url)
            .env("SCREENSHOT_DIR", screenshots)
            .env("ANN_PASSWORD", ANN_PASSWORD)
            .env("ROB_PASSWORD", ROB_PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node (Node.js 20 is on the machine)");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stdin,
        }
    }

    /// Waits for the script to print `expected` (as the start of a line).
    fn expect(&mut self, expected: &str, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(expected) => return Instant::now(),
                Ok(_) => continue,
                Err(_) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "the browser script never printed {expected:?} (exit {status:?}; its stderr is above)"
                    );
                }
            }
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_shows_findings_live_and_quarantines() {
    check_front_end();
    let fake = vigil_fake_kube::FakeKube::start(vigil_fake_kube::Rbac::allow_all())
        .await
        .unwrap();
    fake.put_pod(&pod("shop", "web-1")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_addr();
    let http = free_addr();
    let responder = ServiceSpec::new("vigil-responder")
        .with("MODE", "cluster")
        .with("KUBE__ENABLED", "true")
        .with("KUBE__API_URL", &fake.url())
        .with("GRPC__LISTEN", &grpc.to_string())
        .with(
            "POLICY_FILE",
            &policy_file(dir.path()).display().to_string(),
        );
    let console = ServiceSpec::new("vigil-console")
        .with("HTTP__LISTEN", &http.to_string())
        .with("HTTP__WEB_DIR", &web().join("dist").display().to_string())
        .with("RESPONDER__GRPC_URL", &format!("http://{grpc}"))
        .with("USERS", &users_setting());
    let binaries = vigil_testkit::binary("vigil-responder")
        .parent()
        .unwrap()
        .to_path_buf();
    let pipeline = tokio::task::spawn_blocking(move || {
        Pipeline::start(&binaries, "browser-node", &[responder, console])
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));
    let client = async_nats::connect(pipeline.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);

    let screenshots =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    let url = format!("http://{http}/");
    let mut browser = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::start(&url, &screenshots);
        browser.expect("READY", Duration::from_secs(60));
        browser
    })
    .await
    .unwrap();

    let mut critical = finding("f-browser", "shop", "web-1", Priority::Critical);
    critical.tags.push("T1003.008".into());
    critical
        .output_fields
        .insert("fd.name".into(), "/etc/shadow".into());
    let published = Instant::now();
    publish_finding(&js, &critical).await;
    browser.send("PUBLISHED f-browser");
    let (mut browser, seen) = tokio::task::spawn_blocking(move || {
        let seen = browser.expect("SEEN f-browser", Duration::from_secs(10));
        (browser, seen)
    })
    .await
    .unwrap();
    let latency = seen - published;
    eprintln!("finding published -> visible in the feed: {latency:?}");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");

    let mut browser = tokio::task::spawn_blocking(move || {
        browser.expect("QUARANTINED", Duration::from_secs(60));
        browser
    })
    .await
    .unwrap();
    let quarantine = |dry_run: bool| {
        next_on::<ActionRecord>(&js, &topology::ACTIONS, move |a| {
            a.kind == ActionKind::Quarantine as i32 && a.pod == "web-1" && a.dry_run == dry_run
        })
    };
    let rehearsal = quarantine(true)
        .await
        .expect("the dry run's record on the actions stream");
    assert_eq!(rehearsal.outcome(), ActionOutcome::DryRun, "{rehearsal:?}");
    let record = quarantine(false)
        .await
        .expect("an action record on the actions stream");
    assert_eq!(record.outcome(), ActionOutcome::Succeeded, "{record:?}");
    assert_eq!(record.requested_by, "ann");
    let labels = fake
        .pod("shop", "web-1")
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default();
    assert!(
        labels.keys().any(|k| k.contains("quarantine")),
        "the pod carries the quarantine label: {labels:?}"
    );

    let status = tokio::task::spawn_blocking(move || {
        browser.expect("VIEWS-OK", Duration::from_secs(60));
        browser.expect("READONLY-OK", Duration::from_secs(30));
        browser.child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "browser script exited {status}");
    drop(pipeline);
}
