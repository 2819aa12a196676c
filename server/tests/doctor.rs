//! `server doctor` against the embedded development authorization server
//! and small stub issuers, all on 127.0.0.1: every misconfiguration the
//! dev server can produce gives its ✗ line and exit status, a plain OpenID
//! Connect issuer passes the checks that do not depend on Okta, and the
//! real binary exits 2 on a bad setting and never prints a token.
//!
//! Run: `cargo test -p server --test doctor`.

#[allow(dead_code)] // the doctor tests use a few of the dev server fixtures
#[path = "common/dev_idp.rs"]
mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use server::config::Config;
use server::dev_idp::{self, DevIdpOptions, DEMO_CONFIG};
use server::doctor::{self, Options};
use support::{AuthRequest, Browser, Idp, APP_ORIGIN, REDIRECT_URI};

/// The demo clients plus two narrower ones, as an Okta org might have them.
fn test_config_file() -> std::path::PathBuf {
    let mut config: Value = serde_json::from_str(DEMO_CONFIG).unwrap();
    let clients = config["clients"].as_array_mut().unwrap();
    clients.push(json!({
        "client_id": "0oa-id-token-only",
        "redirect_uris": [REDIRECT_URI],
        "response_types": ["id_token"],
    }));
    clients.push(json!({
        "client_id": "0oa-dpop",
        "redirect_uris": [REDIRECT_URI],
        "dpop_bound_access_tokens": true,
    }));
    clients.push(json!({
        "client_id": "0oa-no-reports",
        "redirect_uris": [REDIRECT_URI],
        "scopes": ["openid", "profile", "email"],
    }));
    let path = std::env::temp_dir().join(format!("doctor-test-{}.json", std::process::id()));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// One dev server for the whole file, on a runtime of its own (each
/// `#[tokio::test]` runtime ends with its test).
fn idp() -> Idp {
    static SHARED: OnceLock<Idp> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(async move {
                    let running = dev_idp::start(DevIdpOptions {
                        addr: "127.0.0.1:0".into(),
                        config_path: Some(test_config_file()),
                        app_origin: APP_ORIGIN.into(),
                        enable_control: false,
                    })
                    .await
                    .expect("start the dev authorization server");
                    tx.send(Idp {
                        issuer: running.issuer.clone(),
                        client_id: running.client_id.clone(),
                    })
                    .unwrap();
                    running.wait().await;
                });
            });
            rx.recv().unwrap()
        })
        .clone()
}

fn config(vars: &[(&str, &str)]) -> Config {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(
        |name| vars.get(name).cloned(),
        "127.0.0.1:3000".parse().unwrap(),
    )
    .expect("a valid configuration")
}

/// The settings of the app against the shared dev server, with `extra`
/// on top.
fn against_idp(extra: &[(&str, &str)]) -> Config {
    let idp = idp();
    let mut vars = vec![
        ("ISSUER", idp.issuer.as_str()),
        ("CLIENT_ID", "0oa-dev-spa"),
        ("PUBLIC_ORIGIN", APP_ORIGIN),
        ("SCOPES", "openid profile email reports:read"),
    ];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend_from_slice(extra);
    config(&vars)
}

struct Run {
    lines: Vec<String>,
    exit: u8,
}

impl Run {
    fn failures(&self) -> Vec<&String> {
        self.lines.iter().filter(|l| l.starts_with('✗')).collect()
    }

    /// The one ✗ line, which must contain every piece of `expected`.
    fn assert_one_failure(&self, expected: &[&str]) {
        let failures = self.failures();
        assert_eq!(failures.len(), 1, "{:#?}", self.lines);
        for piece in expected {
            assert!(
                failures[0].contains(piece),
                "{piece:?} not in {}",
                failures[0]
            );
        }
        assert_eq!(self.exit, doctor::EXIT_FAILED);
    }

    fn line_starting(&self, start: &str) -> &String {
        self.lines
            .iter()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}: {:#?}", self.lines))
    }
}

