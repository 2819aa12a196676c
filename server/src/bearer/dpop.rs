//! DPoP proofs (RFC 9449 §4): reading and checking the JWT a client sends
//! in the `DPoP` header to show it holds the private key its tokens are
//! bound to, and the RFC 7638 thumbprint that names that key.
//!
//! Pure functions of the header value, the request (method and URL as the
//! public origin sees it), the access token's hash and the time, so every
//! rule of RFC 9449 §4.3 is unit-tested here. What needs memory or a
//! secret is the caller's: whether a `jti` was seen before
//! ([`super::replay`]), whether a `nonce` is one the server issued
//! ([`super::nonce`]), and whether the key is the one the token's
//! `cnf.jkt` names. The resource server ([`super::validator`]) and the
//! embedded authorization server's token endpoint both use it.
//!
//! The algorithm is pinned by the key: `ES256` needs an `EC` key on
//! `P-256`, `RS256` an `RSA` key of 2048 to 8192 bits; `none`, the HMAC
//! algorithms and everything else are refused before any key is parsed.
//! Signatures are checked with aws-lc-rs, the backend jsonwebtoken itself
//! verifies with, called directly so the public key is read from the
//! proof's `jwk` once and checked against the algorithm first.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

pub use super::error::ProofError;
use super::jws;

/// The request header that carries the proof (RFC 9449 §4.1). Lower case,
/// as `http::HeaderName` holds names.
pub const DPOP_HEADER: &str = "dpop";
/// The response header that carries a server-provided nonce (§8, §9).
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";
/// The proof algorithms accepted, as the `algs` challenge parameter and
/// `dpop_signing_alg_values_supported` list them.
pub const ALGORITHMS: [&str; 2] = ["ES256", "RS256"];
/// [`ALGORITHMS`], space-separated, for the `algs` parameter (§7.1).
pub const ALGS: &str = "ES256 RS256";
/// How far a proof's `iat` may be from the server's clock, either way,
/// before the configured clock-skew leeway is added.
pub const DEFAULT_IAT_WINDOW_SECS: i64 = 60;
/// Larger `DPoP` values are refused unread. A proof with an RSA-4096 key
/// is under 2 KiB.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` taken; RFC 9449 asks for 96 random bits, a UUID is 36
/// characters.
pub const MAX_JTI_LEN: usize = 256;
/// Longest `nonce` read; this server's own are 55 characters.
pub const MAX_NONCE_LEN: usize = 256;

/// What the request a proof came with looked like, and what it must say.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The request's method, compared exactly (methods are case-sensitive).
    pub method: &'a str,
    /// The request's URL as the client addressed it: for the resource
    /// server the public origin and the path, never the `Host` header.
    pub url: &'a Htu,
    /// SHA-256 of the access token sent with the proof, if one was: the
    /// proof's `ath` must be its base64url. `None` at a token endpoint,
    /// where `ath` is not read.
    pub token_hash: Option<&'a [u8; 32]>,
    /// Unix seconds.
    pub now: i64,
    /// How far `iat` may be from `now`, either way, leeway included.
    pub iat_window_secs: i64,
}

/// A proof that passed every check of this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url: what
    /// a bound token's `cnf.jkt` says.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The `nonce` claim, for the caller to check if it issued one.
    pub nonce: Option<String>,
}

/// The public key of a proof, checked against its algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// ES256: the P-256 point's coordinates, 32 bytes each.
    P256 { x: [u8; 32], y: [u8; 32] },
    /// RS256: modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    /// Whether `signature` is this key's signature of `message` under the
    /// algorithm the key type allows (ES256 for P-256, RS256 for RSA).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::P256 { x, y } => {
                // The uncompressed SEC1 point; aws-lc checks that it is on
                // the curve.
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point[..])
                    .verify(message, signature)
                    .is_ok()
            }
            PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url: the hash of the
    /// required members only, in lexicographic order, without whitespace
    /// (§3.2): `crv`, `kty`, `x`, `y` for EC and `e`, `kty`, `n` for RSA.
    /// The members are base64url without padding or leading zeros, so one
    /// key has one thumbprint however the client spelled its JWK.
    pub fn thumbprint(&self) -> String {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let canonical = match self {
            PublicKey::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64(x),
                b64(y)
            ),
            PublicKey::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
        };
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    }
}

