//! Token minting, as a client of the API would do it: RSA-2048 keys whose
//! private halves the harness holds (their public halves are what the stub
//! issuer publishes), Okta-shaped access-token claims, RS256 signing with
//! aws-lc-rs, and the tokens every case sends, valid and invalid, minted
//! once before any timing starts (signing is far slower than verifying).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use serde_json::{json, Value};

use crate::rng::Rng;
use crate::{AUDIENCE, CLIENT_ID};

/// An RSA-2048 key whose private half the harness holds.
pub struct Signer {
    kid: String,
    key: KeyPair,
    n: String,
    e: String,
}

impl Signer {
    fn generate(kid: &str) -> Signer {
        let key = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let (n, e) = rsa_public_components(key.public_key().as_ref());
        Signer {
            kid: kid.into(),
            key,
            n: URL_SAFE_NO_PAD.encode(n),
            e: URL_SAFE_NO_PAD.encode(e),
        }
    }

    /// The public half as PKCS#1 `RSAPublicKey` DER, for verifying in this
    /// process what the server verifies (case 3's raw verify).
    pub fn public_key_der(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e})
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// n and e of a PKCS#1 `RSAPublicKey` (SEQUENCE { INTEGER n, INTEGER e }).
fn rsa_public_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(input: &[u8]) -> (&[u8], &[u8]) {
        let (len, head) = match input[1] {
            l if l < 0x80 => (l as usize, 2),
            0x81 => (input[2] as usize, 3),
            0x82 => (((input[2] as usize) << 8) | input[3] as usize, 4),
            other => panic!("unexpected DER length byte {other:#x}"),
        };
        (&input[head..head + len], &input[head + len..])
    }
    let (seq, _) = tlv(der);
    let (n, rest) = tlv(seq);
    let (e, _) = tlv(rest);
    let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect();
    (strip(n), strip(e))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Okta-shaped access-token claims for user `sub`.
fn claims(issuer: &str, sub: &str, exp: i64, aud: &str) -> Value {
    json!({
        "ver": 1, "jti": format!("AT.{sub}"), "iss": issuer, "aud": aud,
        "iat": unix_now() - 5, "exp": exp, "cid": CLIENT_ID, "uid": format!("00u-{sub}"),
        "scp": ["openid", "profile", "email"], "sub": sub,
    })
}

/// A valid token and the `sub` the server must answer with.
#[derive(Clone)]
pub struct Token {
    pub header: HeaderValue,
    pub sub: Arc<str>,
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(format!("Bearer {token}"))).expect("b64token")
}

/// Signs `count` tokens made by `make(i)` on every core.
fn mint(signer: &Signer, count: usize, make: impl Fn(usize) -> Value + Sync) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut out = vec![String::new(); count];
    let chunk = count.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (c, slot) in out.chunks_mut(chunk).enumerate() {
            let make = &make;
            s.spawn(move || {
                for (j, t) in slot.iter_mut().enumerate() {
                    *t = signer.sign(&make(c * chunk + j));
                }
            });
        }
    });
    out
}

/// Every token the cases use, minted once; a fresh server per case means
/// a token is cold again in every case.
pub struct Tokens {
    pub issuer: String,
    pub k1: Arc<Signer>,
    pub k2: Arc<Signer>,
    pub k3: Arc<Signer>,
    /// Distinct valid k1 tokens.
    pub fresh: Vec<Token>,
    /// Valid k2 tokens (rotation) and k3 tokens (recovery after outage).
    pub k2_tokens: Vec<Token>,
    pub k3_tokens: Vec<Token>,
    pub expired: Vec<HeaderValue>,
    pub wrong_aud: Vec<HeaderValue>,
    pub bad_sig: Vec<HeaderValue>,
    pub garbage: Vec<HeaderValue>,
}

impl Tokens {
    pub fn mint(issuer: &str, fresh: usize) -> Tokens {
        let k1 = Signer::generate("load-k1");
        let k2 = Signer::generate("load-k2");
        let k3 = Signer::generate("load-k3");
        let exp = unix_now() + 3 * 3600;
        let valid = |signer: &Signer, prefix: &str, n: usize| -> Vec<Token> {
            mint(signer, n, |i| {
                claims(issuer, &format!("{prefix}-{i}"), exp, AUDIENCE)
            })
            .into_iter()
            .enumerate()
            .map(|(i, t)| Token {
                header: bearer(&t),
                sub: Arc::from(format!("{prefix}-{i}")),
            })
            .collect()
        };
        let fresh_tokens = valid(&k1, "user", fresh);
        let k2_tokens = valid(&k2, "rotated", 2_000);
        let k3_tokens = valid(&k3, "recovered", 200);
        // Expired well beyond any leeway (at most 120 s).
        let expired = mint(&k1, 250, |i| {
            claims(issuer, &format!("old-{i}"), unix_now() - 3600, AUDIENCE)
        });
        let wrong_aud = mint(&k1, 250, |i| {
            claims(issuer, &format!("other-{i}"), exp, "api://someone-else")
        });
        let bad_sig = forge(&fresh_tokens[..251.min(fresh_tokens.len())]);
        let mut rng = Rng::new(7);
        let garbage = (0..250)
            .map(|_| {
                let len = 1 + rng.below(1200) as usize;
                bearer(&rng.b64token(len))
            })
            .collect();
        Tokens {
            issuer: issuer.into(),
            k1: Arc::new(k1),
            k2: Arc::new(k2),
            k3: Arc::new(k3),
            fresh: fresh_tokens,
            k2_tokens,
            k3_tokens,
            expired: expired.iter().map(|t| bearer(t)).collect(),
            wrong_aud: wrong_aud.iter().map(|t| bearer(t)).collect(),
            bad_sig,
            garbage,
        }
    }
}

/// A valid k1 token for `sub` bound to the DPoP key whose RFC 7638
/// thumbprint is `jkt` (`cnf.jkt`, RFC 9449 §6.1), as the raw JWS.
pub fn bound_token(tokens: &Tokens, sub: &str, jkt: &str) -> String {
    let mut claims = claims(&tokens.issuer, sub, unix_now() + 3600, AUDIENCE);
    claims["cnf"] = json!({ "jkt": jkt });
    tokens.k1.sign(&claims)
}

/// Forged tokens, one fewer than `tokens`: each valid token's header and
/// payload with the next one's signature. Right structure, known kid, a
/// real signature by the right key, but not of these bytes: only the RSA
/// check refuses them, and no two are alike, so none is ever in the
/// verified-token cache.
pub fn forge(tokens: &[Token]) -> Vec<HeaderValue> {
    let raw: Vec<&str> = tokens
        .iter()
        .map(|t| {
            t.header
                .to_str()
                .expect("ascii")
                .trim_start_matches("Bearer ")
        })
        .collect();
    raw.windows(2)
        .map(|w| {
            let (input, _) = w[0].rsplit_once('.').expect("jws");
            let (_, sig) = w[1].rsplit_once('.').expect("jws");
            bearer(&format!("{input}.{sig}"))
        })
        .collect()
}

/// A token with a random `kid` the issuer has never published; the
/// signature is random bytes, as the kid lookup comes first.
pub fn unknown_kid_token(rng: &mut Rng, issuer: &str) -> HeaderValue {
    let header = json!({"alg": "RS256", "kid": format!("rnd-{:016x}", rng.next()), "typ": "JWT"});
    let claims = claims(issuer, "nobody", unix_now() + 3600, AUDIENCE);
    let sig: Vec<u8> = (0..256).map(|_| rng.next() as u8).collect();
    bearer(&format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}
