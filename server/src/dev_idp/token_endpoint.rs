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
//! | a DPoP proof refused, or missing where required ([`super::dpop`]) | `400 invalid_dpop_proof`, or `400 use_dpop_nonce` with a `DPoP-Nonce` |
//! | a refresh token bound to a DPoP key, without a proof | `400 invalid_dpop_proof`, "The DPoP proof JWT header is missing." |
//! | a refresh token bound to another DPoP key than the proof's | `400 invalid_grant`, "The refresh token is bound to another DPoP key." |
//! | a `scope` wider than the refresh token's | `400 invalid_scope` |
//!
//! With a valid DPoP proof (RFC 9449 §5) the access token carries
//! `cnf.jkt`, the answer says `"token_type": "DPoP"`, and a refresh token
//! is bound to the key: every refresh must prove it. The proof is checked
//! before the grant, so a refused proof spends no code.
//!
//! A code is spent by its first token request, whatever its outcome
//! ([`super::codes`]). A spent code presented again revokes what its
//! exchange issued, and a reused refresh token its whole family
//! ([`super::refresh`]); both are logged as warnings, without the token.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::bearer::dpop::DPOP_NONCE_HEADER;

use super::client_auth::authenticate;
use super::codes::{self, Redemption};
use super::config::{Client, User, OFFLINE_ACCESS};
use super::dpop::{self, DpopRefusal};
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

/// For a refresh token bound to another DPoP key than the proof's.
pub const REFRESH_OTHER_KEY: &str = "The refresh token is bound to another DPoP key.";

/// A refused token request: RFC 6749 §5.2.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    /// A `DPoP-Nonce` to send (RFC 9449 §8).
    dpop_nonce: Option<String>,
}

impl Refusal {
    fn new(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            dpop_nonce: None,
        }
    }

    fn dpop(refusal: DpopRefusal, state: &DevIdpState) -> Self {
        match refusal {
            DpopRefusal::Invalid(description) => Self::new("invalid_dpop_proof", description),
            DpopRefusal::UseNonce(description) => Self {
                dpop_nonce: Some(state.inner.dpop.nonce()),
                ..Self::new("use_dpop_nonce", description)
            },
            DpopRefusal::Busy { retry_after } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..Self::new(
                    "temporarily_unavailable",
                    format!("Too many DPoP proofs are being checked; retry in {retry_after} s."),
                )
            },
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
            ..Self::new("server_error", "The server could not issue the tokens.")
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = oauth_error(self.status, self.error, &self.description);
        set_nonce(&mut response, self.dpop_nonce);
        response
    }
}

/// RFC 9449 §8: one `DPoP-Nonce` header (the answer is `no-store`
/// already).
fn set_nonce(response: &mut Response, nonce: Option<String>) {
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(DPOP_NONCE_HEADER), value);
    }
}

/// A successful token response (RFC 6749 §5.1).
struct Tokens {
    issued: Issued,
    scopes: Vec<String>,
    refresh_token: Option<String>,
    /// Whether the access token is bound to a DPoP key (RFC 9449 §5).
    dpop: bool,
    /// A fresh `DPoP-Nonce`, when the one used is getting old (§8.2).
    dpop_nonce: Option<String>,
}

impl IntoResponse for Tokens {
    fn into_response(self) -> Response {
        let mut body = json!({
            "token_type": if self.dpop { "DPoP" } else { "Bearer" },
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
        set_nonce(&mut response, self.dpop_nonce);
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
    // Before the grant: a refused proof spends no code and rotates no
    // refresh token.
    let answer = match state.inner.dpop.check(client, &headers) {
        Err(refusal) => Err(Refusal::dpop(refusal, &state)),
        Ok(proof) => {
            let jkt = proof.as_ref().map(|p| p.jkt.as_str());
            let answer = match field(&form, "grant_type") {
                None => Err(Refusal::missing("grant_type")),
                Some("authorization_code") => exchange_code(&state, client, &form, jkt),
                Some("refresh_token") => refresh(&state, client, &form, jkt),
                Some(_) => Err(Refusal::new(
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                )),
            };
            let renew = proof.is_some_and(|p| p.renew_nonce);
            answer.map(|tokens| Tokens {
                dpop_nonce: renew.then(|| state.inner.dpop.nonce()),
                ..tokens
            })
        }
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

/// `grant_type=authorization_code`, with a DPoP proof by the key of
/// thumbprint `jkt` if the request had one.
fn exchange_code(
    state: &DevIdpState,
    client: &Client,
    form: &Params,
    jkt: Option<&str>,
) -> Result<Tokens, Refusal> {
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
        jkt,
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
            // Every client here is public: its refresh token is bound to
            // the key of the proof it came with (RFC 9449 §5).
            jkt: jkt.map(str::to_owned),
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
        dpop = jkt.is_some(),
        "exchanged an authorization code for tokens"
    );
    Ok(Tokens {
        issued,
        scopes: grant.scopes,
        refresh_token,
        dpop: jkt.is_some(),
        dpop_nonce: None,
    })
}

/// `grant_type=refresh_token`, with a DPoP proof by the key of thumbprint
/// `jkt` if the request had one.
fn refresh(
    state: &DevIdpState,
    client: &Client,
    form: &Params,
    jkt: Option<&str>,
) -> Result<Tokens, Refusal> {
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
        jkt,
        requested.as_deref(),
        refresh::now_ms(),
        |login| state.refresh_policy(configured, login),
    ) {
        Ok(refreshed) => refreshed,
        Err(RefreshError::Invalid) => return Err(Refusal::new("invalid_grant", REFRESH_INVALID)),
        Err(RefreshError::ProofMissing) => {
            return Err(Refusal::new("invalid_dpop_proof", dpop::PROOF_MISSING))
        }
        Err(RefreshError::WrongKey) => {
            tracing::warn!(
                client_id = %client.client_id,
                "a refresh token bound to a DPoP key was presented with another key: refused, nothing changed"
            );
            return Err(Refusal::new("invalid_grant", REFRESH_OTHER_KEY));
        }
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
        jkt,
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
        dpop = jkt.is_some(),
        "refreshed tokens"
    );
    Ok(Tokens {
        issued,
        scopes,
        refresh_token: Some(refreshed.refresh_token),
        dpop: jkt.is_some(),
        dpop_nonce: None,
    })
}

/// Signs an access token (bound to the DPoP key `jkt` if given), and an
/// ID token with `openid`, for `user`.
fn sign(
    state: &DevIdpState,
    client: &Client,
    user: &User,
    scopes: &[String],
    nonce: Option<&str>,
    auth_time: u64,
    jkt: Option<&str>,
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
        jkt,
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
