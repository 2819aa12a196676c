//! What the fuzz targets run, shared by the libFuzzer entry points in
//! `fuzz_targets/` and by the stable corpus replay
//! (`server/tests/fuzz_corpus.rs`, which includes this file with
//! `#[path]`), so the fuzzer and `cargo test` exercise exactly the same
//! code with the same invariants.
//!
//! Targets:
//! - `fragment`: the callback's fragment parser, then every pure check of
//!   `complete_sign_in` (state, error, token type, ID token decoding and
//!   claims, `at_hash`) with a stand-in for the WebCrypto signature check.
//! - `bearer_header`: the RFC 6750 `Authorization` parser and the
//!   `?access_token=` detector; accepted tokens go on into `token`'s checks.
//! - `token`: JWS split, protected header, claims decoding and the claim
//!   rules, i.e. everything the validator does except the RSA signature
//!   check; JSON input also goes through the claims decoder and the JWKS
//!   parser directly.
//!
//! - `dpop_proof`: a DPoP proof (RFC 9449 §4.3) through every check of
//!   `server::bearer::dpop::verify`, its `htu` and `nonce` alone through
//!   the URL normalization and the nonce check, and the whole input as
//!   `Authorization` values of either scheme.
//!
//! Every target asserts a few invariants besides "no panic". The fuzz crate
//! is not part of the root workspace. Once (not part of `./dev.sh`):
//!
//! ```sh
//! cargo install cargo-fuzz --locked
//! cd server/fuzz
//! cargo +nightly fuzz run -s none -a token work/token corpus/token -- -max_total_time=600
//! ```
//!
//! `-s none`: the code under test is safe Rust, so AddressSanitizer adds
//! cost and nothing to find; `-a` turns debug assertions and integer
//! overflow checks on, which is where arithmetic on attacker-chosen dates
//! would panic. New inputs go to `work/<target>` (ignored by git); the
//! seeds in `corpus/<target>` are only read. A crash found by the fuzzer is
//! fixed, then its input is kept in `regressions/<target>/` so the stable
//! replay guards it.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use app::auth::callback::{CallbackError, HttpAnswer, Platform};
use app::auth::config::PublicAuthConfig;
use app::auth::flow::complete_sign_in;
use app::auth::fragment::{parse_fragment, MAX_FRAGMENT_LEN};
use app::auth::id_token;
use app::auth::request::PendingSignIn;
use server::bearer::claims::{self, Policy, RawClaims};
use server::bearer::header::{
    bearer_token, query_has_access_token, HeaderError, MAX_AUTHORIZATION_LEN,
};
use server::bearer::jws::{self, MAX_KID_LEN};
use server::bearer::keys::KeySet;
use server::bearer::DEFAULT_LEEWAY;

/// The fixed "now" of every check (Unix seconds, 2027).
pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://example.okta.com/oauth2/default";
pub const CLIENT_ID: &str = "0oa-fuzz";
pub const AUDIENCE: &str = "api://default";

/// The `fragment` target: `data` as the `#...` of `/login/callback`.
pub fn fragment(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = parse_fragment(input) else {
        return;
    };
    // The size cap is applied before parsing ("#" excepted).
    assert!(input.len() <= MAX_FRAGMENT_LEN + 1);

    // Give the ID token's own nonce to the pending sign-in, so mutated
    // tokens get past the nonce check to the later ones.
    let decoded = params.id_token.as_deref().map(id_token::decode);
    let nonce = match &decoded {
        Some(Ok(jwt)) => jwt.claims.nonce.clone().unwrap_or_default(),
        _ => "n-fuzz".to_string(),
    };
    // `regressions/fragment/id-token-*-i64-*`: dates at the ends of i64
    // once overflowed `check_claims`' skew arithmetic (fixed in app/ with
    // saturating arithmetic).
    let state = params.state.clone().unwrap_or_default();
    for response_type in ["id_token token", "token", "id_token"] {
        let cfg = config(response_type);
        for signature_ok in [true, false] {
            let pending = PendingSignIn {
                state: state.clone(),
                nonce: nonce.clone(),
                return_to: "/account".into(),
                created_at: NOW - 10,
                code_verifier: None,
            };
            let outcome = block_on(complete_sign_in(
                params.clone(),
                Some(pending.clone()),
                &cfg,
                NOW * 1000,
                &Signatures(signature_ok),
            ));
            if let Ok((session, return_to)) = outcome {
                assert_eq!(return_to, "/account");
                assert!(params.state.is_some() && params.error.is_none());
                if cfg.wants_access_token() {
                    assert!(session.access_token.is_some());
                }
                if cfg.wants_id_token() {
                    // Nothing is kept unless the signature checked out.
                    assert!(signature_ok);
                    let claims = session.claims.as_ref().expect("ID token claims");
                    assert_eq!(claims.iss, ISSUER);
                    assert!(claims.aud.iter().any(|a| a == CLIENT_ID));
                    assert_eq!(claims.nonce.as_deref(), Some(nonce.as_str()));
                }
            }
            // A pending sign-in with another state, or none, never passes.
            let other = PendingSignIn {
                state: format!("{state}x"),
                ..pending
            };
            let sig = Signatures(signature_ok);
            assert!(block_on(complete_sign_in(
                params.clone(),
                Some(other),
                &cfg,
                NOW * 1000,
                &sig
            ))
            .is_err());
            assert!(block_on(complete_sign_in(
                params.clone(),
                None,
                &cfg,
                NOW * 1000,
                &sig
            ))
            .is_err());
        }
    }
}

