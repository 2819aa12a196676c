//! DPoP at the resource server (issue 27, RFC 9449 §4.3, §7, §9) over real
//! HTTP: the app's router served by the app's own connection loop on
//! 127.0.0.1, called with reqwest, with tokens minted by a test issuer and
//! proofs made by an independent implementation (`common/dpop_proofs.rs`).
//!
//! Every rule with a forged input: a replayed `jti`; another URL or
//! method; the URL the socket was reached by rather than the public
//! origin's; stale and future `iat`; the `ath` of another token; a proof by
//! another key than `cnf.jkt`; `alg` `none` and `HS256`; a `jwk` with
//! private members; none or two `DPoP` headers; the DPoP-bound token sent
//! as Bearer; a Bearer token under `REQUIRE_DPOP=1`; a nonce missing, from
//! another secret, or expired. And the happy paths with ES256 and RS256,
//! the verified-token cache still serving the token, the JSON bodies
//! decoding as `app::api::ApiError`, and the metrics counting each outcome.
//!
//! Run: `cargo test -p server --test dpop`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;
#[path = "common/dpop_proofs.rs"]
mod proofs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::api::{AccessClaims, ApiError};
use fixtures::*;
use leptos::prelude::LeptosOptions;
use proofs::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::bearer::nonce::NonceKey;
use server::bearer::stats::{DPOP_OUTCOMES, OUTCOMES};
use server::bearer::{Clock, DpopOptions, ManualClock, Validator};
use server::browser_auth::BrowserAuth;
use server::edge::serve::{ServeOptions, Server};
use server::RouterSettings;
use tokio::sync::{oneshot, RwLock, RwLockReadGuard};

/// `PUBLIC_ORIGIN`: where browsers reach the app. The tests reach it at
/// 127.0.0.1 on a free port, so a proof naming the socket's address is a
/// proof for another URL.
const ORIGIN: &str = "https://app.example.test";
const WHOAMI: &str = "/api/whoami";
/// The algorithms every DPoP challenge offers.
const ALGS: &str = r#"algs="ES256 RS256""#;

/// Held by every test while its app runs; the log test holds it alone.
/// With per-thread subscribers, `tracing` caches whether an event is
/// wanted at each call site, process-wide: a call site first reached by
/// another test while the log test installs its subscriber can be cached
/// as unwanted, and the log test would then see nothing.
static LOGGING: RwLock<()> = RwLock::const_new(());

/// The app served over TCP, with its issuer and clock.
struct Rs {
    addr: SocketAddr,
    issuer: JwksServer,
    clock: Arc<ManualClock>,
    validator: Validator,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _shared: Option<RwLockReadGuard<'static, ()>>,
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    /// Every `WWW-Authenticate` field, in order.
    challenges: Vec<String>,
    nonce: Option<String>,
    cache_control: Option<String>,
    body: String,
}

impl Answer {
    fn error(&self) -> ApiError {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not an ApiError: {e}", self.body))
    }

    fn claims(&self) -> AccessClaims {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        serde_json::from_str(&self.body).unwrap()
    }

    /// 401 `invalid_dpop_proof` with this description, on the DPoP
    /// challenge (the Bearer one bare beside it).
    fn assert_invalid_proof(&self, description: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert_eq!(
            self.error(),
            ApiError::InvalidDpopProof {
                error_description: description.into()
            }
        );
        assert_eq!(
            self.challenges,
            [
                r#"Bearer realm="api""#.to_string(),
                format!(
                    r#"DPoP error="invalid_dpop_proof", error_description="{description}", {ALGS}"#
                )
            ],
            "{self:?}"
        );
    }

