//! Answering a checked authorization request for a signed-in session:
//! the tokens it asks for, signed for the session's user, sent to the
//! client in the request's response mode. The authorization endpoint
//! answers this way when a session exists, and the sign-in form once the
//! password is checked.

use axum::response::{IntoResponse, Response};

use super::request::{AuthorizeRequest, ErrorCode, ErrorResponse};
use super::response_mode::deliver;
use super::session::Session;
use super::tokens::{self, Grant};
use super::{DevIdpEvent, DevIdpState};

/// Issues what the request asked for to the session's user and sends it
/// to the client in the request's response mode.
pub fn answer_with_tokens(
    state: &DevIdpState,
    request: &AuthorizeRequest,
    session: &Session,
) -> Response {
    let Some(user) = state.config().user_by_login(&session.login) else {
        return ErrorResponse::new(request, ErrorCode::LoginRequired, "The user is unknown.")
            .into_response();
    };
    // Okta's policies leave out what the user may not have rather than
    // failing the request.
    let scopes: Vec<String> = request
        .scopes
        .iter()
        .filter(|s| user.scopes.contains(s))
        .cloned()
        .collect();
    let (access_token_secs, id_token_secs) = state.token_lifetimes(&user.login);
    let config = state.config();
    let grant = Grant {
        issuer: state.issuer(),
        audience: &config.audience,
        idp: &config.idp,
        client_id: &request.client_id,
        user,
        scopes: &scopes,
        nonce: request.nonce.as_deref(),
        auth_time: session.auth_time,
        now: tokens::now(),
        access_token_secs,
        id_token_secs,
        response_type: request.response_type,
    };
    let key = state.inner.keys.signing_key();
    let issued = match tokens::issue(&grant, &key) {
        Ok(issued) => issued,
        Err(err) => {
            state.record(DevIdpEvent::ServerError);
            tracing::error!(%err, "cannot issue tokens");
            return ErrorResponse::new(
                request,
                ErrorCode::ServerError,
                "The server could not issue the tokens.",
            )
            .into_response();
        }
    };
    tracing::info!(
        login = %user.login,
        client_id = %request.client_id,
        scopes = %scopes.join(" "),
        kid = %key.kid(),
        "issued tokens"
    );

    let expires_in = issued.expires_in.to_string();
    let scope = scopes.join(" ");
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(access_token) = &issued.access_token {
        pairs.push(("access_token", access_token));
        pairs.push(("token_type", "Bearer"));
        pairs.push(("expires_in", &expires_in));
    }
    pairs.push(("scope", &scope));
    if let Some(id_token) = &issued.id_token {
        pairs.push(("id_token", id_token));
    }
    pairs.push(("state", &request.state));
    deliver(request.response_mode, &request.redirect_uri, &pairs)
}
