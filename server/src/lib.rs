//! The server half of the app: configuration, the bearer-token validation of
//! the protected server functions, and the embedded development
//! authorization server.

pub mod bearer;
pub mod bearer_layer;
pub mod browser_auth;
pub mod config;
pub mod delivery;
pub mod dev_idp;
pub mod doctor;
pub mod serve;
pub mod silent_callback;

use app::{shell, App};
use axum::http::{header, HeaderValue};
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::bearer::Validator;
use crate::browser_auth::BrowserAuth;

/// The app's router: the Leptos pages, the server functions behind the
/// bearer layer, and the site files, with the cache policy, compression
/// and security headers every response carries. Used by `main` and by the
/// integration tests, so the tests exercise exactly what is served.
pub fn app_router(
    leptos_options: LeptosOptions,
    validator: Validator,
    browser_auth: BrowserAuth,
) -> Router {
    let routes = generate_route_list(App);
    let context = move || browser_auth.provide();
    let pkg = delivery::pkg_router(
        &leptos_options.site_root,
        &leptos_options.site_pkg_dir,
        leptos_options.hash_files,
    );
    Router::new()
        .leptos_routes_with_context(&leptos_options, routes, context.clone(), {
            let leptos_options = leptos_options.clone();
            move || shell(leptos_options.clone())
        })
        .merge(pkg)
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context, shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            validator,
            bearer_layer::bearer_auth,
        ))
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
        ))
        .with_state(leptos_options)
}
