//! Answering a checked authorization request for a signed-in session, in
//! the request's response mode. The authorization endpoint answers this way
//! when a session exists, and the sign-in form once the password is
//! checked.
//!
//! | response type | answer |
//! |---|---|
//! | `code` | `code` and `state`: a code bound to the request and the session ([`super::codes`]) |
//! | `token`, `id_token`, `id_token token` | the tokens themselves, `token_type`, `expires_in`, `scope` and `state` |

use axum::response::{IntoResponse, Response};

use super::codes::CodeGrant;
use super::config::{User, OFFLINE_ACCESS};
use super::pkce;
use super::request::{AuthorizeRequest, ErrorCode, ErrorResponse};
use super::response_mode::deliver;
use super::response_type::ResponseType;
use super::session::Session;
use super::tokens::{self, Grant, Wanted};
use super::{DevIdpEvent, DevIdpState};

/// Grants the request to the session's user and sends the answer to the
/// client in the request's response mode.
pub fn answer_request(
    state: &DevIdpState,
    request: &AuthorizeRequest,
    session_id: &str,
    session: &Session,
) -> Response {
    let Some(user) = state.config().user_by_login(&session.login) else {
        return ErrorResponse::new(request, ErrorCode::LoginRequired, "The user is unknown.")
            .into_response();
    };
    let scopes = granted_scopes(&request.scopes, user, request.response_type);
    match request.response_type {
        ResponseType::Code => answer_with_code(state, request, session_id, session, scopes),
        ResponseType::Implicit {
            access_token,
            id_token,
        } => {
            let wanted = Wanted {
                access_token,
                id_token,
                at_hash: true,
            };
            answer_with_tokens(state, request, user, session, &scopes, wanted)
        }
    }
}

/// The scopes a request is granted: those the user may have (Okta's
/// policies leave out what a user may not have rather than failing the
/// request), and `offline_access`, which the client's settings govern (it
/// was checked with the request), in the code flow only: only the token
/// endpoint hands out refresh tokens.
pub fn granted_scopes(asked: &[String], user: &User, response_type: ResponseType) -> Vec<String> {
    asked
        .iter()
        .filter(|s| match s.as_str() {
            OFFLINE_ACCESS => response_type == ResponseType::Code,
            _ => user.scopes.contains(s),
        })
        .cloned()
        .collect()
}

fn answer_with_code(
    state: &DevIdpState,
    request: &AuthorizeRequest,
    session_id: &str,
    session: &Session,
    scopes: Vec<String>,
) -> Response {
    let Some(code_challenge) = request.code_challenge.clone() else {
        // `authorize::validate` gives every code request its challenge.
        return ErrorResponse::new(request, ErrorCode::InvalidRequest, pkce::REQUIRED)
            .into_response();
    };
    let grant = CodeGrant {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge,
        scopes,
        nonce: request.nonce.clone(),
        login: session.login.clone(),
        auth_time: session.auth_time,
        session_id: session_id.to_owned(),
    };
    let Some(code) = state.inner.codes.issue(grant) else {
        state.record(DevIdpEvent::ServerError);
        tracing::error!("the system random generator failed");
        return ErrorResponse::new(
            request,
            ErrorCode::ServerError,
            "The server could not issue an authorization code.",
        )
        .into_response();
    };
    tracing::info!(
        login = %session.login,
        client_id = %request.client_id,
        "issued an authorization code"
    );
    deliver(
        request.response_mode,
        &request.redirect_uri,
        &[("code", &code), ("state", &request.state)],
    )
}

fn answer_with_tokens(
    state: &DevIdpState,
    request: &AuthorizeRequest,
    user: &User,
    session: &Session,
    scopes: &[String],
    wanted: Wanted,
) -> Response {
    let (access_token_secs, id_token_secs) = state.token_lifetimes(&user.login);
    let config = state.config();
    let grant = Grant {
        issuer: state.issuer(),
        audience: &config.audience,
        idp: &config.idp,
        client_id: &request.client_id,
        user,
        scopes,
        nonce: request.nonce.as_deref(),
        auth_time: session.auth_time,
        now: tokens::now(),
        access_token_secs,
        id_token_secs,
        wanted,
        // Tokens that travel in a URL cannot be bound to a key.
        jkt: None,
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
        pairs.push(("access_token", &access_token.token));
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
