//! DPoP (RFC 9449) in the browser, with `DPOP=1` and the code flow: the
//! session's tokens are bound to a P-256 key pair that WebCrypto makes with
//! a private key the page cannot export, kept in IndexedDB by its
//! thumbprint, so a token copied out of the page is no use without the
//! browser that holds the key.
//!
//! Every token request (the code exchange, each refresh) and every
//! protected call carries a proof: a JWS of `typ` `dpop+jwt` signed with
//! that key, naming the request (`htm`, `htu`), the moment (`iat`, a fresh
//! `jti`), the access token it goes with (`ath`) and the server's latest
//! `DPoP-Nonce`. The proof's shape is plain logic here; the key and the
//! signature are the browser's (the `browser` half below).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};

/// The public half of a session's key, as a JWK (RFC 7517) of P-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcPublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
}

impl EcPublicJwk {
    /// What the RFC 7638 thumbprint hashes: the required members, in
    /// lexicographic order, without whitespace. (The members are base64url
    /// or fixed names, so nothing needs escaping.)
    pub fn thumbprint_input(&self) -> String {
        format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            self.crv, self.kty, self.x, self.y
        )
    }
}

/// Base64url without padding, as JOSE writes it.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `htu`: the request's URL without its query and fragment (RFC 9449 §4.2).
pub fn htu(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The origin of `url`, which the server's nonces are kept by.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[derive(Serialize)]
struct ProofHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    jwk: &'a EcPublicJwk,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// What a proof says, before it is signed.
pub struct ProofRequest<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    /// Unix seconds.
    pub iat: i64,
    /// A fresh unique id (at least 96 bits of randomness, RFC 9449 §11.1).
    pub jti: &'a str,
    /// `ath`: base64url of the SHA-256 of the access token it goes with.
    pub ath: Option<&'a str>,
    /// The server's latest `DPoP-Nonce`, if it gave one.
    pub nonce: Option<&'a str>,
}

/// The proof's signing input: `base64url(header) "." base64url(claims)`,
/// with `alg` ES256 and the public key in the header.
pub fn signing_input(jwk: &EcPublicJwk, request: &ProofRequest<'_>) -> String {
    let header = ProofHeader {
        typ: "dpop+jwt",
        alg: "ES256",
        jwk,
    };
    let claims = ProofClaims {
        jti: request.jti,
        htm: request.htm,
        htu: request.htu,
        iat: request.iat,
        ath: request.ath,
        nonce: request.nonce,
    };
    // Serializing these plain structs cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(&claims).unwrap_or_default();
    format!("{}.{}", b64(&header), b64(&claims))
}

/// The compact JWS: the signing input and the ES256 signature, which
/// WebCrypto gives as JOSE wants it (`r || s`, 64 bytes; RFC 7518 §3.4).
pub fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64(signature))
}

#[cfg(feature = "hydrate")]
pub mod browser {
    //! The key pair, the signature and the servers' nonces, in the browser.

    use super::{b64, compact, signing_input, EcPublicJwk, ProofRequest};
    use crate::auth::{clock, idb};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    thread_local! {
        /// The latest `DPoP-Nonce` of each server, by origin.
        static NONCES: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    }

    /// The nonce `url`'s server last gave, if any.
    pub fn nonce_for(url: &str) -> Option<String> {
        let origin = super::origin_of(url);
        NONCES.with_borrow(|n| n.get(origin).cloned())
    }

    /// Keeps the nonce `url`'s server just gave, for the next proof to it.
    pub fn remember_nonce(url: &str, nonce: &str) {
        let origin = super::origin_of(url).to_string();
        NONCES.with_borrow_mut(|n| n.insert(origin, nonce.to_string()));
    }

    fn subtle() -> Result<web_sys::SubtleCrypto, String> {
        Ok(web_sys::window()
            .ok_or("no window")?
            .crypto()
            .map_err(|_| "no WebCrypto")?
            .subtle())
    }

