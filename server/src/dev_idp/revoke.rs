//! `POST {issuer}/v1/revoke`: token revocation (RFC 7009) as Okta does it,
//! for access tokens and refresh tokens. Revoking a refresh token (of any
//! generation) revokes its whole family, and the access tokens it issued
//! (§2.1: "SHOULD also invalidate all access tokens based on the same
//! authorization grant"); revoking an access token leaves the refresh
//! token alone, as at Okta.
//!
//! The client names itself ([`super::client_auth`]) and sends `token` (and
//! optionally `token_type_hint`, which is only a hint: RFC 7009 §2.1 says an
//! unknown value is ignored). The answer is `200` with an empty body when
//! the token is now revoked, and also when it was not a valid token at all
//! (unknown, malformed, expired, already revoked), since the client can do
//! nothing about that and the token is unusable either way (§2.2). Errors:
//!
//! | case | answer |
//! |---|---|
//! | no client, unknown client, a secret sent | `401 invalid_client` |
//! | not a form, no `token`, a repeated parameter | `400 invalid_request` |
//! | a live access or refresh token of another client | `400 invalid_grant` (RFC 6749 §5.2: "issued to another client"); not revoked |
//! | one of our ID tokens | `400 unsupported_token_type`: ID tokens cannot be revoked |
//! | the revocation list is full | `503 temporarily_unavailable` with `Retry-After`: the client must assume the token is still valid (§2.2.1) |

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_auth::authenticate;
use super::oauth_error::{bad_form, no_store, oauth_error};
use super::params::parse_form;
use super::refresh::Revocation;
use super::token_check::{check_access_token, TokenProblem};
use super::{tokens, DevIdpState};

pub async fn revoke(State(state): State<DevIdpState>, headers: HeaderMap, body: Bytes) -> Response {
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

    // token_type_hint is only a hint (§2.1): the token says what it is.
    if state.inner.refresh.is_ours(token) {
        return match state.inner.refresh.revoke(token, &client.client_id) {
            Revocation::Gone => {
                tracing::debug!(client_id = %client.client_id, "revoke: a dead refresh token");
                revoked()
            }
            Revocation::OtherClient => another_clients(),
            Revocation::Revoked(access_tokens) => {
                state.revoke_access_tokens(&access_tokens);
                tracing::info!(
                    client_id = %client.client_id,
                    access_tokens = access_tokens.len(),
                    "refresh token revoked, with its family"
                );
                revoked()
            }
        };
    }

    let now = tokens::now();
    let claims = match check_access_token(&state, token, now) {
        Ok(claims) => claims,
        Err(TokenProblem::IdToken) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_token_type",
                "Only access tokens can be revoked; an ID token cannot.",
            )
        }
        Err(problem) => {
            tracing::debug!(client_id = %client.client_id, %problem, "revoke: not a live token");
            return revoked();
        }
    };
    if claims.cid != client.client_id {
        return another_clients();
    }
    if let Err(err) = state.inner.revoked.revoke(&claims.jti, claims.exp, now) {
        tracing::error!(%err, "cannot record a revocation");
        let mut response = oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The token could not be revoked now; it is still valid. Try again later.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    // The jti identifies the token without being usable as one.
    tracing::info!(client_id = %client.client_id, jti = %claims.jti, "access token revoked");
    revoked()
}

fn another_clients() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The token was issued to another client.",
    )
}

/// `200` with an empty body, never cached.
fn revoked() -> Response {
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    response
}