async fn run(config: &Config, token: Option<&str>) -> Run {
    let mut out = Vec::new();
    let options = Options {
        token: token.map(str::to_owned),
        ..Options::default()
    };
    let report = doctor::run(config, &options, &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();
    let lines = report.lines();
    assert_eq!(printed, format!("{}\n", lines.join("\n")));
    Run {
        lines,
        exit: report.exit_code(),
    }
}

// --------------------------------------------------- the dev server

#[tokio::test]
async fn a_good_configuration_passes() {
    let run = run(&against_idp(&[]), None).await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    assert!(run.failures().is_empty());
    run.line_starting("✓ ISSUER http://127.0.0.1:");
    run.line_starting("✓ the discovery document's issuer is exactly ISSUER");
    run.line_starting("✓ the issuer supports RESPONSE_TYPE \"id_token token\"");
    run.line_starting("✓ the issuer supports response_mode fragment");
    run.line_starting("✓ the issuer publishes every scope in SCOPES");
    run.line_starting("✓ end_session_endpoint");
    run.line_starting("✓ the issuer signs ID tokens with RS256");
    run.line_starting("✓ the JWKS at");
    run.line_starting("· the JWKS's Cache-Control says max-age=300");
    let probe = run.line_starting("✓ the authorize endpoint accepts CLIENT_ID, REDIRECT_URI");
    assert!(probe.contains("login_required"), "{probe}");
    // Only a token (or the embedded server) can tell the audience.
    run.line_starting("! AUDIENCE \"api://default\" cannot be checked without a token");
}

#[tokio::test]
async fn wrong_issuer_path() {
    let idp = idp();
    let issuer = format!("{}/oauth2/nope", idp.origin());
    let run = run(&against_idp(&[("ISSUER", &issuer)]), None).await;
    run.assert_one_failure(&["HTTP 404", "ISSUER"]);
}

#[tokio::test]
async fn issuer_with_a_trailing_slash_is_not_the_issuer() {
    let issuer = format!("{}/", idp().issuer);
    let run = run(&against_idp(&[("ISSUER", &issuer)]), None).await;
    run.assert_one_failure(&["the discovery document says the issuer is", "ISSUER"]);
}

#[tokio::test]
async fn unknown_client() {
    let run = run(&against_idp(&[("CLIENT_ID", "0oa-unknown")]), None).await;
    run.assert_one_failure(&["error page", "CLIENT_ID \"0oa-unknown\" is unknown"]);
}

#[tokio::test]
async fn unregistered_redirect_uri() {
    // A callback on another origin than the one registered (REDIRECT_URI
    // itself must be the app's callback page on its public origin).
    let run = run(
        &against_idp(&[
            ("PUBLIC_ORIGIN", "http://localhost:3999"),
            ("REDIRECT_URI", "http://localhost:3999/login/callback"),
        ]),
        None,
    )
    .await;
    run.assert_one_failure(&[
        "error page",
        "REDIRECT_URI \"http://localhost:3999/login/callback\" is not registered",
    ]);
    assert!(run.failures()[0].contains("Sign-in redirect URIs"));
}

#[tokio::test]
async fn a_scope_no_rule_grants_the_client() {
    let run = run(&against_idp(&[("CLIENT_ID", "0oa-no-reports")]), None).await;
    run.assert_one_failure(&[
        "no access policy rule",
        "access_denied (Policy evaluation failed for this request, please check the policy configurations.)",
        "Implicit grant",
    ]);
}

#[tokio::test]
async fn a_scope_the_server_does_not_define() {
    let run = run(&against_idp(&[("SCOPES", "openid admin")]), None).await;
    run.assert_one_failure(&["refuses SCOPES \"openid admin\"", "invalid_scope"]);
    run.line_starting("! SCOPES \"admin\" not in the issuer's scopes_supported");
}

#[tokio::test]
async fn a_response_type_the_client_may_not_use() {
    let run = run(&against_idp(&[("CLIENT_ID", "0oa-id-token-only")]), None).await;
    run.assert_one_failure(&[
        "the client may not use RESPONSE_TYPE \"id_token token\"",
        "unsupported_response_type",
        "Configured response types: [id_token]",
    ]);
    // What the client allows passes.
    let run2 = self::run(
        &against_idp(&[
            ("CLIENT_ID", "0oa-id-token-only"),
            ("RESPONSE_TYPE", "id_token"),
        ]),
        None,
    )
    .await;
    assert_eq!(run2.exit, 0, "{:#?}", run2.lines);
}

#[tokio::test]
async fn unreachable_issuer() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let issuer = format!("http://127.0.0.1:{port}/oauth2/default");
    let run = run(&against_idp(&[("ISSUER", &issuer)]), None).await;
    run.assert_one_failure(&["cannot reach the issuer", "ISSUER's host and port"]);
    assert_eq!(run.lines.len(), 2, "{:#?}", run.lines);
}

