//! DPoP proofs made the way a client makes them, independently of the
//! server's own code (`server::bearer::dpop` is never called here): ES256
//! proofs signed with jsonwebtoken's signer over a P-256 key from
//! aws-lc-rs, RS256 proofs signed with aws-lc-rs's RSA signer, RFC 7638
//! thumbprints and `ath` computed with sha2. Any header or claim can be
//! set, so every forged input can be made.
//!
//! Included by `tests/dpop.rs` and `tests/dev_idp.rs` with
//! `#[path = "common/dpop_proofs.rs"] mod proofs;`.

#![allow(dead_code)]

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A client's DPoP key.
pub enum ProofKey {
    /// ES256 on P-256.
    Ec {
        signing: EncodingKey,
        x: String,
        y: String,
    },
    /// RS256, 2048 bits.
    Rsa {
        pair: &'static RsaKeyPair,
        n: String,
        e: String,
    },
}

impl ProofKey {
    /// A fresh P-256 key.
    pub fn es256() -> ProofKey {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("P-256 key generation");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("P-256 key");
        let point = pair.public_key().as_ref();
        ProofKey::Ec {
            signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
        }
    }

    /// An RSA key (`which` 0 or 1: two different keys, each generated once
    /// per test binary, since RSA generation is slow in debug builds).
    pub fn rs256(which: usize) -> ProofKey {
        static KEYS: OnceLock<[RsaKeyPair; 2]> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            [0, 1].map(|_| RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
        });
        let pair = &keys[which];
        let public = pair.public_key();
        ProofKey::Rsa {
            pair,
            n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self {
            ProofKey::Ec { .. } => "ES256",
            ProofKey::Rsa { .. } => "RS256",
        }
    }

    /// The public key as a JWK, with the optional members browsers add.
    pub fn jwk(&self) -> Value {
        match self {
            ProofKey::Ec { x, y, .. } => {
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "ext": true, "key_ops": ["verify"]})
            }
            ProofKey::Rsa { n, e, .. } => json!({"kty": "RSA", "n": n, "e": e, "alg": "RS256"}),
        }
    }

    /// RFC 7638 §3: SHA-256 of the required members in lexicographic
    /// order, no whitespace.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            ProofKey::Ec { x, y, .. } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            ProofKey::Rsa { n, e, .. } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The usual header: `typ` `dpop+jwt`, this key's `alg` and `jwk`.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// A compact JWS of `header` and `claims`, signed by this key with its
    /// own algorithm whatever the header says.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = match self {
            ProofKey::Ec { signing, .. } => {
                jsonwebtoken::crypto::sign(input.as_bytes(), signing, Algorithm::ES256)
                    .expect("ES256 signing")
            }
            ProofKey::Rsa { pair, .. } => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .expect("RS256 signing");
                URL_SAFE_NO_PAD.encode(signature)
            }
        };
        format!("{input}.{signature}")
    }

    /// A proof with the usual header and `claims`.
    pub fn proof(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

/// `base64url(header).base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// An HS256 "proof": a MAC under `secret`, with a symmetric `jwk`.
pub fn hs256_proof(claims: &Value) -> String {
    let secret = b"a shared secret, which DPoP forbids";
    let header = json!({
        "typ": "dpop+jwt",
        "alg": "HS256",
        "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret)},
    });
    let input = signing_input(&header, claims);
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .expect("HS256");
    format!("{input}.{signature}")
}

/// An unsecured (`alg` `none`) "proof" naming `key`: empty signature.
pub fn none_proof(key: &ProofKey, claims: &Value) -> String {
    let mut header = key.header();
    header["alg"] = json!("none");
    format!("{}.", signing_input(&header, claims))
}

/// RFC 9449 §4.2: base64url of the SHA-256 of the token.
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// A fresh `jti`: 128 random bits.
pub fn jti() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// The claims of a proof for `method` `url` at `iat`, with the `ath` of
/// `token` if given and a fresh `jti`.
pub fn proof_claims(method: &str, url: &str, iat: i64, token: Option<&str>) -> Value {
    let mut claims = json!({"jti": jti(), "htm": method, "htu": url, "iat": iat});
    if let Some(token) = token {
        claims["ath"] = json!(ath(token));
    }
    claims
}

/// RFC 9449 §7.1, Figures 13 and 14: the computation here agrees with the
/// RFC's own example.
pub fn check_ath_against_the_rfc() {
    assert_eq!(
        ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}
