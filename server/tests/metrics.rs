//! The Prometheus metrics of issue 14, scraped through the metrics router
//! (`Metrics::router`, what `METRICS_ADDR` serves) after requests through
//! the real app router: a scripted sequence moves each counter by exactly
//! the expected amount (and no other); 10,000 requests with random kids,
//! paths and tokens leave the set of series as it was; the embedded dev
//! server's sign-ins and errors.
//!
//! Run: `cargo test -p server --test metrics`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;
#[allow(dead_code)] // a few of the dev server fixtures
#[path = "common/dev_idp.rs"]
mod idp;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fixtures::*;
use leptos::prelude::LeptosOptions;
use serde_json::json;
use server::bearer::{Clock, ManualClock, Validator};
use server::browser_auth::BrowserAuth;
use server::ops::telemetry::{route_of, Metrics, ROUTES};
use server::RouterSettings;
use tower::ServiceExt;

struct App {
    issuer: JwksServer,
    clock: Arc<ManualClock>,
    validator: Validator,
    metrics: Metrics,
    router: Router,
    /// Requests sent, by route name.
    sent: BTreeMap<&'static str, u64>,
}

impl App {
    async fn new() -> App {
        let issuer = JwksServer::start(jwks(&[&keys()[0]])).await;
        let clock = Arc::new(ManualClock::starting_now());
        let validator = validator_for(&issuer, clock.clone()).await;
        let metrics = Metrics::new();
        metrics.watch_validator(&validator);
        let router = server::app_router_with(
            LeptosOptions::builder()
                .output_name("okta-implicit")
                .build(),
            validator.clone(),
            BrowserAuth::new(browser_config(&issuer.issuer()), validator.clone()),
            RouterSettings {
                metrics: Some(metrics.clone()),
                ..RouterSettings::default()
            },
        );
        App {
            issuer,
            clock,
            validator,
            metrics,
            router,
            sent: BTreeMap::new(),
        }
    }

    fn claims(&self) -> serde_json::Value {
        access_claims(&self.issuer.issuer(), self.clock.now_secs())
    }

    async fn send(&mut self, method: Method, uri: &str, authorization: Option<&str>) -> StatusCode {
        let path = uri.split('?').next().unwrap();
        *self.sent.entry(ROUTES[route_of(path)]).or_default() += 1;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        status
    }

    async fn post(&mut self, uri: &str, token: Option<&str>) -> StatusCode {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.send(Method::POST, uri, authorization.as_deref()).await
    }
}

/// `GET /metrics` from the metrics router: every series and its value.
async fn scrape(metrics: &Metrics) -> BTreeMap<String, f64> {
    let response = metrics
        .router()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    parse(std::str::from_utf8(&body).unwrap())
}

fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// The counters the sequence may move: every series of these families.
fn is_counted(series: &str) -> bool {
    [
        "bearer_decisions_total",
        "jwks_fetches_total",
        "verified_token_cache_hits_total",
        "verified_token_cache_misses_total",
        "verified_token_cache_evictions_total",
        "http_request_duration_seconds_count",
    ]
    .iter()
    .any(|family| series.starts_with(family))
}

fn decision(outcome: &str) -> String {
    format!("bearer_decisions_total{{outcome=\"{outcome}\"}}")
}

fn fetch(cause: &str, result: &str) -> String {
    format!("jwks_fetches_total{{cause=\"{cause}\",result=\"{result}\"}}")
}

/// A token whose header names `kid`, with a signature nobody made: enough
/// for the kid lookup, which comes before the signature check.
fn forged(kid: &str, payload: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload);
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]))
}

