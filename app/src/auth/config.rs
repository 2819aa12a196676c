//! What the browser needs to know about the issuer, sent to it by the server
//! (never compiled into the wasm), and the issuer's public keys, fetched
//! through the server's JWKS cache.

use crate::error::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The issuer's settings the browser uses to sign in and out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAuthConfig {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub end_session_endpoint: Option<String>,
    pub client_id: String,
    /// Space-separated, as sent in the `scope` parameter.
    pub scopes: String,
    /// `id_token token`, `token`, `id_token` (the implicit flow) or `code`
    /// (the authorization code flow with PKCE).
    pub response_type: String,
    /// Where the issuer puts its answer: `fragment`, or with `code` also
    /// `query` (Okta's default for a code).
    pub response_mode: String,
    /// The issuer's token endpoint, where the code flow exchanges its code
    /// and refreshes (from discovery).
    pub token_endpoint: Option<String>,
    /// The issuer's RFC 7009 revocation endpoint, where sign-out revokes a
    /// refresh token (from discovery).
    pub revocation_endpoint: Option<String>,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    /// Renew the tokens this many seconds before the earlier of their
    /// expiries (`RENEW_BEFORE_SECS`), or half their lifetime if shorter.
    pub renew_before_secs: i64,
    /// Where the tabs keep their tokens (`TOKEN_STORAGE`).
    pub token_storage: TokenStorage,
    /// `DPOP=1` (with the code flow): bind the tokens to a non-extractable
    /// key and send a DPoP proof (RFC 9449) with every token request and
    /// protected call. Absent from older servers' configurations: off.
    #[serde(default)]
    pub dpop: bool,
    /// The issuer's public keys as the server's JWKS cache holds them when
    /// it renders the page, so the callback checks the ID token's signature
    /// without asking the server first (it still asks for an unknown `kid`).
    #[serde(default)]
    pub keys: Vec<PublicJwk>,
}

/// Where a signed-in tab keeps its tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStorage {
    /// `localStorage`: shared by the app's tabs, survives a browser restart
    /// until the tokens expire.
    #[default]
    Local,
    /// Nothing in Web Storage: the tokens live in each tab's memory; a new
    /// tab or a reload gets them from another open tab, else from a silent
    /// (`prompt=none`) sign-in.
    Memory,
}

impl PublicAuthConfig {
    /// The authorization code flow (`RESPONSE_TYPE=code`), rather than the
    /// implicit flow.
    pub fn is_code_flow(&self) -> bool {
        self.response_type == "code"
    }

    /// Whether the session has an ID token: asked for in the implicit
    /// response type, or with the code flow given by the token endpoint
    /// for the `openid` scope.
    pub fn wants_id_token(&self) -> bool {
        if self.is_code_flow() {
            self.scopes.split(' ').any(|s| s == "openid")
        } else {
            self.response_type.split(' ').any(|t| t == "id_token")
        }
    }

    /// Whether the session has an access token (the code flow always gets one).
    pub fn wants_access_token(&self) -> bool {
        self.is_code_flow() || self.response_type.split(' ').any(|t| t == "token")
    }

    /// Whether the code flow asks for a refresh token (`offline_access`).
    pub fn wants_refresh_token(&self) -> bool {
        self.is_code_flow() && self.scopes.split(' ').any(|s| s == "offline_access")
    }

    /// The setting that adds what the API needs, for messages when this
    /// configuration asks for no access token.
    pub const ACCESS_TOKEN_SETTING: &'static str = "RESPONSE_TYPE=\"id_token token\"";
}

/// One RSA public key of the issuer, as a JWK the browser can import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kid: String,
    /// Base64url modulus.
    pub n: String,
    /// Base64url exponent.
    pub e: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! What the server provides as context for the public auth functions.

    use super::PublicJwk;
    use crate::error::ApiError;
    use std::{future::Future, pin::Pin, sync::Arc};

    /// The server's source of the issuer's keys (its JWKS cache).
    pub trait IssuerKeys: Send + Sync {
        /// The RS256 key `kid`, refetching the JWKS (rate-limited) when unknown.
        fn key(
            &self,
            kid: String,
        ) -> Pin<Box<dyn Future<Output = Result<PublicJwk, ApiError>> + Send + '_>>;

        /// The keys the cache holds now (no fetch).
        fn current(&self) -> Vec<PublicJwk>;
    }

    /// Context value: a shared handle on the server's key source.
    pub type SharedIssuerKeys = Arc<dyn IssuerKeys>;
}

/// The issuer settings for the browser. Public: no token needed.
#[server(endpoint = "auth_config")]
pub async fn auth_config() -> Result<PublicAuthConfig, ApiError> {
    use_context::<PublicAuthConfig>().ok_or_else(|| ApiError::ServerError {
        error_description: "the server has no issuer configuration".into(),
    })
}

/// The issuer's public key `kid`, for checking an ID token's signature in the
/// browser. Public: keys are public, and the server caches them.
#[server(endpoint = "issuer_key")]
pub async fn issuer_key(kid: String) -> Result<PublicJwk, ApiError> {
    if kid.is_empty() || kid.len() > 256 {
        let err = ApiError::InvalidRequest {
            error_description: "kid must be 1 to 256 characters".into(),
        };
        crate::error::ssr::set_error_response(&err);
        return Err(err);
    }
    let Some(keys) = use_context::<ssr::SharedIssuerKeys>() else {
        return Err(ApiError::ServerError {
            error_description: "the server has no key source".into(),
        });
    };
    let result = keys.key(kid).await;
    if let Err(err) = &result {
        crate::error::ssr::set_error_response(err);
    }
    result
}
