//! The public, cacheable documents: both discovery documents and the JWKS.
//!
//! Browser code on a trusted origin (okta-auth-js, to check ID tokens)
//! reads them cross-origin; [`super::cors`] answers those origins and only
//! those, as Okta does.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::bearer::dpop;

use super::pkce;
use super::response_mode::ResponseMode;
use super::DevIdpState;

/// The claims this server puts in its tokens.
const CLAIMS_SUPPORTED: &[&str] = &[
    "ver",
    "jti",
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "cid",
    "uid",
    "scp",
    "auth_time",
    "amr",
    "idp",
    "nonce",
    "at_hash",
    "name",
    "email",
    "email_verified",
    "preferred_username",
];

/// The fields of Okta's metadata that apply to this server, listing what
/// it does and nothing more. The token, revoke and introspect endpoints
/// take public clients only, which name themselves without a secret
/// (`none`); PKCE is S256 only.
fn metadata(state: &DevIdpState) -> Value {
    let issuer = state.issuer();
    let response_modes: Vec<&str> = ResponseMode::ALL.iter().map(|m| m.as_str()).collect();
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "token_endpoint_auth_methods_supported": ["none"],
        "jwks_uri": format!("{issuer}/v1/keys"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "revocation_endpoint": format!("{issuer}/v1/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint": format!("{issuer}/v1/introspect"),
        "introspection_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["code", "id_token", "token", "id_token token"],
        "response_modes_supported": response_modes,
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token"],
        "code_challenge_methods_supported": [pkce::S256],
        "subject_types_supported": ["public"],
        "scopes_supported": state.config().scopes_supported,
        "id_token_signing_alg_values_supported": ["RS256"],
        // RFC 9449 §5.1: DPoP is offered, with these proof algorithms.
        "dpop_signing_alg_values_supported": dpop::ALGORITHMS,
        "claims_supported": CLAIMS_SUPPORTED,
        "request_parameter_supported": false,
    })
}

pub async fn openid_configuration(State(state): State<DevIdpState>) -> Response {
    public_json(&state, metadata(&state))
}

pub async fn authorization_server_metadata(State(state): State<DevIdpState>) -> Response {
    public_json(&state, metadata(&state))
}

/// `GET {issuer}/v1/keys`.
pub async fn keys(State(state): State<DevIdpState>) -> Response {
    public_json(&state, state.inner.keys.jwks())
}

fn public_json(state: &DevIdpState, body: Value) -> Response {
    let max_age = state.config().lifetimes.jwks_max_age_secs;
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}
