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

/// The fields of Okta's metadata that apply to this server. There is no
/// token endpoint: only the implicit flow is implemented. Revoke and
/// introspect take public clients only, which name themselves without a
/// secret (`none`).
fn metadata(state: &DevIdpState) -> Value {
    let issuer = state.issuer();
    let response_modes: Vec<&str> = ResponseMode::ALL.iter().map(|m| m.as_str()).collect();
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "revocation_endpoint": format!("{issuer}/v1/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint": format!("{issuer}/v1/introspect"),
        "introspection_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["id_token", "token", "id_token token"],
        "response_modes_supported": response_modes,
        "grant_types_supported": ["implicit"],
        "subject_types_supported": ["public"],
        "scopes_supported": state.config().scopes_supported,
        "id_token_signing_alg_values_supported": ["RS256"],
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
