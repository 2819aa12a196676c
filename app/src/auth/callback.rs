//! The checks every sign-in, renewal and refresh goes through, whichever
//! flow brought its tokens (`flow/`): the answer at the callback (`state`,
//! then an `error`), and the tokens themselves (type, expiry, the ID
//! token's signature and claims, `at_hash`, and whom they name), with
//! nothing kept unless all pass. The token endpoint's answers are read
//! here too, in RFC 6749's terms.
//!
//! What is done outside the plain logic (the RS256 signature check,
//! SHA-256, asking the server whom an access token names, and posting to
//! the issuer's token endpoint) is passed in as a [`Platform`].

use super::config::PublicAuthConfig;
use super::fragment::{FragmentError, FragmentParams};
use super::id_token::{self, Expected, IdTokenError};
use super::request::{PendingSignIn, PENDING_MAX_AGE};
use super::session::{access_token_claims, Session};
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    Fragment(#[from] FragmentError),
    #[error("the sign-in response has no state parameter")]
    MissingState,
    #[error("this sign-in response was not started here or was already used (state)")]
    UnknownState,
    #[error("this sign-in response does not match the sign-in that was started (state)")]
    StateMismatch,
    #[error("the sign-in took too long; please start again")]
    Stale,
    #[error("{}", denied_message(.error, .description.as_deref()))]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("the token type is '{0}', not Bearer")]
    TokenType(String),
    #[error("the sign-in response has no {0}")]
    Missing(&'static str),
    #[error("the sign-in response has an invalid expires_in")]
    ExpiresIn,
    #[error("{0}")]
    IdToken(#[from] IdTokenError),
    #[error("the issuer's signing key could not be had: {0}")]
    KeyUnavailable(String),
    #[error("the renewed tokens are for another person")]
    DifferentUser,
    /// With no ID token, the server is asked whom the access token names
    /// (`whoami`); it could not say.
    #[error("the server could not say whom the access token is for: {0}")]
    Subject(String),
    /// No answer from the sign-in service in the hidden iframe: within the
    /// timeout (seconds), or at all (0: something else loaded there).
    #[error("{}", no_answer_message(*.0))]
    NoAnswer(u32),
    #[error("this browser cannot sign in: {0}")]
    Browser(String),
    /// The code flow's attempt has no PKCE verifier to send.
    #[error("this sign-in was started without its PKCE code verifier; please start again")]
    NoVerifier,
    /// The token endpoint refused, in RFC 6749 §5.2's terms.
    #[error("{}", token_endpoint_message(.error, .description.as_deref()))]
    TokenEndpoint {
        error: String,
        description: Option<String>,
    },
    /// The token endpoint could not be asked, or answered something else
    /// than RFC 6749 describes.
    #[error("the issuer's token endpoint {0}")]
    TokenEndpointUnusable(String),
    /// With DPoP: the access token is not bound to this browser's key.
    #[error("the access token is not bound to this browser's DPoP key (cnf.jkt); check that the app at Okta requires DPoP")]
    DpopBinding,
    /// With DPoP: the browser could not make a proof.
    #[error("this browser cannot prove its DPoP key: {0}")]
    Dpop(String),
}

impl CallbackError {
    /// Whether a silent renewal that failed this way may be tried again:
    /// not when the issuer says the person must sign in again (their
    /// session there ended, or it needs an answer from them), nor when the
    /// tokens are someone else's.
    pub fn renewal_may_retry(&self) -> bool {
        match self {
            CallbackError::Denied { error, .. } => !matches!(
                error.as_str(),
                "login_required"
                    | "interaction_required"
                    | "consent_required"
                    | "account_selection_required"
            ),
            CallbackError::DifferentUser => false,
            // The grant or the client is refused: asking again the same
            // way will be refused again.
            CallbackError::TokenEndpoint { error, .. } => matches!(
                error.as_str(),
                "server_error" | "temporarily_unavailable" | "slow_down"
            ),
            _ => true,
        }
    }

    /// Whether the token endpoint refused a refresh token as no longer
    /// valid (`invalid_grant`: used, expired, revoked): the session can
    /// only go on by another way.
    pub fn refresh_refused(&self) -> bool {
        matches!(self, CallbackError::TokenEndpoint { error, .. } if error == "invalid_grant")
    }
}

fn denied_message(error: &str, description: Option<&str>) -> String {
    match description {
        Some(d) => format!("the authorization server refused the sign-in: {error} ({d})"),
        None => format!("the authorization server refused the sign-in: {error}"),
    }
}

/// The token endpoint's refusal, and what to change at Okta for it.
fn token_endpoint_message(error: &str, description: Option<&str>) -> String {
    let said = match description {
        Some(d) => format!("the issuer's token endpoint refused: {error} ({d})"),
        None => format!("the issuer's token endpoint refused: {error}"),
    };
    let advice = match error {
        "invalid_client" => Some("check CLIENT_ID, and that the app at Okta is a Single-Page Application (a public client: no client secret, client authentication None)"),
        "unauthorized_client" => Some("at Okta, allow the app the Authorization Code grant type (and Refresh Token, for offline_access), and let the authorization server's access policy rule allow them"),
        "invalid_grant" => Some("the code or refresh token is no longer valid (used, expired or revoked); sign in again"),
        "invalid_scope" => Some("check SCOPES against the scopes the authorization server grants this app (offline_access needs the Refresh Token grant)"),
        "unsupported_grant_type" => Some("the authorization server does not do this grant: check the app's grant types at Okta"),
        _ => None,
    };
    match advice {
        Some(advice) => format!("{said}; {advice}"),
        None => said,
    }
}

fn no_answer_message(timeout_secs: u32) -> String {
    match timeout_secs {
        0 => {
            "the sign-in service did not answer (it could not be reached, or showed a page)".into()
        }
        secs => format!("the sign-in service did not answer within {secs} s"),
    }
}

/// What the checks take from outside this module: the browser's WebCrypto
/// for the ID token's RS256 signature and SHA-256 (`at_hash`, the PKCE
/// challenge), the resource server for whom an access token names, and
/// HTTP for the issuer's token endpoint.
pub trait Platform {
    fn verify(
        &self,
        kid: &str,
        signing_input: &str,
        signature: &[u8],
    ) -> impl std::future::Future<Output = Result<(), CallbackError>>;

    /// SHA-256 of `data`.
    fn sha256(
        &self,
        data: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, CallbackError>>;

    /// The `sub` of `access_token` as the server reads it after checking
    /// the token (`whoami`): with no ID token, the only word on whom the
    /// tokens are for.
    fn access_token_subject(
        &self,
        access_token: &str,
    ) -> impl std::future::Future<Output = Result<String, CallbackError>>;

    /// `POST url` with the `application/x-www-form-urlencoded` body
    /// `form`, from the browser (CORS, no credentials), with a `DPoP`
    /// proof when there is one: the answer.
    fn post_form(
        &self,
        url: &str,
        form: &str,
        dpop_proof: Option<&str>,
    ) -> impl std::future::Future<Output = Result<HttpAnswer, CallbackError>>;

    /// A DPoP proof (RFC 9449) for `htm` `htu`, signed with the key `jkt`
    /// names (a new key for a new session with `None`), for `access_token`
    /// when there is one, with the server's latest nonce: the proof and
    /// the key's thumbprint.
    fn dpop_proof(
        &self,
        jkt: Option<&str>,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
    ) -> impl std::future::Future<Output = Result<(String, String), CallbackError>>;
}

/// What an HTTP answer brought: its status, its body, and the server's
/// `DPoP-Nonce` when it sent one (the platform keeps it for the next proof
/// to that server too).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
    pub dpop_nonce: Option<String>,
}

/// The tokens an answer carries, whichever way they came: the implicit
/// flow's fragment, or the token endpoint's JSON (a code exchanged, a
/// refresh).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: Option<String>,
    pub token_type: Option<String>,
    /// Seconds.
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    /// With DPoP: the thumbprint of the key the proof that got these
    /// tokens was signed with, which they must be bound to.
    pub dpop_jkt: Option<String>,
}

/// A token endpoint's successful answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u32>,
    scope: Option<String>,
    id_token: Option<String>,
    refresh_token: Option<String>,
}

