//! `GET` and `POST {issuer}/v1/userinfo`: the OpenID Connect UserInfo
//! endpoint (OIDC Core §5.3), as Okta's custom authorization server has it.
//!
//! The access token comes in `Authorization: Bearer` (RFC 6750 §2.1), or,
//! bound to a key, in `Authorization: DPoP` with a DPoP proof for this
//! request (RFC 9449 §7), and nowhere else: a token in the query string or
//! a form body is refused, since URLs and bodies end up in logs; a
//! DPoP-bound token sent as a Bearer token is refused (§7.2). The claims are those the token's
//! scopes (`scp`) release (§5.4):
//!
//! | scope | claims |
//! |---|---|
//! | `openid` (required) | `sub`: the user's id, as in the ID token |
//! | `profile` | `name`, `preferred_username` |
//! | `email` | `email`, `email_verified` |
//!
//! Refusals speak RFC 6750 §3, in `WWW-Authenticate` and as JSON:
//!
//! | case | answer |
//! |---|---|
//! | no token, or another scheme | `401`, `Bearer realm="…"` (no error code, §3.1) |
//! | a malformed header; a token in the query or body | `400 invalid_request` |
//! | not our access token, expired, revoked, an ID token, a DPoP-bound token as Bearer | `401 invalid_token` |
//! | `DPoP` scheme: a proof missing, refused or by another key than `cnf.jkt` | `401`, `DPoP error="invalid_dpop_proof"` (or `"invalid_token"`) |
//! | no `openid` scope | `403 insufficient_scope`, `scope="openid"` |

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use std::borrow::Cow;

use crate::bearer::dpop::{Htu, ALGS};
use crate::bearer::header::{credentials, query_has_access_token, HeaderError, Scheme};

use super::config::User;
use super::oauth_error::no_store;
use super::params::parse_form;
use super::token_check::{check_access_token, TokenProblem};
use super::{tokens, DevIdpState};

/// Why a userinfo request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserinfoError {
    #[error("The access token is missing.")]
    MissingToken,
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("{0}")]
    InvalidToken(TokenProblem),
    #[error("The access token provided does not contain the required scopes.")]
    InsufficientScope,
    /// With the DPoP scheme: the proof is refused.
    #[error("{0}")]
    InvalidDpopProof(Cow<'static, str>),
    /// With the DPoP scheme: the token is not good for it.
    #[error("{0}")]
    DpopInvalidToken(TokenProblem),
}

