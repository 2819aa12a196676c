//! The axum middleware in front of the protected server functions: deny by
//! default. Every request under `/api/` that is not listed in
//! [`PUBLIC_ENDPOINTS`] must carry a valid Bearer token; without one the
//! layer answers it itself, in RFC 6750's terms (status,
//! `WWW-Authenticate`, `Retry-After`, JSON body), and no server function
//! runs. A new protected function is therefore protected without a line of
//! its own; making one public means adding it to the list.
//!
//! With a valid token the layer leaves an [`app::api::ssr::BearerAuth`] in
//! the request's extensions. It runs on the `Router`, before leptos_axum
//! hands the request to a server function, so the extension is part of
//! the request `Parts` that [`app::api::ssr::authorize`] reads to hand
//! the function the claims and check its scope.
//!
//! Every decision is counted by outcome ([`crate::bearer::stats`]); a
//! valid token whose function answers 403 counts as `insufficient_scope`.

use app::api::ssr::{error_response, BearerAuth};
use app::api::ApiError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::bearer::{Outcome, Validator};

/// The protected API lives under this path.
pub const API_PREFIX: &str = "/api/";

/// Server functions under [`API_PREFIX`] that anyone may call; no token is
/// looked at for them.
///
/// The probes `/healthz` and `/readyz` are public too, and outside the
/// layer altogether (they are not under `/api/`).
pub const PUBLIC_ENDPOINTS: &[&str] = &["/api/health", "/api/auth_config", "/api/issuer_key"];

/// Whether a request to `path` needs a valid Bearer token.
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
        match validator
            .authenticate(request.headers(), request.uri().query())
            .await
        {
            Ok(claims) => {
                request.extensions_mut().insert(BearerAuth(claims));
                let response = next.run(request).await;
                // Only `authorize(scope)` answers 403 behind a valid token.
                validator
                    .stats()
                    .record(match response.status() == StatusCode::FORBIDDEN {
                        true => Outcome::InsufficientScope,
                        false => Outcome::Valid,
                    });
                return response;
            }
            Err(err) => {
                validator.stats().record(Outcome::of(&err));
                // The description never contains the token, so it is safe
                // to log. Never above debug, per request: while the issuer
                // is down every request with an unknown kid is refused,
                // and a line each would let anyone flood the log at request
                // rate (the load harness saw 66,000 lines in 30 s). The
                // cause is logged at error once per JWKS fetch attempt,
                // which the refetch cool-down bounds.
                tracing::debug!(path = request.uri().path(), error = %err, "bearer token refused");
                return error_response(&ApiError::from(err));
            }
        }
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
