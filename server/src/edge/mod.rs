//! Everything between the socket and a handler, in the order a request
//! meets it:
//!
//! | order | module | what it does | why there |
//! |---|---|---|---|
//! | 1 | [`serve`] | the connection loop: deadlines for the head, the body and the answer, the connection cap and eviction, memory per connection, graceful shutdown | owns the socket, so it alone can close it |
//! | 2 | [`request_span`] | the request's id, span, log line and duration metric | outermost layer, so it covers everything below, refusals included |
//! | 3 | security headers ([`layers`]) | `X-Frame-Options`, `X-Content-Type-Options`, `Referrer-Policy`, HSTS | on every answer, whichever layer below made it |
//! | 4 | [`delivery`] | compression, then the cache policy; the `/pkg` files with their precompressed copies | compresses what the layers below answer; the policy sees the final status |
//! | 5 | [`silent_callback`] | the silent-renewal page of the implicit flow | before the routes, and never cached or compressed differently from a page |
//! | 6 | [`body_limit`] | `413` for a body over `BODY_LIMIT_BYTES`, unread | nearest the routes, so nothing above reads an oversized body; axum's own limit is the same, so it never answers `400` first |
//! | 7 | [`bearer_layer`] | the bearer (and DPoP) gate of the server functions | nearest the routes; it looks only at paths under `/api/` that are not public, so pages, files and probes pass untouched |
//!
//! All of them wrap the router once, as one service ([`layers`]), rather
//! than through `Router::layer`, which wraps each route on its own: a
//! `from_fn` layer clones the service inside it on every request, and
//! inside a route that is the whole stack down to the Leptos handler with
//! everything it captured, once per layer. Around the router as a whole,
//! what each layer clones is the router, one reference count. The
//! connection loop calls that service directly, with no router around it
//! (issue 28: the profile of a cached call).

pub mod bearer_layer;
pub mod body_limit;
pub mod delivery;
pub mod request_span;
pub mod serve;
pub mod silent_callback;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Router;
use tower::ServiceBuilder;

use crate::bearer::Validator;
use crate::edge::request_span::RequestSpanLayer;
use crate::RouterSettings;

/// What every answer goes through, in the order of the table above, wrapped
/// once around the whole router: `routes` is the router without any layer,
/// and `validator` the bearer layer's.
pub fn layers(
    routes: Router,
    settings: &RouterSettings,
    validator: Validator,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    let security_headers = SecurityHeaders {
        hsts: settings.hsts.clone(),
    };
    ServiceBuilder::new()
        .layer(RequestSpanLayer::new(settings.metrics.clone()))
        // Compression's answers carry its own body type; back to axum's,
        // with the security headers set on the way.
        .map_response(move |response| security_headers.apply(IntoResponse::into_response(response)))
        .layer(delivery::compression())
        .layer(axum::middleware::from_fn(delivery::cache_policy))
        .layer(axum::middleware::from_fn(silent_callback::silent_callback))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit::BodyLimit(settings.body_limit),
            body_limit::limit_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            validator,
            bearer_layer::bearer_auth,
        ))
        .service(routes)
}

/// The headers every answer carries, refusals included (pages set their
/// own Content-Security-Policy: it carries the hydration scripts' nonce).
/// One step for all of them, where a `SetResponseHeader` layer each would
/// move the response through a future of its own per header.
#[derive(Clone)]
struct SecurityHeaders {
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    fn apply(&self, mut response: axum::response::Response) -> axum::response::Response {
        let headers = response.headers_mut();
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        // A page may allow its own framing (the silent-renewal page does).
        if !headers.contains_key(header::X_FRAME_OPTIONS) {
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        response
    }
}
