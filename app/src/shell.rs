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
    use crate::auth::fragment::CALLBACK_SCRIPT;
    use crate::auth::state::{config_json_for_page, CONFIG_ELEMENT_ID};
    use crate::routes::CALLBACK;
    use http::{header, HeaderValue};
    use leptos::nonce::{provide_nonce, use_nonce};
    use leptos::prelude::*;
    use std::sync::LazyLock;

    /// What a page is sent with if its policy cannot be written as a
    /// header: nothing runs, nothing loads, nothing frames it. The page is
    /// broken, but never without a policy.
    const FALLBACK_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
                                form-action 'none'";

    /// The hash of the callback page's inline script, as `script-src` takes it.
    static CALLBACK_SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| {
        use base64::{engine::general_purpose::STANDARD, Engine};
        use sha2::{Digest, Sha256};
        format!(
            "'sha256-{}'",
            STANDARD.encode(Sha256::digest(CALLBACK_SCRIPT.as_bytes()))
        )
    });

    /// Sets the page's Content-Security-Policy (with a fresh nonce for the
    /// hydration scripts) and returns what goes into the page's head: the
    /// `<script type="application/json">` that hands the issuer settings to
    /// the browser and, on the callback page, the script that takes the
    /// tokens out of the address bar at once.
    pub fn security_headers_and_config(options: &LeptosOptions) -> impl IntoView {
        provide_nonce();
        let nonce = use_nonce().map(|n| n.to_string()).unwrap_or_default();
        let config = use_context::<PublicAuthConfig>();
        let issuer_origin = config
            .as_ref()
            .and_then(|c| origin_of(&c.authorization_endpoint))
            .unwrap_or_default();
        // The code flow posts to the issuer's token and revocation
        // endpoints from the page.
        let token_origins: String = config
            .as_ref()
            .filter(|c| c.is_code_flow())
            .map(|c| {
                let mut origins: Vec<String> = [&c.token_endpoint, &c.revocation_endpoint]
                    .into_iter()
                    .flatten()
                    .filter_map(|url| origin_of(url))
                    .collect();
                origins.dedup();
                origins.iter().map(|o| format!(" {o}")).collect()
            })
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
        let on_callback =
            use_context::<http::request::Parts>().is_some_and(|parts| parts.uri.path() == CALLBACK);
        let (frame_ancestors, frame_options, callback_script) = if on_callback {
            ("'self'", "SAMEORIGIN", CALLBACK_SCRIPT_HASH.as_str())
        } else {
            ("'none'", "DENY", "")
        };
        let csp = page_csp(
            &nonce,
            callback_script,
            &format!("{token_origins}{reload_socket}"),
            &issuer_origin,
            frame_ancestors,
        );
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            let value = HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                tracing::error!("the page's Content-Security-Policy is not a valid header value; sending a policy that blocks everything");
                HeaderValue::from_static(FALLBACK_CSP)
            });
            resp.insert_header(header::CONTENT_SECURITY_POLICY, value);
            resp.insert_header(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static(frame_options),
            );
        }
        let config = config.map(|mut cfg| {
            if let Some(keys) = use_context::<SharedIssuerKeys>() {
                cfg.keys = keys.current();
            }
            view! {
                <script type="application/json" id=CONFIG_ELEMENT_ID inner_html=config_json_for_page(&cfg)></script>
            }
        });
        let callback = on_callback.then(|| view! { <script inner_html=CALLBACK_SCRIPT></script> });
        (callback, config)
    }

    /// The policy of a page. frame-src: the hidden iframe that renews the
    /// tokens loads the issuer's authorize endpoint, which redirects it
    /// back to the app's own callback; browsers check frame-src on every
    /// hop, so both origins are needed, and nothing else is framed.
    fn page_csp(
        nonce: &str,
        extra_script: &str,
        extra_connect: &str,
        issuer_origin: &str,
        frame_ancestors: &str,
    ) -> String {
        format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' {extra_script} 'wasm-unsafe-eval'; \
             style-src 'self'; img-src 'self' data:; connect-src 'self'{extra_connect}; \
             frame-src 'self' {issuer_origin}; form-action 'self' {issuer_origin}; \
             frame-ancestors {frame_ancestors}; base-uri 'none'; object-src 'none'"
        )
        .replace("  ", " ")
    }

    /// The origin (`scheme://host[:port]`) of an http(s) URL, as a URL
    /// parser reads it: never a piece of the text cut out by hand, so
    /// nothing a configured URL carries can reach the policy but a scheme,
    /// a host and a port.
    pub(super) fn origin_of(url: &str) -> Option<String> {
        let url = url::Url::parse(url).ok()?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return None;
        }
        Some(url.origin().ascii_serialization())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_issuer_origin_comes_from_a_parsed_url() {
            assert_eq!(
                origin_of("https://dev-1.okta.com/oauth2/default/v1/authorize").as_deref(),
                Some("https://dev-1.okta.com")
            );
            assert_eq!(
                origin_of("http://localhost:3100/oauth2/default/v1/authorize").as_deref(),
                Some("http://localhost:3100")
            );
            assert_eq!(
                origin_of("https://[::1]:8443/a").as_deref(),
                Some("https://[::1]:8443")
            );
            // The default port is dropped; user info and paths never pass.
            assert_eq!(
                origin_of("https://user:pw@login.example.com:443/x?y#z").as_deref(),
                Some("https://login.example.com")
            );
            // Hostile values: what would widen or break the policy.
            for hostile in [
                "https://evil.example; script-src *",
                "https://a.example'; default-src *",
                "https://a.example\r\nSet-Cookie: x=y",
                "javascript:alert(1)",
                "data:text/html,x",
                "*",
                "https:",
                "//evil.example/x",
                "",
            ] {
                let origin = origin_of(hostile);
                assert!(
                    origin.as_deref().is_none_or(|o| o
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":/.-[]".contains(c))),
                    "{hostile:?} gave {origin:?}"
                );
                assert!(origin.as_deref().is_none_or(|o| !o.contains(' ')));
            }
            assert_eq!(origin_of("javascript:alert(1)"), None);
            assert_eq!(origin_of("*"), None);
        }

        #[test]
        fn the_callback_script_is_allowed_by_its_hash_on_the_callback_page_only() {
            let on_callback = page_csp(
                "n1",
                &CALLBACK_SCRIPT_HASH,
                "",
                "https://i.example",
                "'self'",
            );
            assert!(on_callback.contains(&format!(
                "script-src 'self' 'nonce-n1' {} 'wasm-unsafe-eval';",
                *CALLBACK_SCRIPT_HASH
            )));
            let elsewhere = page_csp("n1", "", "", "https://i.example", "'none'");
            assert!(elsewhere.contains("script-src 'self' 'nonce-n1' 'wasm-unsafe-eval';"));
            assert!(elsewhere.contains("frame-src 'self' https://i.example;"));
            assert!(HeaderValue::from_str(&on_callback).is_ok());
            assert!(HeaderValue::from_static(FALLBACK_CSP)
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'"));
        }
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
