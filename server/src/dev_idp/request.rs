//! The checked authorization request, and the error redirect that answers
//! it: what [`super::authorize`] hands to the sign-in form
//! ([`super::sign_in`]) and what both send back to the client when the
//! request cannot be granted.

use axum::response::{IntoResponse, Response};

use super::response_mode::{deliver, ResponseMode};
use super::response_type::ResponseType;

/// `prompt`: only the values Okta documents for these flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Sign in only if there is no session.
    Default,
    /// Never show a page: tokens or `login_required`.
    None,
    /// Always ask for the password again.
    Login,
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    /// Asked-for scopes, all supported, without duplicates, in asked order.
    pub scopes: Vec<String>,
    pub state: String,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub login_hint: Option<String>,
    /// The PKCE S256 challenge: always with `code`, never without.
    pub code_challenge: Option<String>,
}

/// The OAuth 2.0 / OIDC error codes this endpoint sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    UnsupportedResponseType,
    UnsupportedResponseMode,
    InvalidScope,
    LoginRequired,
    AccessDenied,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedResponseMode => "unsupported_response_mode",
            Self::InvalidScope => "invalid_scope",
            Self::LoginRequired => "login_required",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
        }
    }
}

/// An error sent back to the client, in its response mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub error: ErrorCode,
    /// ASCII without `"` or `\` (RFC 6749 §4.2.2.1): no user input in it.
    pub description: String,
    pub state: Option<String>,
}

impl ErrorResponse {
    pub fn new(request: &AuthorizeRequest, error: ErrorCode, description: &str) -> Self {
        Self {
            redirect_uri: request.redirect_uri.clone(),
            response_mode: request.response_mode,
            error,
            description: description.to_owned(),
            state: Some(request.state.clone()),
        }
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let mut pairs = vec![
            ("error", self.error.as_str()),
            ("error_description", self.description.as_str()),
        ];
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        deliver(self.response_mode, &self.redirect_uri, &pairs)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    const CB: &str = "http://app.test/login/callback";

    #[test]
    fn error_response_in_fragment_mode_puts_everything_in_the_fragment() {
        let response = ErrorResponse {
            redirect_uri: CB.into(),
            response_mode: ResponseMode::Fragment,
            error: ErrorCode::AccessDenied,
            description: "The user cancelled.".into(),
            state: Some("a b".into()),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()["location"],
            "http://app.test/login/callback#error=access_denied\
             &error_description=The%20user%20cancelled.&state=a%20b"
        );
        assert!(response.headers().get("x-frame-options").is_none());
    }
}
