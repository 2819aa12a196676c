//! Test controls, served only when enabled (`DEV_IDP_CONTROL=1`); without
//! that these paths are 404. All under the issuer, all `POST`:
//!
//! - `/dev/rotate-keys`: a new key signs from now on and is published; the
//!   previous signing key stays published (an older one is dropped).
//!   `?drop_old=true` publishes only the new key.
//! - `/dev/drop-old-keys`: stops publishing every key but the signing key.
//! - `/dev/token-lifetime` with `{"login": "carol@example.com", "seconds": 20}`:
//!   access and ID tokens issued to that user from now on live that long;
//!   `"seconds": null` goes back to the configured lifetimes.
//!   Tokens from the token endpoint follow it too, so a test can renew with
//!   a refresh token every few seconds.
//! - `/dev/refresh-tokens` with `{"login": "dave@example.com",
//!   "rotation_grace_secs": 0, "idle_secs": 5, "lifetime_secs": 60}`: that
//!   user's refresh tokens (of any client) use these instead of the
//!   client's settings from now on: the grace period at each use, the idle
//!   time at each rotation, the lifetime for families started from now.
//!   Each field may be left out or `null` (the client's setting). Per user
//!   rather than per client, so tests running in parallel against one
//!   server, each with a user of its own, do not change each other's
//!   clients. Answers with the values set.
//! - `/dev/end-sessions` with `{"login": "alice@example.com"}`: ends that
//!   user's sessions here, as an expired or revoked Okta session: the next
//!   `prompt=none` request answers `login_required`, and the user's refresh
//!   tokens are revoked. Answers `{"login": "…", "ended": n}`.
//!
//! The key calls answer `{"signing_kid": "…", "published_kids": ["…", …]}`.
//! A request carrying an `Origin` other than this server's is refused, and
//! the calls with a body need a JSON content type, so a web page cannot
//! drive these from a browser.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::MAX_ROTATION_GRACE_SECS;
use super::keys::SigningKey;
use super::params::Params;
use super::{DevIdpState, RefreshOverride};

/// Longest lifetime the control sets: one day, as Okta's maximum.
const MAX_LIFETIME_SECS: u64 = 86_400;

pub fn routes() -> Router<DevIdpState> {
    Router::new()
        .route("/dev/rotate-keys", post(rotate_keys))
        .route("/dev/drop-old-keys", post(drop_old_keys))
        .route("/dev/token-lifetime", post(token_lifetime))
        .route("/dev/refresh-tokens", post(refresh_tokens))
        .route("/dev/end-sessions", post(end_sessions))
}

fn error(status: StatusCode, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": "invalid_request", "error_description": description })),
    )
        .into_response()
}

fn cross_origin(state: &DevIdpState, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    (origin.as_bytes() != state.inner.origin.as_bytes()).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "The dev control does not take cross-origin requests.",
        )
    })
}

fn key_report(state: &DevIdpState) -> Json<Value> {
    let published: Vec<String> = state
        .inner
        .keys
        .published()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect();
    Json(json!({
        "signing_kid": state.inner.keys.signing_key().kid(),
        "published_kids": published,
    }))
}

async fn rotate_keys(
    State(state): State<DevIdpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = cross_origin(&state, &headers) {
        return refused;
    }
    let params = match Params::parse(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let drop_old = match params.get("drop_old") {
        Ok(None | Some("false")) => false,
        Ok(Some("true")) => true,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "drop_old must be true or false, once.",
            )
        }
    };
    let key = match tokio::task::spawn_blocking(SigningKey::generate).await {
        Ok(Ok(key)) => key,
        Ok(Err(err)) => {
            tracing::error!(%err, "key rotation failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Key generation failed.");
        }
        Err(err) => {
            tracing::error!(%err, "key rotation failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Key generation failed.");
        }
    };
    tracing::info!(kid = %key.kid(), drop_old, "rotated the signing key");
    state.inner.keys.rotate(key, drop_old);
    key_report(&state).into_response()
}

