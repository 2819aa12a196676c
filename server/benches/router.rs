//! What a protected server function costs next to a public one, in
//! process: the whole app as `main` serves it (`server::app_with`: the
//! edge layers, the bearer layer, leptos_axum, the server
//! function, JSON encoding, security headers) without sockets, so the
//! figures are the server's own work per request.
//!
//! - `router/health`: `POST /api/health`, the public baseline of the load
//!   harness's case 1.
//! - `router/whoami_cached`: `POST /api/whoami` with a token already in the
//!   verified-token cache, case 2.
//! - `router/whoami_cached_metrics`: the same with metrics on (issue 14:
//!   the request-duration histogram; every other count is taken whether
//!   metrics are on or not).
//! - `steps/*`: the parts of the difference: reading the Bearer token out of
//!   the header, hashing it for the cache, and the cache lookup; and what
//!   the request-span layer (id, span, `X-Request-Id`) adds to a service
//!   that does nothing, with metrics off and on.
//!
//! After criterion, paired runs alternate two requests and print the ratio
//! of their medians, steadier on a shared machine than two separate
//! criterion runs: whoami against health, then whoami with metrics on
//! against metrics off (target: within 3 %), then whoami with a never-seen
//! token against a cached one, next to a bare RS256 verify (issue 13).
//!
//! Run: `cargo bench -p server --bench router`

#[path = "../tests/common/bearer_fixtures.rs"]
mod fixtures;
#[path = "common/paired.rs"]
mod paired;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, Criterion};
use fixtures::*;
use leptos::prelude::LeptosOptions;
use paired::paired_medians;
use server::bearer::header::bearer_token;
use server::bearer::verified::token_hash;
use server::bearer::{Clock, ManualClock};
use server::browser_auth::BrowserAuth;
use server::edge::request_span::RequestSpanLayer;
use server::edge::serve::App;
use server::ops::telemetry::Metrics;
use server::RouterSettings;
use tower::{Layer, ServiceExt};

/// The request the load harness sends, with `authorization` if given.
fn request(path: &str, authorization: Option<&HeaderValue>) -> Request<Body> {
    let mut request = Request::post(path)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, "0")
        .header(header::ACCEPT, "application/json");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value.clone());
    }
    request.body(Body::empty()).unwrap()
}