#[tokio::test]
async fn the_embedded_server_is_checked_when_issuer_is_unset() {
    let vars = [
        ("PUBLIC_ORIGIN", APP_ORIGIN),
        ("DEV_IDP_ADDR", "127.0.0.1:3100"),
    ];
    let run = run(&config(&vars), None).await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    let first = run.line_starting("✓ ISSUER is not set");
    assert!(first.contains("on 127.0.0.1:3100"), "{first}");
    assert!(!first.contains("127.0.0.1:3100/oauth2"), "{first}");
    run.line_starting("✓ AUDIENCE \"api://default\" is the aud of this issuer's access tokens");

    let mut wrong = vars.to_vec();
    wrong.push(("AUDIENCE", "api://mine"));
    let run = self::run(&config(&wrong), None).await;
    run.assert_one_failure(&[
        "the issuer puts aud \"api://default\"",
        "AUDIENCE is \"api://mine\"",
    ]);
}

// ------------------------------------------------------------ tokens

/// Signs alice in at the shared dev server and returns (access token, ID
/// token).
async fn tokens() -> (String, String) {
    let idp = idp();
    let browser = Browser::new();
    let request =
        AuthRequest::new("doctor-token").set("scope", "openid profile email reports:read");
    let reply = browser
        .sign_in(&idp, &request, "alice@example.com", "alice-password")
        .await;
    let fragment = reply.fragment_map();
    (
        fragment["access_token"].clone(),
        fragment["id_token"].clone(),
    )
}

fn assert_no_token(text: &str, token: &str) {
    assert!(!text.contains(token));
    for part in token.split('.') {
        assert!(!text.contains(part), "a part of the token was printed");
    }
}

#[tokio::test]
async fn a_token_is_validated_as_the_server_would() {
    let (access_token, id_token) = tokens().await;

    let run = run(&against_idp(&[]), Some(&access_token)).await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    let claims = run.line_starting("· the token's claims");
    assert!(claims.contains("sub alice@example.com, cid 0oa-dev-spa, scp [openid profile email reports:read], aud api://default"), "{claims}");
    assert!(claims.contains(" UTC (in "), "{claims}");
    run.line_starting("✓ the access token is valid for this API: sub alice@example.com");
    run.line_starting("· AUDIENCE \"api://default\" is checked against the token's aud below");
    assert_no_token(&run.lines.join("\n"), &access_token);

    let run = self::run(
        &against_idp(&[("AUDIENCE", "api://mine")]),
        Some(&access_token),
    )
    .await;
    run.assert_one_failure(&["rule: aud", "not meant for this API", "AUDIENCE"]);

    let run = self::run(
        &against_idp(&[("CLIENT_ID", "0oa-no-reports"), ("SCOPES", "openid")]),
        Some(&access_token),
    )
    .await;
    run.assert_one_failure(&["rule: cid"]);

    let run = self::run(&against_idp(&[]), Some(&id_token)).await;
    run.assert_one_failure(&["an ID token cannot be used as an access token"]);
    assert_no_token(&run.lines.join("\n"), &id_token);
}

// ------------------------------------------------------- stub issuers

/// What a stub issuer serves.
struct Stub {
    /// The issuer's path under the stub's origin ("" for the origin itself).
    issuer_path: &'static str,
    /// Where its endpoints live under the issuer.
    endpoints: &'static str,
    jwks: Value,
}

