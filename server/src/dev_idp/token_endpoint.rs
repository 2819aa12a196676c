//! `POST {issuer}/v1/token`: the token endpoint (RFC 6749 §3.2) as Okta's
//! custom authorization server has it for public clients, with two grants:
//!
//! | `grant_type` | sends | gets |
//! |---|---|---|
//! | `authorization_code` | `code`, `redirect_uri`, `code_verifier` (RFC 6749 §4.1.3, RFC 7636 §4.5) | an access token, an ID token (with `openid`), a refresh token (with `offline_access`) |
//! | `refresh_token` | `refresh_token`, optionally a narrower `scope` (§6) | a new access token, an ID token (with `openid`), the next refresh token |
//!
//! The tokens are those of the implicit flow ([`super::tokens`]), except
//! that the ID token carries no `at_hash` (optional here, OIDC Core
//! §3.1.3.6) and, after a refresh, no `nonce` (the refresh is no
//! authentication request; §12.2 as its errata read).
//!
//! The client names itself as at revoke and introspect
//! ([`super::client_auth`]): `client_id` in the body, as public clients
//! and okta-auth-js do, or a Basic header without a secret. Every answer,
//! tokens or error, carries `Cache-Control: no-store` and `Pragma:
//! no-cache` (§5.1). Errors, as JSON (§5.2):
//!
//! | case | answer |
//! |---|---|
//! | no client, an unknown client, a secret sent | `401 invalid_client` |
//! | not a form; a parameter missing or repeated; a malformed `code_verifier` | `400 invalid_request` |
//! | a body past 8 KiB | `413 invalid_request` |
//! | a grant type this server does not have | `400 unsupported_grant_type` |
//! | a grant type the client may not use | `400 unauthorized_client`, Okta's "Configured grant types: […]" |
//! | a code unknown, expired, spent, or another client's | `400 invalid_grant`, "The authorization code is invalid or has expired." |
//! | another `redirect_uri` than the authorization request's | `400 invalid_grant` |
//! | a `code_verifier` whose S256 is not the challenge | `400 invalid_grant`, "PKCE verification failed." |
//! | a refresh token unknown, expired, revoked, reused, or another client's | `400 invalid_grant`, "The refresh token is invalid or expired." |
//! | a `scope` wider than the refresh token's | `400 invalid_scope` |
//!
//! A code is spent by its first token request, whatever its outcome
//! ([`super::codes`]). A spent code presented again revokes what its
//! exchange issued, and a reused refresh token its whole family
//! ([`super::refresh`]); both are logged as warnings, without the token.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::client_auth::authenticate;
use super::codes::{self, Redemption};
use super::config::{Client, User, OFFLINE_ACCESS};
use super::oauth_error::{bad_form, no_store, oauth_error};
use super::params::{parse_form, Params, MAX_INPUT_BYTES};
use super::pkce;
use super::refresh::{self, RefreshError};
use super::tokens::{self, Grant, Issued, Wanted};
use super::DevIdpState;

/// Okta's `error_description` for a code that cannot be exchanged.
pub const CODE_INVALID: &str = "The authorization code is invalid or has expired.";
/// Okta's `error_description` for a verifier that does not match.
pub const PKCE_FAILED: &str = "PKCE verification failed.";
/// Okta's `error_description` for a refresh token that cannot be used.
pub const REFRESH_INVALID: &str = "The refresh token is invalid or expired.";
/// For a token request whose `redirect_uri` is not the authorization
/// request's (RFC 6749 §4.1.3).
pub const REDIRECT_URI_MISMATCH: &str =
    "The 'redirect_uri' does not match the redirection URI used in the authorization request.";

/// A refused token request: RFC 6749 §5.2.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
}

impl Refusal {
    fn new(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }

    fn missing(name: &str) -> Self {
        Self::new(
            "invalid_request",
            format!("The '{name}' parameter is required."),
        )
    }

    fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "The server could not issue the tokens.".into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        oauth_error(self.status, self.error, &self.description)
    }
}

/// A successful token response (RFC 6749 §5.1).
struct Tokens {
    issued: Issued,
    scopes: Vec<String>,
    refresh_token: Option<String>,
}

impl IntoResponse for Tokens {
    fn into_response(self) -> Response {
        let mut body = json!({
            "token_type": "Bearer",
            "expires_in": self.issued.expires_in,
            "scope": self.scopes.join(" "),
        });
        if let Some(access_token) = self.issued.access_token {
            body["access_token"] = Value::from(access_token.token);
        }
        if let Some(refresh_token) = self.refresh_token {
            body["refresh_token"] = Value::from(refresh_token);
        }
        if let Some(id_token) = self.issued.id_token {
            body["id_token"] = Value::from(id_token);
        }
        let mut response = (StatusCode::OK, Json(body)).into_response();
        no_store(&mut response);
        response
    }
}

