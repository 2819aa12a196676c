//! The tokens: Okta's access token and ID token claims, RS256 signing with
//! the current key, and `at_hash`. The authorization endpoint signs them
//! for the implicit flow, the token endpoint for the code and refresh
//! grants.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use super::config::User;
use super::keys::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the system random generator failed")]
    Random,
    #[error("cannot sign a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Okta's access token claims, in Okta's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub ver: u32,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub cid: String,
    pub uid: String,
    pub scp: Vec<String>,
    pub sub: String,
    /// RFC 9449 §6.1: the thumbprint of the DPoP key the token is bound to;
    /// absent from Bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a DPoP-bound access token (RFC 7800, RFC 9449 §6.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

/// Okta's ID token claims. The profile claims follow the granted scopes
/// (`profile`: `name`, `preferred_username`; `email`: `email`), as in OIDC.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub ver: u32,
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub amr: Vec<String>,
    pub idp: String,
    pub auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// Everything a token is made from.
pub struct Grant<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub idp: &'a str,
    pub client_id: &'a str,
    pub user: &'a User,
    /// Already cut down to what the user may have.
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: u64,
    pub now: u64,
    pub access_token_secs: u64,
    pub id_token_secs: u64,
    pub wanted: Wanted,
    /// The thumbprint of the DPoP key the access token is bound to.
    pub jkt: Option<&'a str>,
}

/// Which tokens to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub access_token: bool,
    pub id_token: bool,
    /// Whether an ID token issued with an access token carries its
    /// `at_hash`: required in the implicit flow (OIDC Core §3.2.2.10),
    /// optional from the token endpoint (§3.1.3.6), where it is left out.
    pub at_hash: bool,
}

/// The signed tokens for one grant.
pub struct Issued {
    pub access_token: Option<IssuedAccessToken>,
    pub id_token: Option<String>,
    /// Lifetime of the access token, for `expires_in`.
    pub expires_in: u64,
}

// By hand, so that no token reaches a log through `{:?}`.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &self.access_token)
            .field("id_token", &self.id_token.as_ref().map(|_| "…"))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// An access token, with what it takes to revoke it later.
pub struct IssuedAccessToken {
    pub token: String,
    pub jti: String,
    pub exp: u64,
}

// By hand, so that the token never reaches a log through `{:?}`.
impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("token", &"…")
            .field("jti", &self.jti)
            .field("exp", &self.exp)
            .finish()
    }
}

pub fn issue(grant: &Grant<'_>, key: &SigningKey) -> Result<Issued, TokenError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid().to_owned());
    // Okta's tokens carry only `kid` and `alg`.
    header.typ = None;

    let access_token = if grant.wanted.access_token {
        let claims = AccessTokenClaims {
            ver: 1,
            jti: format!("AT.{}", random_token_id()?),
            iss: grant.issuer.to_owned(),
            aud: grant.audience.to_owned(),
            iat: grant.now,
            exp: grant.now + grant.access_token_secs,
            cid: grant.client_id.to_owned(),
            uid: grant.user.id.clone(),
            scp: grant.scopes.to_vec(),
            sub: grant.user.login.clone(),
            cnf: grant.jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        Some(IssuedAccessToken {
            token: jsonwebtoken::encode(&header, &claims, key.encoding())?,
            jti: claims.jti,
            exp: claims.exp,
        })
    } else {
        None
    };

    let id_token = if grant.wanted.id_token {
        let has = |scope: &str| grant.scopes.iter().any(|s| s == scope);
        let claims = IdTokenClaims {
            ver: 1,
            sub: grant.user.id.clone(),
            iss: grant.issuer.to_owned(),
            aud: grant.client_id.to_owned(),
            iat: grant.now,
            exp: grant.now + grant.id_token_secs,
            jti: format!("ID.{}", random_token_id()?),
            amr: vec!["pwd".to_owned()],
            idp: grant.idp.to_owned(),
            auth_time: grant.auth_time,
            nonce: grant.nonce.map(str::to_owned),
            at_hash: access_token
                .as_ref()
                .filter(|_| grant.wanted.at_hash)
                .map(|access| at_hash(&access.token)),
            name: has("profile").then(|| grant.user.name.clone()),
            email: has("email").then(|| grant.user.email.clone()),
            preferred_username: has("profile").then(|| grant.user.login.clone()),
        };
        Some(jsonwebtoken::encode(&header, &claims, key.encoding())?)
    } else {
        None
    };

    Ok(Issued {
        access_token,
        id_token,
        expires_in: grant.access_token_secs,
    })
}

/// OIDC Core §3.2.2.9, the same function the browser checks with.
pub use app::auth::id_token::at_hash;

/// 128 random bits from the operating system (getrandom), base64url, for
/// `jti`.
fn random_token_id() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev_idp::config::Config;

    #[test]
    fn claims_follow_response_type_and_scopes() {
        let config = Config::demo().unwrap();
        let key = SigningKey::generate().unwrap();
        let user = config.user_by_login("alice@example.com").unwrap();
        let scopes = vec!["openid".to_owned(), "email".to_owned()];
        let mut grant = Grant {
            issuer: "http://localhost:1/oauth2/default",
            audience: "api://default",
            idp: "00o-dev-idp",
            client_id: "0oa-dev-spa",
            user,
            scopes: &scopes,
            nonce: Some("n-1"),
            auth_time: 100,
            now: 200,
            access_token_secs: 60,
            id_token_secs: 30,
            wanted: Wanted {
                access_token: true,
                id_token: true,
                at_hash: true,
            },
            jkt: None,
        };
        let issued = issue(&grant, &key).unwrap();
        let access = issued.access_token.unwrap();
        let at: AccessTokenClaims = decode_unverified(&access.token);
        assert_eq!((at.jti.as_str(), at.exp), (access.jti.as_str(), access.exp));
        let access = access.token;
        let id: IdTokenClaims = decode_unverified(&issued.id_token.unwrap());
        assert_eq!(id.at_hash.as_deref(), Some(at_hash(&access).as_str()));
        assert_eq!(id.exp, 230);
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert_eq!(id.name, None, "no profile scope");
        let at: AccessTokenClaims = decode_unverified(&access);
        assert_eq!(at.exp, 260);
        assert_eq!(at.cnf, None);
        assert!(!access.is_empty());
        assert_eq!(at.scp, scopes);
        assert!(at.jti.starts_with("AT.") && at.jti.len() == 25);

        grant.wanted.access_token = false;
        let issued = issue(&grant, &key).unwrap();
        assert!(issued.access_token.is_none());
        let id: IdTokenClaims = decode_unverified(&issued.id_token.unwrap());
        assert_eq!(id.at_hash, None);

        // The token endpoint's: both tokens, no at_hash, no nonce.
        grant.wanted = Wanted {
            access_token: true,
            id_token: true,
            at_hash: false,
        };
        grant.nonce = None;
        let issued = issue(&grant, &key).unwrap();
        assert!(issued.access_token.is_some());
        let id: IdTokenClaims = decode_unverified(&issued.id_token.unwrap());
        assert_eq!((id.at_hash, id.nonce), (None, None));

        // Bound to a DPoP key: cnf.jkt, in the access token only.
        grant.jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        let issued = issue(&grant, &key).unwrap();
        let at: AccessTokenClaims = decode_unverified(&issued.access_token.unwrap().token);
        assert_eq!(
            at.cnf.map(|c| c.jkt).as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        let id: serde_json::Value = decode_unverified(&issued.id_token.unwrap());
        assert!(id.get("cnf").is_none());
    }

    fn decode_unverified<T: serde::de::DeserializeOwned>(token: &str) -> T {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }
}
