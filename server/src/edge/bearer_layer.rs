//! The axum middleware in front of the protected server functions: deny by
//! default. Every request under `/api/` that is not listed in
//! [`PUBLIC_ENDPOINTS`] must carry a valid access token, a Bearer token or
//! a DPoP-bound token with its proof; without one the layer answers it
//! itself, in RFC 6750's and RFC 9449's terms (status, `WWW-Authenticate`
//! for each scheme taken, `DPoP-Nonce`, `Retry-After`, JSON body), and no
//! server function runs. A new protected function is therefore protected
//! without a line of its own; making one public means adding it to the
//! list.
//!
//! With a valid token the layer leaves an [`app::api::ssr::BearerAuth`] in
//! the request's extensions. It wraps the router (innermost of
//! [`crate::edge::layers`]), so the extension is there before leptos_axum
//! hands the request to a server function, part of the request `Parts`
//! that [`app::api::ssr::authorize`] reads to hand the function the
//! claims and check its scope.
//!
//! With `DPOP_NONCE=1` every 401 carries a fresh `DPoP-Nonce`, and so does
//! an answer to a proof whose nonce is getting old (RFC 9449 §8.2, §9).
//!
//! Every decision is counted by outcome ([`crate::bearer::stats`]); a
//! valid token whose function answers 403 counts as `insufficient_scope`.

use app::api::ssr::BearerAuth;
use app::error::ssr::error_response;
use app::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::bearer::challenge::challenges;
use crate::bearer::dpop::DPOP_NONCE_HEADER;
use crate::bearer::header::Scheme;
use crate::bearer::{Outcome, Validator};

/// The protected API lives under this path.
pub const API_PREFIX: &str = "/api/";

/// Server functions under [`API_PREFIX`] that anyone may call; no token is
/// looked at for them.
///
/// The probes `/healthz` and `/readyz` are public too, and outside the
/// layer altogether (they are not under `/api/`).
pub const PUBLIC_ENDPOINTS: &[&str] = &["/api/health", "/api/auth_config", "/api/issuer_key"];

/// Whether a request to `path` needs a valid access token.
pub fn is_protected(path: &str) -> bool {
    path.starts_with(API_PREFIX) && !PUBLIC_ENDPOINTS.contains(&path)
}

/// The middleware; install with
/// `axum::middleware::from_fn_with_state(validator, bearer_auth)`.
pub async fn bearer_auth(
    State(validator): State<Validator>,
    mut request: Request,
    next: Next,
) -> Response {
    if !is_protected(request.uri().path()) {
        return next.run(request).await;
    }
    let result = validator
        .authenticate(
            request.method().as_str(),
            request.uri().path(),
            request.headers(),
            request.uri().query(),
        )
        .await;
    match result {
        Ok(caller) => {
            request.extensions_mut().insert(BearerAuth(caller.claims));
            let mut response = next.run(request).await;
            let status = response.status();
            // Only `authorize(scope)` answers 403 behind a valid token.
            validator.stats().record(match (status, caller.scheme) {
                (StatusCode::FORBIDDEN, _) => Outcome::InsufficientScope,
                (_, Scheme::Bearer) => Outcome::Valid,
                (_, Scheme::Dpop) => Outcome::ValidDpop,
            });
            if caller.scheme == Scheme::Dpop {
                // The function's own refusal speaks Bearer; this request
                // spoke DPoP.
                rescheme(&validator, response.headers_mut());
            }
            if caller.renew_nonce || status == StatusCode::UNAUTHORIZED {
                add_nonce(&validator, response.headers_mut());
            }
            response
        }
        Err(refusal) => {
            validator.stats().record(Outcome::of(&refusal.error));
            // The description never contains the token or the proof, so it
            // is safe to log. Never above debug, per request: while the
            // issuer is down every request with an unknown kid is refused,
            // and a line each would let anyone flood the log at request
            // rate (the load harness saw 66,000 lines in 30 s). The cause
            // is logged at error once per JWKS fetch attempt, which the
            // refetch cool-down bounds.
            tracing::debug!(path = request.uri().path(), error = %refusal.error, "bearer token refused");
            let err = ApiError::from(refusal.error);
            let mut response = error_response(&err);
            set_challenges(
                response.headers_mut(),
                challenges(&err, refusal.scheme, validator.schemes()),
            );
            if response.status() == StatusCode::UNAUTHORIZED {
                add_nonce(&validator, response.headers_mut());
            }
            response
        }
    }
}

/// Replaces the `WWW-Authenticate` fields of a function's refusal (made
/// from its [`ApiError`], in the Bearer scheme) by the challenges for a
/// request that used DPoP.
fn rescheme(validator: &Validator, headers: &mut HeaderMap) {
    let Some(err) = headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(function_error)
    else {
        return;
    };
    set_challenges(
        headers,
        challenges(&err, Some(Scheme::Dpop), validator.schemes()),
    );
}

/// The [`ApiError`] a protected function's challenge names: what
/// `authorize` answers, 403 `insufficient_scope` or its fail-closed 401.
fn function_error(challenge: &str) -> Option<ApiError> {
    const SCOPE: &str = "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"";
    if let Some(rest) = challenge.strip_prefix(SCOPE) {
        return Some(ApiError::InsufficientScope {
            scope: rest.strip_suffix('"')?.to_string(),
        });
    }
    (challenge == "Bearer realm=\"api\"").then(|| ApiError::Unauthorized {
        error_description: String::new(),
    })
}

fn set_challenges(headers: &mut HeaderMap, values: Vec<String>) {
    headers.remove(header::WWW_AUTHENTICATE);
    for value in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
    }
}

/// A fresh `DPoP-Nonce`, when `DPOP_NONCE=1`. The API's answers are
/// never cached (`Cache-Control: no-store`), as RFC 9449 §8.2 asks of
/// answers that carry one.
fn add_nonce(validator: &Validator, headers: &mut HeaderMap) {
    if let Some(nonce) = validator.issue_nonce() {
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            headers.insert(HeaderName::from_static(DPOP_NONCE_HEADER), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protects_the_api_but_not_the_site_or_health() {
        assert!(is_protected("/api/whoami"));
        assert!(is_protected("/api/report"));
        assert!(is_protected("/api/anything"));
        assert!(!is_protected("/api/health"));
        assert!(!is_protected("/"));
        assert!(!is_protected("/login/callback"));
        assert!(!is_protected("/pkg/app.wasm"));
        assert!(!is_protected("/apix"));
    }

    #[test]
    fn reads_the_functions_own_refusals() {
        assert_eq!(
            function_error(
                r#"Bearer realm="api", error="insufficient_scope", scope="reports:read""#
            ),
            Some(ApiError::InsufficientScope {
                scope: "reports:read".into()
            })
        );
        assert!(matches!(
            function_error(r#"Bearer realm="api""#),
            Some(ApiError::Unauthorized { .. })
        ));
        assert_eq!(function_error("Basic"), None);
    }
}
