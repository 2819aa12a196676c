//! Every validation rule of the Bearer validator, with tokens minted and
//! signed in the test against a local JWKS server.
//!
//! Run: `cargo test -p server --test bearer_validation`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fixtures::*;
use serde_json::{json, Value};
use server::bearer::{AuthError, Clock, ManualClock, TokenError, Validator};

struct Setup {
    server: JwksServer,
    clock: Arc<ManualClock>,
    validator: Validator,
}

impl Setup {
    async fn new() -> Setup {
        let [k1, k2, _] = keys();
        let server = JwksServer::start(jwks(&[k1, k2])).await;
        let clock = Arc::new(ManualClock::starting_now());
        let validator = validator_for(&server, clock.clone()).await;
        Setup {
            server,
            clock,
            validator,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    fn claims(&self) -> Value {
        access_claims(&self.server.issuer(), self.now())
    }

    fn claims_with(&self, key: &str, value: Value) -> Value {
        let mut claims = self.claims();
        claims[key] = value;
        claims
    }

    fn claims_without(&self, key: &str) -> Value {
        let mut claims = self.claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    async fn check(&self, token: &str) -> Result<app::api::AccessClaims, AuthError> {
        // Uncached, so each rule is checked on its own.
        self.validator.validate_uncached(token).await
    }

    async fn refused(&self, token: &str) -> TokenError {
        match self.check(token).await {
            Err(AuthError::InvalidToken(problem)) => problem,
            other => panic!("expected invalid_token, got {other:?}"),
        }
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_valid_okta_access_token_is_accepted() {
    let s = Setup::new().await;
    let claims = s.check(&keys()[0].token(&s.claims())).await.unwrap();
    assert_eq!(claims.sub, "alice@example.com");
    assert_eq!(claims.uid.as_deref(), Some("00u-alice"));
    assert_eq!(claims.cid.as_deref(), Some(CLIENT_ID));
    assert_eq!(claims.scopes, ["openid", "profile", "email"]);
    assert_eq!(claims.issuer, s.server.issuer());
    assert_eq!(claims.expires_at, s.now() + 3600);
    // Either published key works.
    assert!(s.check(&keys()[1].token(&s.claims())).await.is_ok());
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims_with("exp", json!(s.now() - 61)));
    assert_eq!(s.refused(&token).await, TokenError::Expired);
    // Within the 60 s leeway it still passes.
    let token = keys()[0].token(&s.claims_with("exp", json!(s.now() - 30)));
    assert!(s.check(&token).await.is_ok());
}

#[tokio::test]
async fn a_token_expires_when_the_clock_passes_exp() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims());
    assert!(s.validator.validate(&token).await.is_ok());
    s.clock.advance(Duration::from_secs(3600 + 61));
    // Also through the verified-token cache: an entry never outlives exp.
    assert_eq!(
        s.validator.validate(&token).await,
        Err(AuthError::InvalidToken(TokenError::Expired))
    );
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_refused() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims_with("nbf", json!(s.now() + 300)));
    assert_eq!(s.refused(&token).await, TokenError::NotYetValid);
    let token = keys()[0].token(&s.claims_with("iat", json!(s.now() + 300)));
    assert_eq!(s.refused(&token).await, TokenError::IssuedInFuture);
}

#[tokio::test]
async fn wrong_issuer_audience_or_client_is_refused() {
    let s = Setup::new().await;
    let k = &keys()[0];
    let token = k.token(&s.claims_with("iss", json!("https://evil.example/oauth2/default")));
    assert_eq!(s.refused(&token).await, TokenError::WrongIssuer);
    let token = k.token(&s.claims_with("aud", json!("api://other")));
    assert_eq!(s.refused(&token).await, TokenError::WrongAudience);
    let token = k.token(&s.claims_with("cid", json!("0oa-other-client")));
    assert_eq!(s.refused(&token).await, TokenError::WrongClient);
}

#[tokio::test]
async fn missing_exp_is_refused() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims_without("exp"));
    assert_eq!(s.refused(&token).await, TokenError::MissingClaim("exp"));
}

