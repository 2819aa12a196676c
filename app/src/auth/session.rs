//! The signed-in session a tab holds, and the one way a session kept in
//! `localStorage` or sent by another tab becomes one again.
//!
//! A [`Session`] is made in two places only: by the callback's checks
//! (`callback.rs`) from an issuer's answer, and by [`KeptSession::check`]
//! from what another tab wrote. What travels between tabs and into storage
//! is a [`KeptSession`], which has no use until it is checked: it must be
//! for this page's issuer, client and response type, its ID token must be
//! for this app and name the same person, its expiry is bounded by what the
//! tokens themselves say, and it must have been issued after this browser
//! last signed out. A [`SessionKey`] names a session in the messages that
//! are about one (a renewal that ended), so a tab that holds another
//! session can tell they are not about its own.

use super::config::PublicAuthConfig;
use super::id_token::{self, IdClaims, IdTokenError};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};

/// A signed-in session, checked: what a tab uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The configuration the tokens were issued under; a session of another
    /// issuer, client or response type is never used.
    pub issuer: String,
    pub client_id: String,
    pub response_type: String,
    /// The person: the ID token's `sub`, or, with no ID token
    /// (`RESPONSE_TYPE=token`), the access token's `sub` as the server read
    /// it when it checked the token.
    pub sub: String,
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    /// With the code flow and `offline_access`: what renews the session,
    /// replaced by a new one at every use (rotation).
    pub refresh_token: Option<String>,
    /// With DPoP: the thumbprint of the key the tokens are bound to (their
    /// `cnf.jkt`), which names the key in IndexedDB.
    pub dpop_jkt: Option<String>,
    /// When these tokens arrived, in milliseconds on the browser's clock:
    /// fine enough to order a sign-out and a sign-in in the same second.
    pub issued_at_ms: i64,
    /// Unix seconds after which the session is over: the earlier expiry of
    /// the tokens it holds.
    pub expires_at: i64,
    /// Scopes granted, as the authorization server reported them.
    pub scopes: Vec<String>,
    /// The ID token's claims, read from the ID token itself.
    pub claims: Option<IdClaims>,
}

/// Names one session: the person and when its tokens were issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    pub sub: String,
    pub issued_at_ms: i64,
}

impl Session {
    pub fn key(&self) -> SessionKey {
        SessionKey {
            sub: self.sub.clone(),
            issued_at_ms: self.issued_at_ms,
        }
    }

    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// When to renew: `renew_before` seconds before expiry, or half-way
    /// through the tokens' life when that is shorter, so short-lived
    /// tokens are not renewed the moment they arrive.
    pub fn renew_at(&self, renew_before: i64) -> i64 {
        let issued_at = self.issued_at_ms.div_euclid(1000);
        let lifetime = (self.expires_at - issued_at).max(0);
        self.expires_at - renew_before.clamp(0, lifetime / 2)
    }

    /// Whether this session replaces `other` when both are about: the one
    /// issued later, then the one that lasts longer, then (so that every
    /// tab settles on the same one) the greater tokens.
    pub fn is_newer_than(&self, other: &Session) -> bool {
        let order = |s: &Session| {
            (
                s.issued_at_ms,
                s.expires_at,
                s.access_token.clone(),
                s.id_token.clone(),
            )
        };
        order(self) > order(other)
    }

    /// The best name to greet the user with.
    pub fn display_name(&self) -> String {
        self.claims
            .as_ref()
            .and_then(|c| {
                c.name
                    .clone()
                    .or_else(|| c.preferred_username.clone())
                    .or_else(|| c.email.clone())
            })
            .unwrap_or_else(|| "signed-in user".to_string())
    }

