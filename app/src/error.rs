//! The one error every server function answers with, in RFC 6750's terms,
//! as it travels: a JSON object `{"error": "<code>", ...}` whose `error`
//! is the RFC 6750 / OAuth error code, with the status and
//! `WWW-Authenticate` challenge that go with it. Below both the server
//! functions (`api.rs`) and the browser's sign-in code (`auth/`), which
//! read it without reaching into each other.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

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
    /// The DPoP proof sent with a DPoP-bound token is not acceptable (401,
    /// RFC 9449 §7.1): signature, key, `htm`/`htu`, `iat`, `ath`, reuse.
    /// Make a fresh proof; retrying the same one never helps.
    #[error("{error_description}")]
    InvalidDpopProof { error_description: String },
    /// The server wants a nonce in the DPoP proof (401, RFC 9449 §9): retry
    /// once with a new proof carrying the answer's `DPoP-Nonce` header.
    #[error("{error_description}")]
    UseDpopNonce { error_description: String },
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
            "invalid_dpop_proof" => ApiError::InvalidDpopProof {
                error_description: description()?,
            },
            "use_dpop_nonce" => ApiError::UseDpopNonce {
                error_description: description()?,
            },
            other => return Err(format!("unknown error {other:?}")),
        })
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized { .. }
            | ApiError::InvalidToken { .. }
            | ApiError::InvalidDpopProof { .. }
            | ApiError::UseDpopNonce { .. } => 401,
            ApiError::InvalidRequest { .. } => 400,
            ApiError::InsufficientScope { .. } => 403,
            ApiError::TemporarilyUnavailable { .. } => 503,
            ApiError::ServerError { .. } => 500,
            ApiError::PayloadTooLarge { .. } => 413,
        }
    }

    /// The `WWW-Authenticate` challenge for this error, if it has one.
    ///
    /// The DPoP errors get a `DPoP` challenge (RFC 9449 §7.1); the server
    /// that accepts DPoP answers with the challenges of every scheme it
    /// takes, built from this error (`server/src/bearer/challenge.rs`).
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
            ApiError::InvalidDpopProof { error_description } => Some(format!(
                "DPoP error=\"invalid_dpop_proof\", error_description=\"{}\"",
                quoted_string_safe(error_description)
            )),
            ApiError::UseDpopNonce { error_description } => Some(format!(
                "DPoP error=\"use_dpop_nonce\", error_description=\"{}\"",
                quoted_string_safe(error_description)
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
    //! Server-side half: the refusal answer (status, challenge, JSON body)
    //! shared by the server's layers and the server functions.

    use super::ApiError;
    use http::{header, HeaderName, HeaderValue, StatusCode};
    use leptos::prelude::*;
    use server_fn::error::ServerFnErrorErr;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::REPORTS_READ;

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
            ApiError::InvalidDpopProof {
                error_description: "the DPoP proof has been used before (jti)".into(),
            },
            ApiError::UseDpopNonce {
                error_description: "a nonce is needed".into(),
            },
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
        assert_eq!(
            serde_json::to_string(&ApiError::UseDpopNonce {
                error_description: "d".into()
            })
            .unwrap(),
            r#"{"error":"use_dpop_nonce","error_description":"d"}"#
        );
        assert_eq!(
            ApiError::InvalidDpopProof {
                error_description: "d".into()
            }
            .www_authenticate()
            .as_deref(),
            Some(r#"DPoP error="invalid_dpop_proof", error_description="d""#)
        );
        for bad in [
            r#"{"error":"invalid_dpop_proof"}"#,
            r#"{"error":"invalid_token"}"#,
            r#"{"error":"teapot","error_description":"x"}"#,
            r#"{"error_description":"x"}"#,
        ] {
            assert!(serde_json::from_str::<ApiError>(bad).is_err(), "{bad}");
        }
    }
}
