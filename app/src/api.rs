//! The protected API: the server functions of DESIGN.md, the values they
//! return and the one error type every one of them answers with.
//!
//! The Bearer access token is validated by the server before any of these
//! run: `server/src/bearer_layer.rs` refuses every request under `/api/`
//! that is not public and lacks a valid token, so a protected function
//! only ever runs for a valid token. [`ssr::authorize`] hands it the
//! caller's claims and checks the scope it needs.

use std::sync::Arc;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// The scope `report` needs.
pub const REPORTS_READ: &str = "reports:read";

/// The checked claims of the caller's access token, as `whoami` returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub uid: Option<String>,
    pub cid: Option<String>,
    pub scopes: Vec<String>,
    pub issuer: String,
    /// Expiry of the access token, in Unix seconds.
    pub expires_at: i64,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: u32,
    /// ISO 8601 date.
    pub date: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyReport {
    pub title: String,
    pub generated_for: String,
    pub rows: Vec<ReportRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    pub label: String,
    pub value: u64,
}

/// Every way a protected call can fail, in RFC 6750's terms.
///
/// On the wire it is a JSON object `{"error": "<code>", ...}` whose `error`
/// is the RFC 6750 / OAuth error code, so curl users and the app read the
/// same thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case", try_from = "WireError")]
pub enum ApiError {
    /// No credentials at all, or not the Bearer scheme (401, no error code).
    #[error("{error_description}")]
    Unauthorized { error_description: String },
    /// The `Authorization` header is malformed (400).
    #[error("{error_description}")]
    InvalidRequest { error_description: String },
    /// The token is not acceptable: signature, expiry, issuer, audience... (401).
    #[error("{error_description}")]
    InvalidToken { error_description: String },
    /// A valid token that lacks the scope this function needs (403).
    #[error("this needs the {scope} scope")]
    InsufficientScope { scope: String },
    /// The issuer's keys cannot be had right now (503).
    #[error("the token cannot be checked right now; retry in {retry_after} s")]
    TemporarilyUnavailable { retry_after: u64 },
    /// Anything else: the request could not be decoded or the server failed.
    #[error("{error_description}")]
    ServerError { error_description: String },
    /// The request body is larger than the server accepts (413); `limit`
    /// is that size in bytes. Not about credentials: no challenge.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
}

/// [`ApiError`] as it arrives, read as one flat object. Serde reads an
/// internally tagged enum through a buffered copy of the whole value, whose
/// code costs the wasm about 20 KB; this costs a plain struct's.
#[derive(Deserialize)]
struct WireError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

impl TryFrom<WireError> for ApiError {
    type Error = String;

    fn try_from(wire: WireError) -> Result<Self, Self::Error> {
        let missing = |field: &str| format!("a {} error needs {field}", wire.error);
        let description = || {
            wire.error_description
                .clone()
                .ok_or_else(|| missing("error_description"))
        };
        Ok(match wire.error.as_str() {
            "unauthorized" => ApiError::Unauthorized {
                error_description: description()?,
            },
            "invalid_request" => ApiError::InvalidRequest {
                error_description: description()?,
            },
            "invalid_token" => ApiError::InvalidToken {
                error_description: description()?,
            },
            "server_error" => ApiError::ServerError {
                error_description: description()?,
            },
            "insufficient_scope" => ApiError::InsufficientScope {
                scope: wire.scope.clone().ok_or_else(|| missing("scope"))?,
            },
            "temporarily_unavailable" => ApiError::TemporarilyUnavailable {
                retry_after: wire.retry_after.ok_or_else(|| missing("retry_after"))?,
            },
            "payload_too_large" => ApiError::PayloadTooLarge {
                limit: wire.limit.ok_or_else(|| missing("limit"))?,
            },
            other => return Err(format!("unknown error {other:?}")),
        })
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized { .. } | ApiError::InvalidToken { .. } => 401,
            ApiError::InvalidRequest { .. } => 400,
            ApiError::InsufficientScope { .. } => 403,
            ApiError::TemporarilyUnavailable { .. } => 503,
            ApiError::ServerError { .. } => 500,
            ApiError::PayloadTooLarge { .. } => 413,
        }
    }

    /// The `WWW-Authenticate` challenge for this error, if it has one.
    pub fn www_authenticate(&self) -> Option<String> {
        let realm = "Bearer realm=\"api\"";
        match self {
            ApiError::Unauthorized { .. } => Some(realm.to_string()),
            ApiError::InvalidRequest { error_description } => Some(format!(
                "{realm}, error=\"invalid_request\", error_description=\"{}\"",
                quoted_string_safe(error_description)
            )),
            ApiError::InvalidToken { error_description } => Some(format!(
                "{realm}, error=\"invalid_token\", error_description=\"{}\"",
                quoted_string_safe(error_description)
            )),
            ApiError::InsufficientScope { scope } => Some(format!(
                "{realm}, error=\"insufficient_scope\", scope=\"{}\"",
                quoted_string_safe(scope)
            )),
            ApiError::TemporarilyUnavailable { .. }
            | ApiError::ServerError { .. }
            | ApiError::PayloadTooLarge { .. } => None,
        }
    }
}

