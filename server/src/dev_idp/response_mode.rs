//! How an authorization response reaches the client: the three
//! `response_mode`s this server speaks, behind one function, [`deliver`].
//!
//! | mode | how |
//! |---|---|
//! | `query` (the default for `code`) | `302` to `redirect_uri?…` |
//! | `fragment` (the default for the implicit flow) | `302` to `redirect_uri#…` |
//! | `okta_post_message` | a page that posts the parameters to the window that opened or framed it ([`super::post_message`]) |
//!
//! Which mode a response type may use is [`super::response_type`]'s
//! business (never tokens in a query). Okta's `form_post` and the draft
//! `web_message` are refused as `unsupported_response_mode`: nobody here
//! asks for them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::html;
use super::params::encode_pairs;
use super::post_message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// Okta's default for `code`.
    Query,
    #[default]
    Fragment,
    /// Okta's adaptation of the Web Message Response Mode draft, which its
    /// SDK uses for silent renewal in a hidden iframe and for popups.
    OktaPostMessage,
}

impl ResponseMode {
    /// `None` for every value this server does not speak.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "query" => Some(Self::Query),
            "fragment" => Some(Self::Fragment),
            "okta_post_message" => Some(Self::OktaPostMessage),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Fragment => "fragment",
            Self::OktaPostMessage => "okta_post_message",
        }
    }

    /// Every mode, for discovery's `response_modes_supported`.
    pub const ALL: [ResponseMode; 3] = [
        ResponseMode::Query,
        ResponseMode::Fragment,
        ResponseMode::OktaPostMessage,
    ];
}

/// Sends the response `params` (in order) to the client at `redirect_uri`,
/// a registered URI, in `mode`.
pub fn deliver(mode: ResponseMode, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let encoded = || encode_pairs(params.iter().copied());
    match mode {
        // The registered URI may have a query of its own (RFC 6749
        // §3.1.2 allows it, and says to keep it): add to it.
        ResponseMode::Query => {
            let separator = if redirect_uri.contains('?') { '&' } else { '?' };
            redirect(&format!("{redirect_uri}{separator}{}", encoded()))
        }
        ResponseMode::Fragment => redirect(&format!("{redirect_uri}#{}", encoded())),
        ResponseMode::OktaPostMessage => match html::csp_source(redirect_uri) {
            Some(origin) => post_message::page(&origin, params),
            // The authorization request is refused before this when its
            // redirect URI has no web origin (see `authorize::validate`).
            None => html::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in request is not valid",
                "The okta_post_message response mode needs an http or https redirect_uri.",
            ),
        },
    }
}

/// 302 to `location`, a registered URI with the response added. Not a
/// page, so no frame options: a `prompt=none` request in a hidden iframe
/// must be able to follow it.
fn redirect(location: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        // Registered URIs are parsed URLs and the response is
        // percent-encoded ASCII, so this does not happen.
        return html::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Server error",
            "The redirect address could not be built.",
        );
    };
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_modes_it_speaks_only() {
        assert_eq!(
            ResponseMode::parse("fragment"),
            Some(ResponseMode::Fragment)
        );
        assert_eq!(
            ResponseMode::parse("okta_post_message"),
            Some(ResponseMode::OktaPostMessage)
        );
        assert_eq!(ResponseMode::parse("query"), Some(ResponseMode::Query));
        for other in ["form_post", "web_message", "Fragment", "QUERY", ""] {
            assert_eq!(ResponseMode::parse(other), None, "{other}");
        }
        for mode in ResponseMode::ALL {
            assert_eq!(ResponseMode::parse(mode.as_str()), Some(mode));
        }
    }

    #[test]
    fn fragment_mode_redirects_with_everything_in_the_fragment() {
        let response = deliver(
            ResponseMode::Fragment,
            "http://app.test/cb",
            &[("error", "access_denied"), ("state", "a b")],
        );
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()["location"],
            "http://app.test/cb#error=access_denied&state=a%20b"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
    }

    #[test]
    fn query_mode_adds_to_the_registered_query() {
        let pairs = [("code", "c 1"), ("state", "s")];
        let response = deliver(ResponseMode::Query, "http://app.test/cb", &pairs);
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()["location"],
            "http://app.test/cb?code=c%201&state=s"
        );
        let response = deliver(ResponseMode::Query, "http://app.test/cb?tenant=a", &pairs);
        assert_eq!(
            response.headers()["location"],
            "http://app.test/cb?tenant=a&code=c%201&state=s"
        );
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    }
}