#[tokio::test]
async fn a_scripted_sequence_moves_each_counter_by_exactly_its_amount() {
    let mut app = App::new().await;
    let before = scrape(&app.metrics).await;
    // The start-up fetch happened before the scrape.
    assert_eq!(before[&fetch("startup", "ok")], 1.0);
    let [k1, k2, k3] = keys();
    let valid = k1.token(&app.claims());
    let mut expired = app.claims();
    expired["exp"] = json!(app.clock.now_secs() - 3600);
    let expired = k1.token(&expired);
    let mut other_aud = app.claims();
    other_aud["aud"] = json!("api://other");
    let other_aud = k1.token(&other_aud);
    // k2's signature under k1's kid.
    let bad_signature = k2.sign_json(&json!({"alg": "RS256", "kid": "k1"}), &app.claims());

    // Public: no decision.
    assert_eq!(app.post("/api/health", None).await, StatusCode::OK);
    assert_eq!(
        app.post("/api/health", Some("garbage")).await,
        StatusCode::OK
    );
    assert_eq!(
        app.send(Method::GET, "/healthz", None).await,
        StatusCode::OK
    );
    assert_eq!(app.send(Method::GET, "/readyz", None).await, StatusCode::OK);
    // Valid, once checked in full, then twice from the cache.
    for _ in 0..3 {
        assert_eq!(app.post("/api/whoami", Some(&valid)).await, StatusCode::OK);
    }
    assert_eq!(
        app.post("/api/messages", Some(&valid)).await,
        StatusCode::OK
    );
    // Valid but without reports:read.
    assert_eq!(
        app.post("/api/report", Some(&valid)).await,
        StatusCode::FORBIDDEN
    );
    // Missing, on a real function and on one that does not exist.
    assert_eq!(
        app.post("/api/whoami", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post("/api/no_such_function", None).await,
        StatusCode::UNAUTHORIZED
    );
    // Invalid requests: two tokens in one header, a token in the query.
    assert_eq!(
        app.send(Method::POST, "/api/whoami", Some("Bearer a b"))
            .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post(&format!("/api/whoami?access_token={valid}"), None)
            .await,
        StatusCode::BAD_REQUEST
    );
    // Invalid tokens.
    for token in [&expired, &other_aud, &bad_signature] {
        assert_eq!(
            app.post("/api/whoami", Some(token)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.post("/api/whoami", Some("not.a-jws")).await,
        StatusCode::UNAUTHORIZED
    );
    // An unknown kid: one refetch, which does not have it; a second one
    // within the cool-down is refused without a fetch.
    let k2_token = k2.token(&app.claims());
    let k3_token = k3.token(&app.claims());
    assert_eq!(
        app.post("/api/whoami", Some(&k2_token)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post("/api/whoami", Some(&k3_token)).await,
        StatusCode::UNAUTHORIZED
    );
    // The issuer fails, then hangs past the fetch timeout: 503 each time.
    app.issuer.set_status(500);
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(
        app.post("/api/whoami", Some(&k3_token)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.issuer.set_status(200);
    app.issuer.set_delay(Duration::from_secs(2));
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(
        app.post("/api/whoami", Some(&k3_token)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.issuer.set_delay(Duration::ZERO);
    // The background refresh: new keys with an ETag, then a 304 for the
    // same ETag, then a document that is not a JWKS.
    app.issuer.set_jwks(jwks(&[k1, k2]));
    app.issuer.set_etag(Some("\"v2\""));
    app.validator.jwks().refresh().await.unwrap();
    app.validator.jwks().refresh().await.unwrap();
    app.issuer.set_jwks("not json".into());
    app.issuer.set_etag(None);
    assert!(app.validator.jwks().refresh().await.is_err());
    app.clock.advance(Duration::from_secs(7));

    let after = scrape(&app.metrics).await;
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut expect = |series: String, delta: f64| {
        *expected.entry(series).or_default() += delta;
    };
    expect(decision("valid"), 4.0);
    expect(decision("insufficient_scope"), 1.0);
    expect(decision("missing"), 2.0);
    expect(decision("invalid_request"), 2.0);
    expect(decision("invalid_token:expired"), 1.0);
    expect(decision("invalid_token:wrong_audience"), 1.0);
    expect(decision("invalid_token:bad_signature"), 1.0);
    expect(decision("invalid_token:not_compact_jws"), 1.0);
    expect(decision("invalid_token:unknown_kid"), 2.0);
    expect(decision("unavailable"), 2.0);
    // Hits: whoami twice, messages, report. Misses: every token that got
    // past the header syntax and was not cached.
    expect("verified_token_cache_hits_total".into(), 4.0);
    expect("verified_token_cache_misses_total".into(), 9.0);
    expect(fetch("unknown_kid", "ok"), 1.0);
    expect(fetch("unknown_kid", "rate_limited"), 1.0);
    expect(fetch("unknown_kid", "http_error"), 1.0);
    expect(fetch("unknown_kid", "timeout"), 1.0);
    expect(fetch("scheduled", "ok"), 1.0);
    expect(fetch("scheduled", "not_modified"), 1.0);
    expect(fetch("scheduled", "parse_error"), 1.0);
    for (route, count) in &app.sent {
        expect(
            format!("http_request_duration_seconds_count{{route=\"{route}\"}}"),
            *count as f64,
        );
    }
    for (series, value) in &after {
        if !is_counted(series) {
            continue;
        }
        let moved = value - before.get(series).copied().unwrap_or(0.0);
        let wanted = expected.get(series).copied().unwrap_or(0.0);
        assert_eq!(moved, wanted, "{series} moved by {moved}, not {wanted}");
    }
    for series in expected.keys() {
        assert!(after.contains_key(series), "no series {series}");
    }
    // Gauges.
    assert_eq!(after["verified_token_cache_size"], 1.0);
    assert_eq!(after["verified_token_cache_evictions_total"], 0.0);
    assert_eq!(after["jwks_keys"], 2.0);
    // The 304 was the last success, 7 s ago on the test's clock.
    assert_eq!(after["jwks_last_success_age_seconds"], 7.0);
    assert_eq!(app.issuer.fetches(), 7);
}

#[tokio::test]
async fn random_kids_paths_and_tokens_do_not_add_series() {
    let mut app = App::new().await;
    // Every series exists from the start.
    let before: BTreeSet<String> = scrape(&app.metrics).await.into_keys().collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let [k1, _, _] = keys();
    let valid = k1.token(&app.claims());
    for i in 0..10_000 {
        let r = random();
        let word = format!("{r:x}");
        let path = match r % 8 {
            0 => format!("/api/{word}"),
            1 => format!("/pkg/{word}.wasm"),
            2 => format!("/{word}"),
            3 => "/api/report".to_string(),
            4 => format!("/api/whoami/{word}"),
            _ => "/api/whoami".to_string(),
        };
        let token = match (r >> 8) % 6 {
            0 => forged(&word, "{}"),
            1 => forged(&format!("kid-{i}"), &format!("{{\"sub\":\"{word}\"}}")),
            2 => word.clone(),
            3 => format!("{word}.{word}.{word}"),
            4 => valid.clone(),
            _ => forged("k1", &format!("{{\"sub\":\"{word}\"}}")),
        };
        let method = if (r >> 16) % 4 == 0 {
            Method::GET
        } else {
            Method::POST
        };
        let authorization = format!("Bearer {token}");
        app.send(method, &path, Some(&authorization)).await;
        if i % 1000 == 999 {
            // Past the cool-down now and then, so random kids are fetched
            // for as well as refused.
            app.clock.advance(Duration::from_secs(31));
        }
    }
    let after = scrape(&app.metrics).await;
    let after_series: BTreeSet<String> = after.keys().cloned().collect();
    assert_eq!(
        after_series.len(),
        before.len(),
        "new series: {:?}",
        after_series.difference(&before).collect::<Vec<_>>()
    );
    assert_eq!(after_series, before);
    // And the requests were counted.
    let decisions: f64 = after
        .iter()
        .filter(|(series, _)| series.starts_with("bearer_decisions_total"))
        .map(|(_, value)| value)
        .sum();
    assert!(decisions >= 5_000.0, "{decisions}");
    assert!(after[&fetch("unknown_kid", "rate_limited")] > 1_000.0);
    assert!(after[&fetch("unknown_kid", "ok")] >= 5.0);
}

#[tokio::test]
async fn the_dev_server_counts_its_sign_ins_and_errors() {
    let (server, running) = idp::own("127.0.0.1:0", false).await;
    let metrics = Metrics::new();
    let before = scrape(&metrics).await;
    assert!(!before.keys().any(|s| s.starts_with("dev_idp")));
    metrics.watch_dev_idp(running.stats.clone());
    let browser = idp::Browser::new();
    let request = idp::AuthRequest::new("s1");
    let signed_in = browser
        .sign_in(&server, &request, "alice@example.com", "alice-password")
        .await;
    assert_eq!(signed_in.status, reqwest::StatusCode::FOUND);
    let wrong = idp::Browser::new()
        .sign_in(&server, &request, "alice@example.com", "nope")
        .await;
    assert_eq!(wrong.status, reqwest::StatusCode::OK);
    // prompt=none without a session, and an unknown client.
    idp::Browser::new()
        .get(&request.clone().set("prompt", "none").url(&server))
        .await;
    idp::Browser::new()
        .get(&request.clone().set("client_id", "nobody").url(&server))
        .await;
    let after = scrape(&metrics).await;
    let value = |metric: &str, event: &str| after[&format!("{metric}{{event=\"{event}\"}}")];
    assert_eq!(value("dev_idp_sign_ins_total", "ok"), 1.0);
    assert_eq!(value("dev_idp_sign_ins_total", "wrong_credentials"), 1.0);
    assert_eq!(value("dev_idp_errors_total", "login_required"), 1.0);
    assert_eq!(value("dev_idp_errors_total", "invalid_request"), 1.0);
    assert_eq!(value("dev_idp_errors_total", "refused"), 0.0);
    assert_eq!(value("dev_idp_errors_total", "server_error"), 0.0);
    running.shutdown().await;
}
