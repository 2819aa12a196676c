//! The server half of the app: configuration, the bearer-token validation of
//! the protected server functions, and the embedded development
//! authorization server.

pub mod bearer;
pub mod bearer_layer;
pub mod body_limit;
pub mod browser_auth;
pub mod config;
pub mod delivery;
pub mod dev_idp;
pub mod doctor;
pub mod logging;
pub mod probes;
pub mod request_span;
pub mod serve;
pub mod silent_callback;
pub mod telemetry;

use app::{shell, App};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::bearer::Validator;
use crate::body_limit::BodyLimit;
use crate::browser_auth::BrowserAuth;
use crate::config::{Config, DEFAULT_BODY_LIMIT};
use crate::request_span::RequestSpanLayer;
use crate::telemetry::Metrics;

/// What the router takes from the configuration.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// `BODY_LIMIT_BYTES`.
    pub body_limit: usize,
    /// The `Strict-Transport-Security` every response carries, if any
    /// ([`Config::hsts`]).
    pub hsts: Option<HeaderValue>,
    /// Where each request's duration is recorded (`METRICS_ADDR` set);
    /// `None`: nowhere.
    pub metrics: Option<Metrics>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            body_limit: DEFAULT_BODY_LIMIT,
            hsts: None,
            metrics: None,
        }
    }
}

impl RouterSettings {
    /// The settings of `config`, without metrics.
    pub fn from_config(config: &Config) -> RouterSettings {
        RouterSettings {
            body_limit: config.body_limit,
            hsts: config
                .hsts()
                .and_then(|value| HeaderValue::from_str(&value).ok()),
            metrics: None,
        }
    }
}

/// [`app_router_with`] the default [`RouterSettings`].
pub fn app_router(
    leptos_options: LeptosOptions,
    validator: Validator,
    browser_auth: BrowserAuth,
) -> Router {
    app_router_with(
        leptos_options,
        validator,
        browser_auth,
        RouterSettings::default(),
    )
}

/// The app's router: the Leptos pages, the server functions behind the
/// bearer layer, the site files, and the probes `/healthz` and `/readyz`
/// beside the bearer layer, with the body limit, cache policy, compression
/// and security headers every response carries, and, around everything,
/// the request's id, span and duration ([`request_span`]). Used by `main`
/// and by the integration tests, so the tests exercise exactly what is
/// served.
///
/// The layers every answer goes through wrap the routes once, as one
/// service ([`edge`]), rather than through `Router::layer`, which wraps
/// each route on its own: a `from_fn` layer clones the service inside it
/// on every request, and inside a route that is the whole stack down to
/// the Leptos handler with everything it captured, once per layer. Around
/// the router as a whole, what each layer clones is the router, one
/// reference count.
pub fn app_router_with(
    leptos_options: LeptosOptions,
    validator: Validator,
    browser_auth: BrowserAuth,
    settings: RouterSettings,
) -> Router {
    let routes = generate_route_list(App);
    // Shared, so the handlers that capture it clone a pointer.
    let browser_auth = Arc::new(browser_auth);
    let context = move || browser_auth.provide();
    let pkg = delivery::pkg_router(
        &leptos_options.site_root,
        &leptos_options.site_pkg_dir,
        leptos_options.hash_files,
    );
    let routes = Router::new()
        .leptos_routes_with_context(&leptos_options, routes, context.clone(), {
            let leptos_options = leptos_options.clone();
            move || shell(leptos_options.clone())
        })
        .merge(pkg)
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context, shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            validator.clone(),
            bearer_layer::bearer_auth,
        ))
        .merge(probes::routes(validator))
        .with_state(leptos_options);
    Router::new().fallback_service(edge(routes, &settings))
}

/// What every answer goes through, outermost first: the request's id, span
/// and duration (so they cover everything), the security headers, then
/// compression, the cache policy, the silent-renewal page, and the body
/// limit, nearest the routes so an oversized body is refused before
/// anything else looks at the request. axum's own limit (which the server
/// functions' decoding reads) is the same, so it never cuts in first with
/// a 400.
fn edge(
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
            BodyLimit(settings.body_limit),
            body_limit::limit_body,
        ))
        .service(routes)
}