/// Sends one request through the router and reads the whole answer.
async fn call(router: &impl App, path: &str, authorization: Option<&HeaderValue>) -> usize {
    let response = router
        .clone()
        .oneshot(request(path, authorization))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap()
        .len()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = &keys()[0];
    let server = runtime.block_on(JwksServer::start(jwks(&[key])));
    let clock = Arc::new(ManualClock::starting_now());
    let validator = runtime.block_on(validator_for(&server, clock.clone()));
    let router = server::app_with(
        LeptosOptions::builder()
            .output_name("okta-implicit")
            .build(),
        validator.clone(),
        BrowserAuth::new(browser_config(&server.issuer()), validator.clone()),
        RouterSettings::default(),
    );
    let metrics = Metrics::new();
    metrics.watch_validator(&validator);
    let router_metrics = server::app_with(
        LeptosOptions::builder()
            .output_name("okta-implicit")
            .build(),
        validator.clone(),
        BrowserAuth::new(browser_config(&server.issuer()), validator.clone()),
        RouterSettings {
            metrics: Some(metrics.clone()),
            ..RouterSettings::default()
        },
    );
    let token = key.token(&access_claims(&server.issuer(), clock.now_secs()));
    let authorization = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();

    // Both must succeed (the first whoami fills the cache), or the figures
    // mean nothing.
    runtime.block_on(call(&router, "/api/health", None));
    runtime.block_on(call(&router, "/api/whoami", Some(&authorization)));
    runtime.block_on(call(&router_metrics, "/api/whoami", Some(&authorization)));

    let mut group = c.benchmark_group("router");
    group.bench_function("health", |b| {
        b.iter(|| runtime.block_on(call(&router, "/api/health", None)))
    });
    group.bench_function("whoami_cached", |b| {
        b.iter(|| runtime.block_on(call(&router, "/api/whoami", Some(&authorization))))
    });
    group.bench_function("whoami_cached_metrics", |b| {
        b.iter(|| runtime.block_on(call(&router_metrics, "/api/whoami", Some(&authorization))))
    });
    group.finish();
    // As the server's upkeep task does every 5 s.
    metrics.run_upkeep();

    let mut group = c.benchmark_group("steps");
    group.bench_function("bearer_token", |b| {
        b.iter(|| bearer_token(&[black_box(authorization.as_bytes())]).unwrap())
    });
    group.bench_function("token_hash", |b| b.iter(|| token_hash(black_box(&token))));
    group.bench_function("validate_cache_hit", |b| {
        b.iter(|| runtime.block_on(validator.validate_shared(black_box(&token))))
    });
    let nothing = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::empty()))
    });
    let spanned = RequestSpanLayer::new(None).layer(nothing);
    let spanned_metrics = RequestSpanLayer::new(Some(metrics.clone())).layer(nothing);
    group.bench_function("bare_service", |b| {
        b.iter(|| runtime.block_on(nothing.oneshot(request("/api/whoami", None))))
    });
    group.bench_function("request_span", |b| {
        b.iter(|| runtime.block_on(spanned.clone().oneshot(request("/api/whoami", None))))
    });
    group.bench_function("request_span_metrics", |b| {
        b.iter(|| {
            runtime.block_on(
                spanned_metrics
                    .clone()
                    .oneshot(request("/api/whoami", None)),
            )
        })
    });
    group.finish();

    let (whoami, health) = paired_medians(
        50_000,
        || {
            runtime.block_on(call(&router, "/api/whoami", Some(&authorization)));
        },
        || {
            runtime.block_on(call(&router, "/api/health", None));
        },
    );
    println!(
        "paired medians over 50000 rounds: whoami (cached) {:.2} µs, health {:.2} µs, \
         difference {:.2} µs, ratio {:.3}",
        whoami / 1000.0,
        health / 1000.0,
        (whoami - health) / 1000.0,
        whoami / health
    );

    let mut calls = 0u32;
    let (with_metrics, without) = paired_medians(
        50_000,
        || {
            runtime.block_on(call(&router_metrics, "/api/whoami", Some(&authorization)));
            calls += 1;
            if calls.is_multiple_of(10_000) {
                metrics.run_upkeep();
            }
        },
        || {
            runtime.block_on(call(&router, "/api/whoami", Some(&authorization)));
        },
    );
    println!(
        "paired medians over 50000 rounds: whoami (cached) with metrics {:.2} µs, without {:.2} µs, \
         difference {:.2} µs, ratio {:.3} (target ≤ 1.030)",
        with_metrics / 1000.0,
        without / 1000.0,
        (with_metrics - without) / 1000.0,
        with_metrics / without
    );
    assert!(metrics.render().contains("route=\"whoami\""));

    // Issue 13's cold token, in process: never-seen valid tokens through the
    // whole router against the cached one, and a bare RS256 verify with a
    // parsed key, in alternation. Over HTTP (load harness case 3) the extra
    // CPU of a cold token is about 2.3 verifies; this says how much of that
    // the server's own code path accounts for.
    let cold: Vec<HeaderValue> = (0..COLD_TOKENS)
        .map(|i| {
            let mut claims = access_claims(&server.issuer(), clock.now_secs());
            claims["jti"] = format!("AT.cold-{i}").into();
            HeaderValue::from_str(&format!("Bearer {}", key.token(&claims))).unwrap()
        })
        .collect();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_der).unwrap();
    let mut next = cold.iter();
    let (cold_ns, cached_ns) = paired_medians(
        COLD_TOKENS,
        || {
            runtime.block_on(call(&router, "/api/whoami", next.next()));
        },
        || {
            runtime.block_on(call(&router, "/api/whoami", Some(&authorization)));
        },
    );
    let (verify_ns, _) = paired_medians(
        COLD_TOKENS,
        || {
            parsed
                .verify_sig(signing_input.as_bytes(), &signature)
                .unwrap()
        },
        || {},
    );
    println!(
        "paired medians over {COLD_TOKENS} rounds: whoami with a never-seen token {:.2} µs, \
         cached {:.2} µs, bare verify {:.2} µs: (cold − cached) ÷ verify {:.2}",
        cold_ns / 1000.0,
        cached_ns / 1000.0,
        verify_ns / 1000.0,
        (cold_ns - cached_ns) / verify_ns
    );
    // The same cached whoami, timed right after an (untimed) bare verify
    // and on its own: what running after the bignum code costs the rest
    // of a request.
    let mut after_verify = Vec::with_capacity(COLD_TOKENS);
    let mut alone = Vec::with_capacity(COLD_TOKENS);
    for _ in 0..COLD_TOKENS {
        parsed
            .verify_sig(signing_input.as_bytes(), &signature)
            .unwrap();
        let started = std::time::Instant::now();
        runtime.block_on(call(&router, "/api/whoami", Some(&authorization)));
        after_verify.push(started.elapsed().as_nanos());
        let started = std::time::Instant::now();
        runtime.block_on(call(&router, "/api/whoami", Some(&authorization)));
        alone.push(started.elapsed().as_nanos());
    }
    after_verify.sort_unstable();
    alone.sort_unstable();
    let (after_verify, alone) = (
        after_verify[COLD_TOKENS / 2] as f64,
        alone[COLD_TOKENS / 2] as f64,
    );
    println!(
        "medians over {COLD_TOKENS} rounds: cached whoami right after a verify {:.2} µs, \
         after another whoami {:.2} µs: {:.2} µs more",
        after_verify / 1000.0,
        alone / 1000.0,
        (after_verify - alone) / 1000.0
    );
    drop(server);
}

/// Never-seen tokens for the cold pass: each minted (one RSA signature)
/// and sent once.
const COLD_TOKENS: usize = 4_000;

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench
}
fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
