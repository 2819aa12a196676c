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
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
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
pub fn app_router_with(
    leptos_options: LeptosOptions,
    validator: Validator,
    browser_auth: BrowserAuth,
    settings: RouterSettings,
) -> Router {
    let routes = generate_route_list(App);
    let context = move || browser_auth.provide();
    let pkg = delivery::pkg_router(
        &leptos_options.site_root,
        &leptos_options.site_pkg_dir,
        leptos_options.hash_files,
    );
    let router = Router::new()
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
        // Outside the bearer layer, so an oversized body is refused before
        // anything else looks at the request; axum's own limit (which the
        // server functions' decoding reads) is the same, so it never cuts
        // in first with a 400.
        .layer(axum::middleware::from_fn_with_state(
            BodyLimit(settings.body_limit),
            body_limit::limit_body,
        ))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(axum::middleware::from_fn(silent_callback::silent_callback))
        .layer(axum::middleware::from_fn(delivery::cache_policy))
        .layer(delivery::compression())
        // Pages set their own Content-Security-Policy (it carries the
        // hydration scripts' nonce); these apply to every response.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ));
    // Every answer carries it, refusals included.
    let router = match settings.hsts {
        Some(value) => router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            value,
        )),
        None => router,
    };
    router
        .with_state(leptos_options)
        // Outermost, so the id, the span and the time cover everything.
        .layer(RequestSpanLayer::new(settings.metrics))
}
