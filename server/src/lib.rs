//! The server half of the app. Where things are:
//!
//! | module | what it is |
//! |---|---|
//! | [`config`] | every setting, read from the environment once, checked at start-up |
//! | [`edge`] | everything between the socket and a handler, in the order a request meets it: the connection loop, the request span, security headers, compression and cache policy, the silent-renewal page, the body limit, the bearer gate |
//! | [`bearer`] | the resource server's token checks: JWKS, RS256, claims, DPoP proofs, the verified-token cache |
//! | [`browser_auth`] | what the pages need from the server: the browser's sign-in settings |
//! | [`dev_idp`] | the embedded Okta-compatible development authorization server |
//! | [`doctor`] | `server doctor`: the configuration checked against the issuer |
//! | [`ops`] | what an operator touches: metrics, logging, the probes |
//!
//! [`app_with`] puts the routes together: the Leptos pages and
//! server functions behind the bearer gate, the site files, the probes,
//! all inside [`edge::layers`]. `main.rs` reads the configuration and
//! starts it.

pub mod bearer;
pub mod browser_auth;
pub mod config;
pub mod dev_idp;
pub mod doctor;
pub mod edge;
pub mod ops;

use app::{shell, App};
use axum::http::HeaderValue;
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;

use crate::bearer::Validator;
use crate::browser_auth::BrowserAuth;
use crate::config::{Config, DEFAULT_BODY_LIMIT};
use crate::edge::delivery;
use crate::ops::{probes, telemetry::Metrics};

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
/// bearer layer, the site files, and the probes `/healthz` and `/readyz`,
/// all inside the layers every answer goes through ([`edge::layers`]), as
/// a `Router` for the integration tests: [`app_with`] around which sits an
/// empty router, which passes every request straight on.
pub fn app_router_with(
    leptos_options: LeptosOptions,
    validator: Validator,
    browser_auth: BrowserAuth,
    settings: RouterSettings,
) -> Router {
    Router::new().fallback_service(app_with(leptos_options, validator, browser_auth, settings))
}

/// The app as one tower service, what `main` serves: the routes (pages,
/// server functions, files, probes) inside [`edge::layers`]. The
/// connection loop calls it directly, without a router around it.
pub fn app_with(
    leptos_options: LeptosOptions,
    validator: Validator,
    browser_auth: BrowserAuth,
    settings: RouterSettings,
) -> impl edge::serve::App {
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
        .merge(probes::routes(validator.clone()))
        .with_state(leptos_options);
    edge::layers(routes, &settings, validator)
}
