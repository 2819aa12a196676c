//! What an operator's load balancer and orchestrator rely on (issue 14):
//! the probes `/healthz` and `/readyz` (public, outside the bearer layer,
//! 503 with a reason once the keys are stale), `X-Request-Id` on every
//! answer, and the real server binary shutting down on SIGTERM: it stops
//! accepting, lets slow requests finish, and exits 0, within
//! `SHUTDOWN_GRACE_SECS`.
//!
//! Run: `cargo test -p server --test lifecycle`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use fixtures::*;
use leptos::prelude::LeptosOptions;
use serde_json::Value;
use server::bearer::{Clock, ManualClock};
use server::browser_auth::BrowserAuth;
use tower::ServiceExt;

async fn app() -> (
    Router,
    JwksServer,
    Arc<ManualClock>,
    server::bearer::Validator,
) {
    let issuer = JwksServer::start(jwks(&[&keys()[0]])).await;
    let clock = Arc::new(ManualClock::starting_now());
    let validator = validator_for(&issuer, clock.clone()).await;
    let router = server::app_router(
        LeptosOptions::builder()
            .output_name("okta-implicit")
            .build(),
        validator.clone(),
        BrowserAuth::new(browser_config(&issuer.issuer()), validator.clone()),
    );
    (router, issuer, clock, validator)
}