    fn object(pairs: &[(&str, JsValue)]) -> js_sys::Object {
        let obj = js_sys::Object::new();
        for (k, v) in pairs {
            let _ = js_sys::Reflect::set(&obj, &JsValue::from_str(k), v);
        }
        obj
    }

    fn get(obj: &JsValue, key: &str) -> JsValue {
        js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    async fn sha256(data: &[u8]) -> Result<Vec<u8>, String> {
        let digest = JsFuture::from(
            subtle()?
                .digest_with_str_and_u8_array("SHA-256", data)
                .map_err(|_| "SHA-256 unavailable")?,
        )
        .await
        .map_err(|_| "SHA-256 failed")?;
        Ok(js_sys::Uint8Array::new(&digest).to_vec())
    }

    /// A new P-256 key pair whose private key cannot be exported, kept in
    /// IndexedDB under its thumbprint: the thumbprint, the public JWK and
    /// the private key. A new key is a new sign-in's, whose session will
    /// replace any other in every tab: the keys of earlier sessions go.
    async fn new_key() -> Result<(String, EcPublicJwk, web_sys::CryptoKey), String> {
        forget_keys().await;
        let subtle = subtle()?;
        let algorithm = object(&[("name", "ECDSA".into()), ("namedCurve", "P-256".into())]);
        let usages = js_sys::Array::of2(&"sign".into(), &"verify".into());
        let pair = JsFuture::from(
            subtle
                .generate_key_with_object(&algorithm, false, &usages)
                .map_err(|_| "WebCrypto cannot make a P-256 key")?,
        )
        .await
        .map_err(|_| "WebCrypto cannot make a P-256 key")?;
        let private: web_sys::CryptoKey = get(&pair, "privateKey")
            .dyn_into()
            .map_err(|_| "WebCrypto made no private key")?;
        let public: web_sys::CryptoKey = get(&pair, "publicKey")
            .dyn_into()
            .map_err(|_| "WebCrypto made no public key")?;
        // A public key is always exportable.
        let exported = JsFuture::from(
            subtle
                .export_key("jwk", &public)
                .map_err(|_| "the public key cannot be read")?,
        )
        .await
        .map_err(|_| "the public key cannot be read")?;
        let member = |name: &str| get(&exported, name).as_string().unwrap_or_default();
        let jwk = EcPublicJwk {
            kty: member("kty"),
            crv: member("crv"),
            x: member("x"),
            y: member("y"),
        };
        let jkt = b64(&sha256(jwk.thumbprint_input().as_bytes()).await?);
        let record = object(&[
            ("privateKey", private.clone().into()),
            (
                "jwk",
                serde_json::to_string(&jwk).unwrap_or_default().into(),
            ),
        ]);
        idb::put(idb::DPOP_KEYS, &jkt, &record)
            .await
            .map_err(|_| "IndexedDB would not keep the DPoP key")?;
        Ok((jkt, jwk, private))
    }

    /// The key kept under `jkt`.
    async fn stored_key(jkt: &str) -> Result<(EcPublicJwk, web_sys::CryptoKey), String> {
        let record = idb::get(idb::DPOP_KEYS, jkt)
            .await
            .map_err(|_| "IndexedDB cannot be read")?;
        let private: web_sys::CryptoKey = get(&record, "privateKey")
            .dyn_into()
            .map_err(|_| "this browser no longer has the session's DPoP key")?;
        let jwk: EcPublicJwk = get(&record, "jwk")
            .as_string()
            .and_then(|json| serde_json::from_str(&json).ok())
            .ok_or("the session's DPoP key is damaged")?;
        Ok((jwk, private))
    }

    /// A proof for `htm` `htu`, signed with the key `jkt` names (a new key
    /// with `None`), for `access_token` when there is one, with the
    /// server's `nonce` when it gave one. Returns the proof and the key's
    /// thumbprint.
    pub async fn proof(
        jkt: Option<&str>,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<(String, String), String> {
        let (jkt, jwk, private) = match jkt {
            Some(jkt) => {
                let (jwk, private) = stored_key(jkt).await?;
                (jkt.to_string(), jwk, private)
            }
            None => new_key().await?,
        };
        let ath = match access_token {
            Some(token) => Some(b64(&sha256(token.as_bytes()).await?)),
            None => None,
        };
        let mut random = [0u8; 16];
        web_sys::window()
            .ok_or("no window")?
            .crypto()
            .map_err(|_| "no WebCrypto")?
            .get_random_values_with_u8_array(&mut random)
            .map_err(|_| "no secure random numbers")?;
        let jti = b64(&random);
        let input = signing_input(
            &jwk,
            &ProofRequest {
                htm,
                htu: super::htu(htu),
                iat: clock::now(),
                jti: &jti,
                ath: ath.as_deref(),
                nonce,
            },
        );
        let algorithm = object(&[("name", "ECDSA".into()), ("hash", "SHA-256".into())]);
        let signature = JsFuture::from(
            subtle()?
                .sign_with_object_and_u8_array(&algorithm, &private, input.as_bytes())
                .map_err(|_| "WebCrypto cannot sign with the DPoP key")?,
        )
        .await
        .map_err(|_| "WebCrypto cannot sign with the DPoP key")?;
        let signature = js_sys::Uint8Array::new(&signature).to_vec();
        Ok((compact(&input, &signature), jkt))
    }

    /// Deletes every DPoP key this app keeps: at sign-out, and when the
    /// session ends.
    pub async fn forget_keys() {
        if idb::delete(idb::DPOP_KEYS, None).await.is_err() {
            leptos::logging::warn!("IndexedDB would not delete the DPoP keys");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The public key of RFC 9449's examples (§4.1).
    fn rfc_9449_key() -> EcPublicJwk {
        EcPublicJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs".into(),
            y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA".into(),
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s_of_the_rfc_9449_example_key() {
        let jkt = b64(&Sha256::digest(
            rfc_9449_key().thumbprint_input().as_bytes(),
        ));
        // RFC 9449 §6.1: the cnf.jkt of tokens bound to that key.
        assert_eq!(jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    }

    #[test]
    fn a_proof_names_the_request_and_the_token() {
        let input = signing_input(
            &rfc_9449_key(),
            &ProofRequest {
                htm: "POST",
                htu: htu("https://app.example/api/whoami?x=1#y"),
                iat: 1_800_000_000,
                jti: "j1",
                ath: Some("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"),
                nonce: None,
            },
        );
        let (header, claims) = input.split_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["x"], rfc_9449_key().x);
        assert!(header["jwk"].get("d").is_none());
        assert_eq!(
            claims,
            serde_json::json!({"jti": "j1", "htm": "POST", "htu": "https://app.example/api/whoami",
                "iat": 1_800_000_000, "ath": "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"})
        );
        let with_nonce = signing_input(
            &rfc_9449_key(),
            &ProofRequest {
                htm: "POST",
                htu: "https://idp.example/token",
                iat: 1,
                jti: "j2",
                ath: None,
                nonce: Some("n0nce"),
            },
        );
        let claims = with_nonce.split_once('.').unwrap().1;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["nonce"], "n0nce");
        assert!(claims.get("ath").is_none());
        assert_eq!(compact("a.b", &[0xff; 64]).split('.').count(), 3);
    }

    #[test]
    fn ath_is_the_access_tokens_sha256() {
        // RFC 9449 §7.1's example token and its ath.
        let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
        assert_eq!(
            b64(&Sha256::digest(token.as_bytes())),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn urls_reduce_to_htu_and_origin() {
        assert_eq!(
            htu("http://localhost:3000/api/whoami"),
            "http://localhost:3000/api/whoami"
        );
        assert_eq!(htu("https://a.example/p?q#f"), "https://a.example/p");
        assert_eq!(
            origin_of("https://a.example:8443/p?q"),
            "https://a.example:8443"
        );
        assert_eq!(origin_of("http://localhost:3100"), "http://localhost:3100");
    }
}
