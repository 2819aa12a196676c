//! `POST {issuer}/v1/introspect`: token introspection (RFC 7662) as Okta
//! does it, for access tokens and refresh tokens.
//!
//! The client names itself ([`super::client_auth`]) and sends `token` (and
//! optionally `token_type_hint`, a hint only: RFC 7662 §2.1 says the server
//! looks further when it is wrong, so it is not read). A live access token
//! issued to that client is described with Okta's members:
//!
//! ```json
//! {"active": true, "token_type": "Bearer", "scope": "openid email",
//!  "client_id": "0oa…", "username": "alice@example.com", "exp": 1, "iat": 0,
//!  "sub": "alice@example.com", "aud": "api://default",
//!  "iss": "http://localhost:3100/oauth2/default", "jti": "AT.…", "uid": "00u…"}
//! ```
//!
//! A usable refresh token of that client (its family's current one, or the
//! previous one within the grace period) is described the same way, with
//! `"token_type": "refresh_token"`, the scopes granted at sign-in, and the
//! `exp` after which it is dead unless used (idle time or lifetime,
//! whichever comes first); it has no `jti`.
//!
//! Anything else is `{"active": false}` and nothing more (§2.2): unknown,
//! malformed, expired and revoked tokens, rotated refresh tokens past
//! their grace period, ID tokens, and tokens of another client, which, as
//! at Okta, a client may not introspect. Errors are for the request
//! itself: `401 invalid_client`, `400 invalid_request`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::client_auth::authenticate;
use super::config::Client;
use super::oauth_error::{bad_form, no_store, oauth_error};
use super::params::parse_form;
use super::refresh;
use super::token_check::{check_access_token, TokenProblem};
use super::tokens::{self, AccessTokenClaims};
use super::DevIdpState;

pub async fn introspect(
    State(state): State<DevIdpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = match parse_form(content_type, &body) {
        Ok(form) => form,
        Err(err) => return bad_form(&err),
    };
    let client = match authenticate(state.config(), &headers, &form) {
        Ok(client) => client,
        Err(err) => return err.into_response(),
    };
    let Some(token) = form.get("token").ok().flatten() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The 'token' parameter is required.",
        );
    };
    let description = match check_access_token(&state, token, tokens::now()) {
        Ok(claims) if claims.cid == client.client_id => active(&claims),
        Ok(_) => {
            tracing::debug!(client_id = %client.client_id, "introspect: another client's token");
            inactive()
        }
        Err(TokenProblem::NotOurs) => refresh_token(&state, client, token).unwrap_or_else(|| {
            tracing::debug!(client_id = %client.client_id, "introspect: not a live token");
            inactive()
        }),
        Err(problem) => {
            tracing::debug!(client_id = %client.client_id, %problem, "introspect: inactive");
            inactive()
        }
    };
    let mut response = (StatusCode::OK, Json(description)).into_response();
    no_store(&mut response);
    response
}

/// The introspection response for a live access token.
pub fn active(claims: &AccessTokenClaims) -> Value {
    let mut description = json!({
        "active": true,
        "token_type": "Bearer",
        "scope": claims.scp.join(" "),
        "client_id": claims.cid,
        "username": claims.sub,
        "exp": claims.exp,
        "iat": claims.iat,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "jti": claims.jti,
        "uid": claims.uid,
    });
    // RFC 9449 §6.2: a bound token's key, and its type.
    if let Some(cnf) = &claims.cnf {
        description["token_type"] = json!("DPoP");
        description["cnf"] = json!({ "jkt": cnf.jkt });
    }
    description
}

/// The introspection response for a usable refresh token of `client`.
fn refresh_token(state: &DevIdpState, client: &Client, token: &str) -> Option<Value> {
    let configured = client.refresh?;
    let described =
        state
            .inner
            .refresh
            .describe(token, &client.client_id, refresh::now_ms(), |login| {
                state.refresh_policy(configured, login)
            })?;
    let user = state.config().user_by_login(&described.grant.login)?;
    Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": described.grant.scopes.join(" "),
        "client_id": described.grant.client_id,
        "username": user.login,
        "exp": described.exp,
        "iat": described.iat,
        "sub": user.login,
        "aud": state.config().audience,
        "iss": state.issuer(),
        "uid": user.id,
    }))
}

/// RFC 7662 §2.2: an inactive token gets `active` alone, so the answer
/// says nothing about why.
pub fn inactive() -> Value {
    json!({ "active": false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_token_is_described_with_okta_members() {
        let claims = AccessTokenClaims {
            ver: 1,
            jti: "AT.x".into(),
            iss: "http://idp.test/oauth2/default".into(),
            aud: "api://default".into(),
            iat: 10,
            exp: 20,
            cid: "0oa-dev-spa".into(),
            uid: "00u1".into(),
            scp: vec!["openid".into(), "email".into()],
            sub: "alice@example.com".into(),
            cnf: None,
        };
        let value = active(&claims);
        assert_eq!(value["active"], true);
        assert_eq!(value["scope"], "openid email");
        assert_eq!(value["username"], "alice@example.com");
        assert_eq!(value["exp"], 20);
        assert_eq!(value.as_object().unwrap().len(), 12);
        assert_eq!(value["token_type"], "Bearer");
        let bound = active(&AccessTokenClaims {
            cnf: Some(super::super::tokens::Confirmation { jkt: "t".into() }),
            ..claims
        });
        assert_eq!(bound["token_type"], "DPoP");
        assert_eq!(bound["cnf"], json!({"jkt": "t"}));
        assert_eq!(inactive(), json!({ "active": false }));
    }
}
