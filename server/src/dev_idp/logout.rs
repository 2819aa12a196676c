//! `GET {issuer}/v1/logout`: RP-initiated logout as Okta does it. Ends the
//! browser's session, and with it the refresh tokens it gave, and sends it
//! back to a registered `post_logout_redirect_uri` with `state`.
//!
//! The `id_token_hint` must be an ID token this server signed (expired is
//! fine: that is the usual case) and names the client whose registered
//! post-logout URIs are allowed. Anything doubtful gets an error page and
//! no redirect, so logout cannot be used as an open redirector.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::config::Client;
use super::html;
use super::params::{encode_component, Params};
use super::session;
use super::DevIdpState;

#[derive(Debug, Deserialize)]
struct HintClaims {
    aud: String,
    jti: String,
}

pub async fn logout(
    State(state): State<DevIdpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let bad = |message: &str| {
        html::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-out request is not valid",
            message,
        )
    };
    let params = match Params::parse(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(err) => return bad(&format!("{err}.")),
    };
    if params.first_repeated().is_some() {
        return bad("A parameter was sent more than once.");
    }
    let get = |name: &str| params.get(name).ok().flatten();

    let client = match get("id_token_hint") {
        None => None,
        Some(hint) => match hinted_client(&state, hint) {
            Ok(client) => Some(client),
            Err(problem) => {
                tracing::debug!(problem, "logout refused");
                return bad(problem);
            }
        },
    };
    let target = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client) = client else {
                return bad("A post_logout_redirect_uri needs an id_token_hint.");
            };
            if !client.has_post_logout_redirect_uri(uri) {
                return bad("The post_logout_redirect_uri is not registered for this client.");
            }
            let mut target = uri.to_owned();
            if let Some(state) = get("state") {
                target.push(if uri.contains('?') { '&' } else { '?' });
                target.push_str("state=");
                target.push_str(&encode_component(state));
            }
            Some(target)
        }
    };

    if let Some(id) = session::read_cookie(&headers, &state.inner.session_cookie) {
        state.end_session(id);
    }
    let mut response = match target.map(|t| HeaderValue::from_str(&t)) {
        Some(Ok(location)) => {
            let mut response = StatusCode::FOUND.into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, location);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        // Registered URIs are parsed URLs, so the header value is good;
        // should it not be, the person still learns they are signed out.
        Some(Err(_)) | None => html::signed_out_page(),
    };
    let clear = session::clear_cookie(
        &state.inner.session_cookie,
        state.inner.session_same_site,
        "/",
    );
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    tracing::info!("signed out");
    response
}

/// The client an ID token from this server was issued to.
fn hinted_client<'a>(state: &'a DevIdpState, hint: &str) -> Result<&'a Client, &'static str> {
    const NOT_OURS: &str = "The id_token_hint is not an ID token issued by this server.";
    let header = jsonwebtoken::decode_header(hint).map_err(|_| NOT_OURS)?;
    if header.alg != Algorithm::RS256 {
        return Err(NOT_OURS);
    }
    let key = header
        .kid
        .and_then(|kid| state.inner.keys.find(&kid))
        .ok_or(NOT_OURS)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    // The audience is checked below against the registered clients.
    validation.validate_aud = false;
    validation.set_issuer(&[state.issuer()]);
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<HintClaims>(hint, key.decoding(), &validation)
        .map_err(|_| NOT_OURS)?
        .claims;
    // An access token is signed by the same key but is not an ID token.
    if !claims.jti.starts_with("ID.") {
        return Err(NOT_OURS);
    }
    state
        .config()
        .client(&claims.aud)
        .ok_or("The id_token_hint was not issued to a registered client.")
}
