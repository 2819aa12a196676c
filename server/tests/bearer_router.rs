//! The RFC 6750 table of DESIGN.md, row by row, through the real app router
//! (`server::app_router`): status, `WWW-Authenticate`, `Retry-After` and a
//! JSON body that decodes as `app::api::ApiError`; the protected server
//! functions answering 200 with the caller's claims; and deny by default: a
//! server function that never asks for a token is still refused without a
//! valid one.
//!
//! Run: `cargo test -p server --test bearer_router`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use app::api::{AccessClaims, ApiError, Message, WeeklyReport};
use app::auth::config::{PublicAuthConfig, PublicJwk};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use fixtures::*;
use leptos::prelude::LeptosOptions;
use serde_json::{json, Value};
use server::bearer::{Clock, ManualClock};
use server::browser_auth::BrowserAuth;
use server::config::LogFormat;
use tower::ServiceExt;

/// How many times [`forgot_authorize`] ran.
static FORGOT_AUTHORIZE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A protected server function that forgets its `authorize` line, added in
/// this test build only: the bearer layer must keep callers without a
/// valid token out of it all the same.
#[leptos::server(endpoint = "test_forgot_authorize")]
pub async fn forgot_authorize() -> Result<String, ApiError> {
    FORGOT_AUTHORIZE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok("ran".into())
}

struct App {
    server: JwksServer,
    clock: Arc<ManualClock>,
    router: Router,
}

impl App {
    async fn new() -> App {
        let [k1, _, _] = keys();
        let server = JwksServer::start(jwks(&[k1])).await;
        let clock = Arc::new(ManualClock::starting_now());
        let validator = validator_for(&server, clock.clone()).await;
        let options = LeptosOptions::builder()
            .output_name("okta-implicit")
            .build();
        App {
            router: server::app_router(
                options,
                validator.clone(),
                BrowserAuth::new(browser_config(&server.issuer()), validator),
            ),
            server,
            clock,
        }
    }

    fn claims(&self) -> Value {
        access_claims(&self.server.issuer(), self.clock.now_secs())
    }

    fn token_with(&self, key: &str, value: Value) -> String {
        let mut claims = self.claims();
        claims[key] = value;
        keys()[0].token(&claims)
    }

    fn valid_token(&self) -> String {
        keys()[0].token(&self.claims())
    }