/// `POST {issuer}/v1/token`.
pub async fn token(
    State(state): State<DevIdpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Even a body past the limit gets a token endpoint's answer: JSON,
    // never cached.
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return oauth_error(
                rejection.status(),
                "invalid_request",
                &format!(
                    "The request body could not be read; it must be a form of at most {} bytes.",
                    MAX_INPUT_BYTES
                ),
            )
        }
    };
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
    let answer = match field(&form, "grant_type") {
        None => Err(Refusal::missing("grant_type")),
        Some("authorization_code") => exchange_code(&state, client, &form),
        Some("refresh_token") => refresh(&state, client, &form),
        Some(_) => Err(Refusal::new(
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        )),
    };
    match answer {
        Ok(tokens) => tokens.into_response(),
        Err(refusal) => {
            tracing::debug!(
                client_id = %client.client_id,
                error = refusal.error,
                description = %refusal.description,
                "token request refused"
            );
            refusal.into_response()
        }
    }
}

/// A parameter of the form; `parse_form` has refused repeated ones.
fn field<'a>(form: &'a Params, name: &str) -> Option<&'a str> {
    form.get(name).ok().flatten()
}

fn required<'a>(form: &'a Params, name: &str) -> Result<&'a str, Refusal> {
    field(form, name).ok_or_else(|| Refusal::missing(name))
}

/// Okta's refusal of a grant type the client's settings do not list.
fn unauthorized_client(client: &Client) -> Refusal {
    Refusal::new(
        "unauthorized_client",
        format!(
            "The client is not authorized to use the provided grant type. \
             Configured grant types: [{}].",
            client.grant_types().join(", ")
        ),
    )
}

/// `grant_type=authorization_code`.
fn exchange_code(state: &DevIdpState, client: &Client, form: &Params) -> Result<Tokens, Refusal> {
    if !client.grant_types().contains(&"authorization_code") {
        return Err(unauthorized_client(client));
    }
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let verifier = required(form, "code_verifier")?;
    if !pkce::is_valid_verifier(verifier) {
        return Err(Refusal::new(
            "invalid_request",
            "The 'code_verifier' must be 43 to 128 characters of A-Z, a-z, 0-9, \
             '-', '.', '_' and '~' (RFC 7636).",
        ));
    }

    let (grant, key) = match state.inner.codes.redeem(code) {
        Redemption::First(grant, key) => (grant, key),
        Redemption::Unknown => return Err(Refusal::new("invalid_grant", CODE_INVALID)),
        Redemption::Again(issued) => {
            let revoked = revoke_issued(state, &issued);
            tracing::warn!(
                client_id = %client.client_id,
                revoked,
                "an authorization code was presented again: the tokens it gave are revoked"
            );
            return Err(Refusal::new("invalid_grant", CODE_INVALID));
        }
    };
    // The code is spent from here on, whatever follows.
    if grant.client_id != client.client_id {
        return Err(Refusal::new("invalid_grant", CODE_INVALID));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(Refusal::new("invalid_grant", REDIRECT_URI_MISMATCH));
    }
    if !pkce::verify(verifier, &grant.code_challenge) {
        return Err(Refusal::new("invalid_grant", PKCE_FAILED));
    }
    let user = state
        .config()
        .user_by_login(&grant.login)
        .ok_or_else(|| Refusal::new("invalid_grant", CODE_INVALID))?;

    let issued = sign(
        state,
        client,
        user,
        &grant.scopes,
        grant.nonce.as_deref(),
        grant.auth_time,
    )?;
    let access = issued.access_token.as_ref().map(|t| (t.jti.clone(), t.exp));

    let mut family = None;
    let mut refresh_token = None;
    if let (true, Some(configured)) = (
        grant.scopes.iter().any(|s| s == OFFLINE_ACCESS),
        client.refresh,
    ) {
        let policy = state.refresh_policy(configured, &user.login);
        let family_grant = refresh::Grant {
            client_id: client.client_id.clone(),
            login: user.login.clone(),
            session_id: grant.session_id.clone(),
            scopes: grant.scopes.clone(),
            auth_time: grant.auth_time,
        };
        let (id, token) = state
            .inner
            .refresh
            .start(family_grant, policy, refresh::now_ms())
            .ok_or_else(|| {
                tracing::error!("the system random generator failed");
                Refusal::server_error()
            })?;
        if let Some((jti, exp)) = &access {
            state
                .inner
                .refresh
                .add_access_token(id, jti, *exp, tokens::now());
        }
        family = Some(id);
        refresh_token = Some(token);
    }

    let record = codes::Issued {
        access_token: access,
        family,
    };
    if let Err(issued) = state.inner.codes.finish(key, record) {
        let revoked = revoke_issued(state, &issued);
        tracing::warn!(
            client_id = %client.client_id,
            revoked,
            "an authorization code was presented again while it was exchanged: \
             the tokens it gave are revoked"
        );
        return Err(Refusal::new("invalid_grant", CODE_INVALID));
    }
    tracing::info!(
        login = %user.login,
        client_id = %client.client_id,
        scopes = %grant.scopes.join(" "),
        refresh_token = refresh_token.is_some(),
        "exchanged an authorization code for tokens"
    );
    Ok(Tokens {
        issued,
        scopes: grant.scopes,
        refresh_token,
    })
}

