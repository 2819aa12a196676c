//! The claim rules for an access token, as a pure function of the decoded
//! claims, the [`Policy`] and the current time.
//!
//! Runs only after the signature has been verified, so nothing here trusts
//! unauthenticated input.

use std::time::Duration;

use app::api::AccessClaims;
use serde::{Deserialize, Deserializer};

use super::error::{InitError, TokenError};

/// The most clock skew the validator may be configured to forgive.
pub const MAX_LEEWAY: Duration = Duration::from_secs(120);
/// The clock skew forgiven unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// What an access token must say to be accepted here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `iss` must equal this exactly.
    issuer: String,
    /// `aud` must contain this.
    audience: String,
    /// `cid` must equal this when the token has one.
    client_id: Option<String>,
    leeway_secs: i64,
}

impl Policy {
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        client_id: Option<String>,
        leeway: Duration,
    ) -> Result<Self, InitError> {
        if leeway > MAX_LEEWAY {
            return Err(InitError::Leeway(leeway.as_secs()));
        }
        Ok(Policy {
            issuer: issuer.into(),
            audience: audience.into(),
            client_id,
            leeway_secs: leeway.as_secs() as i64,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The clock skew forgiven, in seconds.
    pub fn leeway_secs(&self) -> i64 {
        self.leeway_secs
    }
}

/// The claims of an access token as they come out of the JSON, before any
/// rule has been applied. Unknown claims are ignored; a claim of the wrong
/// type fails decoding.
#[derive(Debug, Default, Deserialize)]
pub struct RawClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Audience>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub nbf: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub iat: Option<i64>,
    pub cid: Option<String>,
    pub uid: Option<String>,
    /// Okta: an array of scope names. Some issuers use a space-separated
    /// string here, so both are read.
    pub scp: Option<Scopes>,
    /// RFC 8693 / RFC 9068: a space-separated string.
    pub scope: Option<String>,
    /// RFC 7800: the key the token is bound to; RFC 9449 §6.1: `jkt`, the
    /// thumbprint of a DPoP key.
    pub cnf: Option<serde_json::Map<String, serde_json::Value>>,
}

impl RawClaims {
    /// Decodes the JSON payload of a verified token.
    pub fn from_json(json: &[u8]) -> Result<Self, TokenError> {
        serde_json::from_slice(json).map_err(|_| TokenError::BadClaims)
    }

    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`), `None`
    /// for an unbound token. A `cnf` this server cannot check (another
    /// confirmation method, alone or beside `jkt`) refuses the token: it
    /// is bound to something, and accepting it unbound would undo that.
    pub fn take_dpop_binding(&mut self) -> Result<Option<String>, TokenError> {
        let Some(cnf) = self.cnf.take() else {
            return Ok(None);
        };
        match (cnf.get("jkt"), cnf.len()) {
            (Some(serde_json::Value::String(jkt)), 1) if !jkt.is_empty() => Ok(Some(jkt.clone())),
            _ => Err(TokenError::UnsupportedConfirmation),
        }
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, value: &str) -> bool {
        match self {
            Audience::One(aud) => aud == value,
            Audience::Many(auds) => auds.iter().any(|aud| aud == value),
        }
    }
}

/// Scopes as an array of names or as one space-separated string.
#[derive(Debug)]
pub enum Scopes {
    List(Vec<String>),
    SpaceSeparated(String),
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums buffer the
// value and try each variant, which costs more than the rest of the claims
// on the validation hot path.
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrList("a string or an array of strings"))
            .map(|v| match v {
                Either::One(s) => Audience::One(s),
                Either::Many(v) => Audience::Many(v),
            })
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrList("a string or an array of strings"))
            .map(|v| match v {
                Either::One(s) => Scopes::SpaceSeparated(s),
                Either::Many(v) => Scopes::List(v),
            })
    }
}

enum Either {
    One(String),
    Many(Vec<String>),
}

struct StringOrList(&'static str);

impl<'de> serde::de::Visitor<'de> for StringOrList {
    type Value = Either;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Either, E> {
        Ok(Either::One(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Either, E> {
        Ok(Either::One(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Either, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(Either::Many(items))
    }
}

/// NumericDate (RFC 7519 §2): seconds, possibly fractional. Fractions are
/// dropped; a value that is not a finite number in range fails decoding.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(value) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    // Beyond ±2^53 an f64 no longer holds every integer; no real date is
    // near that.
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    if !value.is_finite() || value.abs() >= LIMIT {
        return Err(serde::de::Error::custom("NumericDate out of range"));
    }
    Ok(Some(value.floor() as i64))
}

/// Applies every claim rule and returns what the server functions see.
/// `now` is in Unix seconds.
pub fn check(raw: RawClaims, policy: &Policy, now: i64) -> Result<AccessClaims, TokenError> {
    let leeway = policy.leeway_secs;

    match raw.iss.as_deref() {
        None => return Err(TokenError::MissingClaim("iss")),
        Some(iss) if iss != policy.issuer => return Err(TokenError::WrongIssuer),
        Some(_) => {}
    }

    let aud = raw.aud.as_ref().ok_or(TokenError::MissingClaim("aud"))?;
    if !aud.contains(&policy.audience) {
        // An ID token is addressed to the client that asked for it; say so,
        // because sending the ID token instead of the access token is the
        // mistake a client developer actually makes.
        let is_id_token = policy.client_id().is_some_and(|cid| aud.contains(cid));
        return Err(if is_id_token {
            TokenError::IdToken
        } else {
            TokenError::WrongAudience
        });
    }

    let exp = raw.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = raw.nbf {
        if nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(iat) = raw.iat {
        if iat > now.saturating_add(leeway) {
            return Err(TokenError::IssuedInFuture);
        }
    }

    if let (Some(cid), Some(expected)) = (raw.cid.as_deref(), policy.client_id()) {
        if cid != expected {
            return Err(TokenError::WrongClient);
        }
    }

    let sub = raw.sub.ok_or(TokenError::MissingClaim("sub"))?;
    let scopes = match (raw.scp, raw.scope) {
        (Some(Scopes::List(list)), _) => list,
        (Some(Scopes::SpaceSeparated(s)), _) | (None, Some(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, None) => Vec::new(),
    };

    Ok(AccessClaims {
        sub,
        uid: raw.uid,
        cid: raw.cid,
        scopes,
        issuer: policy.issuer.clone(),
        expires_at: exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://example.okta.com/oauth2/default";

    fn policy() -> Policy {
        Policy::new(
            ISS,
            "api://default",
            Some("client-1".into()),
            DEFAULT_LEEWAY,
        )
        .unwrap()
    }

    fn okta_claims() -> serde_json::Value {
        json!({
            "ver": 1,
            "jti": "AT.abc",
            "iss": ISS,
            "aud": "api://default",
            "iat": NOW - 10,
            "exp": NOW + 3600,
            "cid": "client-1",
            "uid": "00u1",
            "scp": ["openid", "profile", "reports:read"],
            "sub": "alice@example.com",
        })
    }

    fn check_json(value: serde_json::Value) -> Result<AccessClaims, TokenError> {
        let raw = RawClaims::from_json(value.to_string().as_bytes())?;
        check(raw, &policy(), NOW)
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut claims = okta_claims();
        claims[key] = value;
        claims
    }

    fn without(key: &str) -> serde_json::Value {
        let mut claims = okta_claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    #[test]
    fn accepts_an_okta_access_token() {
        let claims = check_json(okta_claims()).unwrap();
        assert_eq!(claims.sub, "alice@example.com");
        assert_eq!(claims.uid.as_deref(), Some("00u1"));
        assert_eq!(claims.cid.as_deref(), Some("client-1"));
        assert_eq!(claims.scopes, ["openid", "profile", "reports:read"]);
        assert_eq!(claims.issuer, ISS);
        assert_eq!(claims.expires_at, NOW + 3600);
    }

    #[test]
    fn leeway_is_bounded() {
        assert!(Policy::new(ISS, "a", None, MAX_LEEWAY).is_ok());
        assert!(matches!(
            Policy::new(ISS, "a", None, MAX_LEEWAY + Duration::from_secs(1)),
            Err(InitError::Leeway(121))
        ));
    }

    #[test]
    fn issuer_must_match_exactly() {
        assert_eq!(
            check_json(with("iss", json!(format!("{ISS}/")))),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            check_json(with("iss", json!("https://evil.example"))),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            check_json(without("iss")),
            Err(TokenError::MissingClaim("iss"))
        );
    }

    #[test]
    fn audience_must_contain_ours() {
        assert!(check_json(with("aud", json!(["other", "api://default"]))).is_ok());
        assert_eq!(
            check_json(with("aud", json!("api://other"))),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            check_json(with("aud", json!([]))),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            check_json(without("aud")),
            Err(TokenError::MissingClaim("aud"))
        );
    }

    #[test]
    fn an_id_token_is_named_as_such() {
        let mut id_token = without("scp");
        id_token["aud"] = json!("client-1");
        id_token["nonce"] = json!("n-0S6_WzA2Mj");
        assert_eq!(check_json(id_token), Err(TokenError::IdToken));
    }

    #[test]
    fn exp_is_required_and_must_be_in_the_future_within_leeway() {
        assert_eq!(
            check_json(without("exp")),
            Err(TokenError::MissingClaim("exp"))
        );
        assert_eq!(
            check_json(with("exp", json!(NOW - 61))),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check_json(with("exp", json!(NOW - 60))),
            Err(TokenError::Expired)
        );
        assert!(check_json(with("exp", json!(NOW - 59))).is_ok());
        assert_eq!(
            check_json(with("exp", json!("soon"))),
            Err(TokenError::BadClaims)
        );
        assert_eq!(
            check_json(with("exp", json!(1e300))),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn nbf_and_iat_must_not_be_in_the_future_beyond_leeway() {
        assert!(check_json(with("nbf", json!(NOW + 60))).is_ok());
        assert_eq!(
            check_json(with("nbf", json!(NOW + 61))),
            Err(TokenError::NotYetValid)
        );
        assert!(check_json(with("iat", json!(NOW + 60))).is_ok());
        assert_eq!(
            check_json(with("iat", json!(NOW + 61))),
            Err(TokenError::IssuedInFuture)
        );
        assert!(check_json(without("iat")).is_ok());
    }

    #[test]
    fn fractional_dates_are_accepted() {
        assert!(check_json(with("exp", json!((NOW + 10) as f64 + 0.5))).is_ok());
    }

    #[test]
    fn cid_must_match_when_present() {
        assert_eq!(
            check_json(with("cid", json!("client-2"))),
            Err(TokenError::WrongClient)
        );
        assert!(check_json(without("cid")).is_ok());
        let no_client_policy = Policy::new(ISS, "api://default", None, DEFAULT_LEEWAY).unwrap();
        let raw =
            RawClaims::from_json(with("cid", json!("anyone")).to_string().as_bytes()).unwrap();
        assert!(check(raw, &no_client_policy, NOW).is_ok());
    }

    #[test]
    fn sub_is_required() {
        assert_eq!(
            check_json(without("sub")),
            Err(TokenError::MissingClaim("sub"))
        );
    }

    #[test]
    fn scopes_come_from_scp_or_scope() {
        let mut claims = without("scp");
        claims["scope"] = json!("openid  reports:read");
        assert_eq!(
            check_json(claims).unwrap().scopes,
            ["openid", "reports:read"]
        );
        assert_eq!(
            check_json(with("scp", json!("a b"))).unwrap().scopes,
            ["a", "b"]
        );
        assert!(check_json(without("scp")).unwrap().scopes.is_empty());
        assert_eq!(
            check_json(with("scp", json!([1, 2]))),
            Err(TokenError::BadClaims)
        );
    }

    #[test]
    fn a_dpop_binding_is_read_and_other_bindings_refuse_the_token() {
        let binding = |cnf: serde_json::Value| {
            RawClaims::from_json(with("cnf", cnf).to_string().as_bytes())
                .unwrap()
                .take_dpop_binding()
        };
        assert_eq!(binding(json!({"jkt": "abc"})), Ok(Some("abc".into())));
        let mut unbound = RawClaims::from_json(okta_claims().to_string().as_bytes()).unwrap();
        assert_eq!(unbound.take_dpop_binding(), Ok(None));
        for other in [
            json!({"x5t#S256": "abc"}),
            json!({"jkt": "abc", "x5t#S256": "abc"}),
            json!({"jkt": ""}),
            json!({"jkt": 1}),
            json!({}),
        ] {
            assert_eq!(
                binding(other.clone()),
                Err(TokenError::UnsupportedConfirmation),
                "{other}"
            );
        }
        assert!(RawClaims::from_json(with("cnf", json!("x")).to_string().as_bytes()).is_err());
    }

    #[test]
    fn claims_must_be_a_json_object() {
        assert_eq!(
            RawClaims::from_json(b"[]").err(),
            Some(TokenError::BadClaims)
        );
        assert_eq!(
            RawClaims::from_json(b"{\"sub\":\"\xff\"}").err(),
            Some(TokenError::BadClaims)
        );
        assert_eq!(
            RawClaims::from_json(br#"{"exp":1,"exp":2}"#).err(),
            Some(TokenError::BadClaims)
        );
    }
}
