//! The console's API against a real nats-server: access control, bad
//! requests, findings reaching the API and the live stream, incident state
//! in the KV bucket shared between consoles, quarantine through the
//! responder's gRPC API, and the audit trail.

mod common;

use std::time::Duration;

use common::*;
use prost::Message;
use sha2::Digest;
use vigil_bus::{subject, topology};
use vigil_proto::v1::{
    ActionKind, ActionRecord, AuditRecord, IncidentState, IncidentStatus, Priority,
};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn nobody_reads_or_acts_without_the_right_credentials() {
    let console = start().await;
    let addr = console.addr;
    publish_finding(
        &console.js,
        &finding("f-auth", "shop", "web-1", Priority::Critical),
    )
    .await;

    let anonymous = http(addr, "GET", "/api/findings", &[], None).await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous.error().contains("not logged in"),
        "{}",
        anonymous.body
    );
    let stream = http(addr, "GET", "/api/stream", &[], None).await;
    assert_eq!(stream.status, 401);

    let wrong = http(
        addr,
        "POST",
        "/api/login",
        &[],
        Some(r#"{"username":"ann","password":"guess"}"#),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.error().contains("wrong password"), "{}", wrong.body);

    let bearer = format!("Bearer {READER_TOKEN}");
    let reader = http(
        addr,
        "GET",
        "/api/incidents",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(reader.status, 200, "{}", reader.body);
    let bad_token = http(
        addr,
        "GET",
        "/api/incidents",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .await;
    assert_eq!(bad_token.status, 401);

    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    assert!(ann.cookie.starts_with("vigil_session="));
    wait_for_finding(addr, &ann, "f-auth").await;
    let path = "/api/incidents/shop.web-1/acknowledge";

    // The read-only role is refused, by token and by session.
    let by_token = http(
        addr,
        "POST",
        path,
        &[("Authorization", &bearer)],
        Some("{}"),
    )
    .await;
    assert_eq!(by_token.status, 403);
    assert!(
        by_token.error().contains("rob has role read-only"),
        "{}",
        by_token.body
    );
    let rob = login(addr, "rob", "rob-password").await;
    let by_session = rob.post(addr, path, "{}").await;
    assert_eq!(by_session.status, 403, "{}", by_session.body);

    // A cookie without the CSRF token (what a forged cross-site form sends) is refused.
    let forged = http(addr, "POST", path, &[("Cookie", &ann.cookie)], Some("{}")).await;
    assert_eq!(forged.status, 403);
    assert!(forged.error().contains("X-CSRF-Token"), "{}", forged.body);
    let wrong_csrf = http(
        addr,
        "POST",
        path,
        &[("Cookie", &ann.cookie), ("X-CSRF-Token", "00")],
        Some("{}"),
    )
    .await;
    assert_eq!(wrong_csrf.status, 403);
    let allowed = ann.post(addr, path, "{}").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    // Logged out sessions are gone.
    let out = ann.post(addr, "/api/logout", "").await;
    assert_eq!(out.status, 204);
    assert_eq!(ann.get(addr, "/api/findings").await.status, 401);
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_naming_the_problem() {
    let console = start().await;
    let addr = console.addr;
    publish_finding(
        &console.js,
        &finding("f-bad", "shop", "web-1", Priority::Warning),
    )
    .await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    wait_for_finding(addr, &ann, "f-bad").await;

    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/api/login", "{\"username\":", 400, "request body"),
        (
            "POST",
            "/api/login",
            r#"{"username":"ann"}"#,
            400,
            "password",
        ),
        (
            "GET",
            "/api/findings?priority=loud",
            "",
            400,
            "priority: \"loud\"",
        ),
        ("GET", "/api/findings?limit=many", "", 400, "limit"),
        ("GET", "/api/findings?colour=red", "", 400, "colour"),
        (
            "GET",
            "/api/incidents/shop.nope",
            "",
            404,
            "no incident \"shop.nope\"",
        ),
        (
            "POST",
            "/api/incidents/shop.web-1/comment",
            "{}",
            400,
            "text: must not be empty",
        ),
        (
            "POST",
            "/api/incidents/shop.web-1/comment",
            r#"{"txt":"hi"}"#,
            400,
            "txt",
        ),
        (
            "POST",
            "/api/incidents/shop.web-1/assign",
            r#"{"assignee":"mallory"}"#,
            400,
            "\"mallory\" is not a configured user",
        ),
        (
            "POST",
            "/api/incidents/shop.web-1/false-positive",
            "{}",
            400,
            "reason: must not be empty",
        ),
        (
            "POST",
            "/api/incidents/shop.web-1/explode",
            "{}",
            404,
            "no workflow step \"explode\"",
        ),
        (
            "POST",
            "/api/incidents/shop.nope/resolve",
            "{}",
            404,
            "no incident",
        ),
        (
            "GET",
            "/api/nothing/here",
            "",
            404,
            "no API endpoint /api/nothing/here",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let answer = if *method == "GET" {
            ann.get(addr, path).await
        } else if *path == "/api/login" {
            http(addr, method, path, &[], Some(body)).await
        } else {
            ann.post(addr, path, body).await
        };
        assert_eq!(
            answer.status, *status,
            "{method} {path} {body}: {}",
            answer.body
        );
        assert!(
            answer.error().contains(message),
            "{method} {path}: {:?} lacks {message:?}",
            answer.error()
        );
    }
    let filtered = ann.get(addr, "/api/findings?priority=critical").await;
    assert_eq!(
        filtered.json().as_array().map(Vec::len),
        Some(0),
        "warning is below critical"
    );
}

#[tokio::test]
async fn a_published_finding_reaches_the_api_and_the_live_stream() {
    let console = start().await;
    let addr = console.addr;
    // Published before the browser connects: replayed from the stream.
    publish_finding(
        &console.js,
        &finding("f-old", "shop", "web-1", Priority::Warning),
    )
    .await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    let old = wait_for_finding(addr, &ann, "f-old").await;
    assert_eq!(old["incident_id"], "shop.web-1");
    assert_eq!(old["tactics"][0], "credential_access");
    assert_eq!(old["ancestors"][0]["comm"], "sh");

    let mut live = Sse::open(addr, &ann.cookie).await;
    let hello = live
        .find("hello", WAIT, |_| true)
        .await
        .expect("hello event");
    assert_eq!(hello["user"], "ann");
    publish_finding(
        &console.js,
        &finding("f-new", "shop", "web-1", Priority::Critical),
    )
    .await;
    let seen = live
        .find("finding", WAIT, |f| f["id"] == "f-new")
        .await
        .expect("live finding");
    assert_eq!(seen["priority"], "critical");
    let incident = live
        .find("incident", WAIT, |i| i["id"] == "shop.web-1")
        .await
        .expect("incident update");
    assert_eq!(incident["findings"], 2);
    assert_eq!(incident["max_priority"], "critical");

    let detail = ann.get(addr, "/api/incidents/shop.web-1").await.json();
    assert_eq!(detail["timeline"].as_array().map(Vec::len), Some(2));
    let root = &detail["process_tree"][0];
    assert_eq!(root["process"]["comm"], "containerd-shim");
    assert_eq!(
        root["children"][0]["children"][0]["process"]["cmdline"][2],
        "/etc/shadow"
    );
}

#[tokio::test]
async fn an_unparseable_finding_is_counted_and_shown() {
    let console = start().await;
    let addr = console.addr;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    let mut live = Sse::open(addr, &ann.cookie).await;
    live.find("hello", WAIT, |_| true).await.expect("hello");
    let subject = subject::findings(Priority::Critical, "shop");
    console
        .js
        .publish(subject, vec![0xff, 0xff, 0xff].into())
        .await
        .unwrap()
        .await
        .unwrap();

    let shown = live
        .find("malformed", WAIT, |_| true)
        .await
        .expect("malformed event");
    assert_eq!(shown["stream"], "VIGIL_FINDINGS");
    assert!(
        shown["error"]
            .as_str()
            .unwrap_or("")
            .contains("malformed Finding"),
        "{shown}"
    );
    let listed = ann.get(addr, "/api/malformed").await.json();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["recent"][0]["sequence"], 1);
    // The good finding after it still arrives.
    publish_finding(
        &console.js,
        &finding("f-good", "shop", "web-1", Priority::Critical),
    )
    .await;
    wait_for_finding(addr, &ann, "f-good").await;
}

#[tokio::test]
async fn incident_workflow_state_lives_in_kv_and_is_shared_live() {
    let console = start().await;
    let addr = console.addr;
    publish_finding(
        &console.js,
        &finding("f-wf", "shop", "web-1", Priority::Error),
    )
    .await;
    // A second console on the same bus sees every change.
    let config = console_config(&console.nats.url(), "http://127.0.0.1:9").await;
    let other = start_console(config, &console.shutdown).await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    let rob = login(other, "rob", "rob-password").await;
    wait_for_finding(addr, &ann, "f-wf").await;
    wait_for_finding(other, &rob, "f-wf").await;
    let mut rob_live = Sse::open(other, &rob.cookie).await;
    rob_live.find("hello", WAIT, |_| true).await.expect("hello");

    let base = "/api/incidents/shop.web-1";
    for (step, body) in [
        ("acknowledge", "{}"),
        ("assign", r#"{"assignee":"rob"}"#),
        ("comment", r#"{"text":"backup job, checking"}"#),
        (
            "false-positive",
            r#"{"reason":"nightly backup reads /etc/shadow"}"#,
        ),
    ] {
        let answer = ann.post(addr, &format!("{base}/{step}"), body).await;
        assert_eq!(answer.status, 200, "{step}: {}", answer.body);
    }

    let kv = console
        .js
        .get_key_value(topology::INCIDENTS_BUCKET.name)
        .await
        .unwrap();
    let stored = kv.get("shop.web-1").await.unwrap().expect("state in KV");
    let state = IncidentState::decode(stored.as_ref()).unwrap();
    assert_eq!(state.status(), IncidentStatus::FalsePositive);
    assert_eq!(state.assignee, "rob");
    assert_eq!(state.comments[0].user, "ann");
    assert_eq!(state.comments[0].text, "backup job, checking");
    assert_eq!(state.updated_by, "ann");
    assert!(
        state
            .proposed_change
            .contains("- rule: \"Read sensitive file untrusted\""),
        "{}",
        state.proposed_change
    );
    assert!(
        state
            .proposed_change
            .contains("[\"shop\", \"/usr/bin/tail\"]"),
        "{}",
        state.proposed_change
    );

    let update = rob_live
        .find("incident", WAIT, |i| {
            i["state"]["status"] == "false_positive"
        })
        .await
        .expect("the other console pushes the change live");
    assert_eq!(update["state"]["assignee"], "rob");
    let seen = rob.get(other, base).await.json();
    assert_eq!(
        seen["incident"]["state"]["comments"][0]["text"],
        "backup job, checking"
    );

    let audit = next_on::<AuditRecord>(&console.js, &topology::AUDIT, |a| {
        a.step == "false_positive"
    })
    .await
    .expect("audit record");
    assert_eq!(audit.user, "ann");
    assert_eq!(audit.incident_id, "shop.web-1");
    assert_eq!(audit.detail, "nightly backup reads /etc/shadow");
    let assign = next_on::<AuditRecord>(&console.js, &topology::AUDIT, |a| a.step == "assign")
        .await
        .expect("assign audited");
    assert_eq!(assign.detail, "rob");
}

#[tokio::test]
async fn quarantine_goes_through_the_responder_and_is_recorded() {
    let console = start().await;
    let addr = console.addr;
    publish_finding(
        &console.js,
        &finding("f-q", "shop", "web-1", Priority::Critical),
    )
    .await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    wait_for_finding(addr, &ann, "f-q").await;

    let answer = ann
        .post(
            addr,
            "/api/incidents/shop.web-1/quarantine",
            r#"{"reason":"shadow read"}"#,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["actions"][0]["kind"], "quarantine");
    assert_eq!(
        console.responder_calls.lock().expect("calls").as_slice(),
        ["quarantine shop/web-1 by ann"]
    );
    let record = next_on::<ActionRecord>(&console.js, &topology::ACTIONS, |a| {
        a.kind == ActionKind::Quarantine as i32
    })
    .await
    .expect("action record on the actions stream");
    assert_eq!(record.requested_by, "ann");
    assert_eq!(record.finding_id, "f-q");

    // The console reads the record back and shows the pod contained.
    let mut contained = false;
    for _ in 0..300 {
        let incident = ann.get(addr, "/api/incidents/shop.web-1").await.json();
        if incident["incident"]["containment"]["contained"] == true {
            contained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(contained, "containment never shown");
    let audit = next_on::<AuditRecord>(&console.js, &topology::AUDIT, |a| a.step == "quarantine")
        .await
        .expect("audited");
    assert_eq!((audit.user.as_str(), audit.outcome.as_str()), ("ann", "ok"));

    let released = ann
        .post(addr, "/api/incidents/shop.web-1/release", "{}")
        .await;
    assert_eq!(released.status, 200, "{}", released.body);
}

#[tokio::test]
async fn a_responder_that_is_down_is_a_502_not_a_hang() {
    let nats = vigil_testkit::NatsServer::start();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = console_config(&nats.url(), "http://127.0.0.1:9").await;
    let addr = start_console(config, &shutdown).await;
    let client = vigil_bus::async_nats::connect(nats.url())
        .await
        .expect("nats");
    let js = vigil_bus::async_nats::jetstream::new(client);
    publish_finding(&js, &finding("f-down", "shop", "web-1", Priority::Critical)).await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    wait_for_finding(addr, &ann, "f-down").await;
    let answer = ann
        .post(addr, "/api/incidents/shop.web-1/quarantine", "{}")
        .await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert!(answer.error().contains("responder"), "{}", answer.body);
    let audit = next_on::<AuditRecord>(&js, &topology::AUDIT, |a| a.step == "quarantine")
        .await
        .expect("failed step audited too");
    assert_ne!(audit.outcome, "ok");
    shutdown.cancel();
}

#[tokio::test]
async fn anomaly_scores_form_a_series_per_workload() {
    let console = start().await;
    let addr = console.addr;
    for (i, value) in [0.2, 0.9].into_iter().enumerate() {
        let score = vigil_proto::v1::AnomalyScore {
            namespace: "shop".into(),
            pod: "web-1".into(),
            workload: "shop/web".into(),
            window_end_ns: 1_000_000_000 * (i as u64 + 1),
            score: value,
            ..Default::default()
        };
        let subject = subject::scores("shop");
        console
            .js
            .publish(subject, score.encode_to_vec().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let reader = format!("Bearer {READER_TOKEN}");
    let mut series = serde_json::Value::Null;
    for _ in 0..300 {
        let answer = http(
            addr,
            "GET",
            "/api/scores",
            &[("Authorization", &reader)],
            None,
        )
        .await;
        series = answer.json()["shop/web"].clone();
        if series.as_array().map(Vec::len) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(series[0]["score"], 0.2, "{series}");
    assert_eq!(series[1]["score"], 0.9, "{series}");
    assert_eq!(series[1]["time_ms"], 2000.0);
}

#[tokio::test]
async fn live_streams_end_on_shutdown_so_the_console_can_stop() {
    let console = start().await;
    let ann = login(console.addr, "ann", RESPONDER_PASSWORD).await;
    let mut live = Sse::open(console.addr, &ann.cookie).await;
    live.find("hello", WAIT, |_| true).await.expect("hello");
    console.shutdown.cancel();
    // next() is None at end of stream; a timeout would also be None, so
    // check that it returned well before the wait ran out.
    let started = std::time::Instant::now();
    assert!(live.next(Duration::from_secs(20)).await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the stream stayed open"
    );
}

#[tokio::test]
async fn a_read_only_user_cannot_quarantine() {
    let console = start().await;
    let addr = console.addr;
    publish_finding(
        &console.js,
        &finding("f-ro", "shop", "web-1", Priority::Critical),
    )
    .await;
    let rob = login(addr, "rob", "rob-password").await;
    wait_for_finding(addr, &rob, "f-ro").await;
    let path = "/api/incidents/shop.web-1/quarantine";
    let body = r#"{"reason":"rob tries"}"#;
    let by_session = rob.post(addr, path, body).await;
    assert_eq!(by_session.status, 403, "{}", by_session.body);
    assert!(
        by_session.error().contains("rob has role read-only"),
        "{}",
        by_session.body
    );
    let bearer = format!("Bearer {READER_TOKEN}");
    let by_token = http(
        addr,
        "POST",
        path,
        &[("Authorization", &bearer)],
        Some(body),
    )
    .await;
    assert_eq!(by_token.status, 403, "{}", by_token.body);
    let dry = rob.post(addr, path, r#"{"dry_run":true}"#).await;
    assert_eq!(dry.status, 403, "not even a dry run: {}", dry.body);
    // A responder's call on the same path goes through: the refusals were the role's.
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    assert_eq!(ann.post(addr, path, body).await.status, 200);
    assert_eq!(
        console.responder_calls.lock().expect("calls").as_slice(),
        ["quarantine shop/web-1 by ann"],
        "the responder was asked only by ann"
    );
}

#[tokio::test]
async fn a_dry_run_quarantine_is_shown_as_dry_run_never_contained() {
    let console = start().await;
    let addr = console.addr;
    publish_finding(
        &console.js,
        &finding("f-dry", "shop", "web-2", Priority::Critical),
    )
    .await;
    let ann = login(addr, "ann", RESPONDER_PASSWORD).await;
    wait_for_finding(addr, &ann, "f-dry").await;
    let answer = ann
        .post(
            addr,
            "/api/incidents/shop.web-2/quarantine",
            r#"{"dry_run":true}"#,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["actions"][0]["outcome"], "dry_run");
    let mut shown = None;
    for _ in 0..300 {
        let incident = ann.get(addr, "/api/incidents/shop.web-2").await.json();
        let containment = incident["incident"]["containment"].clone();
        if !containment.is_null() {
            shown = Some(containment);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shown = shown.expect("the dry run's record never reached the incident");
    assert_eq!(shown["dry_run"], true, "{shown}");
    assert_eq!(shown["contained"], false, "{shown}");
    assert_eq!(shown["kind"], "quarantine");
    let listed = ann.get(addr, "/api/incidents").await.json();
    let listed = listed
        .as_array()
        .and_then(|l| l.iter().find(|i| i["id"] == "shop.web-2").cloned())
        .expect("listed");
    assert_eq!(listed["containment"]["contained"], false);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let console = start().await;
    let addr = console.addr;
    let bearer = format!("Bearer {READER_TOKEN}");
    let answers = [
        (
            "/api/findings",
            http(
                addr,
                "GET",
                "/api/findings",
                &[("Authorization", &bearer)],
                None,
            )
            .await,
        ),
        (
            "/api/session",
            http(addr, "GET", "/api/session", &[], None).await,
        ),
        ("/api/nope", http(addr, "GET", "/api/nope", &[], None).await),
        ("/", http(addr, "GET", "/", &[], None).await),
        (
            "/incidents/x",
            http(addr, "GET", "/incidents/x", &[], None).await,
        ),
    ];
    assert_eq!(answers[0].1.status, 200, "{}", answers[0].1.body);
    assert_eq!(answers[1].1.status, 401);
    for (path, answer) in &answers {
        let csp = answer.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            answer.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        let cache = answer.header("cache-control");
        if path.starts_with("/api/") {
            assert_eq!(cache, Some("no-store"), "{path}");
        } else {
            assert_ne!(
                cache,
                Some("no-store"),
                "{path}: the front end's files may be cached"
            );
        }
    }
    // Logins refused by the rate limit carry them too, and say when to retry.
    let mut refused = None;
    for _ in 0..20 {
        let answer = http(
            addr,
            "POST",
            "/api/login",
            &[],
            Some(r#"{"username":"ann","password":"x"}"#),
        )
        .await;
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    let refused = refused.expect("the rate limit answered 429 within 20 attempts");
    assert!(
        refused
            .header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    assert_eq!(refused.header("x-content-type-options"), Some("nosniff"));
    assert!(
        refused.error().contains("too many login attempts"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn sessions_are_shared_by_replicas_through_kv() {
    let console = start().await;
    let (first, nats_url) = (console.addr, console.nats.url());
    let second = start_console(
        console_config(&nats_url, "http://127.0.0.1:9").await,
        &console.shutdown,
    )
    .await;
    let ann = login(first, "ann", RESPONDER_PASSWORD).await;
    let mut live_on_first = Sse::open(first, &ann.cookie).await;
    live_on_first
        .find("hello", WAIT, |_| true)
        .await
        .expect("hello");
    let on_second = ann.get(second, "/api/session").await;
    assert_eq!(on_second.status, 200, "{}", on_second.body);
    assert_eq!(on_second.json()["user"], "ann");
    assert_eq!(on_second.json()["csrf"], ann.csrf.as_str());

    // The bucket holds the token's digest, never the token a cookie presents.
    let token = ann.cookie.trim_start_matches("vigil_session=");
    let kv = console
        .js
        .get_key_value("VIGIL_CONSOLE_SESSIONS")
        .await
        .expect("sessions bucket");
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let stored = kv
        .get(&digest)
        .await
        .expect("read")
        .expect("stored by digest");
    assert!(kv.get(token).await.expect("read").is_none());
    assert!(!String::from_utf8_lossy(&stored).contains(token));

    // Logged out on the second, gone on the first.
    let out = ann.post(second, "/api/logout", "").await;
    assert_eq!(out.status, 204, "{}", out.body);
    let after = ann.get(first, "/api/session").await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(
        after.error().contains("expired or was logged out"),
        "{}",
        after.body
    );
    // The live stream it had open on the first ends too (checked every 5 s).
    assert!(
        live_on_first.ends_within(Duration::from_secs(60)).await,
        "the logged-out session's live stream still runs after 60 s"
    );

    // A session that expires on one is refused by the other.
    let mut short = console_config(&nats_url, "http://127.0.0.1:9").await;
    short.http.session_ttl_s = 1;
    let third = start_console(short, &console.shutdown).await;
    let brief = login(third, "ann", RESPONDER_PASSWORD).await;
    let mut refused = false;
    for _ in 0..600 {
        if brief.get(first, "/api/session").await.status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "a session past its expiry was still accepted after 30 s"
    );
    assert_eq!(brief.get(third, "/api/session").await.status, 401);
}
