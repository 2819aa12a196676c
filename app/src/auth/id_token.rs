//! Checks of an ID token in the browser (OpenID Connect Core §3.2.2.11 and
//! §3.1.3.7): decoding, claims, nonce and `at_hash`. The RS256 signature
//! and the SHA-256 behind `at_hash` are computed with the browser's
//! WebCrypto (`browser::WebCryptoSignatures`), so neither is in the wasm.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Deserializer, Serialize};

/// How far the browser's clock may be from the issuer's (seconds).
pub const MAX_CLOCK_SKEW: i64 = 300;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is not a signed JWT (expected three dot-separated parts)")]
    NotAJws,
    #[error("the ID token is not valid base64url or JSON")]
    Undecodable,
    #[error("the ID token is signed with {0}; only RS256 is accepted")]
    Algorithm(String),
    #[error("the ID token names no signing key (kid)")]
    NoKid,
    #[error("the ID token has critical header extensions this app does not understand")]
    Crit,
    #[error("the issuer has no key '{0}' for the ID token")]
    UnknownKey(String),
    #[error("the ID token's signature is not valid")]
    BadSignature,
    #[error("the ID token was issued by '{found}', not by '{expected}'")]
    Issuer { expected: String, found: String },
    #[error("the ID token is not meant for this app (audience)")]
    Audience,
    #[error("the ID token is also meant for audiences this app does not trust (aud)")]
    UntrustedAudience,
    #[error("the ID token was issued to another client (azp)")]
    AuthorizedParty,
    #[error("the ID token has expired; check that this computer's clock is right")]
    Expired,
    #[error("the ID token was issued in the future; check that this computer's clock is right")]
    IssuedInFuture,
    #[error("the ID token's nonce does not match this sign-in (possible replay)")]
    Nonce,
    #[error("the ID token carries no at_hash, though an access token came with it")]
    MissingAtHash,
    #[error("the access token does not belong to the ID token (at_hash mismatch)")]
    AtHash,
}

/// The JOSE header fields we look at.
#[derive(Clone, Debug, Deserialize)]
pub struct JwsHeader {
    pub alg: String,
    pub kid: Option<String>,
    pub crit: Option<Vec<String>>,
}

/// `aud` may be one string or an array (RFC 7519 §4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The ID token claims the app checks or shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub at_hash: Option<String>,
    #[serde(default)]
    pub auth_time: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
}

/// A compact JWS split into what the checks need.
#[derive(Clone, Debug)]
pub struct DecodedJwt {
    pub header: JwsHeader,
    pub claims: IdClaims,
    /// `base64url(header) "." base64url(payload)`: the bytes that were signed.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

impl DecodedJwt {
    pub fn kid(&self) -> &str {
        self.header.kid.as_deref().unwrap_or_default()
    }
}

/// Splits and decodes an ID token, and checks its header: RS256 only, a
/// `kid`, and no `crit` extensions. The signature is not checked here.
pub fn decode(token: &str) -> Result<DecodedJwt, IdTokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::NotAJws);
    };
    let b64 = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| IdTokenError::Undecodable)
    };
    let header: JwsHeader =
        serde_json::from_slice(&b64(h)?).map_err(|_| IdTokenError::Undecodable)?;
    if header.alg != "RS256" {
        return Err(IdTokenError::Algorithm(
            header.alg.chars().take(20).collect(),
        ));
    }
    if header.crit.is_some() {
        return Err(IdTokenError::Crit);
    }
    if header.kid.as_deref().is_none_or(str::is_empty) {
        return Err(IdTokenError::NoKid);
    }
    let claims: IdClaims =
        serde_json::from_slice(&b64(p)?).map_err(|_| IdTokenError::Undecodable)?;
    Ok(DecodedJwt {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature: b64(s)?,
    })
}

/// What the claims must say for this sign-in.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The sign-in's nonce, which the ID token must carry; `None` for an
    /// ID token from a refresh, which answers no authorize request (OpenID
    /// Connect Core §12.2 does not ask for one there).
    pub nonce: Option<&'a str>,
    /// Unix seconds on the browser's clock.
    pub now: i64,
}

/// Checks `iss`, `aud`/`azp`, `exp`, `iat` and `nonce`, in that order.
pub fn check_claims(claims: &IdClaims, expected: &Expected<'_>) -> Result<(), IdTokenError> {
    if claims.iss != expected.issuer {
        return Err(IdTokenError::Issuer {
            expected: expected.issuer.to_string(),
            found: claims.iss.chars().take(200).collect(),
        });
    }
    check_audience(claims, expected.client_id)?;
    // Saturating: exp and iat come from the token and may be any i64.
    if claims.exp.saturating_add(MAX_CLOCK_SKEW) <= expected.now {
        return Err(IdTokenError::Expired);
    }
    if claims.iat.saturating_sub(MAX_CLOCK_SKEW) > expected.now {
        return Err(IdTokenError::IssuedInFuture);
    }
    if let Some(nonce) = expected.nonce {
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(IdTokenError::Nonce);
        }
    }
    Ok(())
}