/// Serves `stub` on 127.0.0.1 from this test's runtime; returns the issuer.
async fn serve_stub(stub: Stub) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}{}", stub.issuer_path);
    let base = format!("{issuer}{}", stub.endpoints);
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "jwks_uri": format!("{base}/keys"),
        "end_session_endpoint": format!("{base}/logout"),
        "response_types_supported": ["code", "id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    });
    let path = |p: &str| format!("{}{}{p}", stub.issuer_path, stub.endpoints);
    let jwks = stub.jwks;
    let app = Router::new()
        .route(
            &format!("{}/.well-known/openid-configuration", stub.issuer_path),
            get(move || async move { Json(discovery) }),
        )
        .route(
            &path("/keys"),
            get(move || async move { ([(header::CACHE_CONTROL, "max-age=86400")], Json(jwks)) }),
        )
        .route(
            &path("/authorize"),
            get(|Query(query): Query<HashMap<String, String>>| async move {
                // A signed-out prompt=none request, answered as OpenID
                // Connect says: login_required, in the fragment.
                let location = format!(
                    "{}#error=login_required&state={}",
                    query["redirect_uri"], query["state"]
                );
                (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    issuer
}

fn rsa_jwk(kid: &str) -> Value {
    let mut n = vec![0xc5u8; 256];
    n[255] = 1;
    json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"})
}

fn against(issuer: &str) -> Config {
    config(&[
        ("ISSUER", issuer),
        ("CLIENT_ID", "my-client"),
        ("PUBLIC_ORIGIN", APP_ORIGIN),
    ])
}

#[tokio::test]
async fn jwks_without_an_rs256_key() {
    let issuer = serve_stub(Stub {
        issuer_path: "/oauth2/default",
        endpoints: "/v1",
        jwks: json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig", "x": "AAAA", "y": "AAAA"},
            {"kty": "RSA", "alg": "RS512", "kid": "rs512", "n": rsa_jwk("x")["n"], "e": "AQAB"},
        ]}),
    })
    .await;
    let run = run(&against(&issuer), None).await;
    run.assert_one_failure(&["holds no RS256 signing key with a kid"]);
}

#[tokio::test]
async fn a_plain_openid_connect_issuer_passes_the_checks_that_do_not_depend_on_okta() {
    let issuer = serve_stub(Stub {
        issuer_path: "",
        endpoints: "/oidc",
        jwks: json!({"keys": [rsa_jwk("k1")]}),
    })
    .await;
    let run = run(&against(&issuer), None).await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    assert!(
        !run.lines.iter().any(|l| l.contains("Okta")),
        "{:#?}",
        run.lines
    );
    run.line_starting("✓ the authorize endpoint accepts");
    run.line_starting("✓ the JWKS at");
    run.line_starting(
        "· the JWKS's Cache-Control says max-age=86400: the server refreshes the keys every 24 h",
    );
    // response_modes_supported absent: fragment is a default mode.
    run.line_starting("✓ response_mode fragment (the default");
}

#[tokio::test]
async fn an_org_authorization_server_layout_is_warned_about() {
    let issuer = serve_stub(Stub {
        issuer_path: "",
        endpoints: "/oauth2/v1",
        jwks: json!({"keys": [rsa_jwk("k1")]}),
    })
    .await;
    let run = run(&against(&issuer), None).await;
    assert_eq!(run.exit, 0, "warnings do not fail: {:#?}", run.lines);
    let warning = run.line_starting("! ISSUER is an Okta org authorization server");
    assert!(warning.contains("/oauth2/default"), "{warning}");
}

// ------------------------------------------------- the code flow

/// A stub issuer of the authorization code flow, answering as an Okta
/// custom authorization server answers a signed-out browser.
#[derive(Clone)]
struct CodeIssuer {
    token_endpoint: bool,
    revocation_endpoint: bool,
    /// The origins its token endpoint answers CORS for (Okta's Trusted
    /// Origins of type CORS).
    trusted_origins: Vec<&'static str>,
    /// How it refuses `offline_access` (`invalid_scope`, `access_denied`),
    /// or `None` when the client may have it.
    offline_access_refused_with: Option<&'static str>,
    /// Answers in the query whatever `response_mode` asks.
    ignores_response_mode: bool,
}

impl Default for CodeIssuer {
    fn default() -> Self {
        CodeIssuer {
            token_endpoint: true,
            revocation_endpoint: true,
            trusted_origins: vec![APP_ORIGIN],
            offline_access_refused_with: None,
            ignores_response_mode: false,
        }
    }
}

/// The answer of `stub` to a signed-out `prompt=none` authorize request:
/// its redirect back, with the error where the request's response mode
/// puts it.
fn code_authorize(stub: &CodeIssuer, query: &HashMap<String, String>) -> axum::response::Response {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let error = if param("response_type") != "code" {
        "error=unsupported_response_type".to_owned()
    } else if param("code_challenge_method") != "S256"
        || param("code_challenge").len() != 43
        || URL_SAFE_NO_PAD
            .decode(param("code_challenge"))
            .map(|d| d.len())
            != Ok(32)
    {
        "error=invalid_request&error_description=PKCE+code+challenge+is+required+when+the+token+endpoint+authentication+method+is+%27NONE%27.".to_owned()
    } else if let Some(refusal) = stub
        .offline_access_refused_with
        .filter(|_| param("scope").split(' ').any(|s| s == "offline_access"))
    {
        format!("error={refusal}&error_description=The+client+may+not+have+offline_access.")
    } else if param("prompt") == "none" {
        "error=login_required&error_description=The+client+specified+not+to+prompt%2C+but+the+user+is+not+logged+in.".to_owned()
    } else {
        return StatusCode::OK.into_response();
    };
    let separator = match param("response_mode") {
        "fragment" if !stub.ignores_response_mode => '#',
        _ => '?',
    };
    let location = format!(
        "{}{separator}{error}&state={}",
        param("redirect_uri"),
        param("state")
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The token endpoint's answer to a CORS preflight: the Allow headers for
/// a trusted origin, 403 without them for any other.
fn token_preflight(stub: &CodeIssuer, headers: &axum::http::HeaderMap) -> axum::response::Response {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !stub.trusted_origins.contains(&origin.as_str()) {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "POST, OPTIONS".to_owned(),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "content-type, accept".to_owned(),
            ),
        ],
    )
        .into_response()
}

/// Serves `stub` on 127.0.0.1 as `/oauth2/default`; returns the issuer.
async fn serve_code_issuer(stub: CodeIssuer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}/oauth2/default");
    let mut discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "response_types_supported": ["code", "id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    if stub.token_endpoint {
        discovery["token_endpoint"] = json!(format!("{issuer}/v1/token"));
    }
    if stub.revocation_endpoint {
        discovery["revocation_endpoint"] = json!(format!("{issuer}/v1/revoke"));
    }
    let (authorize_stub, token_stub) = (stub.clone(), stub);
    let app = Router::new()
        .route(
            "/oauth2/default/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route(
            "/oauth2/default/v1/keys",
            get(|| async { Json(json!({"keys": [rsa_jwk("k1")]})) }),
        )
        .route(
            "/oauth2/default/v1/authorize",
            get(
                move |Query(query): Query<HashMap<String, String>>| async move {
                    code_authorize(&authorize_stub, &query)
                },
            ),
        )
        .route(
            "/oauth2/default/v1/token",
            axum::routing::options(move |headers: axum::http::HeaderMap| async move {
                token_preflight(&token_stub, &headers)
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    issuer
}

/// The code flow's settings against `issuer`, with `extra` on top.
fn code_flow(issuer: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![
        ("ISSUER", issuer),
        ("CLIENT_ID", "my-spa"),
        ("PUBLIC_ORIGIN", APP_ORIGIN),
        ("RESPONSE_TYPE", "code"),
        ("SCOPES", "openid profile email offline_access"),
    ];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend_from_slice(extra);
    config(&vars)
}

#[tokio::test]
async fn the_code_flow_passes_against_an_issuer_set_up_for_it() {
    let issuer = serve_code_issuer(CodeIssuer::default()).await;
    let run = run(&code_flow(&issuer, &[]), None).await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    run.line_starting("✓ the issuer supports RESPONSE_TYPE \"code\"");
    run.line_starting("✓ the issuer supports RESPONSE_MODE query");
    let token = run.line_starting(&format!("✓ token_endpoint {issuer}/v1/token"));
    assert!(token.contains("exchanges the code"), "{token}");
    run.line_starting(&format!(
        "✓ revocation_endpoint {issuer}/v1/revoke: sign-out revokes the refresh token there"
    ));
    run.line_starting(&format!(
        "✓ the token endpoint allows CORS from the app's origin {APP_ORIGIN} (a preflight for its POST was answered with Access-Control-Allow-Origin: {APP_ORIGIN})"
    ));
    let probe = run.line_starting(
        "✓ the authorize endpoint accepts CLIENT_ID, REDIRECT_URI, RESPONSE_TYPE \"code\" with a PKCE S256 challenge, and SCOPES \"openid profile email offline_access\"",
    );
    assert!(
        probe.ends_with("(a prompt=none request came back with login_required, in the query as RESPONSE_MODE says)"),
        "{probe}"
    );
    run.line_starting("✓ the authorize endpoint accepts offline_access for CLIENT_ID");
    // In this order: discovery, the code flow's endpoints, keys, CORS,
    // the probe, offline_access.
    let at = |start: &str| run.lines.iter().position(|l| l.starts_with(start)).unwrap();
    let order = [
        "✓ the issuer signs ID tokens",
        "✓ token_endpoint",
        "✓ revocation_endpoint",
        "✓ the JWKS at",
        "✓ the token endpoint allows CORS",
        "✓ the authorize endpoint accepts CLIENT_ID",
        "✓ the authorize endpoint accepts offline_access",
    ];
    for pair in order.windows(2) {
        assert!(at(pair[0]) < at(pair[1]), "{pair:?}: {:#?}", run.lines);
    }

    let run = self::run(&code_flow(&issuer, &[("RESPONSE_MODE", "fragment")]), None).await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    run.line_starting("✓ the issuer supports RESPONSE_MODE fragment");
    let probe = run.line_starting("✓ the authorize endpoint accepts CLIENT_ID");
    assert!(
        probe.contains("in the fragment as RESPONSE_MODE says"),
        "{probe}"
    );
}

#[tokio::test]
async fn the_token_endpoint_does_not_allow_the_app_origin() {
    let issuer = serve_code_issuer(CodeIssuer {
        trusted_origins: vec!["http://other.test"],
        ..CodeIssuer::default()
    })
    .await;
    let run = run(&code_flow(&issuer, &[]), None).await;
    run.assert_one_failure(&[
        &format!("the token endpoint does not allow the app's origin {APP_ORIGIN}"),
        "got HTTP 403 without Access-Control-Allow-Origin",
        &format!("add {APP_ORIGIN} (PUBLIC_ORIGIN) to the issuer's Trusted Origins with CORS"),
    ]);
}

#[tokio::test]
async fn offline_access_the_client_may_not_have() {
    for refusal in ["invalid_scope", "access_denied"] {
        let issuer = serve_code_issuer(CodeIssuer {
            offline_access_refused_with: Some(refusal),
            ..CodeIssuer::default()
        })
        .await;
        let run = run(&code_flow(&issuer, &[]), None).await;
        run.assert_one_failure(&[
            &format!("the authorization server refuses offline_access for CLIENT_ID: {refusal} (The client may not have offline_access.)"),
            "(the same request without offline_access is accepted)",
            "enable the Refresh Token grant for the app",
            "allow offline_access in the access policy rule",
        ]);
        // The rest of the request is accepted, and said so.
        run.line_starting("✓ the authorize endpoint accepts CLIENT_ID, REDIRECT_URI, RESPONSE_TYPE \"code\" with a PKCE S256 challenge, and SCOPES without offline_access (\"openid profile email\")");
    }
}

#[tokio::test]
async fn without_offline_access_sessions_depend_on_third_party_cookies() {
    let issuer = serve_code_issuer(CodeIssuer::default()).await;
    let run = run(
        &code_flow(&issuer, &[("SCOPES", "openid profile email")]),
        None,
    )
    .await;
    assert_eq!(run.exit, 0, "{:#?}", run.lines);
    let warning = run.line_starting("! SCOPES has no offline_access");
    assert!(warning.contains("third-party cookie"), "{warning}");
}

#[tokio::test]
async fn an_issuer_without_a_token_endpoint() {
    let issuer = serve_code_issuer(CodeIssuer {
        token_endpoint: false,
        ..CodeIssuer::default()
    })
    .await;
    let run = run(&code_flow(&issuer, &[]), None).await;
    run.assert_one_failure(&[
        "the discovery document has no token_endpoint, which RESPONSE_TYPE=code needs",
        "set RESPONSE_TYPE back to \"id_token token\"",
    ]);
    run.line_starting("· the token endpoint's CORS cannot be checked");
}

#[tokio::test]
async fn an_issuer_without_a_revocation_endpoint() {
    let issuer = serve_code_issuer(CodeIssuer {
        revocation_endpoint: false,
        ..CodeIssuer::default()
    })
    .await;
    let run = run(&code_flow(&issuer, &[]), None).await;
    assert_eq!(run.exit, 0, "a warning does not fail: {:#?}", run.lines);
    run.line_starting(
        "! the issuer has no revocation_endpoint: sign-out cannot revoke refresh tokens",
    );
}

#[tokio::test]
async fn an_issuer_that_ignores_response_mode() {
    let issuer = serve_code_issuer(CodeIssuer {
        ignores_response_mode: true,
        ..CodeIssuer::default()
    })
    .await;
    let run = run(&code_flow(&issuer, &[("RESPONSE_MODE", "fragment")]), None).await;
    run.assert_one_failure(&[
        "answered in the query, but RESPONSE_MODE is fragment",
        "the app reads the answer in the fragment only",
    ]);
}

#[tokio::test]
async fn the_code_flow_against_the_dev_server() {
    // The dev server's endpoints for the code flow are checked line by
    // line whatever it offers of the flow so far; its revocation endpoint
    // and the fragment response mode are there already.
    let run = run(
        &against_idp(&[
            ("RESPONSE_TYPE", "code"),
            ("RESPONSE_MODE", "fragment"),
            ("SCOPES", "openid profile email"),
        ]),
        None,
    )
    .await;
    run.line_starting(&format!("✓ revocation_endpoint {}/v1/revoke", idp().issuer));
    run.line_starting("✓ the issuer supports RESPONSE_MODE fragment");
    run.line_starting("! SCOPES has no offline_access");
    for start in [
        "✓ token_endpoint",
        "✗ the discovery document has no token_endpoint",
    ] {
        if run.lines.iter().any(|l| l.starts_with(start)) {
            return;
        }
    }
    panic!("no token_endpoint line: {:#?}", run.lines);
}

#[tokio::test]
async fn with_dpop_the_client_must_require_dpop_and_cors_allow_the_header() {
    let dpop = |client: &'static str| {
        against_idp(&[
            ("RESPONSE_TYPE", "code"),
            ("SCOPES", "openid profile email offline_access"),
            ("DPOP", "1"),
            ("CLIENT_ID", client),
        ])
    };
    let requiring = run(&dpop("0oa-dpop"), None).await;
    assert!(requiring.failures().is_empty(), "{:#?}", requiring.lines);
    requiring.line_starting("✓ the issuer takes DPoP proofs signed with ES256");
    requiring.line_starting("✓ the token endpoint allows CORS from the app's origin");
    requiring.line_starting("✓ the client requires DPoP proofs in token requests");

    // The demo client takes Bearer token requests too.
    let bearer = run(&dpop("0oa-dev-spa"), None).await;
    bearer.assert_one_failure(&[
        "DPOP=1, but the client does not require DPoP",
        "invalid_grant",
    ]);
    assert!(bearer
        .lines
        .iter()
        .any(|l| l.contains("Require Demonstrating Proof of Possession")));
}

// ----------------------------------------------------- the real binary

fn doctor_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    // Away from the checkout, so no .env is read; none of the settings the
    // test runner may carry.
    command.current_dir(std::env::temp_dir()).arg("doctor");
    for var in [
        "ISSUER",
        "CLIENT_ID",
        "AUDIENCE",
        "SCOPES",
        "RESPONSE_TYPE",
        "REDIRECT_URI",
        "POST_LOGOUT_REDIRECT_URI",
        "PUBLIC_ORIGIN",
        "TOKEN_LEEWAY_SECS",
        "DEV_IDP_ADDR",
        "DEV_IDP_CONFIG",
    ] {
        command.env_remove(var);
    }
    command
}

#[test]
fn the_binary_exits_2_with_one_line_on_bad_configuration() {
    let output = doctor_command()
        .env("ISSUER", "http://issuer.example.com/oauth2/default")
        .env("CLIENT_ID", "0oa1b2c3d4e5f6g7h8i9")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ISSUER is not valid"), "{stderr}");
    assert!(output.stdout.is_empty());

    let output = doctor_command().arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn the_binary_checks_a_token_and_never_prints_it() {
    let (access_token, _) = tokens().await;
    let idp = idp();
    let base = || {
        let mut command = doctor_command();
        command
            .env("ISSUER", &idp.issuer)
            .env("CLIENT_ID", "0oa-dev-spa")
            .env("PUBLIC_ORIGIN", APP_ORIGIN)
            .env("SCOPES", "openid profile email reports:read");
        command
    };

    let output = base().args(["--token", &access_token]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("✓ the access token is valid"), "{stdout}");
    assert_no_token(&stdout, &access_token);
    assert_no_token(&String::from_utf8(output.stderr).unwrap(), &access_token);

    // From standard input, with the wrong audience: exit 1.
    let mut child = base()
        .env("AUDIENCE", "api://mine")
        .args(["--token", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{access_token}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("rule: aud"), "{stdout}");
    assert_no_token(&stdout, &access_token);
}