#[tokio::test]
async fn an_id_token_is_not_an_access_token() {
    let s = Setup::new().await;
    let now = s.now();
    let id_token = keys()[0].token(&json!({
        "ver": 1, "jti": "ID.test", "iss": s.server.issuer(), "aud": CLIENT_ID,
        "sub": "00u-alice", "iat": now, "exp": now + 3600, "auth_time": now,
        "amr": ["pwd"], "idp": "00o-test", "nonce": "n-0S6", "at_hash": "abc",
        "name": "Alice", "email": "alice@example.com",
    }));
    assert_eq!(s.refused(&id_token).await, TokenError::IdToken);
    assert_eq!(
        app::api::ApiError::from(AuthError::InvalidToken(TokenError::IdToken))
            .www_authenticate()
            .unwrap(),
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"an ID token cannot be used as an access token\""
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let s = Setup::new().await;
    let header = b64(json!({"alg": "none", "kid": "k1"}).to_string());
    let payload = b64(s.claims().to_string());
    // The unsecured JWS form, with an empty signature...
    assert_eq!(
        s.refused(&format!("{header}.{payload}.")).await,
        TokenError::NotCompactJws
    );
    // ...and with a signature part present anyway.
    assert_eq!(
        s.refused(&format!("{header}.{payload}.{}", b64("sig")))
            .await,
        TokenError::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let s = Setup::new().await;
    let k = &keys()[0];
    let signing_input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}).to_string()),
        b64(s.claims().to_string())
    );
    // The classic key-confusion attack: HMAC keyed with the public key,
    // in each form a verifier might feed to HMAC.
    let pem_like = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&k.public_der)
    );
    for secret in [
        k.public_der.clone(),
        pem_like.into_bytes(),
        k.n.clone().into_bytes(),
    ] {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            signing_input.as_bytes(),
        );
        let token = format!("{signing_input}.{}", b64(tag.as_ref()));
        assert_eq!(s.refused(&token).await, TokenError::AlgorithmNotAllowed);
    }
}

#[tokio::test]
async fn other_algorithms_in_the_header_are_refused_even_with_a_valid_rs256_signature() {
    let s = Setup::new().await;
    for alg in ["RS384", "RS512", "PS256", "ES256", "HS256", "rs256"] {
        let token = keys()[0].sign_json(&json!({"alg": alg, "kid": "k1"}), &s.claims());
        assert_eq!(
            s.refused(&token).await,
            TokenError::AlgorithmNotAllowed,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims());
    // A different payload under the original signature.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let (header, _) = head.split_once('.').unwrap();
    let mut forged_claims = s.claims();
    forged_claims["scp"] = json!(["reports:read"]);
    let forged = format!("{header}.{}.{sig}", b64(forged_claims.to_string()));
    assert_eq!(s.refused(&forged).await, TokenError::BadSignature);
    // A signature by an unpublished key under a published kid.
    let k3_as_k1 = keys()[2].sign_json(&json!({"alg": "RS256", "kid": "k1"}), &s.claims());
    assert_eq!(s.refused(&k3_as_k1).await, TokenError::BadSignature);
    // A truncated signature.
    let truncated = &token[..token.len() - 4];
    assert_eq!(s.refused(truncated).await, TokenError::BadSignature);
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let s = Setup::new().await;
    // k3 is not in the JWKS.
    let token = keys()[2].token(&s.claims());
    assert_eq!(s.refused(&token).await, TokenError::UnknownKid);
}

#[tokio::test]
async fn a_kid_with_path_characters_is_just_unknown() {
    let s = Setup::new().await;
    let before = s.server.fetches();
    for kid in ["../../etc/passwd", "..%2F..%2Fkeys", "/keys", "k1/../k2"] {
        let token = keys()[0].sign_json(&json!({"alg": "RS256", "kid": kid}), &s.claims());
        assert_eq!(s.refused(&token).await, TokenError::UnknownKid, "{kid}");
    }
    // One refetch for the first unknown kid, then the cool-down; the kid
    // never became part of a URL (the server only serves /keys).
    assert_eq!(s.server.fetches(), before + 1);
    let token = keys()[0].sign_json(&json!({"alg": "RS256", "kid": "k1\"\\"}), &s.claims());
    assert_eq!(s.refused(&token).await, TokenError::UnknownKid);
    let token = keys()[0].sign_json(&json!({"alg": "RS256", "kid": "k1\n"}), &s.claims());
    assert_eq!(s.refused(&token).await, TokenError::BadKid);
}

#[tokio::test]
async fn two_and_five_part_tokens_are_refused() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims());
    let (two, _) = token.rsplit_once('.').unwrap();
    assert_eq!(s.refused(two).await, TokenError::NotCompactJws);
    let five = format!("{token}.{}.{}", b64("iv"), b64("tag"));
    assert_eq!(s.refused(&five).await, TokenError::NotCompactJws);
    assert_eq!(
        s.refused(&format!("{token}.")).await,
        TokenError::NotCompactJws
    );
}

#[tokio::test]
async fn a_huge_token_is_refused_before_any_work() {
    let s = Setup::new().await;
    let mut claims = s.claims();
    claims["padding"] = json!("x".repeat(9000));
    let token = keys()[0].token(&claims);
    assert_eq!(s.refused(&token).await, TokenError::TooLarge);
    assert_eq!(
        s.validator.validate(&token).await,
        Err(AuthError::InvalidToken(TokenError::TooLarge))
    );
}

