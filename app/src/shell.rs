//! The HTML shell rendered by the server and the router that picks a page.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use crate::pages::{HomePage, NotFound};

/// The whole document the server renders; the browser hydrates its `<body>`.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/okta-implicit.css" />
        <Title text="Okta implicit sign-in" />
        <Router>
            <main>
                <Routes fallback=NotFound>
                    <Route path=path!("") view=HomePage />
                </Routes>
            </main>
        </Router>
    }
}