    /// 401 `invalid_token` with this description, on the DPoP challenge.
    fn assert_invalid_token_dpop(&self, description: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert_eq!(
            self.error(),
            ApiError::InvalidToken {
                error_description: description.into()
            }
        );
        assert_eq!(
            self.challenges.last().unwrap(),
            &format!(r#"DPoP error="invalid_token", error_description="{description}", {ALGS}"#)
        );
    }
}

impl Rs {
    /// The app with DPoP as `dpop` says (its public origin is [`ORIGIN`]).
    async fn start(dpop: DpopOptions) -> Rs {
        let shared = LOGGING.read().await;
        Rs {
            _shared: Some(shared),
            ..Rs::start_unguarded(dpop).await
        }
    }

    /// [`Rs::start`] for a test that holds [`LOGGING`] itself.
    async fn start_unguarded(dpop: DpopOptions) -> Rs {
        let [k1, _, _] = keys();
        let issuer = JwksServer::start(jwks(&[k1])).await;
        let clock = Arc::new(ManualClock::starting_now());
        let mut options = options(clock.clone());
        options.dpop = DpopOptions {
            public_origin: Some(ORIGIN.into()),
            ..dpop
        };
        let validator = Validator::new(
            policy_for(&issuer, Some(CLIENT_ID)),
            issuer.jwks_uri(),
            options,
        )
        .await
        .expect("validator");
        let leptos = LeptosOptions::builder()
            .output_name("okta-implicit")
            .build();
        let router = server::app_router_with(
            leptos,
            validator.clone(),
            BrowserAuth::new(browser_config(&issuer.issuer()), validator.clone()),
            RouterSettings::default(),
        );
        let listener = server::edge::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = Server::new(
            listener,
            ServeOptions {
                header_read_timeout: Duration::from_secs(5),
                keepalive_idle: Duration::from_secs(5),
                body_read_timeout: Duration::from_secs(5),
                send_timeout: Duration::from_secs(5),
                max_connections: 64,
                shutdown_grace: Some(Duration::from_secs(1)),
            },
        );
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(router, async {
            let _ = stopped.await;
        }));
        Rs {
            addr,
            issuer,
            clock,
            validator,
            http: reqwest::Client::new(),
            _stop: stop,
            _shared: None,
        }
    }

    async fn dpop() -> Rs {
        Rs::start(DpopOptions::default()).await
    }

    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    /// An access token bound to `key` (`cnf.jkt`), or unbound.
    fn token(&self, key: Option<&ProofKey>) -> String {
        self.token_with(key, |_| {})
    }

    fn token_with(&self, key: Option<&ProofKey>, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = access_claims(&self.issuer.issuer(), self.now());
        claims["scp"] = json!(["openid", "profile", "reports:read"]);
        if let Some(key) = key {
            claims["cnf"] = json!({"jkt": key.thumbprint()});
        }
        change(&mut claims);
        keys()[0].token(&claims)
    }

    /// A proof by `key` for `POST {ORIGIN}{path}` now, with `token`'s `ath`.
    fn proof(&self, key: &ProofKey, path: &str, token: &str) -> String {
        key.proof(&self.claims(path, token))
    }

    fn claims(&self, path: &str, token: &str) -> Value {
        proof_claims("POST", &format!("{ORIGIN}{path}"), self.now(), Some(token))
    }

    /// `POST path` with these `Authorization` and `DPoP` header values.
    async fn call(&self, path: &str, authorization: &[&str], dpop: &[&str]) -> Answer {
        let mut request = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded");
        for value in authorization {
            request = request.header("authorization", *value);
        }
        for value in dpop {
            request = request.header("dpop", *value);
        }
        let response = request.send().await.expect("the app answers");
        let all = |name: &str| -> Vec<String> {
            response
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect()
        };
        let challenges = all("www-authenticate");
        let nonce = all("dpop-nonce").into_iter().next();
        let cache_control = all("cache-control").into_iter().next();
        Answer {
            status: response.status(),
            challenges,
            nonce,
            cache_control,
            body: response.text().await.unwrap(),
        }
    }