/// A token endpoint's refusal (RFC 6749 §5.2).
#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// Reads the token endpoint's answer: the tokens of a `200`, the refusal
/// of an RFC 6749 §5.2 error, and a plain error for anything else.
pub fn token_answer(status: u16, body: &str) -> Result<Tokens, CallbackError> {
    if status == 200 {
        let answer: TokenResponse = serde_json::from_str(body).map_err(|_| {
            CallbackError::TokenEndpointUnusable(
                "answered 200 with something other than tokens".into(),
            )
        })?;
        return Ok(Tokens {
            access_token: answer.access_token,
            token_type: answer.token_type,
            expires_in: answer.expires_in.map(i64::from),
            scope: answer.scope,
            id_token: answer.id_token,
            refresh_token: answer.refresh_token,
            dpop_jkt: None,
        });
    }
    match serde_json::from_str::<TokenErrorResponse>(body) {
        Ok(refused) => Err(CallbackError::TokenEndpoint {
            error: printable(&refused.error),
            description: refused.error_description.as_deref().map(printable),
        }),
        Err(_) => Err(CallbackError::TokenEndpointUnusable(format!(
            "answered HTTP {status}"
        ))),
    }
}

/// Whether an ID token's `at_hash` must be there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtHash {
    /// Whenever an access token came with the ID token in the same
    /// authorization response (the implicit flow, OpenID Connect Core
    /// §3.2.2.10).
    Required,
    /// Checked when present (from the token endpoint, Core §3.1.3.8).
    IfPresent,
}