/// The `bearer_header` target: `data` split at `\n` into up to three
/// `Authorization` values (a real header value cannot hold a newline), and
/// the whole of it as a query string.
pub fn bearer_header(data: &[u8]) {
    let values: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|b| *b == b'\n').take(3).collect()
    };
    match bearer_token(&values) {
        Ok(token) => {
            assert_eq!(values.len(), 1);
            assert!(values[0].len() <= MAX_AUTHORIZATION_LEN);
            assert!(!token.is_empty());
            assert!(token.bytes().all(|b| b.is_ascii_graphic()));
            // The token is a slice of the header value, not a copy.
            assert!(values[0].as_ptr_range().contains(&token.as_ptr()));
            // Written back in canonical form, it reads the same.
            let canonical = format!("Bearer {token}");
            assert_eq!(bearer_token(&[canonical.as_bytes()]), Ok(token));
            token_str(token);
        }
        Err(HeaderError::Missing) => assert!(values.is_empty()),
        Err(HeaderError::MultipleHeaders) => assert!(values.len() > 1),
        Err(HeaderError::TooLarge) => assert!(values[0].len() > MAX_AUTHORIZATION_LEN),
        Err(_) => assert_eq!(values.len(), 1),
    }
    if let Ok(query) = std::str::from_utf8(data) {
        let found = query_has_access_token(Some(query));
        // The plain spelling is always caught (percent-encoded ones too,
        // but this cheap check cannot tell those apart).
        if query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("access_token"))
        {
            assert!(found);
        }
    }
}

/// The `dpop_proof` target: `data` as a `DPoP` header value, checked as
/// the resource server checks it for `POST /api/whoami` at [`NOW`]; a
/// proof that passes names a 43-character thumbprint. The input is also
/// read as an `htu`, a nonce and `Authorization` values.
pub fn dpop_proof(data: &[u8]) {
    use server::bearer::dpop::{self, Expected, Htu};
    use server::bearer::header::{credentials, Scheme};
    use server::bearer::nonce::{NonceCheck, NonceKey};

    let url = Htu::parse("https://app.example.com/api/whoami").expect("a URL");
    let hash = [7u8; 32];
    if let Ok(proof) = std::str::from_utf8(data) {
        for token_hash in [None, Some(&hash)] {
            let expected = Expected {
                method: "POST",
                url: &url,
                token_hash,
                now: NOW,
                iat_window_secs: 120,
            };
            if let Ok(checked) = dpop::verify(proof, &expected) {
                assert_eq!(checked.jkt.len(), 43);
                assert!((NOW - 120..=NOW + 120).contains(&checked.iat));
                assert!(!checked.jti.is_empty());
            }
        }
        if let Some(htu) = Htu::parse(proof) {
            // Normal forms are fixed points.
            assert_eq!(Htu::parse(htu.as_str()).as_ref(), Some(&htu));
        }
        let key = NonceKey::new(&[9u8; 32], 60).expect("a key");
        if key.check(proof, NOW) != NonceCheck::Invalid {
            assert_eq!(proof.len(), 55);
        }
    }
    let values: Vec<&[u8]> = data.split(|b| *b == b'\n').take(2).collect();
    if let Ok((scheme, token)) = credentials(&values) {
        assert!(matches!(scheme, Scheme::Bearer | Scheme::Dpop));
        assert!(token.bytes().all(|b| b.is_ascii_graphic()));
    }
}

/// The `token` target: `data` as a compact JWS; JSON also as a claims set
/// and as a JWKS document.
pub fn token(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        token_str(s);
    }
    if data.first() == Some(&b'{') {
        if let Ok(raw) = RawClaims::from_json(data) {
            check_claims(raw);
        }
        if let Ok(keys) = KeySet::from_jwks_json(data) {
            for kid in keys.kids() {
                assert!(keys.contains(kid));
            }
        }
    }
}