/// `aud` names this client and no one else, and `azp`, when present, names
/// it too. OpenID Connect Core §3.1.3.7 item 3 has a client reject an ID
/// token with audiences it does not trust, and this app trusts none but
/// itself; so one that is also meant for another client is refused even
/// when its `azp` is right (items 4-5 alone would accept it).
pub fn check_audience(claims: &IdClaims, client_id: &str) -> Result<(), IdTokenError> {
    if !claims.aud.iter().any(|a| a == client_id) {
        return Err(IdTokenError::Audience);
    }
    if claims.aud.iter().any(|a| a != client_id) {
        return Err(IdTokenError::UntrustedAudience);
    }
    match &claims.azp {
        Some(azp) if azp != client_id => Err(IdTokenError::AuthorizedParty),
        _ => Ok(()),
    }
}

/// `at_hash` for an RS256 ID token from the SHA-256 of the ASCII access
/// token: base64url of the digest's left half (Core §3.2.2.9).
pub fn at_hash_of_sha256(digest: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&digest[..digest.len().min(16)])
}

/// `at_hash` of `access_token`, for the server (the dev authorization
/// server issues it) and the host tests; the browser hashes with WebCrypto.
#[cfg(any(feature = "ssr", test))]
pub fn at_hash(access_token: &str) -> String {
    use sha2::{Digest, Sha256};
    at_hash_of_sha256(&Sha256::digest(access_token.as_bytes()))
}