/// What the tokens of one answer must satisfy besides the configuration.
pub struct Expect<'a> {
    /// The nonce of the sign-in the ID token must carry; `None` for a
    /// refresh, whose ID token answers no authorize request.
    pub nonce: Option<&'a str>,
    pub at_hash: AtHash,
    /// A refresh may come without an ID token (or a refresh token): then
    /// the session goes on with this session's.
    pub carry_over: Option<&'a Session>,
}

/// Step 1 for every flow: the answer at the callback. `state` present,
/// started here, the same, not stale; then an `error` is the issuer's
/// refusal. Returns the pending sign-in it answers.
pub fn check_answer(
    params: &FragmentParams,
    pending: Option<PendingSignIn>,
    now: i64,
) -> Result<PendingSignIn, CallbackError> {
    let state = params.state.as_deref().ok_or(CallbackError::MissingState)?;
    let pending = pending.ok_or(CallbackError::UnknownState)?;
    if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
        return Err(CallbackError::StateMismatch);
    }
    if now - pending.created_at > PENDING_MAX_AGE {
        return Err(CallbackError::Stale);
    }
    if let Some(error) = &params.error {
        return Err(CallbackError::Denied {
            error: printable(error),
            description: params.error_description.as_deref().map(printable),
        });
    }
    Ok(pending)
}

/// Step 2 for every flow: the tokens, checked, as the session to keep.
/// `now_ms` is the browser's clock in milliseconds.
pub async fn check_tokens(
    tokens: Tokens,
    cfg: &PublicAuthConfig,
    expect: Expect<'_>,
    now_ms: i64,
    platform: &impl Platform,
) -> Result<Session, CallbackError> {
    let now = now_ms.div_euclid(1000);

    // The access token and its type: Bearer, or with DPoP a token bound to
    // the key the proof was signed with (RFC 9449 §5: a Bearer answer to a
    // DPoP request is not kept).
    let access_token = if cfg.wants_access_token() {
        let token_type = tokens
            .token_type
            .as_deref()
            .ok_or(CallbackError::Missing("token_type"))?;
        let expected = if cfg.dpop { "dpop" } else { "bearer" };
        if !token_type.eq_ignore_ascii_case(expected) {
            return Err(CallbackError::TokenType(printable(token_type)));
        }
        Some(
            tokens
                .access_token
                .ok_or(CallbackError::Missing("access_token"))?,
        )
    } else {
        None
    };
    let dpop_jkt = match (cfg.dpop, tokens.dpop_jkt) {
        (false, _) => None,
        (true, None) => return Err(CallbackError::Missing("DPoP key")),
        (true, Some(jkt)) => {
            let bound = access_token
                .as_deref()
                .and_then(access_token_claims)
                .and_then(|c| c.cnf)
                .and_then(|c| c.jkt);
            if bound.as_deref() != Some(jkt.as_str()) {
                return Err(CallbackError::DpopBinding);
            }
            Some(jkt)
        }
    };
    let expires_in = match tokens.expires_in {
        Some(secs) if (0..=i64::from(u32::MAX)).contains(&secs) => Some(secs),
        Some(_) => return Err(CallbackError::ExpiresIn),
        None if access_token.is_some() => return Err(CallbackError::Missing("expires_in")),
        None => None,
    };

    // The ID token: signature, claims, nonce, at_hash.
    let carried = expect.carry_over.filter(|_| tokens.id_token.is_none());
    let claims = match (cfg.wants_id_token(), tokens.id_token.as_deref(), carried) {
        (true, Some(raw), _) => {
            let jwt = id_token::decode(raw)?;
            platform
                .verify(jwt.kid(), &jwt.signing_input, &jwt.signature)
                .await?;
            let expected = Expected {
                issuer: &cfg.issuer,
                client_id: &cfg.client_id,
                nonce: expect.nonce,
                now,
            };
            id_token::check_claims(&jwt.claims, &expected)?;
            let access_token_sha256 = match access_token.as_deref() {
                Some(token)
                    if expect.at_hash == AtHash::Required || jwt.claims.at_hash.is_some() =>
                {
                    Some(platform.sha256(token.as_bytes()).await?)
                }
                _ => None,
            };
            id_token::check_at_hash(&jwt.claims, access_token_sha256.as_deref())?;
            Some(jwt.claims)
        }
        (true, None, Some(current)) => current.claims.clone(),
        (true, None, None) => return Err(CallbackError::Missing("id_token")),
        (false, _, _) => None,
    };
    let id_token = match (&claims, carried) {
        (None, _) => None,
        (Some(_), Some(current)) => current.id_token.clone(),
        (Some(_), None) => tokens.id_token,
    };

    // Whom the tokens are for: the ID token says; a refresh without one
    // goes on with the session's person; without either, the server,
    // which checks the access token, says.
    let sub = match (&claims, carried, access_token.as_deref()) {
        (Some(c), _, _) => c.sub.clone(),
        (None, Some(current), _) => current.sub.clone(),
        (None, None, Some(token)) => platform.access_token_subject(token).await?,
        (None, None, None) => return Err(CallbackError::Missing("access_token")),
    };

    // The session lasts as long as its shortest-lived token: `expires_in`
    // on this browser's clock, and what the tokens themselves say (the
    // same bound a tab applies to a session it takes from another). In the
    // code flow the ID token says who signed in and when; the session is
    // the access token's, renewed by refresh.
    let id_token_exp = claims
        .as_ref()
        .filter(|_| !cfg.is_code_flow())
        .map(|c| c.exp);
    let access_token_exp = access_token
        .as_deref()
        .and_then(access_token_claims)
        .and_then(|c| c.exp);
    let expires_at = expires_in
        .map(|secs| now.saturating_add(secs))
        .into_iter()
        .chain([id_token_exp, access_token_exp].into_iter().flatten())
        .min()
        .ok_or(CallbackError::Missing("expires_in"))?;
    let scopes = tokens.scope.as_deref().unwrap_or(&cfg.scopes);
    let refresh_token = tokens
        .refresh_token
        .or_else(|| expect.carry_over.and_then(|c| c.refresh_token.clone()));
    Ok(Session {
        issuer: cfg.issuer.clone(),
        client_id: cfg.client_id.clone(),
        response_type: cfg.response_type.clone(),
        sub,
        access_token,
        id_token,
        refresh_token,
        dpop_jkt,
        issued_at_ms: now_ms,
        expires_at,
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        claims,
    })
}