/// `grant_type=refresh_token`.
fn refresh(state: &DevIdpState, client: &Client, form: &Params) -> Result<Tokens, Refusal> {
    let Some(configured) = client.refresh else {
        return Err(unauthorized_client(client));
    };
    let token = required(form, "refresh_token")?;
    let mut requested: Vec<String> = Vec::new();
    for word in field(form, "scope").unwrap_or("").split(' ') {
        if !word.is_empty() && !requested.iter().any(|s| s == word) {
            requested.push(word.to_owned());
        }
    }
    let requested = (!requested.is_empty()).then_some(requested);

    let refreshed = match state.inner.refresh.refresh(
        token,
        &client.client_id,
        requested.as_deref(),
        refresh::now_ms(),
        |login| state.refresh_policy(configured, login),
    ) {
        Ok(refreshed) => refreshed,
        Err(RefreshError::Invalid) => return Err(Refusal::new("invalid_grant", REFRESH_INVALID)),
        Err(RefreshError::ScopeExceeded) => {
            return Err(Refusal::new(
                "invalid_scope",
                "The requested scope is invalid, unknown, or exceeds the scope \
                 granted to the refresh token.",
            ))
        }
        Err(RefreshError::Reused {
            grant,
            access_tokens,
        }) => {
            state.revoke_access_tokens(&access_tokens);
            tracing::warn!(
                client_id = %grant.client_id,
                login = %grant.login,
                access_tokens = access_tokens.len(),
                "refresh token reuse: the token's family and its access tokens are revoked"
            );
            return Err(Refusal::new("invalid_grant", REFRESH_INVALID));
        }
    };

    // RFC 6749 §6: a narrower scope for this access token only; the
    // refresh token keeps what was granted.
    let scopes: Vec<String> = match &requested {
        Some(requested) => refreshed
            .grant
            .scopes
            .iter()
            .filter(|s| requested.contains(s))
            .cloned()
            .collect(),
        None => refreshed.grant.scopes.clone(),
    };
    let user = state
        .config()
        .user_by_login(&refreshed.grant.login)
        .ok_or_else(|| Refusal::new("invalid_grant", REFRESH_INVALID))?;
    let issued = sign(
        state,
        client,
        user,
        &scopes,
        None,
        refreshed.grant.auth_time,
    )?;
    if let Some(access) = &issued.access_token {
        let kept = state.inner.refresh.add_access_token(
            refreshed.family,
            &access.jti,
            access.exp,
            tokens::now(),
        );
        if !kept {
            // The family was revoked while the tokens were signed.
            state.revoke_access_tokens(&[(access.jti.clone(), access.exp)]);
            return Err(Refusal::new("invalid_grant", REFRESH_INVALID));
        }
    }
    tracing::info!(
        login = %user.login,
        client_id = %client.client_id,
        scopes = %scopes.join(" "),
        rotated = refreshed.rotated,
        "refreshed tokens"
    );
    Ok(Tokens {
        issued,
        scopes,
        refresh_token: Some(refreshed.refresh_token),
    })
}

/// Signs an access token, and an ID token with `openid`, for `user`.
fn sign(
    state: &DevIdpState,
    client: &Client,
    user: &User,
    scopes: &[String],
    nonce: Option<&str>,
    auth_time: u64,
) -> Result<Issued, Refusal> {
    let (access_token_secs, id_token_secs) = state.token_lifetimes(&user.login);
    let config = state.config();
    let grant = Grant {
        issuer: state.issuer(),
        audience: &config.audience,
        idp: &config.idp,
        client_id: &client.client_id,
        user,
        scopes,
        nonce,
        auth_time,
        now: tokens::now(),
        access_token_secs,
        id_token_secs,
        wanted: Wanted {
            access_token: true,
            id_token: scopes.iter().any(|s| s == "openid"),
            at_hash: false,
        },
    };
    let key = state.inner.keys.signing_key();
    tokens::issue(&grant, &key).map_err(|err| {
        tracing::error!(%err, "cannot issue tokens");
        Refusal::server_error()
    })
}

/// Revokes what a code's exchange issued; returns how many access tokens.
fn revoke_issued(state: &DevIdpState, issued: &codes::Issued) -> usize {
    let mut access_tokens: Vec<(String, u64)> = issued.access_token.iter().cloned().collect();
    if let Some(family) = issued.family {
        access_tokens.extend(
            state
                .inner
                .refresh
                .revoke_family(family)
                .unwrap_or_default(),
        );
    }
    access_tokens.sort();
    access_tokens.dedup();
    state.revoke_access_tokens(&access_tokens);
    access_tokens.len()
}
