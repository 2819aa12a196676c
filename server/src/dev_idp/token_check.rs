//! Is this a live access token of ours? The one question userinfo,
//! introspection and revocation ask, and the list of access tokens revoked
//! before they expire.
//!
//! The tokens are self-contained JWTs, so a token is recognised by its
//! RS256 signature under one of the published keys, this issuer, this
//! server's audience, and Okta's `jti` prefix (`AT.` for access tokens,
//! `ID.` for ID tokens, which are signed by the same key). Revocation is
//! the only state: a token's `jti` is kept, with its `exp`, until the token
//! would have expired anyway.
//!
//! Only this server can see that list. A resource server that validates
//! access tokens offline, against the JWKS (the app's own `/api/…` does),
//! keeps accepting a revoked token until its `exp`; see the README.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::tokens::AccessTokenClaims;
use super::DevIdpState;

/// At most this many revoked tokens are remembered at once. Each is a
/// `jti` and an expiry, so this bounds the list to a few MiB; only tokens
/// this server signed and that have not expired can be in it.
pub const MAX_REVOKED: usize = 100_000;

/// Larger tokens are not even decoded: this server's are about 1 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token is not a live access token of this server. The messages
/// are `error_description`s: they name the problem, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("The access token was not issued by this authorization server, or is malformed.")]
    NotOurs,
    #[error("The access token has expired.")]
    Expired,
    #[error("The access token has been revoked.")]
    Revoked,
    /// One of our ID tokens, which is not an access token.
    #[error("The token is an ID token, not an access token.")]
    IdToken,
    /// A DPoP-bound token sent as a Bearer token (RFC 9449 §7.2).
    #[error("The access token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof.")]
    DpopBound,
    /// A Bearer token sent with the DPoP scheme.
    #[error("The access token is not bound to a DPoP key.")]
    NotDpopBound,
    /// RFC 9449 §7.1, Figure 16.
    #[error("The DPoP proof is not signed with the key the access token is bound to.")]
    WrongDpopKey,
}

/// The access tokens revoked before their expiry, by `jti`.
#[derive(Debug)]
pub struct RevokedTokens {
    entries: Mutex<HashMap<String, u64>>,
    capacity: usize,
}

/// The revocation list is full of tokens that have not expired yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many tokens are revoked at once; try again later")]
pub struct RevocationListFull;

impl RevokedTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Records that the token `jti`, valid until `exp`, is revoked. When
    /// the list is full even after forgetting expired tokens, it refuses
    /// rather than forget a live one (which would bring it back to life).
    pub fn revoke(&self, jti: &str, exp: u64, now: u64) -> Result<(), RevocationListFull> {
        let mut entries = self.lock();
        if entries.contains_key(jti) {
            return Ok(());
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, exp| *exp > now);
        }
        if entries.len() >= self.capacity {
            return Err(RevocationListFull);
        }
        entries.insert(jti.to_owned(), exp);
        Ok(())
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.lock().contains_key(jti)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    // Every operation is one map call, so a poisoned lock still holds a
    // consistent map.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The claims of `token` if it is an access token this server issued that
/// has neither expired (at `now`, Unix seconds) nor been revoked.
pub fn check_access_token(
    state: &DevIdpState,
    token: &str,
    now: u64,
) -> Result<AccessTokenClaims, TokenProblem> {
    let claims = verified_claims(state, token).ok_or(TokenProblem::NotOurs)?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if jti.starts_with("ID.") {
        return Err(TokenProblem::IdToken);
    }
    if !jti.starts_with("AT.") {
        return Err(TokenProblem::NotOurs);
    }
    let claims: AccessTokenClaims =
        serde_json::from_value(claims).map_err(|_| TokenProblem::NotOurs)?;
    if claims.aud != state.config().audience {
        return Err(TokenProblem::NotOurs);
    }
    // RFC 7519 §4.1.4: not accepted on or after `exp`. The issuer's own
    // clock, so no leeway.
    if now >= claims.exp {
        return Err(TokenProblem::Expired);
    }
    if state.inner.revoked.is_revoked(&claims.jti) {
        return Err(TokenProblem::Revoked);
    }
    Ok(claims)
}

/// The claims of a JWT signed with RS256 by a key this server publishes,
/// for this issuer; expiry and audience are left to the caller.
fn verified_claims(state: &DevIdpState, token: &str) -> Option<Value> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    // The algorithm is pinned by the key (RSA), never taken from the token.
    if header.alg != Algorithm::RS256 {
        return None;
    }
    let key = state.inner.keys.find(&header.kid?)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_issuer(&[state.issuer()]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
    jsonwebtoken::decode::<Value>(token, key.decoding(), &validation)
        .ok()
        .map(|data| data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_tokens_are_remembered_until_they_expire() {
        let list = RevokedTokens::new(2);
        list.revoke("AT.a", 100, 50).unwrap();
        list.revoke("AT.a", 100, 50).unwrap();
        list.revoke("AT.b", 200, 50).unwrap();
        assert!(list.is_revoked("AT.a") && list.is_revoked("AT.b"));
        assert!(!list.is_revoked("AT.c"));
        // Full of live tokens: refused, nothing forgotten.
        assert_eq!(list.revoke("AT.c", 300, 60), Err(RevocationListFull));
        assert!(list.is_revoked("AT.a"));
        // Once AT.a has expired, its place is free.
        list.revoke("AT.c", 300, 150).unwrap();
        assert!(!list.is_revoked("AT.a"));
        assert!(list.is_revoked("AT.b") && list.is_revoked("AT.c"));
        assert_eq!(list.len(), 2);
    }
}