    /// `POST path` with `Authorization: DPoP <token>` and one proof.
    async fn call_dpop(&self, path: &str, token: &str, proof: &str) -> Answer {
        self.call(path, &[&format!("DPoP {token}")], &[proof]).await
    }

    fn decisions(&self, outcome: &str) -> u64 {
        let index = OUTCOMES.iter().position(|o| *o == outcome).unwrap();
        self.validator.stats().decisions(index)
    }

    fn proofs(&self, outcome: &str) -> u64 {
        let index = DPOP_OUTCOMES.iter().position(|o| *o == outcome).unwrap();
        self.validator.stats().dpop(index)
    }
}

#[test]
fn the_independent_proofs_agree_with_the_rfc() {
    check_ath_against_the_rfc();
}

#[tokio::test]
async fn es256_happy_path_and_the_token_stays_cached() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let answer = rs
        .call_dpop(WHOAMI, &token, &rs.proof(&key, WHOAMI, &token))
        .await;
    assert_eq!(answer.claims().sub, "alice@example.com");
    assert!(answer.nonce.is_none(), "no nonce without DPOP_NONCE");
    assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    // Again, with a fresh proof: the token comes from the cache, the proof
    // is checked anew.
    let hits = rs.validator.stats().cache_hits();
    for path in ["/api/messages", WHOAMI] {
        let answer = rs
            .call_dpop(path, &token, &rs.proof(&key, path, &token))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    assert_eq!(rs.validator.stats().cache_hits(), hits + 2);
    assert_eq!(rs.decisions("valid_dpop"), 3);
    assert_eq!(rs.proofs("valid"), 3);
    // The scheme's name is case-insensitive.
    let answer = rs
        .call(
            WHOAMI,
            &[&format!("dpop {token}")],
            &[&rs.proof(&key, WHOAMI, &token)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn rs256_happy_path() {
    let rs = Rs::dpop().await;
    let key = ProofKey::rs256(0);
    let token = rs.token(Some(&key));
    let answer = rs
        .call_dpop(WHOAMI, &token, &rs.proof(&key, WHOAMI, &token))
        .await;
    assert_eq!(answer.claims().sub, "alice@example.com");
    let report = rs
        .call_dpop(
            "/api/report",
            &token,
            &rs.proof(&key, "/api/report", &token),
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{report:?}");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let proof = rs.proof(&key, WHOAMI, &token);
    assert_eq!(
        rs.call_dpop(WHOAMI, &token, &proof).await.status,
        StatusCode::OK
    );
    rs.call_dpop(WHOAMI, &token, &proof)
        .await
        .assert_invalid_proof("the DPoP proof has been used before (jti)");
    // Another proof with the same jti, freshly signed: the same proof as
    // far as replay goes.
    let mut claims = rs.claims(WHOAMI, &token);
    claims["jti"] = serde_json::from_str::<Value>(&payload_of(&proof)).unwrap()["jti"].clone();
    rs.call_dpop(WHOAMI, &token, &key.proof(&claims))
        .await
        .assert_invalid_proof("the DPoP proof has been used before (jti)");
    assert_eq!(rs.proofs("invalid:replayed"), 2);
    assert_eq!(rs.decisions("invalid_dpop_proof"), 2);
}

fn payload_of(jws: &str) -> String {
    use base64::Engine as _;
    let payload = jws.split('.').nth(1).unwrap();
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_proof_for_another_url_or_method_is_refused() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let wrong_url = "the DPoP proof's htu is not this request's URL";
    // Made for /api/messages, sent to /api/whoami.
    rs.call_dpop(WHOAMI, &token, &rs.proof(&key, "/api/messages", &token))
        .await
        .assert_invalid_proof(wrong_url);
    // The URL the socket was reached by: never the Host header.
    let socket_url = format!("http://{}{WHOAMI}", rs.addr);
    let claims = proof_claims("POST", &socket_url, rs.now(), Some(&token));
    rs.call_dpop(WHOAMI, &token, &key.proof(&claims))
        .await
        .assert_invalid_proof(wrong_url);
    // Another scheme or port of the public origin.
    for other in ["http://app.example.test", "https://app.example.test:8443"] {
        let claims = proof_claims("POST", &format!("{other}{WHOAMI}"), rs.now(), Some(&token));
        rs.call_dpop(WHOAMI, &token, &key.proof(&claims))
            .await
            .assert_invalid_proof(wrong_url);
    }
    // Scheme and host in another case, a query: the same URL.
    let claims = proof_claims(
        "POST",
        "HTTPS://App.Example.TEST/api/whoami?x=1",
        rs.now(),
        Some(&token),
    );
    assert_eq!(
        rs.call_dpop(WHOAMI, &token, &key.proof(&claims))
            .await
            .status,
        StatusCode::OK
    );
    // Made for GET.
    let mut claims = rs.claims(WHOAMI, &token);
    claims["htm"] = json!("GET");
    rs.call_dpop(WHOAMI, &token, &key.proof(&claims))
        .await
        .assert_invalid_proof("the DPoP proof's htm is not this request's method");
    assert_eq!(rs.proofs("invalid:wrong_htu"), 4);
    assert_eq!(rs.proofs("invalid:wrong_htm"), 1);
}

#[tokio::test]
async fn stale_and_future_proofs_are_refused() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    // 60 s plus the default leeway of 60 s, either way.
    let at = |iat: i64| {
        let mut claims = rs.claims(WHOAMI, &token);
        claims["iat"] = json!(iat);
        key.proof(&claims)
    };
    let now = rs.now();
    rs.call_dpop(WHOAMI, &token, &at(now - 121))
        .await
        .assert_invalid_proof("the DPoP proof was made too long ago (iat)");
    rs.call_dpop(WHOAMI, &token, &at(now + 121))
        .await
        .assert_invalid_proof("the DPoP proof was made in the future (iat)");
    for iat in [now - 119, now + 119] {
        assert_eq!(
            rs.call_dpop(WHOAMI, &token, &at(iat)).await.status,
            StatusCode::OK,
            "iat {iat}"
        );
    }
    // A proof made now is stale once the clock has moved on.
    let proof = rs.proof(&key, WHOAMI, &token);
    rs.clock.advance(Duration::from_secs(121));
    rs.call_dpop(WHOAMI, &token, &proof)
        .await
        .assert_invalid_proof("the DPoP proof was made too long ago (iat)");
}

#[tokio::test]
async fn the_ath_of_another_token_is_refused() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let other = rs.token_with(Some(&key), |c| c["jti"] = json!("AT.other"));
    assert_ne!(token, other);
    rs.call_dpop(WHOAMI, &token, &rs.proof(&key, WHOAMI, &other))
        .await
        .assert_invalid_proof(
            "the DPoP proof's ath is not the hash of the access token sent with it",
        );
    let mut no_ath = rs.claims(WHOAMI, &token);
    no_ath.as_object_mut().unwrap().remove("ath");
    rs.call_dpop(WHOAMI, &token, &key.proof(&no_ath))
        .await
        .assert_invalid_proof("the DPoP proof has no ath claim");
}

#[tokio::test]
async fn a_proof_by_another_key_than_the_tokens_is_refused() {
    let rs = Rs::dpop().await;
    let bound_to = ProofKey::es256();
    let thief = ProofKey::es256();
    let token = rs.token(Some(&bound_to));
    let mismatch =
        "the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt)";
    rs.call_dpop(WHOAMI, &token, &rs.proof(&thief, WHOAMI, &token))
        .await
        .assert_invalid_token_dpop(mismatch);
    // An RSA key, or a proof naming the bound key but signed by another.
    rs.call_dpop(
        WHOAMI,
        &token,
        &rs.proof(&ProofKey::rs256(1), WHOAMI, &token),
    )
    .await
    .assert_invalid_token_dpop(mismatch);
    let forged = thief.sign(&bound_to.header(), &rs.claims(WHOAMI, &token));
    rs.call_dpop(WHOAMI, &token, &forged)
        .await
        .assert_invalid_proof("the DPoP proof's signature is not valid for its jwk");
    assert_eq!(rs.proofs("key_mismatch"), 2);
    assert_eq!(rs.decisions("invalid_token:dpop_key_mismatch"), 2);
}

#[tokio::test]
async fn unsigned_mac_and_private_key_proofs_are_refused() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let claims = rs.claims(WHOAMI, &token);
    rs.call_dpop(WHOAMI, &token, &none_proof(&key, &claims))
        .await
        .assert_invalid_proof(
            "the DPoP proof is not a JWS in compact serialization (three base64url parts)",
        );
    // alg none with a signature part: refused for the algorithm.
    let none_signed = format!("{}AAAA", none_proof(&key, &rs.claims(WHOAMI, &token)));
    rs.call_dpop(WHOAMI, &token, &none_signed)
        .await
        .assert_invalid_proof("the DPoP proof is not signed with one of ES256 RS256");
    rs.call_dpop(WHOAMI, &token, &hs256_proof(&rs.claims(WHOAMI, &token)))
        .await
        .assert_invalid_proof("the DPoP proof is not signed with one of ES256 RS256");
    for (key, member) in [(&key, "d"), (&ProofKey::rs256(0), "p"), (&key, "k")] {
        let mut header = key.header();
        header["jwk"][member] = json!("c2VjcmV0");
        let token = rs.token(Some(key));
        rs.call_dpop(
            WHOAMI,
            &token,
            &key.sign(&header, &rs.claims(WHOAMI, &token)),
        )
        .await
        .assert_invalid_proof("the DPoP proof's jwk contains a private key");
    }
    let mut header = key.header();
    header["typ"] = json!("JWT");
    rs.call_dpop(
        WHOAMI,
        &token,
        &key.sign(&header, &rs.claims(WHOAMI, &token)),
    )
    .await
    .assert_invalid_proof("the DPoP proof's typ is not dpop+jwt");
    for garbage in ["x", "a.b.c", &"A".repeat(9 * 1024)] {
        let answer = rs.call_dpop(WHOAMI, &token, garbage).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        assert!(matches!(answer.error(), ApiError::InvalidDpopProof { .. }));
    }
}

#[tokio::test]
async fn none_or_two_dpop_headers_are_a_malformed_request() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let (one, two) = (
        rs.proof(&key, WHOAMI, &token),
        rs.proof(&key, WHOAMI, &token),
    );
    for dpop in [&[][..], &[one.as_str(), two.as_str()]] {
        let answer = rs.call(WHOAMI, &[&format!("DPoP {token}")], dpop).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        assert!(matches!(answer.error(), ApiError::InvalidRequest { .. }));
        assert_eq!(answer.challenges[0], r#"Bearer realm="api""#);
        assert!(
            answer.challenges[1]
                .starts_with(r#"DPoP error="invalid_request", error_description=""#),
            "{answer:?}"
        );
    }
    // Neither proof was used up: the first goes through alone.
    assert_eq!(
        rs.call_dpop(WHOAMI, &token, &one).await.status,
        StatusCode::OK
    );
    assert_eq!(rs.decisions("invalid_request"), 2);
}

#[tokio::test]
async fn a_dpop_bound_token_is_never_accepted_as_bearer() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let description =
        "the token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof";
    // Without a proof, and with a valid proof beside the Bearer header.
    for dpop in [vec![], vec![rs.proof(&key, WHOAMI, &token)]] {
        let dpop: Vec<&str> = dpop.iter().map(String::as_str).collect();
        let answer = rs.call(WHOAMI, &[&format!("Bearer {token}")], &dpop).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        assert_eq!(
            answer.error(),
            ApiError::InvalidToken {
                error_description: description.into()
            }
        );
        // RFC 9449 Figure 18: the error on the scheme used, DPoP offered.
        assert_eq!(
            answer.challenges,
            [
                format!(
                    r#"Bearer realm="api", error="invalid_token", error_description="{description}""#
                ),
                format!("DPoP {ALGS}")
            ]
        );
    }
    // An unbound token with the DPoP scheme is refused too.
    let bearer = rs.token(None);
    rs.call_dpop(WHOAMI, &bearer, &rs.proof(&key, WHOAMI, &bearer))
        .await
        .assert_invalid_token_dpop("the token is not bound to a DPoP key (it has no cnf.jkt)");
    // A binding this server cannot check refuses the token whatever the
    // scheme.
    let x5t = rs.token_with(None, |c| c["cnf"] = json!({"x5t#S256": "abc"}));
    let answer = rs.call(WHOAMI, &[&format!("Bearer {x5t}")], &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.challenges[0].contains("cnf"), "{answer:?}");
    assert_eq!(rs.decisions("invalid_token:dpop_bound"), 2);
}

#[tokio::test]
async fn bearer_tokens_stay_accepted_and_both_schemes_are_offered() {
    let rs = Rs::dpop().await;
    let bearer = rs.token(None);
    let answer = rs.call(WHOAMI, &[&format!("Bearer {bearer}")], &[]).await;
    assert_eq!(answer.claims().sub, "alice@example.com");
    // A DPoP header beside a Bearer token is not looked at.
    let answer = rs
        .call(WHOAMI, &[&format!("Bearer {bearer}")], &["garbage"])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(rs.decisions("valid"), 2);
    // No credentials: RFC 9449 Figure 17, two fields a browser reads as
    // `Bearer realm="api", DPoP algs="ES256 RS256"`.
    let answer = rs.call(WHOAMI, &[], &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenges,
        [r#"Bearer realm="api""#.to_string(), format!("DPoP {ALGS}")]
    );
    assert!(matches!(answer.error(), ApiError::Unauthorized { .. }));
}

#[tokio::test]
async fn require_dpop_refuses_bearer_tokens_with_a_dpop_only_challenge() {
    let rs = Rs::start(DpopOptions {
        required: true,
        ..DpopOptions::default()
    })
    .await;
    let bearer = rs.token(None);
    for path in [WHOAMI, "/api/messages", "/api/report", "/api/anything"] {
        let answer = rs.call(path, &[&format!("Bearer {bearer}")], &[]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.challenges, [format!("DPoP {ALGS}")], "{path}");
        assert_eq!(
            answer.error(),
            ApiError::Unauthorized {
                error_description:
                    "this API takes DPoP-bound tokens only: send Authorization: DPoP with a DPoP proof"
                        .into()
            }
        );
    }
    let answer = rs.call(WHOAMI, &[], &[]).await;
    assert_eq!(answer.challenges, [format!("DPoP {ALGS}")]);
    // DPoP works, and its refusals name DPoP alone.
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let answer = rs
        .call_dpop(WHOAMI, &token, &rs.proof(&key, WHOAMI, &token))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let answer = rs
        .call_dpop(WHOAMI, &token, &rs.proof(&key, "/api/report", &token))
        .await;
    assert_eq!(
        answer.challenges,
        [format!(
            r#"DPoP error="invalid_dpop_proof", error_description="the DPoP proof's htu is not this request's URL", {ALGS}"#
        )]
    );
}

#[tokio::test]
async fn a_missing_scope_is_answered_in_the_dpop_scheme() {
    let rs = Rs::dpop().await;
    let key = ProofKey::es256();
    let token = rs.token_with(Some(&key), |c| c["scp"] = json!(["openid"]));
    let answer = rs
        .call_dpop(
            "/api/report",
            &token,
            &rs.proof(&key, "/api/report", &token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        answer.error(),
        ApiError::InsufficientScope {
            scope: "reports:read".into()
        }
    );
    assert_eq!(
        answer.challenges,
        [
            r#"Bearer realm="api""#.to_string(),
            format!(r#"DPoP error="insufficient_scope", scope="reports:read", {ALGS}"#)
        ]
    );
    assert_eq!(rs.decisions("insufficient_scope"), 1);
}

const SECRET: [u8; 32] = [7; 32];

async fn with_nonces() -> Rs {
    Rs::start(DpopOptions {
        nonce: Some(NonceKey::new(&SECRET, 60).unwrap()),
        ..DpopOptions::default()
    })
    .await
}

/// A proof carrying `nonce`.
fn with_nonce(rs: &Rs, key: &ProofKey, token: &str, nonce: &str) -> String {
    let mut claims = rs.claims(WHOAMI, token);
    claims["nonce"] = json!(nonce);
    key.proof(&claims)
}

fn assert_use_nonce(answer: &Answer, description: &str) -> String {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(
        answer.error(),
        ApiError::UseDpopNonce {
            error_description: description.into()
        }
    );
    assert_eq!(
        answer.challenges.last().unwrap(),
        &format!(r#"DPoP error="use_dpop_nonce", error_description="{description}", {ALGS}"#)
    );
    assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    answer
        .nonce
        .clone()
        .expect("a DPoP-Nonce with use_dpop_nonce")
}

const NONCE_MISSING: &str =
    "the resource server requires a nonce in the DPoP proof: use the DPoP-Nonce of this answer";
const NONCE_INVALID: &str = "the DPoP proof's nonce is not one this server issued, or has expired: use the DPoP-Nonce of this answer";

#[tokio::test]
async fn the_nonce_dance() {
    let rs = with_nonces().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    // No nonce: refused with one.
    let first = rs
        .call_dpop(WHOAMI, &token, &rs.proof(&key, WHOAMI, &token))
        .await;
    let nonce = assert_use_nonce(&first, NONCE_MISSING);
    assert_eq!(nonce.len(), 55);
    // Retried with it: through, with no new nonce while it is fresh.
    let answer = rs
        .call_dpop(WHOAMI, &token, &with_nonce(&rs, &key, &token, &nonce))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.nonce.is_none());
    // Three minutes on it is still good, and the answer carries the next.
    rs.clock.advance(Duration::from_secs(180));
    let answer = rs
        .call_dpop(WHOAMI, &token, &with_nonce(&rs, &key, &token, &nonce))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let next = answer.nonce.expect("a fresh nonce near the old one's end");
    assert_ne!(next, nonce);
    // Five minutes on, the first has expired: refused, with a fresh one.
    rs.clock.advance(Duration::from_secs(120));
    let expired = rs
        .call_dpop(WHOAMI, &token, &with_nonce(&rs, &key, &token, &nonce))
        .await;
    let fresh = assert_use_nonce(&expired, NONCE_INVALID);
    let answer = rs
        .call_dpop(WHOAMI, &token, &with_nonce(&rs, &key, &token, &fresh))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(rs.proofs("nonce_missing"), 1);
    assert_eq!(rs.proofs("nonce_invalid"), 1);
    assert_eq!(rs.decisions("use_dpop_nonce"), 2);
    assert!(rs.validator.stats().nonces_issued() >= 3);
}

#[tokio::test]
async fn a_nonce_of_another_secret_or_altered_is_refused() {
    let rs = with_nonces().await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let foreign = NonceKey::new(&[8; 32], 60).unwrap().issue(rs.now());
    let answer = rs
        .call_dpop(WHOAMI, &token, &with_nonce(&rs, &key, &token, &foreign))
        .await;
    assert_use_nonce(&answer, NONCE_INVALID);
    for odd in ["x", "not-a-nonce-at-all", &"A".repeat(55)] {
        let answer = rs
            .call_dpop(WHOAMI, &token, &with_nonce(&rs, &key, &token, odd))
            .await;
        assert_use_nonce(&answer, NONCE_INVALID);
    }
    // Another instance with the same secret takes this one's nonces.
    let other = with_nonces().await;
    let nonce = NonceKey::new(&SECRET, 60).unwrap().issue(rs.now());
    let token = other.token(Some(&key));
    let mut claims = other.claims(WHOAMI, &token);
    claims["nonce"] = json!(nonce);
    assert_eq!(
        other
            .call_dpop(WHOAMI, &token, &key.proof(&claims))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_401_carries_a_fresh_nonce_when_nonces_are_on() {
    let rs = with_nonces().await;
    let answer = rs.call(WHOAMI, &[], &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.nonce.is_some());
    let expired = rs.token_with(None, |c| c["exp"] = json!(rs.now() - 600));
    let answer = rs.call(WHOAMI, &[&format!("Bearer {expired}")], &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.nonce.is_some());
    // Not on a 400, nor on a success without a nonce to renew.
    let answer = rs.call(WHOAMI, &["Bearer a b"], &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.nonce.is_none());
    let bearer = rs.token(None);
    let answer = rs.call(WHOAMI, &[&format!("Bearer {bearer}")], &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.nonce.is_none());
}

#[tokio::test]
async fn with_dpop_off_the_scheme_is_unknown_and_bound_tokens_still_refused() {
    // No public origin: what a validator built without DPoP options does.
    let rs = Rs::start(DpopOptions::default()).await;
    let off = Validator::new(
        policy_for(&rs.issuer, Some(CLIENT_ID)),
        rs.issuer.jwks_uri(),
        options(rs.clock.clone()),
    )
    .await
    .unwrap();
    assert!(!off.dpop_enabled());
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("DPoP {token}").parse().unwrap());
    headers.insert("dpop", rs.proof(&key, WHOAMI, &token).parse().unwrap());
    let refusal = off
        .authenticate("POST", WHOAMI, &headers, None)
        .await
        .unwrap_err();
    assert_eq!(refusal.error, server::bearer::AuthError::MissingCredentials);
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let refusal = off
        .authenticate("POST", WHOAMI, &headers, None)
        .await
        .unwrap_err();
    assert_eq!(
        refusal.error,
        server::bearer::AuthError::InvalidToken(server::bearer::TokenError::DpopBound)
    );
}

#[tokio::test]
async fn refusals_never_log_the_token_or_the_proof() {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // Alone: no other test reaches a call site while the subscriber is
    // installed and the call sites' interest is rebuilt for it.
    let _alone = LOGGING.write().await;
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = server::ops::logging::subscriber(
        server::config::LogFormat::Text,
        tracing_subscriber::EnvFilter::new("trace"),
        move || writer.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let rs = Rs::start_unguarded(DpopOptions {
        nonce: Some(NonceKey::new(&SECRET, 60).unwrap()),
        ..DpopOptions::default()
    })
    .await;
    let key = ProofKey::es256();
    let token = rs.token(Some(&key));
    let proof = rs.proof(&key, WHOAMI, &token);
    let answer = rs.call_dpop(WHOAMI, &token, &proof).await;
    let nonce = answer.nonce.unwrap();
    let proof2 = with_nonce(&rs, &key, &token, &nonce);
    assert_eq!(
        rs.call_dpop(WHOAMI, &token, &proof2).await.status,
        StatusCode::OK
    );
    rs.call_dpop(WHOAMI, &token, &proof2).await;
    rs.call(WHOAMI, &[&format!("Bearer {token}")], &[]).await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("bearer token refused"), "{text}");
    for secret in [&token, &proof, &proof2] {
        for part in secret.split('.') {
            assert!(
                !text.contains(part),
                "a token or proof part reached the log"
            );
        }
    }
    assert!(!text.contains(&nonce), "a nonce reached the log");
}
