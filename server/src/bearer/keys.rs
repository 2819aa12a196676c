//! The issuer's signing keys: a JWKS document parsed once into verification
//! keys indexed by `kid`.
//!
//! Only keys that can verify RS256 are kept: `kty` RSA, `use` absent or
//! `sig`, `key_ops` absent or containing `verify`, `alg` absent or `RS256`,
//! a 2048–8192-bit modulus, and a `kid`. Everything else in the set (EC
//! keys, encryption keys, keys of unknown types) is skipped rather than
//! failing the whole set, so an issuer adding a new key type does not take
//! this server down. The algorithm is fixed here, by the key: a token's
//! header can only name the key, never change how it is used.
//!
//! The JWKS is read with jsonwebtoken's JWK model; each key is then parsed
//! once into an aws-lc-rs [`ParsedPublicKey`] (the backend jsonwebtoken
//! itself verifies with). jsonwebtoken's `DecodingKey` keeps only the raw
//! (n, e) and rebuilds the RSA key on every verification; parsing once
//! takes that cost off the hot path (see `BENCHMARKS.md`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::PublicEncryptingKey;
use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use serde::Deserialize;

use super::jws::{decode_part, MAX_KID_LEN};

/// An RSA public key that verifies RS256 (RSASSA-PKCS1-v1_5 with SHA-256,
/// 2048–8192 bits) and nothing else.
pub struct VerifyingKey {
    key: ParsedPublicKey,
    /// The JWK's `n` and `e` (base64url, as published), for handing the
    /// public key on to a browser that checks ID tokens itself.
    jwk_n: String,
    jwk_e: String,
}

impl VerifyingKey {
    /// The key with modulus `n` and exponent `e` (big-endian, no leading
    /// zeros), if aws-lc accepts it as an RS256 key.
    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Option<Self> {
        // aws-lc parses SubjectPublicKeyInfo DER; going through its own
        // encoder avoids hand-writing ASN.1.
        let spki: PublicEncryptingKey = RsaPublicKeyComponents { n, e }.try_into().ok()?;
        let der = spki.as_der().ok()?;
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_ref()).ok()?;
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        Some(VerifyingKey {
            key,
            jwk_n: b64(n),
            jwk_e: b64(e),
        })
    }

    /// The public key as JWK `n` and `e` (base64url, no leading zeros).
    pub fn jwk_components(&self) -> (&str, &str) {
        (&self.jwk_n, &self.jwk_e)
    }

    /// Whether `signature` is this key's RS256 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// The RS256 verification keys of one JWKS document, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document. Fails only if the document is not a JWKS at
    /// all; unusable keys inside it are skipped.
    pub fn from_jwks_json(body: &[u8]) -> Result<KeySet, String> {
        let raw: RawJwks = serde_json::from_slice(body).map_err(|err| err.to_string())?;
        let mut keys = HashMap::new();
        let mut duplicated = Vec::new();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some((kid, key)) = usable_rs256_key(&jwk) else {
                continue;
            };
            if keys.insert(kid.clone(), Arc::new(key)).is_some() {
                duplicated.push(kid);
            }
        }
        // Two keys under one kid: a token naming it cannot be tied to
        // either, so neither is used.
        for kid in duplicated {
            keys.remove(&kid);
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn usable_rs256_key(jwk: &Jwk) -> Option<(String, VerifyingKey)> {
    let common = &jwk.common;
    let kid = common.key_id.as_ref()?;
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return None;
    }
    if !matches!(common.public_key_use, None | Some(PublicKeyUse::Signature)) {
        return None;
    }
    if let Some(ops) = &common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return None;
        }
    }
    if !matches!(common.key_algorithm, None | Some(KeyAlgorithm::RS256)) {
        return None;
    }
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    let n = decode_part(&rsa.n)?;
    let e = decode_part(&rsa.e)?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    // RS256 verification (aws-lc's RSA_PKCS1_2048_8192_SHA256) refuses
    // other sizes anyway; refusing them here keeps them out of the set.
    if !(256..=1024).contains(&n.len()) || e.is_empty() || e.len() > 8 {
        return None;
    }
    Some((kid.clone(), VerifyingKey::from_rsa_components(n, e)?))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    fn n_of(bytes: usize) -> String {
        let mut n = vec![0xc5u8; bytes];
        n[bytes - 1] = 0x01;
        URL_SAFE_NO_PAD.encode(n)
    }

    fn rsa(kid: &str) -> serde_json::Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n_of(256), "e": "AQAB"})
    }

    fn parse(keys: Vec<serde_json::Value>) -> KeySet {
        KeySet::from_jwks_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn keeps_rs256_signing_keys() {
        let set = parse(vec![rsa("a"), rsa("b")]);
        assert_eq!(set.len(), 2);
        assert!(set.contains("a") && set.contains("b"));
    }

    #[test]
    fn alg_and_use_may_be_absent() {
        let set = parse(vec![
            json!({"kty": "RSA", "kid": "a", "n": n_of(256), "e": "AQAB"}),
        ]);
        assert!(set.contains("a"));
    }

    #[test]
    fn skips_what_cannot_verify_rs256() {
        let mut enc = rsa("enc");
        enc["use"] = json!("enc");
        let mut rs512 = rsa("rs512");
        rs512["alg"] = json!("RS512");
        let mut no_kid = rsa("x");
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut small = rsa("small");
        small["n"] = json!(n_of(128));
        let mut sign_only = rsa("sign-only");
        sign_only["key_ops"] = json!(["sign"]);
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AAAA", "y": "AAAA"});
        let hmac = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let unknown = json!({"kty": "PQC", "kid": "pqc", "alg": "ML-DSA-65"});
        let set = parse(vec![
            enc,
            rs512,
            no_kid,
            small,
            sign_only,
            ec,
            hmac,
            unknown,
            rsa("good"),
        ]);
        assert_eq!(set.kids().collect::<Vec<_>>(), ["good"]);
    }

    #[test]
    fn a_duplicated_kid_is_dropped() {
        let set = parse(vec![rsa("same"), rsa("same"), rsa("other")]);
        assert_eq!(set.kids().collect::<Vec<_>>(), ["other"]);
    }

    #[test]
    fn not_a_jwks_is_an_error() {
        assert!(KeySet::from_jwks_json(b"{}").is_err());
        assert!(KeySet::from_jwks_json(b"<html>").is_err());
        assert!(KeySet::from_jwks_json(br#"{"keys": []}"#)
            .unwrap()
            .is_empty());
    }
}
