//! The HTML shell rendered by the server, its security headers, and the
//! router that picks a page.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path,
};

use crate::auth::state::{provide_auth, use_auth};
use crate::pages::{HomePage, LoginCallback, MessagesPage, NotFound, ProfilePage, ReportPage};

/// The whole document the server renders; the browser hydrates its `<body>`.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    let config_script = ssr::security_headers_and_config(&options);
    #[cfg(not(feature = "ssr"))]
    let config_script = ();

    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="referrer" content="no-referrer" />
                <link rel="icon" type="image/png" href="/favicon.png" />
                {config_script}
                <HashedStylesheet options=options.clone() id="leptos" />
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

#[cfg(feature = "ssr")]
mod ssr {
    use crate::auth::config::ssr::SharedIssuerKeys;
    use crate::auth::config::PublicAuthConfig;
    use crate::auth::state::{config_json_for_page, CONFIG_ELEMENT_ID};
    use crate::pages::CALLBACK_PATH;
    use http::{header, HeaderValue};
    use leptos::nonce::{provide_nonce, use_nonce};
    use leptos::prelude::*;

    /// Sets the page's Content-Security-Policy (with a fresh nonce for the
    /// hydration scripts) and returns the `<script type="application/json">`
    /// that hands the issuer settings to the browser.
    pub fn security_headers_and_config(options: &LeptosOptions) -> impl IntoView {
        provide_nonce();
        let nonce = use_nonce().map(|n| n.to_string()).unwrap_or_default();
        let config = use_context::<PublicAuthConfig>();
        let issuer_origin = config
            .as_ref()
            .and_then(|c| origin_of(&c.authorization_endpoint))
            .unwrap_or_default();
        // Under `cargo leptos watch` the page opens the live-reload socket.
        let reload_socket = if std::env::var("LEPTOS_WATCH").is_ok() {
            let port = options.reload_external_port.unwrap_or(options.reload_port);
            format!(" ws://localhost:{port} ws://127.0.0.1:{port}")
        } else {
            String::new()
        };
        // The callback page is where the hidden renewal iframe lands, so it
        // alone may be framed, and only by the app itself.
        let on_callback = use_context::<http::request::Parts>()
            .is_some_and(|parts| parts.uri.path() == CALLBACK_PATH);
        let (frame_ancestors, frame_options) = if on_callback {
            ("'self'", "SAMEORIGIN")
        } else {
            ("'none'", "DENY")
        };
        // frame-src: the hidden iframe that renews the tokens loads the
        // issuer's authorize endpoint, which redirects it back to the app's
        // own callback; browsers check frame-src on every hop, so both
        // origins are needed, and nothing else is framed.
        let csp = format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self'; img-src 'self' data:; connect-src 'self'{reload_socket}; \
             frame-src 'self' {issuer_origin}; form-action 'self' {issuer_origin}; \
             frame-ancestors {frame_ancestors}; base-uri 'none'; object-src 'none'"
        );
        if let (Some(resp), Ok(value)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            HeaderValue::from_str(&csp),
        ) {
            resp.insert_header(header::CONTENT_SECURITY_POLICY, value);
            resp.insert_header(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static(frame_options),
            );
        }
        config.map(|mut cfg| {
            if let Some(keys) = use_context::<SharedIssuerKeys>() {
                cfg.keys = keys.current();
            }
            view! {
                <script type="application/json" id=CONFIG_ELEMENT_ID inner_html=config_json_for_page(&cfg)></script>
            }
        })
    }

    /// `scheme://host[:port]` of an absolute URL.
    fn origin_of(url: &str) -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split(['/', '?', '#']).next()?;
        let ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        ok.then(|| format!("{scheme}://{host}"))
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let auth = provide_auth();

    view! {
        <Title text="Okta implicit sign-in" />
        <Router>
            <Nav />
            <main>
                {move || {
                    let shown = auth.notice.with(Option::is_some) && auth.session.with(Option::is_none);
                    shown.then(|| view! {
                        <p id="notice" class="notice" role="status">{move || auth.notice.get()}</p>
                    })
                }}
                <Routes fallback=NotFound>
                    <Route path=path!("") view=HomePage />
                    <Route path=path!("/login/callback") view=LoginCallback />
                    <Route path=path!("/profile") view=ProfilePage />
                    <Route path=path!("/messages") view=MessagesPage />
                    <Route path=path!("/report") view=ReportPage />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Nav() -> impl IntoView {
    let auth = use_auth();
    let signed_in = Memo::new(move |_| auth.session.with(Option::is_some));
    view! {
        <nav>
            <A href="/">"Home"</A>
            <A href="/profile">"Profile"</A>
            <A href="/messages">"Messages"</A>
            <A href="/report">"Report"</A>
            <span class="spacer"></span>
            {move || signed_in.get().then(|| view! {
                <span id="nav-user">
                    {move || auth.session.with(|s| s.as_ref().map(|s| s.display_name()))}
                </span>
                <button id="sign-out" on:click=move |_| auth.sign_out()>"Sign out"</button>
            })}
        </nav>
    }
}