impl UserinfoError {
    /// The answer, with the issuer as the challenge's realm. Every
    /// description is this server's own text without `"` or `\`, so it is
    /// a valid quoted-string.
    fn answer(self, realm: &str) -> Response {
        let description = self.to_string();
        let (status, error, extra) = match &self {
            Self::MissingToken => (StatusCode::UNAUTHORIZED, None, ""),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, Some("invalid_request"), ""),
            Self::InvalidToken(_) | Self::DpopInvalidToken(_) => {
                (StatusCode::UNAUTHORIZED, Some("invalid_token"), "")
            }
            Self::InvalidDpopProof(_) => (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"), ""),
            Self::InsufficientScope => (
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
                ", scope=\"openid\"",
            ),
        };
        let dpop = matches!(self, Self::InvalidDpopProof(_) | Self::DpopInvalidToken(_));
        let challenge = match error {
            None => format!("Bearer realm=\"{realm}\""),
            // RFC 9449 §7.1: the DPoP scheme's challenge, with its algs.
            Some(error) if dpop => format!(
                "DPoP realm=\"{realm}\", error=\"{error}\", \
                 error_description=\"{description}\", algs=\"{ALGS}\""
            ),
            Some(error) => format!(
                "Bearer realm=\"{realm}\", error=\"{error}\", \
                 error_description=\"{description}\"{extra}"
            ),
        };
        // A request without credentials gets the bare challenge and no
        // body: there is no error to name (RFC 6750 §3.1).
        let mut response = match error {
            None => status.into_response(),
            Some(error) => (
                status,
                Json(json!({ "error": error, "error_description": description })),
            )
                .into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        no_store(&mut response);
        response
    }
}

impl From<HeaderError> for UserinfoError {
    fn from(err: HeaderError) -> Self {
        match err {
            HeaderError::Missing | HeaderError::OtherScheme => Self::MissingToken,
            HeaderError::MultipleHeaders => {
                Self::InvalidRequest("The request has more than one Authorization header.")
            }
            HeaderError::TooLarge => {
                Self::InvalidRequest("The Authorization header is larger than 8 KiB.")
            }
            HeaderError::Empty => Self::InvalidRequest("The Bearer token is empty."),
            HeaderError::BadCharacters => Self::InvalidRequest(
                "The Bearer token has characters outside the b64token syntax of RFC 6750.",
            ),
            HeaderError::MultipleTokens => {
                Self::InvalidRequest("The Authorization header carries more than one token.")
            }
        }
    }
}

const TOKEN_IN_URL_OR_BODY: &str =
    "Send the access token in the Authorization header, never in the URL or the body.";

pub async fn userinfo(
    State(state): State<DevIdpState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match claims_for(&state, &method, query.as_deref(), &headers, &body) {
        Ok(claims) => {
            let mut response = (StatusCode::OK, Json(claims)).into_response();
            no_store(&mut response);
            response
        }
        Err(err) => {
            tracing::debug!(%err, "userinfo refused");
            err.answer(state.issuer())
        }
    }
}

fn claims_for(
    state: &DevIdpState,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, UserinfoError> {
    if query_has_access_token(query)
        || (*method == Method::POST && body_has_access_token(headers, body)?)
    {
        return Err(UserinfoError::InvalidRequest(TOKEN_IN_URL_OR_BODY));
    }
    let values: Vec<&[u8]> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let (scheme, token) = credentials(&values)?;
    let access =
        check_access_token(state, token, tokens::now()).map_err(UserinfoError::InvalidToken)?;
    match (scheme, &access.cnf) {
        (Scheme::Bearer, None) => {}
        (Scheme::Bearer, Some(_)) => {
            return Err(UserinfoError::InvalidToken(TokenProblem::DpopBound))
        }
        (Scheme::Dpop, None) => {
            return Err(UserinfoError::DpopInvalidToken(TokenProblem::NotDpopBound))
        }
        (Scheme::Dpop, Some(cnf)) => {
            let url = Htu::parse(&format!("{}/v1/userinfo", state.issuer())).ok_or(
                UserinfoError::InvalidDpopProof(
                    "'htu' claim in the DPoP proof JWT is invalid.".into(),
                ),
            )?;
            let jkt = state
                .inner
                .dpop
                .check_resource_request(headers, method.as_str(), &url, token)
                .map_err(UserinfoError::InvalidDpopProof)?;
            if jkt != cnf.jkt {
                return Err(UserinfoError::DpopInvalidToken(TokenProblem::WrongDpopKey));
            }
        }
    }
    if !access.scp.iter().any(|s| s == "openid") {
        return Err(UserinfoError::InsufficientScope);
    }
    // The token names its user by id (`uid`) and login (`sub`); the
    // configuration cannot change while the server runs, so the user is
    // there, but a token that names no user is no valid token.
    let user = state
        .config()
        .users
        .iter()
        .find(|u| u.id == access.uid && u.login.eq_ignore_ascii_case(&access.sub))
        .ok_or(UserinfoError::InvalidToken(TokenProblem::NotOurs))?;
    Ok(claims(user, &access.scp))
}

/// Whether a POST body is a form carrying `access_token` (RFC 6750 §2.2),
/// which this endpoint does not take. Any other body is ignored, as OIDC
/// Core defines none.
fn body_has_access_token(headers: &HeaderMap, body: &[u8]) -> Result<bool, UserinfoError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let is_form = content_type.is_some_and(|t| {
        t.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !is_form || body.is_empty() {
        return Ok(false);
    }
    let form = parse_form(content_type, body)
        .map_err(|_| UserinfoError::InvalidRequest("The request body is not a valid form."))?;
    Ok(form.get("access_token").ok().flatten().is_some())
}

/// The claims `scopes` release about `user` (OIDC Core §5.4).
pub fn claims(user: &User, scopes: &[String]) -> Value {
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    let mut claims = Map::new();
    claims.insert("sub".into(), user.id.clone().into());
    if has("profile") {
        claims.insert("name".into(), user.name.clone().into());
        claims.insert("preferred_username".into(), user.login.clone().into());
    }
    if has("email") {
        claims.insert("email".into(), user.email.clone().into());
        // The configured address is the user's own, as a verified primary
        // email is at Okta.
        claims.insert("email_verified".into(), true.into());
    }
    Value::Object(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev_idp::Config;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn claims_follow_the_scopes() {
        let config = Config::demo().unwrap();
        let alice = config.user_by_login("alice@example.com").unwrap();
        assert_eq!(
            claims(alice, &scopes(&["openid"])),
            json!({ "sub": "00ualicedev000000001" })
        );
        assert_eq!(
            claims(alice, &scopes(&["openid", "profile"])),
            json!({
                "sub": "00ualicedev000000001",
                "name": "Alice Example",
                "preferred_username": "alice@example.com"
            })
        );
        assert_eq!(
            claims(alice, &scopes(&["openid", "email", "reports:read"])),
            json!({
                "sub": "00ualicedev000000001",
                "email": "alice@example.com",
                "email_verified": true
            })
        );
    }

    #[test]
    fn refusals_carry_rfc_6750_challenges() {
        let realm = "http://idp.test/oauth2/default";
        let challenge = |err: UserinfoError| {
            let response = err.answer(realm);
            (
                response.status(),
                response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        };
        assert_eq!(
            challenge(UserinfoError::MissingToken),
            (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{realm}\"")
            )
        );
        let (status, value) = challenge(UserinfoError::InvalidToken(TokenProblem::Revoked));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            value,
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", \
                 error_description=\"The access token has been revoked.\""
            )
        );
        let (status, value) = challenge(UserinfoError::InsufficientScope);
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(value.contains("error=\"insufficient_scope\""), "{value}");
        assert!(value.ends_with(", scope=\"openid\""), "{value}");
        let (status, value) = challenge(UserinfoError::from(HeaderError::MultipleTokens));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(value.contains("error=\"invalid_request\""), "{value}");
    }
}