    async fn call(&self, path: &str, authorization: &[&str]) -> Answer {
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        for value in authorization {
            request = request.header(header::AUTHORIZATION, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let header_of = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let www_authenticate = header_of(header::WWW_AUTHENTICATE);
        let retry_after = header_of(header::RETRY_AFTER);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            www_authenticate,
            retry_after,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn error(&self) -> ApiError {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not an ApiError: {e}", self.body))
    }

    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        serde_json::from_str(&self.body).unwrap()
    }

    /// Asserts the row for `invalid_token` with this description.
    fn assert_invalid_token(&self, description: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert_eq!(
            self.www_authenticate.as_deref(),
            Some(
                format!(
                    "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{description}\""
                )
                .as_str()
            )
        );
        assert_eq!(
            self.error(),
            ApiError::InvalidToken {
                error_description: description.into()
            }
        );
    }

    fn assert_invalid_request(&self) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{self:?}");
        let challenge = self.www_authenticate.as_deref().unwrap();
        assert!(
            challenge.starts_with(
                "Bearer realm=\"api\", error=\"invalid_request\", error_description=\""
            ),
            "{challenge}"
        );
        assert!(matches!(self.error(), ApiError::InvalidRequest { .. }));
    }
}

#[tokio::test]
async fn no_credentials_get_a_bare_challenge() {
    let app = App::new().await;
    for authorization in [&[][..], &["Basic YWxpY2U6cGFzcw=="], &["Negotiate abc"]] {
        let answer = app.call("/api/whoami", authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        assert_eq!(
            answer.www_authenticate.as_deref(),
            Some("Bearer realm=\"api\"")
        );
        assert!(matches!(answer.error(), ApiError::Unauthorized { .. }));
    }
}

#[tokio::test]
async fn a_malformed_header_is_invalid_request() {
    let app = App::new().await;
    let token = app.valid_token();
    let two_tokens = format!("Bearer {token} {token}");
    let bad_chars = format!("Bearer {token},x");
    let huge = format!("Bearer {}", "a".repeat(9 * 1024));
    let first = format!("Bearer {token}");
    for authorization in [
        &["Bearer"][..],
        &[two_tokens.as_str()],
        &[bad_chars.as_str()],
        &[huge.as_str()],
        &[first.as_str(), first.as_str()],
    ] {
        let answer = app.call("/api/whoami", authorization).await;
        answer.assert_invalid_request();
        assert!(!answer.body.contains(&token), "the token is echoed");
    }
}

#[tokio::test]
async fn a_token_in_the_query_string_is_never_accepted() {
    let app = App::new().await;
    let token = app.valid_token();
    let path = format!("/api/whoami?access_token={token}");
    let answer = app.call(&path, &[]).await;
    answer.assert_invalid_request();
    assert!(answer.body.contains("query string"));
    // Not even alongside a valid header.
    let answer = app.call(&path, &[&format!("Bearer {token}")]).await;
    answer.assert_invalid_request();
}

#[tokio::test]
async fn bad_tokens_are_invalid_token() {
    let app = App::new().await;
    let now = app.clock.now_secs();
    let valid = app.valid_token();
    let (two_parts, _) = valid.rsplit_once('.').unwrap();
    let forged_signature = {
        let (head, _) = valid.rsplit_once('.').unwrap();
        let other = keys()[2].sign_json(&json!({"alg": "RS256", "kid": "k1"}), &app.claims());
        format!("{head}.{}", other.rsplit_once('.').unwrap().1)
    };
    let hs256 = keys()[0].sign_json(&json!({"alg": "HS256", "kid": "k1"}), &app.claims());
    let id_token = {
        let mut claims = app.claims();
        claims["aud"] = json!(CLIENT_ID);
        claims["nonce"] = json!("n");
        keys()[0].token(&claims)
    };
    let cases = [
        (forged_signature, "the token's signature is not valid"),
        (
            app.token_with("exp", json!(now - 3600)),
            "the token has expired",
        ),
        (
            app.token_with("nbf", json!(now + 3600)),
            "the token is not valid yet (nbf)",
        ),
        (
            app.token_with("iss", json!("https://evil.example")),
            "the token was issued by another issuer",
        ),
        (
            app.token_with("aud", json!("api://other")),
            "the token is not meant for this API (aud)",
        ),
        (
            app.token_with("cid", json!("0oa-other")),
            "the token was issued to another client (cid)",
        ),
        (
            keys()[2].token(&app.claims()),
            "the token is signed with a key the issuer does not publish",
        ),
        (hs256, "the token is not signed with RS256"),
        (
            two_parts.to_string(),
            "the token is not a JWS in compact serialization (three base64url parts)",
        ),
        (id_token, "an ID token cannot be used as an access token"),
    ];
    for (token, description) in cases {
        let answer = app.call("/api/whoami", &[&format!("Bearer {token}")]).await;
        answer.assert_invalid_token(description);
        assert!(!answer.body.contains(&token));
    }
}

#[tokio::test]
async fn a_missing_scope_is_insufficient_scope() {
    let app = App::new().await;
    let answer = app
        .call("/api/report", &[&format!("Bearer {}", app.valid_token())])
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"reports:read\"")
    );
    assert_eq!(
        answer.error(),
        ApiError::InsufficientScope {
            scope: "reports:read".into()
        }
    );
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after() {
    let app = App::new().await;
    app.server.stop().await;
    // k2 is a kid the server has never seen; the issuer is gone.
    let token = keys()[1].token(&app.claims());
    let answer = app.call("/api/whoami", &[&format!("Bearer {token}")]).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.www_authenticate, None);
    assert_eq!(answer.retry_after.as_deref(), Some("30"));
    assert_eq!(
        answer.error(),
        ApiError::TemporarilyUnavailable { retry_after: 30 }
    );
    // Known keys keep working.
    let answer = app
        .call("/api/whoami", &[&format!("Bearer {}", app.valid_token())])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// Counts the ERROR events of the thread it is the default subscriber of.
struct CountErrors(Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountErrors {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Found by the load harness (issue 6, case 8): every request refused with
/// 503 during an issuer outage was logged at ERROR, 66,000 lines in 30 s.
/// The outage is logged once per JWKS fetch attempt instead.
#[tokio::test]
async fn an_issuer_outage_is_logged_once_not_per_request() {
    use tracing_subscriber::layer::SubscriberExt;
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(CountErrors(errors.clone()));
    // The test runtime is single-threaded, so this thread sees every event.
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = App::new().await;
    app.server.stop().await;
    let token = keys()[1].token(&app.claims());
    for _ in 0..20 {
        let answer = app.call("/api/whoami", &[&format!("Bearer {token}")]).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    // One failed refetch; the other 19 fall in its cool-down.
    assert_eq!(errors.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn whoami_answers_the_checked_claims() {
    let app = App::new().await;
    let answer = app
        .call("/api/whoami", &[&format!("bearer {}", app.valid_token())])
        .await;
    let claims: AccessClaims = answer.json();
    assert_eq!(
        claims,
        AccessClaims {
            sub: "alice@example.com".into(),
            uid: Some("00u-alice".into()),
            cid: Some(CLIENT_ID.into()),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            issuer: app.server.issuer(),
            expires_at: app.clock.now_secs() + 3600,
        }
    );
    assert_eq!(answer.www_authenticate, None);
}

#[tokio::test]
async fn messages_and_report_answer_with_a_valid_token() {
    let app = App::new().await;
    let auth = format!("Bearer {}", app.valid_token());
    let messages: Vec<Message> = app.call("/api/messages", &[&auth]).await.json();
    assert_eq!(messages, app::api::demo_messages("alice@example.com"));

    let with_scope = format!(
        "Bearer {}",
        app.token_with("scp", json!(["openid", "reports:read"]))
    );
    let report: WeeklyReport = app.call("/api/report", &[&with_scope]).await.json();
    assert_eq!(report.generated_for, "alice@example.com");
    // Okta-style `scope` strings from other issuers work too.
    let mut claims = app.claims();
    claims.as_object_mut().unwrap().remove("scp");
    claims["scope"] = json!("openid reports:read");
    let answer = app
        .call(
            "/api/report",
            &[&format!("Bearer {}", keys()[0].token(&claims))],
        )
        .await;
    let _: WeeklyReport = answer.json();
}

#[tokio::test]
async fn health_is_public() {
    let app = App::new().await;
    let answer = app.call("/api/health", &[]).await;
    let body: String = answer.json();
    assert_eq!(body, "ok");
    // A bad token does not matter there either.
    let answer = app.call("/api/health", &["Bearer x.y"]).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn undecodable_requests_are_not_server_errors() {
    let app = App::new().await;
    let auth = format!("Bearer {}", app.valid_token());
    let get = Request::get("/api/whoami")
        .header(header::AUTHORIZATION, &auth)
        .body(Body::empty())
        .unwrap();
    let answer = app.send(get).await;
    assert!(answer.status.is_client_error(), "{answer:?}");
    let odd_body = Request::post("/api/whoami")
        .header(header::AUTHORIZATION, &auth)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![0xff, 0xfe, b'{']))
        .unwrap();
    let answer = app.send(odd_body).await;
    assert!(!answer.status.is_server_error(), "{answer:?}");
    let no_token_odd_body = Request::post("/api/report")
        .header(header::CONTENT_TYPE, "multipart/form-data")
        .body(Body::from("%%%"))
        .unwrap();
    let answer = app.send(no_token_odd_body).await;
    assert!(!answer.status.is_server_error(), "{answer:?}");
}

#[tokio::test]
async fn auth_config_is_public_and_comes_from_the_server() {
    let app = App::new().await;
    let answer = app.call("/api/auth_config", &[]).await;
    let config: PublicAuthConfig = answer.json();
    assert_eq!(config, browser_config(&app.server.issuer()));
}

#[tokio::test]
async fn issuer_key_serves_the_cached_public_key_and_refuses_unknown_kids() {
    let app = App::new().await;
    let kid = keys()[0].kid.clone();
    let request = |kid: &str| {
        Request::post("/api/issuer_key")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("kid={kid}")))
            .unwrap()
    };
    let jwk: PublicJwk = app.send(request(&kid)).await.json();
    assert_eq!(jwk.kid, kid);
    assert_eq!(jwk.e, "AQAB");
    assert!(jwk.n.len() >= 342, "a 2048-bit modulus in base64url");

    let unknown = app.send(request("no-such-kid")).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(matches!(unknown.error(), ApiError::InvalidToken { .. }));

    let empty = app.send(request("")).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_the_browser_config() {
    let app = App::new().await;
    let request = Request::get("/").body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "hydration script carries the nonce"
    );
    assert!(
        html.contains("id=\"auth-config\""),
        "config rendered for the browser"
    );
    assert!(html.contains(CLIENT_ID));
    // The issuer's public keys come with the page, for the callback's
    // signature check without a round trip.
    let kid = keys()[0].jwk()["kid"].as_str().unwrap().to_string();
    assert!(
        html.contains(&format!("\"keys\":[{{\"kid\":\"{kid}\",\"n\":\"")),
        "{html}"
    );
}

/// A `tracing` writer that keeps everything logged in memory.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    for format in [LogFormat::Text, LogFormat::Json] {
        tokens_never_reach_the_log_in(format).await;
    }
}

/// The server's own subscriber (`LOG_FORMAT`), at trace: the refusals are
/// logged, with the request's id, and no part of a token.
async fn tokens_never_reach_the_log_in(format: LogFormat) {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = server::ops::logging::subscriber(
        format,
        tracing_subscriber::EnvFilter::new("trace"),
        move || writer.clone(),
    );
    // Single-threaded test runtime: every request below runs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = App::new().await;
    let now = app.clock.now_secs();
    let valid = app.valid_token();
    let expired = app.token_with("exp", json!(now - 3600));
    let wrong_aud = app.token_with("aud", json!("api://other"));
    for token in [&valid, &expired, &wrong_aud] {
        app.call("/api/whoami", &[&format!("Bearer {token}")]).await;
        app.call("/api/report", &[&format!("Bearer {token}")]).await;
    }
    let in_query = app
        .send(
            Request::post(format!("/api/whoami?access_token={valid}"))
                .header("x-request-id", "query-token-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(in_query.status, StatusCode::BAD_REQUEST);
    // The code flow's callback carries the code (a credential for 60 s) and
    // the state in its query: the page and the renewal iframe's page alike.
    for iframe in [false, true] {
        let mut request =
            Request::get("/login/callback?code=c0de-SECRET-7f3a&state=st4te-SECRET-9b1c");
        if iframe {
            request = request.header("sec-fetch-dest", "iframe");
        }
        let page = app.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(page.status, StatusCode::OK);
    }

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains("SECRET"),
        "the callback's code or state reached the log"
    );
    assert!(
        text.contains("bearer token refused"),
        "the refusals were logged: {text}"
    );
    for token in [&valid, &expired, &wrong_aud] {
        // Not the token, nor its signature, nor its payload.
        for part in token.split('.').skip(1) {
            assert!(!text.contains(part), "a token part reached the log");
        }
    }
    if format == LogFormat::Json {
        // One JSON object per line; the refusals carry the request's id.
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect();
        let refusals: Vec<&Value> = lines
            .iter()
            .filter(|line| line["fields"]["message"] == "bearer token refused")
            .collect();
        assert!(refusals.len() >= 5, "{text}");
        for line in &refusals {
            let id = line["span"]["request_id"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "no request id: {line}");
        }
        assert!(
            refusals
                .iter()
                .any(|line| line["span"]["request_id"] == "query-token-1"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_function_without_authorize_is_refused_by_default() {
    let app = App::new().await;
    let path = "/api/test_forgot_authorize";
    let expired = app.token_with("exp", json!(app.clock.now_secs() - 3600));
    let unknown_kid = keys()[1].token(&app.claims());

    let answer = app.call(path, &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some("Bearer realm=\"api\"")
    );
    assert!(matches!(answer.error(), ApiError::Unauthorized { .. }));

    app.call(path, &["Bearer"]).await.assert_invalid_request();
    app.call(path, &[&format!("Bearer {expired}")])
        .await
        .assert_invalid_token("the token has expired");
    app.call(path, &[&format!("Bearer {unknown_kid}")])
        .await
        .assert_invalid_token("the token is signed with a key the issuer does not publish");
    assert_eq!(
        FORGOT_AUTHORIZE_RUNS.load(Ordering::SeqCst),
        0,
        "the function ran for a caller without a valid token"
    );

    let valid = app.valid_token();
    let answer = app.call(path, &[&format!("Bearer {valid}")]).await;
    assert_eq!(answer.json::<String>(), "ran");
    assert_eq!(FORGOT_AUTHORIZE_RUNS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refusals_and_answers_of_the_api_are_never_cached() {
    let app = App::new().await;
    let valid = format!("Bearer {}", app.valid_token());
    for authorization in [&[][..], &["Bearer"], &[valid.as_str()]] {
        let request = Request::post("/api/whoami")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let request = authorization
            .iter()
            .fold(request, |r, v| r.header(header::AUTHORIZATION, *v));
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-store",
            "{authorization:?}"
        );
    }
}