/// Checks `at_hash` whenever an access token came with the ID token;
/// `access_token_sha256` is that token's SHA-256.
pub fn check_at_hash(
    claims: &IdClaims,
    access_token_sha256: Option<&[u8]>,
) -> Result<(), IdTokenError> {
    let Some(digest) = access_token_sha256 else {
        return Ok(());
    };
    match &claims.at_hash {
        None => Err(IdTokenError::MissingAtHash),
        Some(h) if *h == at_hash_of_sha256(digest) => Ok(()),
        Some(_) => Err(IdTokenError::AtHash),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    pub fn claims_json(nonce: &str, at_hash: Option<&str>, now: i64) -> String {
        let mut c = serde_json::json!({
            "iss": "http://localhost:3100/oauth2/default", "sub": "00u1", "aud": "client",
            "exp": now + 3600, "iat": now, "nonce": nonce, "name": "Alice"
        });
        if let Some(h) = at_hash {
            c["at_hash"] = h.into();
        }
        c.to_string()
    }

    pub fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    fn expected(now: i64) -> Expected<'static> {
        Expected {
            issuer: "http://localhost:3100/oauth2/default",
            client_id: "client",
            nonce: Some("n1"),
            now,
        }
    }

    const NOW: i64 = 1_800_000_000;
    const RS256: &str = r#"{"alg":"RS256","kid":"k1"}"#;

    #[test]
    fn at_hash_is_the_left_half_of_sha256_base64url() {
        // Computed independently with coreutils:
        // printf %s TOKEN | sha256sum | head -c 32 | xxd -r -p | base64 (url-safe, unpadded)
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNsYkeGiBiGdaC6V6rEYh7odXkPDj1YnRcXjrp8ka"),
            "LYzWrZKrZYQ4DzAuD-nlHw"
        );
    }

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OpenID Connect Core 1.0, Appendix A.3 (RS256 example).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn decodes_a_well_formed_token() {
        let t = token(RS256, &claims_json("n1", None, NOW));
        let d = decode(&t).unwrap();
        assert_eq!(d.kid(), "k1");
        assert_eq!(d.claims.aud, vec!["client".to_string()]);
        assert_eq!(d.signature, b"sig");
        assert!(t.starts_with(&d.signing_input));
    }

    #[test]
    fn refuses_structural_problems() {
        let claims = claims_json("n1", None, NOW);
        assert_eq!(decode("a.b").unwrap_err(), IdTokenError::NotAJws);
        assert_eq!(decode("a.b.c.d.e").unwrap_err(), IdTokenError::NotAJws);
        assert_eq!(decode("!!.??.##").unwrap_err(), IdTokenError::Undecodable);
        let none = token(r#"{"alg":"none","kid":"k1"}"#, &claims);
        assert_eq!(
            decode(&none).unwrap_err(),
            IdTokenError::Algorithm("none".into())
        );
        let hs = token(r#"{"alg":"HS256","kid":"k1"}"#, &claims);
        assert_eq!(
            decode(&hs).unwrap_err(),
            IdTokenError::Algorithm("HS256".into())
        );
        let crit = token(r#"{"alg":"RS256","kid":"k1","crit":["exp"]}"#, &claims);
        assert_eq!(decode(&crit).unwrap_err(), IdTokenError::Crit);
        let nokid = token(r#"{"alg":"RS256"}"#, &claims);
        assert_eq!(decode(&nokid).unwrap_err(), IdTokenError::NoKid);
        let bad_json = format!(
            "{}.{}.{}",
            b64(RS256),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            b64("s")
        );
        assert_eq!(decode(&bad_json).unwrap_err(), IdTokenError::Undecodable);
    }

    #[test]
    fn checks_claims_in_order() {
        let base: IdClaims = serde_json::from_str(&claims_json("n1", None, NOW)).unwrap();
        assert_eq!(check_claims(&base, &expected(NOW)), Ok(()));

        let mut c = base.clone();
        c.iss = "https://evil.example".into();
        assert!(matches!(
            check_claims(&c, &expected(NOW)),
            Err(IdTokenError::Issuer { .. })
        ));

        let mut c = base.clone();
        c.aud = vec!["other".into()];
        assert_eq!(
            check_claims(&c, &expected(NOW)),
            Err(IdTokenError::Audience)
        );

        // Another audience beside this client is refused, whatever azp says.
        let mut c = base.clone();
        c.aud = vec!["client".into(), "other".into()];
        for azp in [None, Some("client"), Some("other")] {
            c.azp = azp.map(String::from);
            assert_eq!(
                check_claims(&c, &expected(NOW)),
                Err(IdTokenError::UntrustedAudience),
                "{azp:?}"
            );
        }
        c.aud = vec!["client".into(), "client".into()];
        c.azp = Some("client".into());
        assert_eq!(check_claims(&c, &expected(NOW)), Ok(()));
        c.aud = vec![];
        assert_eq!(
            check_claims(&c, &expected(NOW)),
            Err(IdTokenError::Audience)
        );

        // A single audience: azp may be left out, but if present names us.
        let mut c = base.clone();
        c.azp = Some("client".into());
        assert_eq!(check_claims(&c, &expected(NOW)), Ok(()));
        c.azp = Some("other".into());
        assert_eq!(
            check_claims(&c, &expected(NOW)),
            Err(IdTokenError::AuthorizedParty)
        );

        let mut c = base.clone();
        c.exp = NOW - MAX_CLOCK_SKEW;
        assert_eq!(check_claims(&c, &expected(NOW)), Err(IdTokenError::Expired));
        c.exp = NOW - MAX_CLOCK_SKEW + 1;
        assert_eq!(check_claims(&c, &expected(NOW)), Ok(()));

        let mut c = base.clone();
        c.iat = NOW + MAX_CLOCK_SKEW + 1;
        assert_eq!(
            check_claims(&c, &expected(NOW)),
            Err(IdTokenError::IssuedInFuture)
        );
        c.iat = NOW + MAX_CLOCK_SKEW;
        assert_eq!(check_claims(&c, &expected(NOW)), Ok(()));

        let mut c = base.clone();
        c.nonce = Some("other".into());
        assert_eq!(check_claims(&c, &expected(NOW)), Err(IdTokenError::Nonce));
        c.nonce = None;
        assert_eq!(check_claims(&c, &expected(NOW)), Err(IdTokenError::Nonce));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut c: IdClaims = serde_json::from_str(&claims_json("n1", None, NOW)).unwrap();
        c.exp = i64::MAX;
        c.iat = i64::MIN;
        assert_eq!(check_claims(&c, &expected(NOW)), Ok(()));
        c.exp = i64::MIN;
        assert_eq!(check_claims(&c, &expected(NOW)), Err(IdTokenError::Expired));
        c.exp = i64::MAX;
        c.iat = i64::MAX;
        assert_eq!(
            check_claims(&c, &expected(NOW)),
            Err(IdTokenError::IssuedInFuture)
        );
    }

    #[test]
    fn aud_may_be_an_array() {
        let json = r#"{"iss":"i","sub":"s","aud":["client"],"exp":1,"iat":1}"#;
        let c: IdClaims = serde_json::from_str(json).unwrap();
        assert_eq!(c.aud, vec!["client".to_string()]);
    }

    #[test]
    fn at_hash_is_mandatory_with_an_access_token() {
        let mut c: IdClaims = serde_json::from_str(&claims_json("n1", None, NOW)).unwrap();
        use sha2::{Digest, Sha256};
        let tok = Sha256::digest(b"tok");
        let other = Sha256::digest(b"other");
        assert_eq!(check_at_hash(&c, None), Ok(()));
        assert_eq!(
            check_at_hash(&c, Some(&tok)),
            Err(IdTokenError::MissingAtHash)
        );
        c.at_hash = Some(at_hash("tok"));
        assert_eq!(check_at_hash(&c, Some(&tok)), Ok(()));
        assert_eq!(check_at_hash(&c, Some(&other)), Err(IdTokenError::AtHash));
    }
}
