//! The app's pages.

use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    let (clicks, set_clicks) = signal(0u32);
    view! {
        <h1>"Okta implicit sign-in"</h1>
        <p>"A Leptos + axum app that signs people in with Okta's implicit flow."</p>
        <button id="hydration-check" on:click=move |_| set_clicks.update(|n| *n += 1)>
            "Clicked " {clicks} " times"
        </button>
    }
}

/// Shown for any path no route matches, with status 404 when server-rendered.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        let resp = expect_context::<leptos_axum::ResponseOptions>();
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p>"There is nothing at this address. " <a href="/">"Go to the home page"</a></p>
    }
}
