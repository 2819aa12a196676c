//! Fixtures of the bearer tests: RSA keys generated once per test binary,
//! tokens minted and signed in the test (with aws-lc-rs directly, so any
//! header or payload can be produced), and a local JWKS server that counts
//! its fetches and can be slowed, broken or stopped.
//!
//! Included by each `tests/bearer*.rs` with
//! `#[path = "common/bearer_fixtures.rs"] mod fixtures;`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use server::bearer::{CacheOptions, HttpOptions, ManualClock, Policy, Validator, ValidatorOptions};

pub const AUDIENCE: &str = "api://default";
pub const CLIENT_ID: &str = "0oa-test-spa";

/// An RSA-2048 signing key with its kid.
pub struct TestKey {
    pub kid: String,
    key_pair: KeyPair,
    pub n: String,
    pub e: String,
    /// PKCS#1 DER of the public key (for the "HS256 with the public key"
    /// attack).
    pub public_der: Vec<u8>,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let public_der = key_pair.public_key().as_ref().to_vec();
        let (n, e) = rsa_public_components(&public_der);
        TestKey {
            kid: kid.to_string(),
            key_pair,
            n: URL_SAFE_NO_PAD.encode(n),
            e: URL_SAFE_NO_PAD.encode(e),
            public_der,
        }
    }

    /// This key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e})
    }

    /// An RS256 token with the standard header and `claims`.
    pub fn token(&self, claims: &Value) -> String {
        self.sign_json(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token with any header, signed RS256 by this key.
    pub fn sign_json(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A token of any header and payload bytes, signed RS256 by this key.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.signature_of(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub fn signature_of(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing");
        signature
    }
}

/// Keys generated once per test binary (RSA generation is slow in debug
/// builds): `k1`, `k2` and `k3`.
pub fn keys() -> &'static [TestKey; 3] {
    static KEYS: OnceLock<[TestKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            TestKey::generate("k1"),
            TestKey::generate("k2"),
            TestKey::generate("k3"),
        ]
    })
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

/// The claims of an Okta access token from `issuer`, valid at `now`.
pub fn access_claims(issuer: &str, now: i64) -> Value {
    json!({
        "ver": 1,
        "jti": "AT.test-jti",
        "iss": issuer,
        "aud": AUDIENCE,
        "iat": now - 5,
        "exp": now + 3600,
        "cid": CLIENT_ID,
        "uid": "00u-alice",
        "scp": ["openid", "profile", "email"],
        "sub": "alice@example.com",
    })
}

/// Reads n and e out of a PKCS#1 `RSAPublicKey` (SEQUENCE of two INTEGERs).
fn rsa_public_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read_tlv(input: &[u8], tag: u8) -> (&[u8], &[u8]) {
        assert_eq!(input[0], tag, "unexpected DER tag");
        let (len, header) = match input[1] {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (input[2] as usize, 3),
            0x82 => (((input[2] as usize) << 8) | input[3] as usize, 4),
            other => panic!("unexpected DER length byte {other:#x}"),
        };
        (&input[header..header + len], &input[header + len..])
    }
    let (seq, _) = read_tlv(der, 0x30);
    let (n, rest) = read_tlv(seq, 0x02);
    let (e, _) = read_tlv(rest, 0x02);
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    (strip(n), strip(e))
}

/// What the JWKS server answers, changeable while it runs.
struct ServerState {
    base: String,
    jwks: Mutex<String>,
    discovery_issuer: Mutex<Option<String>>,
    fetches: AtomicUsize,
    status: AtomicU16,
    delay: Mutex<Duration>,
    cache_control: Mutex<String>,
    /// Sent as `ETag`; a request whose `If-None-Match` matches gets 304.
    etag: Mutex<Option<String>>,
}

