//! 200 concurrent failed logins against the real `vigil-console` process,
//! whose user has a password hash at the default argon2 cost (19 MiB per
//! check): first from one address (the rate limit answers 429 with
//! Retry-After), then from 200 addresses (the bound on checks running at
//! once keeps memory flat). The process's peak resident memory stays under
//! 256 MiB, and a correct login from an address that did not attack still
//! succeeds afterwards.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::http_from;
use vigil_testkit::{NatsServer, http_get, wait_until};

const BINARY: &str = env!("CARGO_BIN_EXE_vigil-console");
const ATTACKERS: usize = 200;
const BURST: usize = 5;
const PEAK_LIMIT_KIB: u64 = 256 * 1024;

struct Console {
    child: Child,
    http: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

fn start_console(nats: &NatsServer, password_hash: &str) -> Console {
    let (http, admin) = (free_addr(), free_addr());
    let users =
        format!("[{{name=\"ann\", role=\"responder\", password_hash=\"{password_hash}\"}}]");
    let child = Command::new(BINARY)
        .env("VIGIL_CONSOLE__NATS__URL", nats.url())
        .env("VIGIL_CONSOLE__HTTP__LISTEN", http.to_string())
        .env("VIGIL_CONSOLE__ADMIN__LISTEN", admin.to_string())
        .env("VIGIL_CONSOLE__USERS", users)
        .env("VIGIL_CONSOLE__HTTP__LOGIN__BURST", BURST.to_string())
        // One attempt a minute regained: the attack's answers are exact.
        .env("VIGIL_CONSOLE__HTTP__LOGIN__ATTEMPTS_PER_MINUTE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vigil-console");
    let console = Console { child, http, admin };
    let up = wait_until(Duration::from_secs(60), || {
        http_get(console.http, "/api/session").filter(|(status, _)| *status == 401)
    });
    assert!(up.is_some(), "vigil-console did not start serving");
    console
}

/// A line of `/proc/<pid>/status` in KiB (`VmHWM`: peak resident memory).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// Failed logins from `sources`, all at once; the answers' status codes and
/// Retry-After values, and how long they took.
async fn attack(addr: SocketAddr, sources: &[Ipv4Addr]) -> (Vec<(u16, Option<u64>)>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let body = format!(r#"{{"username":"ann","password":"guess-{i}"}}"#);
            let source = *source;
            tokio::spawn(async move {
                let answer = http_from(source, addr, "POST", "/api/login", Some(&body)).await;
                let retry = answer.header("retry-after").map(|v| {
                    v.parse::<u64>()
                        .unwrap_or_else(|_| panic!("Retry-After {v:?} is not whole seconds"))
                });
                (answer.status, retry)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("attacker task"));
    }
    (answers, started.elapsed())
}

fn count(answers: &[(u16, Option<u64>)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

fn assert_only_refusals(answers: &[(u16, Option<u64>)]) {
    for (status, retry) in answers {
        match status {
            401 => {}
            429 => assert!(
                retry.is_some_and(|s| s >= 1),
                "429 without a Retry-After of at least 1 s"
            ),
            other => panic!("a failed login answered {other}"),
        }
    }
}

async fn correct_login(source: Ipv4Addr, addr: SocketAddr) {
    let body = r#"{"username":"ann","password":"right password"}"#;
    let answer = http_from(source, addr, "POST", "/api/login", Some(body)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["user"], "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_failed_logins_are_refused_in_bounded_memory() {
    let nats = NatsServer::start();
    let hash = vigil_console::auth::hash_password("right password").expect("hash");
    assert!(hash.contains("m=19456"), "the default cost: {hash}");
    let console = start_console(&nats, &hash);
    let pid = console.child.id();

    // One address: its first attempts are checked, the rest refused at once.
    let one = vec![Ipv4Addr::new(127, 0, 0, 1); ATTACKERS];
    let (answers, took) = attack(console.http, &one).await;
    assert_only_refusals(&answers);
    let (checked, refused) = (count(&answers, 401), count(&answers, 429));
    let regained = (took.as_secs() / 60) as usize;
    assert!(
        (BURST..=BURST + regained).contains(&checked),
        "{checked} attempts checked"
    );
    assert_eq!(checked + refused, ATTACKERS);
    eprintln!(
        "one address: {ATTACKERS} logins answered in {took:?} ({:.1}/s): {checked} checked, {refused} × 429; VmHWM {} KiB",
        ATTACKERS as f64 / took.as_secs_f64(),
        memory_kib(pid, "VmHWM")
    );
    correct_login(Ipv4Addr::new(127, 0, 0, 2), console.http).await;

    // Two hundred addresses: the rate limit does not apply, the bound on
    // checks running at once does.
    let many: Vec<Ipv4Addr> = (0..ATTACKERS)
        .map(|i| Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8))
        .collect();
    let (answers, took) = attack(console.http, &many).await;
    assert_only_refusals(&answers);
    let checked = count(&answers, 401);
    eprintln!(
        "{ATTACKERS} addresses: answered in {took:?} ({:.1}/s): {checked} checked ({:.1} checks/s), {} × 429; VmHWM {} KiB",
        ATTACKERS as f64 / took.as_secs_f64(),
        checked as f64 / took.as_secs_f64(),
        count(&answers, 429),
        memory_kib(pid, "VmHWM")
    );
    correct_login(Ipv4Addr::new(127, 0, 0, 3), console.http).await;

    let peak = memory_kib(pid, "VmHWM");
    assert!(
        peak < PEAK_LIMIT_KIB,
        "peak resident memory {peak} KiB, limit {PEAK_LIMIT_KIB}"
    );
    let (_, metrics) = http_get(console.admin, "/metrics").expect("metrics");
    for error_type in ["rate_limited", "unauthenticated"] {
        assert!(
            metrics.contains(&format!("error_type=\"{error_type}\"")),
            "{error_type} not counted:\n{metrics}"
        );
    }
}