/// The first second at which a proof made at `iat` is refused as stale,
/// under a window of `iat_window_secs` (leeway included): until then a
/// replay cache must remember it.
pub fn stale_from(iat: i64, iat_window_secs: i64) -> i64 {
    iat.saturating_add(iat_window_secs).saturating_add(1)
}

/// The `ath` a proof sent with `access_token` carries: base64url of its
/// SHA-256 (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// An `htu` as compared (RFC 9449 §4.3 and RFC 3986 §6.2.2–6.2.3): scheme
/// and host in lower case, the port only when not the scheme's default,
/// the path with dot segments resolved and `/` when empty; no user
/// information, query or fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Htu(String);

impl Htu {
    /// `url` normalized, with any query and fragment dropped; `None` for
    /// anything that is not an absolute http(s) URL with a host.
    pub fn parse(url: &str) -> Option<Htu> {
        let mut url = url::Url::parse(url).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        url.set_query(None);
        url.set_fragment(None);
        // `Url` lower-cases the scheme and host, drops a default port and
        // resolves dot segments: its serialization is the normal form.
        Some(Htu(url.into()))
    }

    /// The URL of `path` (as a request line carries it, with or without a
    /// query) under `origin` (`scheme://host[:port]`).
    pub fn at(origin: &str, path: &str) -> Option<Htu> {
        if !path.starts_with('/') {
            return None;
        }
        Htu::parse(&format!("{origin}{path}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a proof against `expected`: everything of RFC 9449 §4.3 but the
/// header count (the caller's, who has the request), `jti` reuse, the
/// nonce and the token's key binding (the caller's, who has the state).
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLarge);
    }
    let parts = jws::split(proof).map_err(|_| ProofError::NotCompactJws)?;
    let header = jws::decode_part(parts.header).ok_or(ProofError::BadHeader)?;
    let header: RawHeader = serde_json::from_slice(&header).map_err(|_| ProofError::BadHeader)?;
    if !is_dpop_type(&header.typ) {
        return Err(ProofError::WrongType);
    }
    let alg = match header.alg.as_str() {
        // Case-sensitive (RFC 7518 §3.1): "none", "HS256", "es256" fail.
        "ES256" => Alg::Es256,
        "RS256" => Alg::Rs256,
        _ => return Err(ProofError::AlgorithmNotAllowed),
    };
    if header.crit.is_some() {
        return Err(ProofError::UnsupportedCrit);
    }
    let jwk = header.jwk.ok_or(ProofError::MissingJwk)?;
    let key = jwk.public_key(alg)?;
    let signature = jws::decode_part(parts.signature).ok_or(ProofError::BadSignature)?;
    if !key.verify(parts.signing_input.as_bytes(), &signature) {
        return Err(ProofError::BadSignature);
    }

    // Only now, signed by the key it names, is the payload read.
    let claims = jws::decode_part(parts.payload).ok_or(ProofError::BadClaims)?;
    let claims: RawClaims = serde_json::from_slice(&claims).map_err(|_| ProofError::BadClaims)?;
    let jti = claims.jti.ok_or(ProofError::MissingClaim("jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(ProofError::MissingClaim("jti"));
    }
    let htm = claims.htm.ok_or(ProofError::MissingClaim("htm"))?;
    let htu = claims.htu.ok_or(ProofError::MissingClaim("htu"))?;
    let iat = claims.iat.ok_or(ProofError::MissingClaim("iat"))?;
    if htm != expected.method {
        return Err(ProofError::WrongMethod);
    }
    if Htu::parse(&htu).as_ref() != Some(expected.url) {
        return Err(ProofError::WrongUri);
    }
    if iat < expected.now.saturating_sub(expected.iat_window_secs) {
        return Err(ProofError::Stale);
    }
    if iat > expected.now.saturating_add(expected.iat_window_secs) {
        return Err(ProofError::IssuedInFuture);
    }
    if let Some(hash) = expected.token_hash {
        let ath = claims.ath.ok_or(ProofError::MissingClaim("ath"))?;
        if URL_SAFE_NO_PAD.decode(ath).ok().as_deref() != Some(&hash[..]) {
            return Err(ProofError::WrongAth);
        }
    }
    let nonce = match claims.nonce {
        Some(nonce) if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN => {
            return Err(ProofError::BadClaims)
        }
        other => other,
    };
    Ok(Proof {
        jkt: key.thumbprint(),
        jti,
        iat,
        nonce,
    })
}

/// `dpop+jwt`, or with its `application/` prefix, in any case (RFC 7515
/// §4.1.9: `typ` is a media type, whose names are case-insensitive).
fn is_dpop_type(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("dpop+jwt")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Es256,
    Rs256,
}

/// The header members read. Duplicate members are an error in derived
/// structs, so a header cannot say `alg` twice and have readers disagree;
/// unknown members are ignored (RFC 7515 §4), unless listed in `crit`.
#[derive(Deserialize)]
struct RawHeader {
    #[serde(default)]
    typ: String,
    #[serde(default)]
    alg: String,
    jwk: Option<RawJwk>,
    crit: Option<IgnoredAny>,
}

/// The JWK members read: the public ones of EC and RSA keys, and every
/// private one, only to refuse a key that has any (RFC 9449 §4.2: `jwk`
/// MUST NOT contain a private key). Optional members (`kid`, `use`,
/// `alg`, `key_ops`, `ext`, …) are ignored, as browsers export them.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    // Private members: EC and RSA `d`, RSA's CRT parameters and other
    // primes (RFC 7518 §6.2.2, §6.3.2), a symmetric key's `k` (§6.4.1).
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl RawJwk {
    fn has_private_members(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ]
        .iter()
        .any(|member| member.is_some())
    }

    /// The key, if it is a well-formed public key of the type `alg` needs.
    fn public_key(&self, alg: Alg) -> Result<PublicKey, ProofError> {
        if self.has_private_members() {
            return Err(ProofError::PrivateKey);
        }
        let decode = |member: &Option<String>| {
            member
                .as_deref()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or(ProofError::BadKey)
        };
        match (alg, self.kty.as_deref()) {
            (Alg::Es256, Some("EC")) => {
                if self.crv.as_deref() != Some("P-256") {
                    return Err(ProofError::BadKey);
                }
                // RFC 7518 §6.2.1.2: exactly the field size, 32 bytes.
                let x = decode(&self.x)?
                    .try_into()
                    .map_err(|_| ProofError::BadKey)?;
                let y = decode(&self.y)?
                    .try_into()
                    .map_err(|_| ProofError::BadKey)?;
                Ok(PublicKey::P256 { x, y })
            }
            (Alg::Rs256, Some("RSA")) => {
                let n = decode(&self.n)?;
                let e = decode(&self.e)?;
                // RFC 7518 §6.3.1: the shortest big-endian form, so one key
                // has one thumbprint. 2048 to 8192 bits, as aws-lc's
                // RS256 verifier takes them.
                let canonical = |v: &[u8]| v.first().is_some_and(|b| *b != 0);
                if !canonical(&n) || !canonical(&e) || !(256..=1024).contains(&n.len()) {
                    return Err(ProofError::BadKey);
                }
                if e.len() > 8 {
                    return Err(ProofError::BadKey);
                }
                Ok(PublicKey::Rsa { n, e })
            }
            _ => Err(ProofError::BadKey),
        }
    }
}

/// The claims read; duplicates are an error, others are ignored.
#[derive(Deserialize)]
struct RawClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<i64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// A NumericDate (RFC 7519 §2): seconds, fractions dropped; a value that
/// is not a finite number in range fails decoding.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(value) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    if !value.is_finite() || value.abs() >= LIMIT {
        return Err(serde::de::Error::custom("NumericDate out of range"));
    }
    Ok(Some(value.floor() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::{json, Value};

    const NOW: i64 = 1_800_000_000;

    /// RFC 9449 §4.1 Figure 2: an ES256 proof made for `POST
    /// https://server.example.com/token` at 1562262616.
    const RFC_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
        "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
        "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
        "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj",
        "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia",
        "WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg",
        "4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg",
    );
    const RFC_PROOF_IAT: i64 = 1_562_262_616;
    /// RFC 9449 §6.1: the thumbprint of that proof's key.
    const RFC_PROOF_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    fn url(s: &str) -> Htu {
        Htu::parse(s).unwrap()
    }

    fn expected<'a>(url: &'a Htu, token_hash: Option<&'a [u8; 32]>) -> Expected<'a> {
        Expected {
            method: "POST",
            url,
            token_hash,
            now: NOW,
            iat_window_secs: 120,
        }
    }

    /// A P-256 key and proofs made with it, signed by aws-lc directly.
    struct Signer {
        pair: EcdsaKeyPair,
    }

    impl Signer {
        fn new() -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Signer {
                pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                    .unwrap(),
            }
        }

        fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        }

        fn header(&self) -> Value {
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }

        fn proof(&self, claims: &Value) -> String {
            self.sign(&self.header(), claims)
        }
    }

    fn claims() -> Value {
        json!({
            "jti": "e1j3V_bKic8-LAEB",
            "htm": "POST",
            "htu": "https://api.example.com/api/whoami",
            "iat": NOW,
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[key] = value;
        claims
    }

    fn without(key: &str) -> Value {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    fn check(proof: &str) -> Result<Proof, ProofError> {
        let url = url("https://api.example.com/api/whoami");
        verify(proof, &expected(&url, None))
    }

    #[test]
    fn the_rfc_example_proof_verifies_and_names_the_rfc_thumbprint() {
        let url = url("https://server.example.com/token");
        let proof = verify(
            RFC_PROOF,
            &Expected {
                now: RFC_PROOF_IAT + 5,
                ..expected(&url, None)
            },
        )
        .unwrap();
        assert_eq!(proof.jkt, RFC_PROOF_JKT);
        assert_eq!(proof.jti, "-BwC3ESc6acc2lTc");
        assert_eq!(proof.iat, RFC_PROOF_IAT);
        assert_eq!(proof.nonce, None);
        // The same proof for another URL, method or time is refused.
        let other = self::url("https://server.example.com/other");
        let at = |now| Expected {
            now,
            ..expected(&url, None)
        };
        assert_eq!(
            verify(
                RFC_PROOF,
                &Expected {
                    now: RFC_PROOF_IAT,
                    ..expected(&other, None)
                }
            ),
            Err(ProofError::WrongUri)
        );
        assert_eq!(
            verify(
                RFC_PROOF,
                &Expected {
                    method: "GET",
                    ..at(RFC_PROOF_IAT)
                }
            ),
            Err(ProofError::WrongMethod)
        );
        assert_eq!(
            verify(RFC_PROOF, &at(RFC_PROOF_IAT + 121)),
            Err(ProofError::Stale)
        );
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfc_example_rsa_key() {
        // RFC 7638 §3.1.
        let n = concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1",
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4",
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO",
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF",
            "Cur-kEgU8awapJzKnqDKgw"
        );
        let jwk: RawJwk = serde_json::from_value(json!({
            "kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        }))
        .unwrap();
        let key = jwk.public_key(Alg::Rs256).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn ath_is_the_rfc_example() {
        // RFC 9449 §7.1, Figures 13 and 14.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn accepts_a_fresh_proof_and_reads_its_nonce() {
        let signer = Signer::new();
        let proof = check(&signer.proof(&claims())).unwrap();
        assert_eq!(proof.jti, "e1j3V_bKic8-LAEB");
        assert_eq!(proof.jkt.len(), 43);
        let with_nonce = check(&signer.proof(&with("nonce", json!("n-1")))).unwrap();
        assert_eq!(with_nonce.nonce.as_deref(), Some("n-1"));
        assert_eq!(with_nonce.jkt, proof.jkt, "the same key, the same jkt");
        // Fractional iat, application/ prefix, optional JWK members.
        let mut header = signer.header();
        header["typ"] = json!("application/DPoP+JWT");
        header["jwk"]["kid"] = json!("k");
        header["jwk"]["ext"] = json!(true);
        header["jwk"]["key_ops"] = json!(["verify"]);
        assert!(check(&signer.sign(&header, &with("iat", json!(NOW as f64 + 0.5)))).is_ok());
    }

    #[test]
    fn the_method_and_url_must_be_this_requests() {
        let signer = Signer::new();
        assert_eq!(
            check(&signer.proof(&with("htm", json!("GET")))),
            Err(ProofError::WrongMethod)
        );
        assert_eq!(
            check(&signer.proof(&with("htm", json!("post")))),
            Err(ProofError::WrongMethod)
        );
        for other in [
            "https://api.example.com/api/messages",
            "http://api.example.com/api/whoami",
            "https://api.example.com:8443/api/whoami",
            "https://evil.example/api/whoami",
            "https://api.example.com/api/whoami/",
            "https://user@api.example.com/api/whoami",
            "/api/whoami",
            "not a url",
        ] {
            assert_eq!(
                check(&signer.proof(&with("htu", json!(other)))),
                Err(ProofError::WrongUri),
                "{other}"
            );
        }
        // Normalized: case of scheme and host, default port, dot
        // segments; query and fragment ignored.
        for same in [
            "HTTPS://API.Example.COM/api/whoami",
            "https://api.example.com:443/api/whoami",
            "https://api.example.com/api/x/../whoami",
            "https://api.example.com/api/whoami?x=1#y",
        ] {
            assert!(
                check(&signer.proof(&with("htu", json!(same)))).is_ok(),
                "{same}"
            );
        }
    }

    #[test]
    fn iat_must_be_within_the_window_either_way() {
        let signer = Signer::new();
        assert!(check(&signer.proof(&with("iat", json!(NOW - 120)))).is_ok());
        assert!(check(&signer.proof(&with("iat", json!(NOW + 120)))).is_ok());
        assert_eq!(
            check(&signer.proof(&with("iat", json!(NOW - 121)))),
            Err(ProofError::Stale)
        );
        assert_eq!(
            check(&signer.proof(&with("iat", json!(NOW + 121)))),
            Err(ProofError::IssuedInFuture)
        );
        assert_eq!(
            check(&signer.proof(&with("iat", json!("now")))),
            Err(ProofError::BadClaims)
        );
    }

    #[test]
    fn a_proof_is_stale_from_the_second_after_its_window() {
        let signer = Signer::new();
        let iat = NOW - 120;
        assert!(check(&signer.proof(&with("iat", json!(iat)))).is_ok());
        assert_eq!(stale_from(iat, 120), NOW + 1);
        let url = url("https://api.example.com/api/whoami");
        let later = Expected {
            now: stale_from(iat, 120),
            ..expected(&url, None)
        };
        assert_eq!(
            verify(&signer.proof(&with("iat", json!(iat))), &later),
            Err(ProofError::Stale)
        );
    }

    #[test]
    fn required_claims() {
        let signer = Signer::new();
        for claim in ["jti", "htm", "htu", "iat"] {
            assert_eq!(
                check(&signer.proof(&without(claim))),
                Err(ProofError::MissingClaim(claim)),
                "{claim}"
            );
        }
        assert_eq!(
            check(&signer.proof(&with("jti", json!("")))),
            Err(ProofError::MissingClaim("jti"))
        );
        assert_eq!(
            check(&signer.proof(&with("nonce", json!("")))),
            Err(ProofError::BadClaims)
        );
    }

    #[test]
    fn ath_must_hash_the_token_sent_with_it() {
        let signer = Signer::new();
        let url = url("https://api.example.com/api/whoami");
        let hash: [u8; 32] = digest::digest(&digest::SHA256, b"the-token")
            .as_ref()
            .try_into()
            .unwrap();
        let expect = expected(&url, Some(&hash));
        assert!(verify(
            &signer.proof(&with("ath", json!(ath("the-token")))),
            &expect
        )
        .is_ok());
        assert_eq!(
            verify(&signer.proof(&with("ath", json!(ath("another")))), &expect),
            Err(ProofError::WrongAth)
        );
        assert_eq!(
            verify(&signer.proof(&claims()), &expect),
            Err(ProofError::MissingClaim("ath"))
        );
        // Without a token, ath is not read.
        assert!(check(&signer.proof(&with("ath", json!("x")))).is_ok());
    }

    #[test]
    fn the_header_must_type_the_proof_and_name_an_allowed_algorithm() {
        let signer = Signer::new();
        let sign_with = |key: &str, value: Value| {
            let mut header = signer.header();
            header[key] = value;
            signer.sign(&header, &claims())
        };
        assert_eq!(
            check(&sign_with("typ", json!("JWT"))),
            Err(ProofError::WrongType)
        );
        let mut no_typ = signer.header();
        no_typ.as_object_mut().unwrap().remove("typ");
        assert_eq!(
            check(&signer.sign(&no_typ, &claims())),
            Err(ProofError::WrongType)
        );
        for alg in ["none", "HS256", "es256", "ES384", "PS256", "EdDSA", ""] {
            assert_eq!(
                check(&sign_with("alg", json!(alg))),
                Err(ProofError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        assert_eq!(
            check(&sign_with("crit", json!(["exp"]))),
            Err(ProofError::UnsupportedCrit)
        );
        let mut no_jwk = signer.header();
        no_jwk.as_object_mut().unwrap().remove("jwk");
        assert_eq!(
            check(&signer.sign(&no_jwk, &claims())),
            Err(ProofError::MissingJwk)
        );
    }

    #[test]
    fn an_unsigned_or_hmac_proof_is_refused_before_any_key_is_read() {
        let signer = Signer::new();
        let body = |header: &Value| {
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims().to_string())
            )
        };
        let mut none = signer.header();
        none["alg"] = json!("none");
        assert_eq!(
            check(&format!("{}.", body(&none))),
            Err(ProofError::NotCompactJws)
        );
        assert_eq!(
            check(&format!("{}.AAAA", body(&none))),
            Err(ProofError::AlgorithmNotAllowed)
        );
        let mut hs = signer.header();
        hs["alg"] = json!("HS256");
        hs["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(
            check(&format!("{}.AAAA", body(&hs))),
            Err(ProofError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn a_jwk_with_private_members_is_refused() {
        let signer = Signer::new();
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let mut header = signer.header();
            header["jwk"][member] = json!("AAAA");
            assert_eq!(
                check(&signer.sign(&header, &claims())),
                Err(ProofError::PrivateKey),
                "{member}"
            );
        }
    }

    #[test]
    fn the_key_must_fit_the_algorithm() {
        let signer = Signer::new();
        let with_jwk = |change: &dyn Fn(&mut Value)| {
            let mut header = signer.header();
            change(&mut header["jwk"]);
            check(&signer.sign(&header, &claims()))
        };
        assert_eq!(
            with_jwk(&|jwk| jwk["crv"] = json!("P-384")),
            Err(ProofError::BadKey)
        );
        assert_eq!(
            with_jwk(&|jwk| jwk["kty"] = json!("RSA")),
            Err(ProofError::BadKey)
        );
        assert_eq!(
            with_jwk(&|jwk| jwk["x"] = json!("AAAA")),
            Err(ProofError::BadKey)
        );
        assert_eq!(
            with_jwk(&|jwk| jwk["y"] = json!("not base64!")),
            Err(ProofError::BadKey)
        );
        // A point that is not on the curve never verifies.
        assert_eq!(
            with_jwk(&|jwk| jwk["x"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]))),
            Err(ProofError::BadSignature)
        );
        // An RS256 proof whose jwk is an EC key.
        let mut header = signer.header();
        header["alg"] = json!("RS256");
        assert_eq!(
            check(&signer.sign(&header, &claims())),
            Err(ProofError::BadKey)
        );
    }

    #[test]
    fn a_signature_by_another_key_or_over_other_claims_is_refused() {
        let signer = Signer::new();
        let other = Signer::new();
        // Signed by `other`, naming `signer`'s key.
        let forged = other.sign(&signer.header(), &claims());
        assert_eq!(check(&forged), Err(ProofError::BadSignature));
        // A valid proof with its payload swapped.
        let proof = signer.proof(&claims());
        let mut parts: Vec<&str> = proof.split('.').collect();
        let swapped = URL_SAFE_NO_PAD.encode(with("htm", json!("GET")).to_string());
        parts[1] = &swapped;
        assert_eq!(check(&parts.join(".")), Err(ProofError::BadSignature));
    }

    #[test]
    fn malformed_input_is_refused_not_a_panic() {
        for bad in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "..",
            "e30.e30.",
            "!!!.e30.AAAA",
            "e30.e30.AAAA",
            "W10.e30.AAAA",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check(&"a".repeat(MAX_PROOF_LEN + 1)),
            Err(ProofError::TooLarge)
        );
        // Duplicate header members.
        let dup = format!(
            "{}.e30.AAAA",
            URL_SAFE_NO_PAD.encode(r#"{"typ":"dpop+jwt","alg":"ES256","alg":"none"}"#)
        );
        assert_eq!(check(&dup), Err(ProofError::BadHeader));
    }

    #[test]
    fn htu_at_joins_the_public_origin_and_the_path() {
        assert_eq!(
            Htu::at("https://app.example.com", "/api/whoami")
                .unwrap()
                .as_str(),
            "https://app.example.com/api/whoami"
        );
        assert_eq!(
            Htu::at("http://localhost:3000", "/api/whoami?x=1")
                .unwrap()
                .as_str(),
            "http://localhost:3000/api/whoami"
        );
        assert_eq!(Htu::at("http://localhost:3000", "api/whoami"), None);
        assert_eq!(Htu::parse("ftp://x/y"), None);
    }

    #[test]
    fn reasons_are_a_fixed_list_one_per_variant() {
        let all = [
            ProofError::TooLarge,
            ProofError::NotCompactJws,
            ProofError::BadHeader,
            ProofError::WrongType,
            ProofError::AlgorithmNotAllowed,
            ProofError::UnsupportedCrit,
            ProofError::MissingJwk,
            ProofError::PrivateKey,
            ProofError::BadKey,
            ProofError::BadSignature,
            ProofError::BadClaims,
            ProofError::MissingClaim("jti"),
            ProofError::WrongMethod,
            ProofError::WrongUri,
            ProofError::Stale,
            ProofError::IssuedInFuture,
            ProofError::WrongAth,
            ProofError::Replayed,
        ];
        let reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons, ProofError::REASONS);
        for err in all {
            let text = err.to_string();
            assert!(
                text.chars()
                    .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')),
                "{text}"
            );
        }
    }
}