    /// What is kept in `localStorage` and sent to the other tabs.
    pub fn to_kept(&self) -> KeptSession {
        KeptSession {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            response_type: self.response_type.clone(),
            sub: self.sub.clone(),
            access_token: self.access_token.clone(),
            id_token: self.id_token.clone(),
            refresh_token: self.refresh_token.clone(),
            dpop_jkt: self.dpop_jkt.clone(),
            issued_at_ms: self.issued_at_ms,
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
        }
    }
}

/// A session as another tab wrote it (to `localStorage` or the tabs'
/// channel): nothing in it is used before [`KeptSession::check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptSession {
    pub issuer: String,
    pub client_id: String,
    pub response_type: String,
    pub sub: String,
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    pub issued_at_ms: i64,
    pub expires_at: i64,
    pub scopes: Vec<String>,
}

/// Why a kept session was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeptSessionError {
    #[error("it was made for another {0} than this page's")]
    OtherConfiguration(&'static str),
    #[error("it has no {0}, which this configuration asks for")]
    Missing(&'static str),
    #[error("it has {0}, which this configuration does not ask for")]
    Unexpected(&'static str),
    #[error("its ID token is not for this app: {0}")]
    IdToken(#[from] IdTokenError),
    #[error("its tokens name another person than it does")]
    OtherPerson,
    #[error("its tokens say nothing of when they expire")]
    NoExpiry,
    #[error("its access token is not bound to the DPoP key it names")]
    UnboundToken,
    #[error("it was issued before this browser signed out")]
    IssuedBeforeSignOut,
}

impl KeptSession {
    /// The session to use, if it is one this page may use: made for this
    /// page's issuer, client and response type, with the tokens that
    /// response type gives, an ID token for this app naming the same
    /// person, and issued after `signed_out_at_ms` (when this browser last
    /// signed out, if it did). Its expiry is the earlier of what it says
    /// and what its tokens say, so a session cannot claim more life than
    /// its tokens have. Expired sessions are returned: the caller decides
    /// (an expired one still names whom to sign out at the issuer).
    ///
    /// The ID token's signature is not checked again: the tab that made the
    /// session checked it, and only the app's own origin can write here.
    pub fn check(
        self,
        cfg: &PublicAuthConfig,
        signed_out_at_ms: Option<i64>,
    ) -> Result<Session, KeptSessionError> {
        use KeptSessionError::*;
        if self.issuer != cfg.issuer {
            return Err(OtherConfiguration("issuer"));
        }
        if self.client_id != cfg.client_id {
            return Err(OtherConfiguration("client"));
        }
        if self.response_type != cfg.response_type {
            return Err(OtherConfiguration("response type"));
        }
        match (cfg.wants_id_token(), self.id_token.is_some()) {
            (true, false) => return Err(Missing("ID token")),
            (false, true) => return Err(Unexpected("an ID token")),
            _ => {}
        }
        match (cfg.wants_access_token(), self.access_token.is_some()) {
            (true, false) => return Err(Missing("access token")),
            (false, true) => return Err(Unexpected("an access token")),
            _ => {}
        }
        if signed_out_at_ms.is_some_and(|at| self.issued_at_ms <= at) {
            return Err(IssuedBeforeSignOut);
        }

        let mut bounds = Vec::with_capacity(2);
        let claims = match &self.id_token {
            Some(raw) => {
                let claims = id_token::decode(raw)?.claims;
                if claims.iss != cfg.issuer {
                    return Err(IdTokenError::Issuer {
                        expected: cfg.issuer.clone(),
                        found: claims.iss.chars().take(200).collect(),
                    }
                    .into());
                }
                id_token::check_audience(&claims, &cfg.client_id)?;
                if claims.sub != self.sub {
                    return Err(OtherPerson);
                }
                // In the code flow the session is the access token's
                // (renewed by refresh); the ID token says who signed in.
                if !cfg.is_code_flow() {
                    bounds.push(claims.exp);
                }
                Some(claims)
            }
            None => None,
        };
        if self.refresh_token.is_some() && !cfg.wants_refresh_token() {
            return Err(Unexpected("a refresh token"));
        }
        let access = self.access_token.as_deref().and_then(access_token_claims);
        // With DPoP the tokens are bound to the key the session names;
        // without, no session may name one.
        let bound = access
            .as_ref()
            .and_then(|a| a.cnf.as_ref())
            .and_then(|c| c.jkt.as_deref());
        match (cfg.dpop, self.dpop_jkt.as_deref()) {
            (true, None) => return Err(Missing("DPoP key")),
            (true, Some(jkt)) if bound != Some(jkt) => return Err(UnboundToken),
            (false, Some(_)) => return Err(Unexpected("a DPoP key")),
            _ => {}
        }
        if let Some(access) = access {
            // With no ID token, the session's person is the access token's.
            if claims.is_none() && access.sub.as_deref() != Some(self.sub.as_str()) {
                return Err(OtherPerson);
            }
            bounds.extend(access.exp);
        }
        let expires_at = bounds
            .into_iter()
            .min()
            .ok_or(NoExpiry)?
            .min(self.expires_at);
        Ok(Session {
            issuer: self.issuer,
            client_id: self.client_id,
            response_type: self.response_type,
            sub: self.sub,
            access_token: self.access_token,
            id_token: self.id_token,
            refresh_token: self.refresh_token,
            dpop_jkt: self.dpop_jkt,
            issued_at_ms: self.issued_at_ms,
            expires_at,
            scopes: self.scopes,
            claims,
        })
    }
}

/// What the browser reads of a JWT access token (Okta's custom
/// authorization servers issue JWTs). Read, not checked: the server checks
/// the token on every call; the browser only needs to know when it ends
/// and whom it names.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AccessTokenClaims {
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub sub: Option<String>,
    /// RFC 9449 §6: the key a DPoP-bound token is bound to.
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 7800), as DPoP fills it.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Confirmation {
    #[serde(default)]
    pub jkt: Option<String>,
}

/// The payload of `token` when it is a JWT (a JSON object); `None` for an
/// opaque token.
pub fn access_token_claims(token: &str) -> Option<AccessTokenClaims> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    // Serde would also read a struct from a JSON array; a JWT's claims are
    // an object.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::id_token::tests::{b64, token};
    use crate::auth::request::tests::cfg;

    pub const NOW: i64 = 1_800_000_000;
    pub const ISS: &str = "http://localhost:3100/oauth2/default";

    pub fn id_token_of(sub: &str, aud: &str, exp: i64) -> String {
        let claims = serde_json::json!({
            "iss": ISS, "sub": sub, "aud": aud, "exp": exp, "iat": NOW, "name": "Alice Example",
        });
        token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string())
    }

    pub fn access_token_of(sub: &str, exp: i64) -> String {
        let claims =
            serde_json::json!({ "iss": ISS, "sub": sub, "exp": exp, "cid": "0oa-dev-spa" });
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k1"}"#),
            b64(&claims.to_string()),
            b64("sig")
        )
    }

    fn kept() -> KeptSession {
        KeptSession {
            issuer: ISS.into(),
            client_id: "0oa-dev-spa".into(),
            response_type: "id_token token".into(),
            sub: "00u1".into(),
            access_token: Some(access_token_of("alice@example.com", NOW + 3600)),
            id_token: Some(id_token_of("00u1", "0oa-dev-spa", NOW + 3600)),
            refresh_token: None,
            dpop_jkt: None,
            issued_at_ms: NOW * 1000,
            expires_at: NOW + 3600,
            scopes: vec!["openid".into()],
        }
    }

    #[test]
    fn a_kept_session_of_this_configuration_is_used_with_its_claims() {
        let session = kept().check(&cfg(), None).unwrap();
        assert_eq!(session.expires_at, NOW + 3600);
        assert_eq!(session.display_name(), "Alice Example");
        assert_eq!(session.claims.as_ref().unwrap().sub, "00u1");
        assert_eq!(session.to_kept(), kept());
    }

    #[test]
    fn a_session_of_another_issuer_client_or_response_type_is_dropped() {
        let mut other_issuer = cfg();
        other_issuer.issuer = "https://dev-1.okta.com/oauth2/default".into();
        assert_eq!(
            kept().check(&other_issuer, None),
            Err(KeptSessionError::OtherConfiguration("issuer"))
        );
        let mut other_client = cfg();
        other_client.client_id = "0oa-other".into();
        assert_eq!(
            kept().check(&other_client, None),
            Err(KeptSessionError::OtherConfiguration("client"))
        );
        let mut token_only = cfg();
        token_only.response_type = "token".into();
        assert_eq!(
            kept().check(&token_only, None),
            Err(KeptSessionError::OtherConfiguration("response type"))
        );
        // The fields and the tokens must agree with the configuration.
        let mut k = kept();
        k.response_type = "token".into();
        assert_eq!(
            k.check(&token_only, None),
            Err(KeptSessionError::Unexpected("an ID token"))
        );
        let mut k = kept();
        k.id_token = None;
        assert_eq!(
            k.check(&cfg(), None),
            Err(KeptSessionError::Missing("ID token"))
        );
        let mut k = kept();
        k.access_token = None;
        assert_eq!(
            k.check(&cfg(), None),
            Err(KeptSessionError::Missing("access token"))
        );
    }

    #[test]
    fn the_id_token_must_be_for_this_app_and_this_person() {
        let mut k = kept();
        k.id_token = Some(id_token_of("00u-bob", "0oa-dev-spa", NOW + 3600));
        assert_eq!(k.check(&cfg(), None), Err(KeptSessionError::OtherPerson));

        let mut k = kept();
        k.id_token = Some(id_token_of("00u1", "0oa-other", NOW + 3600));
        assert_eq!(k.check(&cfg(), None), Err(IdTokenError::Audience.into()));

        let mut k = kept();
        let claims = serde_json::json!({"iss": "https://evil.example", "sub": "00u1",
            "aud": "0oa-dev-spa", "exp": NOW + 3600, "iat": NOW});
        k.id_token = Some(token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string()));
        assert!(matches!(
            k.check(&cfg(), None),
            Err(KeptSessionError::IdToken(IdTokenError::Issuer { .. }))
        ));

        let mut k = kept();
        k.id_token = Some("not-a-jwt".into());
        assert_eq!(k.check(&cfg(), None), Err(IdTokenError::NotAJws.into()));
    }

    #[test]
    fn expiry_comes_from_the_tokens_not_from_the_message() {
        // A message claiming a day is held to the tokens' hour.
        let mut k = kept();
        k.expires_at = NOW + 86_400;
        assert_eq!(k.check(&cfg(), None).unwrap().expires_at, NOW + 3600);
        // The earlier of the two tokens.
        let mut k = kept();
        k.access_token = Some(access_token_of("alice@example.com", NOW + 60));
        k.expires_at = NOW + 86_400;
        assert_eq!(k.check(&cfg(), None).unwrap().expires_at, NOW + 60);
        // A message may say less (the access token's expires_in was shorter).
        let mut k = kept();
        k.expires_at = NOW + 30;
        assert_eq!(k.check(&cfg(), None).unwrap().expires_at, NOW + 30);
    }

    #[test]
    fn token_only_sessions_are_bound_to_the_access_tokens_subject() {
        let mut token_only = cfg();
        token_only.response_type = "token".into();
        let mut k = kept();
        k.response_type = "token".into();
        k.id_token = None;
        k.sub = "alice@example.com".into();
        let session = k.clone().check(&token_only, None).unwrap();
        assert_eq!((session.claims, session.expires_at), (None, NOW + 3600));

        let mut other = k.clone();
        other.sub = "bob@example.com".into();
        assert_eq!(
            other.check(&token_only, None),
            Err(KeptSessionError::OtherPerson)
        );
        // An opaque token says neither whom nor until when.
        let mut opaque = k;
        opaque.access_token = Some("opaque".into());
        assert_eq!(
            opaque.check(&token_only, None),
            Err(KeptSessionError::NoExpiry)
        );
    }

    #[test]
    fn a_session_issued_before_the_last_sign_out_is_refused() {
        let issued = NOW * 1000;
        assert_eq!(
            kept().check(&cfg(), Some(issued)),
            Err(KeptSessionError::IssuedBeforeSignOut)
        );
        assert_eq!(
            kept().check(&cfg(), Some(issued + 1)),
            Err(KeptSessionError::IssuedBeforeSignOut)
        );
        assert!(kept().check(&cfg(), Some(issued - 1)).is_ok());
    }

    #[test]
    fn newer_means_issued_later_then_lasting_longer() {
        let a = kept().check(&cfg(), None).unwrap();
        let mut later = a.clone();
        later.issued_at_ms += 1;
        later.expires_at -= 100;
        assert!(later.is_newer_than(&a) && !a.is_newer_than(&later));
        let mut longer = a.clone();
        longer.expires_at += 1;
        assert!(longer.is_newer_than(&a) && !a.is_newer_than(&longer));
        assert!(!a.is_newer_than(&a.clone()));
        // Same times, other tokens: still one order, so tabs agree.
        let mut other = a.clone();
        other.access_token = Some(access_token_of("x", NOW + 3600));
        assert!(other.is_newer_than(&a) != a.is_newer_than(&other));
    }

    #[test]
    fn renewal_is_due_before_expiry_but_not_at_once() {
        let session = kept().check(&cfg(), None).unwrap();
        // One hour: 60 s before the end.
        assert_eq!(session.renew_at(60), NOW + 3600 - 60);
        assert_eq!(session.renew_at(0), NOW + 3600);
        // Twenty seconds: half-way, not as soon as it arrives.
        let short = Session {
            expires_at: NOW + 20,
            ..session
        };
        assert_eq!(short.renew_at(60), NOW + 10);
    }

    #[test]
    fn access_token_claims_are_read_from_jwts_only() {
        let claims = access_token_claims(&access_token_of("alice@example.com", NOW)).unwrap();
        assert_eq!(
            (claims.exp, claims.sub.as_deref()),
            (Some(NOW), Some("alice@example.com"))
        );
        for opaque in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a.!!.c",
            &format!("a.{}.c", b64("[1]")),
        ] {
            assert_eq!(access_token_claims(opaque), None, "{opaque}");
        }
    }

    #[test]
    fn with_dpop_a_kept_session_must_name_the_key_its_token_is_bound_to() {
        let mut dpop = cfg();
        dpop.dpop = true;
        let bound = |jkt: &str| {
            let claims = serde_json::json!({ "sub": "alice@example.com", "exp": NOW + 3600, "cnf": { "jkt": jkt } });
            token(r#"{"alg":"RS256","kid":"k1"}"#, &claims.to_string())
        };
        let mut k = kept();
        k.access_token = Some(bound("jkt-1"));
        k.dpop_jkt = Some("jkt-1".into());
        assert!(k.clone().check(&dpop, None).is_ok());
        // Bound to another key than the one named; no key named; a key
        // named where DPoP is off.
        let mut other = k.clone();
        other.dpop_jkt = Some("jkt-2".into());
        assert_eq!(
            other.check(&dpop, None),
            Err(KeptSessionError::UnboundToken)
        );
        let mut none = k.clone();
        none.dpop_jkt = None;
        assert_eq!(
            none.check(&dpop, None),
            Err(KeptSessionError::Missing("DPoP key"))
        );
        assert_eq!(
            k.check(&cfg(), None),
            Err(KeptSessionError::Unexpected("a DPoP key"))
        );
    }
}
