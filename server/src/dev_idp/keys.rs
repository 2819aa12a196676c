//! The RS256 signing keys: generated at start-up (no private key is ever
//! stored in the repository), published as a JWKS, and rotated on request.
//!
//! The key set holds the current signing key and, after a rotation, the
//! previous one, which stays published so that tokens signed before the
//! rotation still verify (as Okta keeps old keys in its JWKS for a while).

use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an RSA key: {0}")]
    Generate(aws_lc_rs::error::Unspecified),
    #[error("cannot load the generated RSA key into jsonwebtoken: {0}")]
    Load(jsonwebtoken::errors::Error),
}

/// One public key as published in the JWKS (RFC 7517).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: &'static str,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// An RSA key pair ready to sign tokens and to check the ones it signed.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// Generates a 2048-bit key. Takes a noticeable fraction of a second:
    /// call it off the async executor.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(KeyError::Generate)?;
        // jsonwebtoken's aws-lc backend reads raw DER as PKCS#1 only, while
        // aws-lc-rs exports PKCS#8; its PEM reader unwraps PKCS#8.
        let pem = pkcs8_pem(pkcs8.as_ref());
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(KeyError::Load)?;

        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let n = URL_SAFE_NO_PAD.encode(&public.n);
        let e = URL_SAFE_NO_PAD.encode(&public.e);
        let kid = thumbprint(&n, &e);
        let decoding = DecodingKey::from_rsa_raw_components(&public.n, &public.e);
        Ok(Self {
            jwk: Jwk {
                kty: "RSA",
                alg: "RS256",
                use_: "sig",
                kid: kid.clone(),
                n,
                e,
            },
            kid,
            encoding,
            decoding,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    #[cfg(test)]
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The RFC 7638 JWK thumbprint, used as the `kid`: stable for a key and
/// different for every new one.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The published keys: the signing key first, then the previous one, if
/// it is still published.
pub struct KeyStore {
    keys: RwLock<Vec<Arc<SigningKey>>>,
}

impl KeyStore {
    pub fn new(first: SigningKey) -> Self {
        Self {
            keys: RwLock::new(vec![Arc::new(first)]),
        }
    }

    /// The key new tokens are signed with.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        // The list is never empty: it starts with one key and rotation
        // only ever puts a new one in front.
        Arc::clone(&self.read()[0])
    }

    /// Every published key, the signing key first.
    pub fn published(&self) -> Vec<Arc<SigningKey>> {
        self.read().clone()
    }

    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.read().iter().find(|k| k.kid == kid).cloned()
    }

    /// Makes `new` the signing key. The old signing key stays published
    /// unless `drop_old`; a key older than that is dropped either way.
    pub fn rotate(&self, new: SigningKey, drop_old: bool) {
        let mut keys = self.write();
        let keep = if drop_old { 0 } else { 1 };
        keys.truncate(keep);
        keys.insert(0, Arc::new(new));
    }

    /// Stops publishing every key but the signing key.
    pub fn drop_old(&self) {
        self.write().truncate(1);
    }

    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<Jwk> = self.read().iter().map(|k| k.jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    // A panic while the lock is held cannot leave the Vec half-changed
    // (every change is one call), so a poisoned lock is still good.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<SigningKey>>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<SigningKey>>> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(key.jwk().e, "AQAB");
        // 2048-bit modulus: 256 bytes, 342 base64url characters.
        assert_eq!(key.jwk().n.len(), 342);
        assert_eq!(key.kid(), thumbprint(&key.jwk().n, &key.jwk().e));

        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid().to_owned());
        let token =
            jsonwebtoken::encode(&header, &serde_json::json!({"x": 1}), key.encoding()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, key.decoding(), &validation).unwrap();
        assert_eq!(data.claims["x"], 1);
    }

    #[test]
    fn rotation_keeps_one_old_key() {
        let (a, b, c) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        let (ka, kb, kc) = (a.kid.clone(), b.kid.clone(), c.kid.clone());
        let store = KeyStore::new(a);
        store.rotate(b, false);
        assert_eq!(store.signing_key().kid(), kb);
        assert!(store.find(&ka).is_some());
        store.rotate(c, false);
        assert_eq!(store.signing_key().kid(), kc);
        assert!(store.find(&kb).is_some());
        assert!(store.find(&ka).is_none());
        store.drop_old();
        assert_eq!(store.published().len(), 1);
        let jwks = store.jwks();
        assert_eq!(jwks["keys"][0]["kid"], kc.as_str());
        assert_eq!(jwks["keys"][0]["use"], "sig");
    }
}