/// RFC 6750 limits `error_description` and `scope` to printable ASCII
/// without `"` and `\`; drop anything else rather than emit a broken header.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~'))
        .collect()
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        #[cfg(feature = "ssr")]
        {
            // On the server this runs inside the server function's scope,
            // so the status can still be set.
            let err = ssr::from_server_side_failure(value);
            ssr::set_error_response(&err);
            err
        }
        #[cfg(not(feature = "ssr"))]
        ApiError::ServerError {
            error_description: value.to_string(),
        }
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side half: what the bearer layer leaves on the request, the
    //! scope check a protected function makes, and the refusal answer
    //! (status, challenge, JSON body) shared by the layer and the functions.

    use super::{AccessClaims, ApiError, Arc};
    use http::{header, HeaderName, HeaderValue, StatusCode};
    use leptos::prelude::*;
    use server_fn::error::ServerFnErrorErr;

    /// The caller's checked access token. The server's bearer layer inserts
    /// it as a request extension, and only for a valid token: it answers
    /// every other request under the protected API itself, so no protected
    /// server function runs without one.
    #[derive(Clone, Debug)]
    pub struct BearerAuth(
        /// Shared with the verified-token cache, so the request's copies of
        /// it cost a reference count each.
        pub Arc<AccessClaims>,
    );

    /// The caller's checked claims, if they have `scope` (or any valid token
    /// when `scope` is `None`); otherwise the RFC 6750 error, with status and
    /// `WWW-Authenticate` already set on the response.
    pub async fn authorize(scope: Option<&str>) -> Result<Arc<AccessClaims>, ApiError> {
        // Read the extension in place: `leptos_axum::extract` would clone
        // the whole request head first.
        let claims = with_context::<http::request::Parts, _>(|parts| {
            parts
                .extensions
                .get::<BearerAuth>()
                .map(|auth| auth.0.clone())
        })
        .flatten();
        let result = match (claims, scope) {
            // No valid token reached this function: the bearer layer is not
            // in front of it, or this path is listed as public. Fail closed.
            (None, _) => Err(ApiError::Unauthorized {
                error_description: "this function needs a Bearer token, but the server did not check one for this path".into(),
            }),
            (Some(claims), Some(scope)) if !claims.has_scope(scope) => {
                Err(ApiError::InsufficientScope {
                    scope: scope.to_string(),
                })
            }
            (Some(claims), _) => Ok(claims),
        };
        if let Err(err) = &result {
            set_error_response(err);
        }
        result
    }

    /// The answer to a request the server-function machinery could not
    /// handle. A request that cannot be decoded is the caller's problem
    /// (400 `invalid_request`: RFC 6750's "otherwise malformed"), so no
    /// request causes a 500 by what it carries.
    pub fn from_server_side_failure(failure: ServerFnErrorErr) -> ApiError {
        match failure {
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_) => ApiError::InvalidRequest {
                error_description: "the request could not be decoded".into(),
            },
            other => ApiError::ServerError {
                error_description: other.to_string(),
            },
        }
    }

    /// The status of `err`'s answer.
    pub fn error_status(err: &ApiError) -> StatusCode {
        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    /// The headers of `err`'s answer: `WWW-Authenticate`, `Retry-After` and
    /// `Cache-Control: no-store`.
    pub fn error_headers(err: &ApiError) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::with_capacity(3);
        if let Some(value) = err
            .www_authenticate()
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.push((header::WWW_AUTHENTICATE, value));
        }
        if let ApiError::TemporarilyUnavailable { retry_after } = err {
            headers.push((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
        }
        headers.push((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        headers
    }

    /// Puts the status and headers of `err` on the server function's
    /// response (the body is the function's encoded error).
    pub fn set_error_response(err: &ApiError) {
        let Some(resp) = use_context::<leptos_axum::ResponseOptions>() else {
            return;
        };
        resp.set_status(error_status(err));
        for (name, value) in error_headers(err) {
            resp.insert_header(name, value);
        }
    }

    /// The whole answer for `err`, for a refusal made before any server
    /// function runs: the same status, headers and JSON body a function
    /// returning `Err(err)` gets, so clients cannot tell the two apart.
    pub fn error_response(err: &ApiError) -> axum::response::Response {
        let body = serde_json::to_vec(err).unwrap_or_default();
        let mut response = axum::response::Response::new(axum::body::Body::from(body));
        *response.status_mut() = error_status(err);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in error_headers(err) {
            headers.insert(name, value);
        }
        response
    }
}

/// A public liveness check: no token needed (the bearer layer skips
/// `/api/health`). Answers `"ok"`.
#[server(endpoint = "health")]
pub async fn health() -> Result<String, ApiError> {
    Ok("ok".to_string())
}

/// Who the caller is, according to their access token.
#[server(endpoint = "whoami", client = crate::auth::client::AuthClient)]
pub async fn whoami() -> Result<Arc<AccessClaims>, ApiError> {
    ssr::authorize(None).await
}

/// The caller's messages.
#[server(endpoint = "messages", client = crate::auth::client::AuthClient)]
pub async fn messages() -> Result<Vec<Message>, ApiError> {
    let caller = ssr::authorize(None).await?;
    Ok(demo_messages(&caller.sub))
}

/// A small report; needs the `reports:read` scope.
#[server(endpoint = "report", client = crate::auth::client::AuthClient)]
pub async fn report() -> Result<WeeklyReport, ApiError> {
    let caller = ssr::authorize(Some(REPORTS_READ)).await?;
    Ok(WeeklyReport {
        title: "Sign-ins this week".into(),
        generated_for: caller.sub.clone(),
        rows: vec![
            ReportRow {
                label: "Monday".into(),
                value: 12,
            },
            ReportRow {
                label: "Tuesday".into(),
                value: 9,
            },
            ReportRow {
                label: "Wednesday".into(),
                value: 15,
            },
        ],
    })
}

/// Messages addressed to `sub`; fixed demo data, the same on every call.
pub fn demo_messages(sub: &str) -> Vec<Message> {
    vec![
        Message {
            id: 1,
            date: "2026-11-02".into(),
            text: format!("Welcome, {sub}. Your sign-in went through the implicit flow."),
        },
        Message {
            id: 2,
            date: "2026-11-15".into(),
            text: "This message came from a server function that checked your access token.".into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_reads_back_as_it_was_written() {
        let all = [
            ApiError::Unauthorized {
                error_description: "no token".into(),
            },
            ApiError::InvalidRequest {
                error_description: "two tokens".into(),
            },
            ApiError::InvalidToken {
                error_description: "expired".into(),
            },
            ApiError::InsufficientScope {
                scope: REPORTS_READ.into(),
            },
            ApiError::TemporarilyUnavailable { retry_after: 30 },
            ApiError::ServerError {
                error_description: "oops".into(),
            },
            ApiError::PayloadTooLarge { limit: 65536 },
        ];
        for err in all {
            let json = serde_json::to_string(&err).unwrap();
            assert_eq!(
                serde_json::from_str::<ApiError>(&json).unwrap(),
                err,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&ApiError::InsufficientScope { scope: "s".into() }).unwrap(),
            r#"{"error":"insufficient_scope","scope":"s"}"#
        );
        for bad in [
            r#"{"error":"invalid_token"}"#,
            r#"{"error":"teapot","error_description":"x"}"#,
            r#"{"error_description":"x"}"#,
        ] {
            assert!(serde_json::from_str::<ApiError>(bad).is_err(), "{bad}");
        }
    }
}
