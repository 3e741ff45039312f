//! The binaries: `vigil-anomaly-scorer` refuses a bad configuration with
//! exit 78 naming every key; `vigil-scorer-cli` queries a running scorer.

mod common;

use std::process::{Command, Output};

use common::*;
use vigil_testkit::NatsServer;

const SERVICE: &str = env!("CARGO_BIN_EXE_vigil-anomaly-scorer");
const CLI: &str = env!("CARGO_BIN_EXE_vigil-scorer-cli");

#[test]
fn a_bad_configuration_names_every_key_and_exits_78() {
    let output = Command::new(SERVICE)
        .env("VIGIL_ANOMALY_SCORER__NATS__URL", "http://not-nats")
        .env("VIGIL_ANOMALY_SCORER__PARTITIONS", "[3, 16]")
        .env("VIGIL_ANOMALY_SCORER__WINDOW_EVENTS", "0")
        .output()
        .expect("run vigil-anomaly-scorer");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    for key in ["nats.url", "partitions", "window_events"] {
        assert!(stderr.contains(key), "{key} missing: {stderr}");
    }
}

async fn cli(scorer: &Running, args: &[&str]) -> Output {
    let addr = format!("http://{}", scorer.grpc);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(CLI)
            .arg("--addr")
            .arg(addr)
            .args(args)
            .output()
            .expect("run vigil-scorer-cli")
    })
    .await
    .expect("cli task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_scores_and_reports_unknown_containers() {
    let server = NatsServer::start();
    let bus = bus(&server).await;
    let scorer = Running::start(config(&server)).await;
    let web = Container::new(
        "c0ffee00000000000000000000000000000000000000000000000000000000bb",
        "web-1",
    );
    publish_normal(&bus, &web, 0, 1).await;
    wait_scores(&bus, &web.id, 1).await;

    let found = cli(&scorer, &["get", "--container", &web.id]).await;
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert!(found.status.success(), "{found:?}");
    assert!(
        stdout.contains(&web.id) && stdout.contains("learning"),
        "{stdout}"
    );
    let by_pod = cli(&scorer, &["get", "--namespace", "shop", "--pod", "web-1"]).await;
    assert!(
        String::from_utf8_lossy(&by_pod.stdout).contains(&web.id),
        "{by_pod:?}"
    );

    let missing = cli(&scorer, &["get", "--container", "nope"]).await;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("no score for container"), "{stderr}");

    // Learning windows are not ranked.
    let top = cli(&scorer, &["top"]).await;
    assert!(top.status.success(), "{top:?}");
    assert!(top.stdout.is_empty(), "{top:?}");
    scorer.stop().await;
}

#[test]
fn sigterm_while_nats_is_away_exits_cleanly() {
    let spec =
        vigil_testkit::ServiceSpec::new("vigil-anomaly-scorer").with("GRPC_LISTEN", "127.0.0.1:0");
    let built = std::path::Path::new(SERVICE);
    if let Err(error) = vigil_testkit::Pipeline::sigterm_while_nats_is_away(built, &spec) {
        panic!("{error}");
    }
}