/// Keeps what an attacker-controlled fragment can put on screen short and plain.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_in_rfc_6749s_terms() {
        let ok = token_answer(
            200,
            r#"{"token_type":"Bearer","expires_in":3600,"access_token":"a.b.c","scope":"openid","id_token":"x.y.z","refresh_token":"r1"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                ok.expires_in,
                ok.refresh_token.as_deref(),
                ok.id_token.as_deref()
            ),
            (Some(3600), Some("r1"), Some("x.y.z"))
        );
        let refused = token_answer(
            400,
            r#"{"error":"invalid_grant","error_description":"The refresh token is invalid or expired."}"#,
        )
        .unwrap_err();
        assert!(refused.refresh_refused() && !refused.renewal_may_retry());
        let text = refused.to_string();
        assert!(
            text.contains("invalid_grant (The refresh token is invalid or expired.)"),
            "{text}"
        );
        assert!(text.contains("sign in again"), "{text}");
        let client = token_answer(401, r#"{"error":"invalid_client"}"#).unwrap_err();
        assert!(
            client.to_string().contains("Single-Page Application"),
            "{client}"
        );
        assert!(!client.refresh_refused() && !client.renewal_may_retry());
        let busy = token_answer(503, r#"{"error":"temporarily_unavailable"}"#).unwrap_err();
        assert!(busy.renewal_may_retry());
        // Neither RFC 6749 shape: said plainly, never trusted.
        assert_eq!(
            token_answer(502, "<html>Bad gateway</html>").unwrap_err(),
            CallbackError::TokenEndpointUnusable("answered HTTP 502".into())
        );
        assert!(matches!(
            token_answer(200, "<html>").unwrap_err(),
            CallbackError::TokenEndpointUnusable(_)
        ));
        assert!(matches!(
            token_answer(200, r#"{"expires_in":-5}"#).unwrap_err(),
            CallbackError::TokenEndpointUnusable(_)
        ));
        // What the issuer says is cut short and stripped of control characters.
        let long = format!(r#"{{"error":"x\n{}"}}"#, "y".repeat(1000));
        let err = token_answer(400, &long).unwrap_err();
        assert!(
            matches!(&err, CallbackError::TokenEndpoint { error, .. } if error.len() <= 300 && !error.contains('\n'))
        );
    }
}
