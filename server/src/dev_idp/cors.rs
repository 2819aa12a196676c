//! CORS as Okta does it for its *Trusted Origins*: the endpoints a browser
//! app reads with `fetch` answer the trusted origins, with the methods and
//! request headers those calls use, and nobody else.
//!
//! Okta's own browser SDK (okta-auth-js) sends `Content-Type:
//! application/json` and `X-Okta-User-Agent-Extended` on every call, and
//! `Authorization` on userinfo and revoke, so each of its calls is preceded
//! by a preflight. The trusted origins are the clients' redirect URIs'
//! origins and the config's `trusted_origins` ([`Config::cors_origins`]).
//!
//! | request | answer |
//! |---|---|
//! | no `Origin`, or this server's own | served as is, no CORS headers |
//! | preflight from a trusted origin, asking for allowed method and headers | `204` with the `Access-Control-Allow-*` headers |
//! | any other preflight | `403`, no CORS headers |
//! | request from a trusted origin | served, with `Access-Control-Allow-Origin: <origin>` |
//! | request from any other origin | `403`, no CORS headers |
//!
//! Paths not listed in [`policy`] (authorize, the sign-in form, logout, the
//! test controls) never get CORS headers whatever the origin: their pages
//! are for navigations, never for scripts on other sites to read.

use std::collections::HashSet;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::config::Config;
use super::{DevIdpState, ISSUER_PATH};

/// The request headers a trusted origin may send: what okta-auth-js sends
/// (`Accept`, `Authorization`, `Content-Type`, `DPoP`,
/// `X-Okta-User-Agent-Extended`) and `X-Requested-With`, which Okta's
/// sign-in widget adds. Lower case, as preflights list them.
pub const ALLOWED_HEADERS: &[&str] = &[
    "accept",
    "authorization",
    "content-type",
    "dpop",
    "x-okta-user-agent-extended",
    "x-requested-with",
];

/// How long a browser may cache a preflight's answer. The trusted origins
/// are read once at start-up, so a change means a restart anyway.
const MAX_AGE_SECS: &str = "600";

/// The response headers a script may read besides the safelisted ones:
/// userinfo's error is in `WWW-Authenticate`, which okta-auth-js reads,
/// and the token endpoint's DPoP nonce in `DPoP-Nonce` (RFC 9449 §8).
const EXPOSED_HEADERS: &str = "WWW-Authenticate, DPoP-Nonce";

/// The methods each CORS endpoint allows, by path under the issuer; `None`
/// for every path that is not a CORS endpoint.
pub fn policy(path: &str) -> Option<&'static [Method]> {
    const GET: &[Method] = &[Method::GET];
    const GET_POST: &[Method] = &[Method::GET, Method::POST];
    const POST: &[Method] = &[Method::POST];
    match path {
        "/.well-known/openid-configuration"
        | "/.well-known/oauth-authorization-server"
        | "/v1/keys" => Some(GET),
        "/v1/userinfo" => Some(GET_POST),
        "/v1/token" | "/v1/revoke" | "/v1/introspect" => Some(POST),
        _ => None,
    }
}

/// The origins that may read the CORS endpoints, as bare origins.
#[derive(Debug, Clone, Default)]
pub struct TrustedOrigins(HashSet<String>);

impl TrustedOrigins {
    pub fn from_config(config: &Config) -> Self {
        Self(config.cors_origins().into_iter().collect())
    }

    /// Exact comparison: an `Origin` header is already serialized the one
    /// way browsers write it (lower-case scheme and host, no default port).
    pub fn contains(&self, origin: &str) -> bool {
        self.0.contains(origin)
    }
}

/// Why a preflight is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("the origin is not a trusted origin of this authorization server")]
    UntrustedOrigin,
    #[error("this endpoint does not allow that method")]
    Method,
    #[error("this endpoint does not allow the request header {0:?}")]
    Header(String),
}

/// Checks a preflight: `Access-Control-Request-Method` must be one the
/// endpoint allows and every name in `Access-Control-Request-Headers` one
/// of [`ALLOWED_HEADERS`].
pub fn check_preflight(
    trusted: bool,
    allowed: &[Method],
    requested_method: &[u8],
    requested_headers: Option<&str>,
) -> Result<(), PreflightError> {
    if !trusted {
        return Err(PreflightError::UntrustedOrigin);
    }
    if !allowed
        .iter()
        .any(|m| m.as_str().as_bytes() == requested_method)
    {
        return Err(PreflightError::Method);
    }
    let names = requested_headers
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty());
    for name in names {
        if !ALLOWED_HEADERS
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
        {
            // Header names are tokens; anything longer or odder is not
            // worth echoing.
            let shown = if name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic()) {
                name.to_owned()
            } else {
                "…".to_owned()
            };
            return Err(PreflightError::Header(shown));
        }
    }
    Ok(())
}