struct Answer {
    status: StatusCode,
    request_id: Option<String>,
    cache_control: Option<String>,
    body: String,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let header_of = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let request_id = header_of("x-request-id");
    let cache_control = header_of("cache-control");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        request_id,
        cache_control,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn the_probes_are_public_and_readyz_says_when_the_keys_are_stale() {
    let (router, issuer, clock, validator) = app().await;
    let healthz = send(&router, get("/healthz")).await;
    assert_eq!(healthz.status, StatusCode::OK);
    assert_eq!(healthz.body, r#"{"status":"ok"}"#);
    assert_eq!(healthz.cache_control.as_deref(), Some("no-store"));

    let ready = send(&router, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let body: Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["keys"], 1);
    assert_eq!(body["max_age_secs"], 3600);

    // An Authorization header, good or bad, changes nothing.
    let with_garbage = send(
        &router,
        Request::get("/readyz")
            .header(header::AUTHORIZATION, "Bearer x y")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(with_garbage.status, StatusCode::OK);

    // The issuer fails and the keys age past max-age (3600 s) plus the
    // grace (300 s): the known key still works, but the instance is not
    // ready.
    issuer.set_status(500);
    clock.advance(Duration::from_secs(3600 + 300));
    assert_eq!(send(&router, get("/readyz")).await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(2));
    assert!(validator.jwks().refresh().await.is_err());
    let stale = send(&router, get("/readyz")).await;
    assert_eq!(stale.status, StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_str(&stale.body).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["reason"], "keys_stale");
    assert_eq!(body["keys_age_secs"], 3902);
    assert_eq!(send(&router, get("/healthz")).await.status, StatusCode::OK);
    let token = keys()[0].token(&access_claims(&issuer.issuer(), clock.now_secs()));
    let whoami = send(
        &router,
        Request::post("/api/whoami")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(whoami.status, StatusCode::OK);

    // Back: one good fetch makes it ready again.
    issuer.set_status(200);
    validator.jwks().refresh().await.unwrap();
    assert_eq!(send(&router, get("/readyz")).await.status, StatusCode::OK);
}

fn is_made_up_id(id: &str) -> bool {
    let Some((prefix, counter)) = id.split_once('-') else {
        return false;
    };
    prefix.len() == 16
        && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        && !counter.is_empty()
        && counter.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_when_well_formed() {
    let (router, _issuer, _clock, _validator) = app().await;
    let with_id = |id: &str, path: &str| {
        Request::post(path.to_string())
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let kept = send(
        &router,
        with_id("f47ac10b-58cc-4372-a567-0e02b2c3d479", "/api/health"),
    )
    .await;
    assert_eq!(
        kept.request_id.as_deref(),
        Some("f47ac10b-58cc-4372-a567-0e02b2c3d479")
    );
    // A refusal of the bearer layer carries it too.
    let refused = send(&router, with_id("nginx.req_42", "/api/whoami")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.request_id.as_deref(), Some("nginx.req_42"));
    // Malformed or too long: replaced.
    for bad in ["a b", "<script>", &"x".repeat(65), ""] {
        let answer = send(&router, with_id(bad, "/api/health")).await;
        let id = answer.request_id.unwrap();
        assert!(is_made_up_id(&id), "{bad:?} gave {id}");
    }
    // None sent: made up, and each one different.
    let a = send(&router, get("/healthz")).await.request_id.unwrap();
    let b = send(&router, get("/no/such/page"))
        .await
        .request_id
        .unwrap();
    assert!(is_made_up_id(&a) && is_made_up_id(&b), "{a} {b}");
    assert_ne!(a, b);
}

/// A free port on 127.0.0.1 (outside 3000–3399: the kernel picks from the
/// ephemeral range).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The release-or-debug server binary against `issuer`, on `port`, with
/// `grace`, logging JSON; from an empty folder, so no `.env` is read.
fn start_server(issuer: &JwksServer, port: u16, grace: &str) -> Child {
    let dir = std::env::temp_dir().join(format!("lifecycle-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new(env!("CARGO_BIN_EXE_server"))
        .current_dir(dir)
        .env_clear()
        .env("ISSUER", issuer.issuer())
        .env("CLIENT_ID", CLIENT_ID)
        .env("LEPTOS_OUTPUT_NAME", "okta-implicit")
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("SHUTDOWN_GRACE_SECS", grace)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (30 s at most) until `/readyz` answers 200.
async fn wait_ready(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited at start-up with {status}");
        }
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status() == reqwest::StatusCode::OK {
                return;
            }
        }
        assert!(Instant::now() < deadline, "not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill only sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// Waits (`limit` at most) for the child to exit; its status code and
/// standard output.
fn wait_exit(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            return (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` whoami calls at once, each on its own connection, with a token of
/// `k2`, which the server does not know yet: each waits for the one JWKS
/// refetch its kid causes, as slow as the issuer makes it.
fn slow_requests(
    n: usize,
    base: &str,
    token: &str,
) -> Vec<tokio::task::JoinHandle<Result<(u16, String), String>>> {
    (0..n)
        .map(|_| {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let url = format!("{base}/api/whoami");
            let token = token.to_string();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = response.text().await.map_err(|e| e.to_string())?;
                Ok((status, body))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_slow_requests_finish_then_exits_0() {
    let [k1, k2, _] = keys();
    let issuer = JwksServer::start(jwks(&[k1])).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_server(&issuer, port, "10");
    let client = reqwest::Client::new();
    wait_ready(&client, &base, &mut child).await;

    // The issuer rotates to k2 and answers its JWKS 2 s late.
    issuer.set_jwks(jwks(&[k1, k2]));
    issuer.set_delay(Duration::from_secs(2));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = k2.token(&access_claims(&issuer.issuer(), now));
    let requests = slow_requests(40, &base, &token);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sent_at = Instant::now();
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No longer accepting.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "still accepting after SIGTERM"
    );
    for request in requests {
        let (status, body) = request.await.unwrap().expect("an answer, not a cut");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("alice@example.com"), "{body}");
    }
    let (code, stdout) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(sent_at.elapsed() < Duration::from_secs(5));
    // LOG_FORMAT=json: one JSON object per line, start to finish.
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("shutting down")),
        "{messages:?}"
    );
    assert_eq!(messages.last(), Some(&"stopped"), "{messages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_requests_are_cut_and_the_server_still_exits_0() {
    let [k1, k2, _] = keys();
    let issuer = JwksServer::start(jwks(&[k1])).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_server(&issuer, port, "1");
    let client = reqwest::Client::new();
    wait_ready(&client, &base, &mut child).await;

    // Slower than the grace, faster than the server's 5 s fetch timeout.
    issuer.set_jwks(jwks(&[k1, k2]));
    issuer.set_delay(Duration::from_secs(4));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = k2.token(&access_claims(&issuer.issuer(), now));
    let fetches = issuer.fetches();
    // Each request's outcome with the moment it came, so that an answer
    // given within the grace (allowed) is told from one after it.
    let requests: Vec<_> = slow_requests(3, &base, &token)
        .into_iter()
        .map(|request| tokio::spawn(async move { (request.await.unwrap(), Instant::now()) }))
        .collect();
    // In flight once the server is asking the issuer for the new kid (on
    // a busy machine that can take longer than a fixed pause), then a
    // moment for the other two to reach it too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while issuer.fetches() == fetches {
        assert!(
            Instant::now() < deadline,
            "no request reached the key refetch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = Instant::now();
    sigterm(&child);
    let (code, stdout) = wait_exit(child, Duration::from_secs(10));
    let took = sent_at.elapsed();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    let mut cut = 0;
    for request in requests {
        let (outcome, at) = request.await.unwrap();
        match outcome {
            Err(_) => cut += 1,
            // Answered (e.g. a 401 when a key refresh raced the request):
            // fine, as long as it was within the grace.
            Ok(_) => assert!(
                at < sent_at + Duration::from_millis(1_300),
                "a request outlived the grace: {outcome:?}, {:?} after SIGTERM\n{stdout}",
                at - sent_at
            ),
        }
    }
    assert!(
        cut >= 1,
        "no request was cut at the end of the grace\n{stdout}"
    );
    assert!(stdout.contains("connections still busy after the grace period"));
}