#[tokio::test]
async fn bad_base64_is_refused() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims());
    let parts: Vec<&str> = token.split('.').collect();
    // Characters outside base64url: padding, the standard alphabet.
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    assert_eq!(s.refused(&padded).await, TokenError::BadHeader);
    let std_alphabet = format!("{}.{}.{}+", parts[0], parts[1], &parts[2][1..]);
    assert_eq!(s.refused(&std_alphabet).await, TokenError::BadSignature);
    let space = format!("{}.{}.{} ", parts[0], parts[1], parts[2]);
    assert_eq!(s.refused(&space).await, TokenError::BadSignature);
    // base64url characters but an impossible length (4n+1 characters
    // encode no whole number of bytes).
    let mut header = parts[0].to_string();
    while header.len() % 4 != 1 {
        header.push('A');
    }
    let bad_len = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_eq!(s.refused(&bad_len).await, TokenError::BadHeader);
    // A payload that is signed but not base64url-decodable.
    let raw = keys()[0].sign_raw(
        json!({"alg": "RS256", "kid": "k1"}).to_string().as_bytes(),
        b"{}",
    );
    let mut p: Vec<String> = raw.split('.').map(str::to_owned).collect();
    p[1] = "a".into(); // one base64 character encodes no whole byte
    let resigned = {
        let input = format!("{}.{}", p[0], p[1]);
        format!("{input}.{}", b64(keys()[0].signature_of(input.as_bytes())))
    };
    assert_eq!(s.refused(&resigned).await, TokenError::BadClaims);
}

#[tokio::test]
async fn non_utf8_json_is_refused() {
    let s = Setup::new().await;
    let k = &keys()[0];
    let mut payload = s.claims().to_string().into_bytes();
    // Put an invalid UTF-8 byte inside the sub string.
    let at = payload.windows(5).position(|w| w == b"alice").unwrap();
    payload[at] = 0xff;
    let token = k.sign_raw(
        json!({"alg": "RS256", "kid": "k1"}).to_string().as_bytes(),
        &payload,
    );
    assert_eq!(s.refused(&token).await, TokenError::BadClaims);
    let token = k.sign_raw(
        b"{\"alg\":\"RS256\",\"kid\":\"k1\xff\"}",
        s.claims().to_string().as_bytes(),
    );
    assert_eq!(s.refused(&token).await, TokenError::BadHeader);
    let token = k.sign_raw(
        json!({"alg": "RS256", "kid": "k1"}).to_string().as_bytes(),
        b"not json",
    );
    assert_eq!(s.refused(&token).await, TokenError::BadClaims);
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    let s = Setup::new().await;
    let token = keys()[0].sign_json(
        &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"], "exp": 1}),
        &s.claims(),
    );
    assert_eq!(s.refused(&token).await, TokenError::UnsupportedCrit);
}

#[tokio::test]
async fn jku_x5u_jwk_and_x5c_cannot_bring_their_own_key() {
    let s = Setup::new().await;
    // Signed by k3 (unpublished), pointing at k3 every way a header can.
    let k3 = &keys()[2];
    let header = json!({
        "alg": "RS256", "kid": "k3",
        "jku": format!("{}/keys", s.server.issuer()),
        "x5u": "https://evil.example/cert",
        "jwk": k3.jwk(),
        "x5c": ["MIIB"],
    });
    let token = k3.sign_json(&header, &s.claims());
    assert_eq!(s.refused(&token).await, TokenError::UnknownKid);
    // The same under a published kid fails the signature with k1.
    let mut header = header;
    header["kid"] = json!("k1");
    let token = k3.sign_json(&header, &s.claims());
    assert_eq!(s.refused(&token).await, TokenError::BadSignature);
}

#[tokio::test]
async fn the_verified_token_cache_answers_repeats() {
    let s = Setup::new().await;
    let token = keys()[0].token(&s.claims());
    let first = s.validator.validate(&token).await.unwrap();
    let second = s.validator.validate(&token).await.unwrap();
    assert_eq!(first, second);
}

#[tokio::test]
async fn the_verified_token_cache_forgets_tokens_of_a_removed_key() {
    let s = Setup::new().await;
    let [k1, k2, _] = keys();
    let token = k1.token(&s.claims());
    assert!(s.validator.validate(&token).await.is_ok());
    // The issuer drops k1; the next refresh picks that up.
    s.server.set_jwks(jwks(&[k2]));
    s.validator.jwks().refresh().await.unwrap();
    assert_eq!(
        s.validator.validate(&token).await,
        Err(AuthError::InvalidToken(TokenError::UnknownKid))
    );
}
