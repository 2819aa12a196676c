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
