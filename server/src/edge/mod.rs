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
//! | 7 | [`bearer_layer`] | the bearer (and DPoP) gate of the server functions | on the server-function routes only, inside the router: pages, files and probes are public |
//!
//! Layers 2 to 6 wrap the router once, as one service ([`layers`]), rather
//! than through `Router::layer`, which wraps each route on its own: a
//! `from_fn` layer clones the service inside it on every request, and
//! inside a route that is the whole stack down to the Leptos handler with
//! everything it captured, once per layer. Around the router as a whole,
//! what each layer clones is the router, one reference count.

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
use tower_http::set_header::SetResponseHeaderLayer;

use crate::edge::request_span::RequestSpanLayer;
use crate::RouterSettings;

/// What every answer goes through, in the order of the table above, wrapped
/// once around the whole router.
pub fn layers(
    routes: Router,
    settings: &RouterSettings,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    // Pages set their own Content-Security-Policy (it carries the
    // hydration scripts' nonce); these apply to every response.
    let security_headers = ServiceBuilder::new()
        // Every answer carries it, refusals included.
        .option_layer(settings.hsts.clone().map(|value| {
            SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, value)
        }))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    ServiceBuilder::new()
        .layer(RequestSpanLayer::new(settings.metrics.clone()))
        // Compression's answers carry its own body type; back to axum's.
        .map_response(IntoResponse::into_response)
        .layer(security_headers)
        .layer(delivery::compression())
        .layer(axum::middleware::from_fn(delivery::cache_policy))
        .layer(axum::middleware::from_fn(silent_callback::silent_callback))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit::BodyLimit(settings.body_limit),
            body_limit::limit_body,
        ))
        .service(routes)
}