/// The validator's steps 3 and 6 (structure, header, claims) on `token`;
/// step 5, the signature, is what a fuzzer cannot get past and is
/// benchmarked instead. Claims are checked even when the header fails, to
/// reach them more often.
fn token_str(token: &str) {
    let Ok(jws) = jws::split(token) else {
        return;
    };
    assert_eq!(
        jws.signing_input.len(),
        jws.header.len() + 1 + jws.payload.len()
    );
    assert!(jws.signing_input.starts_with(jws.header));
    assert!(!jws.signature.contains('.'));
    if let Ok(header) = jws::decode_header(jws.header) {
        assert!(!header.kid.is_empty() && header.kid.len() <= MAX_KID_LEN);
        assert!(header.kid.bytes().all(|b| b.is_ascii_graphic()));
    }
    let _ = jws::decode_part(jws.signature);
    let Some(payload) = jws::decode_part(jws.payload) else {
        return;
    };
    if let Ok(raw) = RawClaims::from_json(&payload) {
        check_claims(raw);
    }
}

fn check_claims(raw: RawClaims) {
    let exp = raw.exp;
    let iss = raw.iss.clone();
    // The same claims under both policies: with and without a client id.
    let second = RawClaims {
        iss: raw.iss.clone(),
        sub: raw.sub.clone(),
        aud: None,
        exp: raw.exp,
        nbf: raw.nbf,
        iat: raw.iat,
        cid: raw.cid.clone(),
        uid: raw.uid.clone(),
        scp: None,
        scope: raw.scope.clone(),
        cnf: raw.cnf.clone(),
    };
    if let Ok(claims) = claims::check(raw, &policies().0, NOW) {
        assert_eq!(claims.issuer, ISSUER);
        assert_eq!(iss.as_deref(), Some(ISSUER));
        let exp = exp.expect("accepted without exp");
        assert_eq!(claims.expires_at, exp);
        assert!(NOW < exp.saturating_add(DEFAULT_LEEWAY.as_secs() as i64));
        assert!(claims.cid.is_none() || claims.cid.as_deref() == Some(CLIENT_ID));
    }
    // Without `aud` nothing passes, whatever the policy.
    assert!(claims::check(second, &policies().1, NOW).is_err());
}

fn policies() -> &'static (Policy, Policy) {
    static POLICIES: OnceLock<(Policy, Policy)> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let policy = |client_id: Option<&str>| {
            Policy::new(
                ISSUER,
                AUDIENCE,
                client_id.map(str::to_owned),
                DEFAULT_LEEWAY,
            )
            .expect("policy")
        };
        (policy(Some(CLIENT_ID)), policy(None))
    })
}

fn config(response_type: &str) -> PublicAuthConfig {
    PublicAuthConfig {
        issuer: ISSUER.into(),
        authorization_endpoint: format!("{ISSUER}/v1/authorize"),
        end_session_endpoint: Some(format!("{ISSUER}/v1/logout")),
        token_endpoint: Some(format!("{ISSUER}/v1/token")),
        revocation_endpoint: Some(format!("{ISSUER}/v1/revoke")),
        client_id: CLIENT_ID.into(),
        scopes: "openid profile email".into(),
        response_type: response_type.into(),
        response_mode: "fragment".into(),
        redirect_uri: "http://localhost:3000/login/callback".into(),
        post_logout_redirect_uri: "http://localhost:3000/".into(),
        renew_before_secs: 60,
        token_storage: Default::default(),
        dpop: false,
        keys: Vec::new(),
    }
}

/// Stands in for the browser's WebCrypto check: says yes or no to every
/// signature, so both branches after it are reached; and for the server's
/// word on an access token's subject.
struct Signatures(bool);

impl Platform for Signatures {
    fn verify(
        &self,
        _kid: &str,
        _signing_input: &str,
        _signature: &[u8],
    ) -> impl Future<Output = Result<(), CallbackError>> {
        std::future::ready(if self.0 {
            Ok(())
        } else {
            Err(CallbackError::KeyUnavailable(
                "refused by the fuzz stand-in".into(),
            ))
        })
    }

    fn sha256(&self, data: &[u8]) -> impl Future<Output = Result<Vec<u8>, CallbackError>> {
        use sha2::{Digest, Sha256};
        std::future::ready(Ok(Sha256::digest(data).to_vec()))
    }

    fn access_token_subject(
        &self,
        _access_token: &str,
    ) -> impl Future<Output = Result<String, CallbackError>> {
        std::future::ready(Ok("fuzz-subject".to_string()))
    }

    fn post_form(
        &self,
        _url: &str,
        _form: &str,
        _dpop_proof: Option<&str>,
    ) -> impl Future<Output = Result<HttpAnswer, CallbackError>> {
        std::future::ready(Err(CallbackError::TokenEndpointUnusable(
            "is not asked by the fuzz stand-in".into(),
        )))
    }

    fn dpop_proof(
        &self,
        _jkt: Option<&str>,
        _htm: &str,
        _htu: &str,
        _access_token: Option<&str>,
    ) -> impl Future<Output = Result<(String, String), CallbackError>> {
        std::future::ready(Err(CallbackError::Dpop("not in the fuzz stand-in".into())))
    }
}

/// `complete_sign_in` awaits nothing but the stand-in above, which is
/// always ready, so a few polls finish it; no runtime needed.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..64 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("complete_sign_in did not finish although nothing it awaits is pending");
}