/// A local issuer: `/keys` (the JWKS) and
/// `/.well-known/openid-configuration`, on 127.0.0.1 at a free port.
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl JwksServer {
    pub async fn start(jwks: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState {
            base: format!("http://{addr}"),
            jwks: Mutex::new(jwks),
            discovery_issuer: Mutex::new(None),
            fetches: AtomicUsize::new(0),
            status: AtomicU16::new(200),
            delay: Mutex::new(Duration::ZERO),
            cache_control: Mutex::new("max-age=3600".into()),
            etag: Mutex::new(None),
        });
        let app = Router::new()
            .route("/keys", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            addr,
            state,
            task: Mutex::new(Some(task)),
        }
    }

    /// The issuer this server speaks for: its own base URL.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_uri(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/keys", self.addr)).unwrap()
    }

    /// How many times `/keys` has been requested.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn set_jwks(&self, jwks: String) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    /// Answer `/keys` with this status (500: the issuer is failing).
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Wait this long before answering `/keys`.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Send this `ETag` with the JWKS, and answer 304 to a request that
    /// names it in `If-None-Match`.
    pub fn set_etag(&self, etag: Option<&str>) {
        *self.state.etag.lock().unwrap() = etag.map(str::to_string);
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock().unwrap() = value.to_string();
    }

    /// Make discovery claim another issuer.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.state.discovery_issuer.lock().unwrap() = Some(issuer.to_string());
    }

    /// Stops listening: from now on connections are refused. Every
    /// response carried `Connection: close`, so no pooled connection
    /// survives either.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn serve_jwks(
    State(state): State<Arc<ServerState>>,
    request_headers: HeaderMap,
) -> impl IntoResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&state.cache_control.lock().unwrap()).unwrap(),
    );
    let mut status = StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap();
    let mut body = state.jwks.lock().unwrap().clone();
    if let Some(etag) = state.etag.lock().unwrap().clone() {
        let matches = request_headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
        if matches && status == StatusCode::OK {
            status = StatusCode::NOT_MODIFIED;
            body.clear();
        }
        headers.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    }
    (status, headers, body)
}

async fn serve_discovery(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let base = state.base.clone();
    let issuer = state
        .discovery_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| base.clone());
    (
        [(header::CONNECTION, "close")],
        axum::Json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{base}/keys"),
            "authorization_endpoint": format!("{base}/v1/authorize"),
        })),
    )
}

/// Options for tests: the manual clock, short HTTP timeouts.
pub fn options(clock: Arc<ManualClock>) -> ValidatorOptions {
    ValidatorOptions {
        clock,
        http: HttpOptions {
            connect_timeout: Duration::from_millis(500),
            timeout: Duration::from_millis(1500),
            max_body: 1024 * 1024,
        },
        cache: CacheOptions::default(),
        verified_cache_capacity: 10_000,
        dpop: Default::default(),
    }
}

/// The policy for `server`'s issuer: the test audience, the test client
/// (`client_id`) or any, the default leeway.
pub fn policy_for(server: &JwksServer, client_id: Option<&str>) -> Policy {
    Policy::new(
        server.issuer(),
        AUDIENCE,
        client_id.map(str::to_string),
        server::bearer::DEFAULT_LEEWAY,
    )
    .unwrap()
}

/// A validator for `server`'s issuer with the test audience and client.
pub async fn validator_for(server: &JwksServer, clock: Arc<ManualClock>) -> Validator {
    let policy = policy_for(server, Some(CLIENT_ID));
    Validator::new(policy, server.jwks_uri(), options(clock))
        .await
        .expect("validator")
}

/// What the pages would tell the browser about the test issuer `issuer`.
pub fn browser_config(issuer: &str) -> app::auth::config::PublicAuthConfig {
    app::auth::config::PublicAuthConfig {
        issuer: issuer.to_string(),
        authorization_endpoint: format!("{issuer}/v1/authorize"),
        end_session_endpoint: Some(format!("{issuer}/v1/logout")),
        token_endpoint: Some(format!("{issuer}/v1/token")),
        revocation_endpoint: Some(format!("{issuer}/v1/revoke")),
        client_id: CLIENT_ID.into(),
        scopes: "openid profile".into(),
        response_type: "id_token token".into(),
        response_mode: "fragment".into(),
        redirect_uri: "http://localhost:3000/login/callback".into(),
        post_logout_redirect_uri: "http://localhost:3000/".into(),
        renew_before_secs: 60,
        token_storage: Default::default(),
        dpop: false,
        keys: Vec::new(),
    }
}
