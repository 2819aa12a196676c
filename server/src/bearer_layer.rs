//! The axum middleware between the router and the protected server
//! functions: it validates the Bearer token of every request under `/api/`
//! (except the public endpoints) and leaves the outcome, an
//! [`app::api::ssr::BearerAuth`], in the request's extensions.
//!
//! It runs on the `Router`, before leptos_axum hands the request to a
//! server function, so the extension is part of the request `Parts` that
//! `leptos_axum::extract` reads in [`app::api::ssr::authorize`]. It never
//! answers the request itself: each server function states what it needs
//! and answers a refusal with the RFC 6750 status, challenge and JSON body.

use app::api::ssr::BearerAuth;
use app::api::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::bearer::Validator;

/// The protected API lives under this path.
pub const API_PREFIX: &str = "/api/";

/// Server functions under [`API_PREFIX`] that anyone may call; no token is
/// looked at for them.
pub const PUBLIC_ENDPOINTS: &[&str] = &["/api/health", "/api/auth_config", "/api/issuer_key"];

/// Whether a request to `path` gets its Bearer token validated.
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
    if is_protected(request.uri().path()) {
        let outcome = match validator
            .authenticate(request.headers(), request.uri().query())
            .await
        {
            Ok(claims) => BearerAuth::Valid(claims),
            Err(err) => {
                // The description never contains the token, so it is safe
                // to log. Never above debug, per request: while the issuer
                // is down every request with an unknown kid is refused,
                // and a line each would let anyone flood the log at request
                // rate (the load harness saw 66,000 lines in 30 s). The
                // cause is logged at error once per JWKS fetch attempt,
                // which the refetch cool-down bounds.
                tracing::debug!(path = request.uri().path(), error = %err, "bearer token refused");
                BearerAuth::Rejected(ApiError::from(err))
            }
        };
        request.extensions_mut().insert(outcome);
    }
    next.run(request).await
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
}