async fn drop_old_keys(State(state): State<DevIdpState>, headers: HeaderMap) -> Response {
    if let Some(refused) = cross_origin(&state, &headers) {
        return refused;
    }
    state.inner.keys.drop_old();
    tracing::info!("dropped old signing keys");
    key_report(&state).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifetimeRequest {
    login: String,
    #[serde(default)]
    seconds: Option<u64>,
}

/// The JSON body of a control request, or the answer that refuses it
/// (another origin, not JSON, not of this shape).
// The error is the answer itself, as axum handlers return it; it is built
// once per refused request.
#[allow(clippy::result_large_err)]
fn json_request<T: serde::de::DeserializeOwned>(
    state: &DevIdpState,
    headers: &HeaderMap,
    body: &[u8],
    shape: &str,
) -> Result<T, Response> {
    if let Some(refused) = cross_origin(state, headers) {
        return Err(refused);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let hint = format!("Send JSON: {shape}.");
    if !is_json {
        return Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &hint));
    }
    serde_json::from_slice(body).map_err(|_| error(StatusCode::BAD_REQUEST, &hint))
}

async fn token_lifetime(
    State(state): State<DevIdpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: LifetimeRequest = match json_request(
        &state,
        &headers,
        &body,
        "{\"login\": \"…\", \"seconds\": 20 or null}",
    ) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    if let Some(seconds) = request.seconds {
        if !(1..=MAX_LIFETIME_SECS).contains(&seconds) {
            return error(
                StatusCode::BAD_REQUEST,
                "seconds must be between 1 and 86400, or null.",
            );
        }
    }
    let Some(user) = state.config().user_by_login(&request.login) else {
        return error(StatusCode::NOT_FOUND, "There is no user with that login.");
    };
    state.set_token_lifetime(&user.login, request.seconds);
    tracing::info!(login = %user.login, seconds = ?request.seconds, "token lifetime set");
    Json(json!({ "login": user.login, "seconds": request.seconds })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshTokensRequest {
    login: String,
    #[serde(default)]
    rotation_grace_secs: Option<u64>,
    #[serde(default)]
    idle_secs: Option<u64>,
    #[serde(default)]
    lifetime_secs: Option<u64>,
}

/// Longest refresh token lifetime or idle time the control sets: as the
/// config's longest.
const MAX_REFRESH_SECS: u64 = 5 * 365 * 86_400;

async fn refresh_tokens(
    State(state): State<DevIdpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: RefreshTokensRequest = match json_request(
        &state,
        &headers,
        &body,
        "{\"login\": \"…\", \"rotation_grace_secs\": 0 to 60 or null, \
         \"idle_secs\": seconds or null, \"lifetime_secs\": seconds or null}",
    ) {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    if request
        .rotation_grace_secs
        .is_some_and(|s| s > MAX_ROTATION_GRACE_SECS)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "rotation_grace_secs must be between 0 and 60, or null.",
        );
    }
    let out_of_range = |s: Option<u64>| s.is_some_and(|s| !(1..=MAX_REFRESH_SECS).contains(&s));
    if out_of_range(request.idle_secs) || out_of_range(request.lifetime_secs) {
        return error(
            StatusCode::BAD_REQUEST,
            "idle_secs and lifetime_secs must be between 1 and 157680000, or null.",
        );
    }
    let Some(user) = state.config().user_by_login(&request.login) else {
        return error(StatusCode::NOT_FOUND, "There is no user with that login.");
    };
    let value = RefreshOverride {
        lifetime_secs: request.lifetime_secs,
        idle_secs: request.idle_secs,
        rotation_grace_secs: request.rotation_grace_secs,
    };
    state.set_refresh_override(&user.login, value);
    tracing::info!(login = %user.login, ?value, "refresh token lifetimes set");
    Json(json!({
        "login": user.login,
        "rotation_grace_secs": request.rotation_grace_secs,
        "idle_secs": request.idle_secs,
        "lifetime_secs": request.lifetime_secs,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndSessionsRequest {
    login: String,
}

async fn end_sessions(
    State(state): State<DevIdpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: EndSessionsRequest =
        match json_request(&state, &headers, &body, "{\"login\": \"…\"}") {
            Ok(request) => request,
            Err(refused) => return refused,
        };
    let Some(user) = state.config().user_by_login(&request.login) else {
        return error(StatusCode::NOT_FOUND, "There is no user with that login.");
    };
    let ended = state.end_sessions_of(&user.login);
    tracing::info!(login = %user.login, ended, "sessions ended");
    Json(json!({ "login": user.login, "ended": ended })).into_response()
}
