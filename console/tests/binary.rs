//! The `vigil-console` binary: refuses a bad configuration with exit 78,
//! hashes passwords for the config, and runs as a service (healthy, serving
//! the API, exit 0 on SIGTERM).

use std::{path::Path, process::Command};

use vigil_testkit::{Pipeline, ServiceSpec, http_get};

const BINARY: &str = env!("CARGO_BIN_EXE_vigil-console");

#[test]
fn a_bad_configuration_names_every_key_and_exits_78() {
    let output = Command::new(BINARY)
        .env("VIGIL_CONSOLE__NATS__URL", "http://not-nats")
        .env("VIGIL_CONSOLE__RESPONDER__GRPC_URL", "grpc.local")
        .env(
            "VIGIL_CONSOLE__USERS",
            "[{name=\"ann\", token_sha256=\"abc\"}]",
        )
        .output()
        .expect("run vigil-console");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    for key in ["nats.url", "responder.grpc_url", "users[0].token_sha256"] {
        assert!(stderr.contains(key), "{key} missing: {stderr}");
    }
}

#[test]
fn hash_password_prints_an_argon2_hash() {
    use std::io::Write;
    let mut child = Command::new(BINARY)
        .arg("--hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run vigil-console --hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write password");
    let output = child.wait_with_output().expect("wait");
    let hash = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[test]
fn runs_as_a_service_and_stops_cleanly() {
    let listen = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let addr = listen.local_addr().expect("addr");
    drop(listen);
    let binaries = Path::new(BINARY).parent().expect("target dir");
    let spec = ServiceSpec::new("vigil-console")
        .with("HTTP__LISTEN", &addr.to_string())
        .with("RESPONDER__GRPC_URL", "http://127.0.0.1:9");
    let mut pipeline = Pipeline::start(binaries, "n1", &[spec]).expect("console healthy");
    let (status, body) = http_get(addr, "/api/session").expect("console answers");
    assert_eq!(status, 401, "{body}");
    let console = pipeline.service("vigil-console").expect("running");
    assert!(
        console.metrics().contains("vigil_console_errors_total"),
        "{}",
        console.metrics()
    );
    let exit = console.stop().expect("exited");
    assert!(exit.success(), "{exit}: {}", console.log_text());
}

#[test]
fn sigterm_while_nats_is_away_exits_cleanly() {
    let spec = ServiceSpec::new("vigil-console")
        .with("HTTP__LISTEN", "127.0.0.1:0")
        .with("RESPONDER__GRPC_URL", "http://127.0.0.1:9");
    if let Err(error) = Pipeline::sigterm_while_nats_is_away(Path::new(BINARY), &spec) {
        panic!("{error}");
    }
}
