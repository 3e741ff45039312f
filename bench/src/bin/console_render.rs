//! The console's feed with 10,000 findings loaded, in Debian's Chromium
//! (headless, playwright-core; console/web/bench/render.mjs): page load until
//! every finding is counted and rows are drawn, one scroll step to the next
//! painted frame (quantised by the frame interval), the main-thread work of
//! one scroll step (Chrome's TaskDuration), a priority filter change, a
//! free-text search, and opening the ATT&CK view and the charts.
//!
//! Baseline, same run: the same measurements with 100 findings, so a ratio
//! near 1 for scroll says the virtualised list does not grow with the feed.
//! Needs the built front end (`npm --prefix console/web ci && npm --prefix
//! console/web run build`).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use prost::Message;
use vigil_bench::{Report, results_path};
use vigil_bus::{async_nats, subject};
use vigil_proto::v1::{Event, Finding, Priority};
use vigil_testkit::{Pipeline, ServiceSpec};

const LOADED: usize = 10_000;
const BASELINE: usize = 100;
const PASSWORD: &str = "bench-password";

#[derive(serde::Deserialize, Debug)]
struct Timings {
    load: f64,
    scroll: f64,
    #[serde(rename = "scrollWork")]
    scroll_work: f64,
    filter: f64,
    search: f64,
    attack: f64,
    charts: f64,
    rows: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let web = root.join("console/web");
    if !web.join("dist/index.html").is_file() || !web.join("node_modules").is_dir() {
        bail!(
            "console/web is not built: run `npm --prefix console/web ci && npm --prefix console/web run build`"
        );
    }
    let binaries = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_owned();
    let hash = hash_password(&binaries.join("vigil-console"))?;
    let baseline = measure(&binaries, &web, &hash, BASELINE).await?;
    let loaded = measure(&binaries, &web, &hash, LOADED).await?;
    println!("{BASELINE} findings: {baseline:?}\n{LOADED} findings: {loaded:?}");

    let mut report = Report::default();
    report.add_with_baseline("console_feed_load_10k_ms", loaded.load, "ms", baseline.load);
    report.add_with_baseline(
        "console_feed_scroll_frame_10k_ms",
        loaded.scroll,
        "ms",
        baseline.scroll,
    );
    report.add_with_baseline(
        "console_feed_scroll_work_10k_ms",
        loaded.scroll_work,
        "ms",
        baseline.scroll_work,
    );
    report.add_with_baseline(
        "console_feed_filter_10k_ms",
        loaded.filter,
        "ms",
        baseline.filter,
    );
    report.add_with_baseline(
        "console_feed_search_10k_ms",
        loaded.search,
        "ms",
        baseline.search,
    );
    report.add_with_baseline(
        "console_attack_view_10k_ms",
        loaded.attack,
        "ms",
        baseline.attack,
    );
    report.add_with_baseline(
        "console_charts_view_10k_ms",
        loaded.charts,
        "ms",
        baseline.charts,
    );
    report.add("console_feed_rows_in_dom_10k", loaded.rows as f64, "rows");
    report.write(&results_path())?;
    Ok(())
}

fn hash_password(console: &Path) -> Result<String> {
    let mut child = Command::new(console)
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run vigil-console --hash-password")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// A console with `count` findings loaded, measured in the browser.
async fn measure(binaries: &Path, web: &Path, hash: &str, count: usize) -> Result<Timings> {
    let http = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let users = format!("[{{name=\"bench\", role=\"read-only\", password_hash=\"{hash}\"}}]");
    let console = ServiceSpec::new("vigil-console")
        .with("HTTP__LISTEN", &http.to_string())
        .with("HTTP__WEB_DIR", &web.join("dist").display().to_string())
        .with("USERS", &users);
    let pipeline =
        Pipeline::start(binaries, "bench-node", &[console]).map_err(|e| anyhow::anyhow!(e))?;
    let client = async_nats::connect(pipeline.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    publish_findings(&js, count).await?;

    let output = Command::new("node")
        .arg(web.join("bench/render.mjs"))
        .current_dir(web)
        .env("CONSOLE_URL", format!("http://{http}/"))
        .env("CONSOLE_FINDINGS", count.to_string())
        .env("BENCH_PASSWORD", PASSWORD)
        .stderr(Stdio::inherit())
        .output()
        .context("run node console/web/bench/render.mjs")?;
    if !output.status.success() {
        bail!("render.mjs failed ({})", output.status);
    }
    let line = String::from_utf8(output.stdout)?;
    serde_json::from_str(line.trim()).with_context(|| format!("render.mjs printed {line:?}"))
}

async fn publish_findings(js: &async_nats::jetstream::Context, count: usize) -> Result<()> {
    let priorities = [
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
    ];
    let mut pending = Vec::new();
    for i in 0..count {
        let priority = priorities[i % priorities.len()];
        let namespace = format!("ns-{}", i % 7);
        let finding = Finding {
            id: format!("bench-{i}"),
            time_ns: vigil_service::clock::wall_ns() + i as u64 * 1_000,
            name: format!("Rule {}", i % 25),
            priority: priority as i32,
            tags: vec![
                "process".into(),
                format!("mitre_tactic_{}", i % 5),
                format!("T1{:03}", i % 30),
            ],
            output: format!("Something suspicious happened (proc=sh pid={i} file=/etc/shadow)"),
            namespace: namespace.clone(),
            pod: format!("pod-{}", i % 40),
            node: "bench-node".into(),
            events: vec![Event {
                pid: i as u32,
                comm: "sh".into(),
                exe_path: "/bin/sh".into(),
                cmdline: vec!["sh".into(), "-c".into(), "cat /etc/shadow".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let subject = subject::findings(priority, &namespace);
        pending.push(js.publish(subject, finding.encode_to_vec().into()).await?);
        if pending.len() >= 500 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    Ok(())
}