/// The middleware around the issuer's routes.
pub async fn cors(State(state): State<DevIdpState>, request: Request, next: Next) -> Response {
    let Some(allowed) = request
        .uri()
        .path()
        .strip_prefix(ISSUER_PATH)
        .and_then(policy)
    else {
        return next.run(request).await;
    };
    let mut response = answer(&state, allowed, request, next).await;
    // Every answer of a CORS endpoint depends on the Origin, those without
    // CORS headers too: a cache must not hand one origin's answer to
    // another.
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

async fn answer(state: &DevIdpState, allowed: &[Method], request: Request, next: Next) -> Response {
    let headers = request.headers();
    let Some(origin) = headers.get(header::ORIGIN) else {
        return next.run(request).await;
    };
    let origin = origin.to_str().unwrap_or_default().to_owned();
    if state.is_own_origin(&origin, headers) {
        return next.run(request).await;
    }
    let trusted = state.inner.cors.contains(&origin);

    let preflight_method = (*request.method() == Method::OPTIONS)
        .then(|| headers.get(header::ACCESS_CONTROL_REQUEST_METHOD))
        .flatten();
    if let Some(method) = preflight_method {
        let requested_headers = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        return match check_preflight(trusted, allowed, method.as_bytes(), requested_headers) {
            Ok(()) => preflight_answer(&origin, allowed),
            Err(err) => refuse(&err.to_string()),
        };
    }
    if !trusted {
        return refuse(&PreflightError::UntrustedOrigin.to_string());
    }
    let mut response = next.run(request).await;
    allow_origin(response.headers_mut(), &origin);
    response.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    response
}

fn allow_origin(headers: &mut HeaderMap, origin: &str) {
    // The origin was found in the trusted set, which holds only parsed
    // URL origins, so it is a valid header value.
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}

fn preflight_answer(origin: &str, allowed: &[Method]) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    let methods = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(value) = HeaderValue::from_str(&methods) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    if let Ok(value) = HeaderValue::from_str(&ALLOWED_HEADERS.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECS),
    );
    response
}

/// A `403` a browser cannot read (no CORS headers), with a body that tells
/// someone trying with curl what is wrong.
fn refuse(description: &str) -> Response {
    tracing::debug!(description, "cross-origin request refused");
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "error": "access_denied", "error_description": description })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fetch_endpoints_have_a_policy() {
        assert_eq!(policy("/v1/keys"), Some(&[Method::GET][..]));
        assert_eq!(
            policy("/v1/userinfo"),
            Some(&[Method::GET, Method::POST][..])
        );
        assert_eq!(policy("/v1/token"), Some(&[Method::POST][..]));
        assert_eq!(policy("/v1/revoke"), Some(&[Method::POST][..]));
        assert_eq!(policy("/v1/introspect"), Some(&[Method::POST][..]));
        assert!(policy("/.well-known/openid-configuration").is_some());
        assert!(policy("/.well-known/oauth-authorization-server").is_some());
        for never in [
            "/v1/authorize",
            "/v1/sign-in",
            "/v1/logout",
            "/v1/token/",
            "/dev/rotate-keys",
            "/v1/keys/",
            "",
        ] {
            assert_eq!(policy(never), None, "{never}");
        }
    }

    #[test]
    fn preflights_are_checked_for_origin_method_and_headers() {
        let post = &[Method::POST][..];
        let sdk_headers = "authorization,content-type,dpop,x-okta-user-agent-extended";
        assert_eq!(
            check_preflight(true, post, b"POST", Some(sdk_headers)),
            Ok(())
        );
        assert_eq!(check_preflight(true, post, b"POST", None), Ok(()));
        assert_eq!(
            check_preflight(true, post, b"POST", Some(" Accept , X-Requested-With ,")),
            Ok(())
        );
        assert_eq!(
            check_preflight(false, post, b"POST", Some(sdk_headers)),
            Err(PreflightError::UntrustedOrigin)
        );
        assert_eq!(
            check_preflight(true, post, b"GET", None),
            Err(PreflightError::Method)
        );
        assert_eq!(
            check_preflight(true, post, b"post", None),
            Err(PreflightError::Method),
            "methods are case-sensitive"
        );
        assert_eq!(
            check_preflight(true, post, b"POST", Some("content-type, x-custom")),
            Err(PreflightError::Header("x-custom".into()))
        );
        assert_eq!(
            check_preflight(true, post, b"POST", Some("cookie")),
            Err(PreflightError::Header("cookie".into()))
        );
    }
}
