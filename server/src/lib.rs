//! The server half of the app: configuration, the bearer-token validation of
//! the protected server functions, and the embedded development
//! authorization server.

pub mod bearer;
pub mod bearer_layer;
pub mod config;
pub mod dev_idp;

use app::{shell, App};
use axum::Router;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::bearer::Validator;

/// The app's router: the Leptos pages, the server functions behind the
/// bearer layer, and the site files. Used by `main` and by the integration
/// tests, so the tests exercise exactly what is served.
pub fn app_router(leptos_options: LeptosOptions, validator: Validator) -> Router {
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes(&leptos_options, routes, {
            let leptos_options = leptos_options.clone();
            move || shell(leptos_options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .layer(axum::middleware::from_fn_with_state(
            validator,
            bearer_layer::bearer_auth,
        ))
        .with_state(leptos_options)
}
