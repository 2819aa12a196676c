//! The app's pages. Protected pages load their data with `LocalResource`
//! (it runs only in the browser, where the token is) inside `RequireAuth`.

use crate::api::{messages, report, whoami, ApiError};
use crate::auth::config::PublicAuthConfig;
use crate::auth::renewal::time_left;
use crate::auth::state::use_auth;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_location, use_query_map};

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = use_auth();

    // Coming back from the issuer's logout with ?state=…: check it once.
    #[cfg(feature = "hydrate")]
    {
        let query = use_query_map();
        Effect::new(move |_| {
            if let Some(state) = query.with_untracked(|q| q.get("state")) {
                crate::auth::browser::strip_query();
                if crate::auth::browser::take_logout_state(&state) {
                    auth.notice.set(Some("You are signed out.".into()));
                } else {
                    auth.notice.set(Some(
                        "A sign-out response arrived that this tab did not ask for; it was ignored.".into(),
                    ));
                }
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = use_query_map;

    view! {
        <h1>"Okta implicit sign-in"</h1>
        <p>
            "A Leptos + axum app that signs you in with Okta's implicit flow and calls "
            "server functions that check your access token against the issuer's keys."
        </p>
        <Show
            when=move || auth.session.with(Option::is_some)
            fallback=move || {
                view! {
                    <p id="signed-out">"You are not signed in."</p>
                    <button id="sign-in" on:click=move |_| auth.sign_in("/profile")>"Sign in"</button>
                }
            }
        >
            <p id="signed-in">
                "Signed in as "
                <strong id="user-name">
                    {move || auth.session.with(|s| s.as_ref().map(|s| s.display_name()))}
                </strong> "."
            </p>
            <ul class="links">
                <li><a href="/profile">"Profile"</a></li>
                <li><a href="/messages">"Messages"</a></li>
                <li><a href="/report">"Report"</a></li>
            </ul>
        </Show>
    }
}

/// Shown while signed out on a protected page: starts sign-in and comes
/// back here, unless the user was just told their session ended.
#[component]
pub fn RequireAuth(children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    let location = use_location();
    let children = StoredValue::new(children);

    Effect::new(move |_| {
        if auth.ready.get()
            && auth.session.with(Option::is_none)
            && auth.notice.with(Option::is_none)
        {
            let return_to = format!(
                "{}{}",
                location.pathname.get_untracked(),
                location.search.get_untracked()
            );
            auth.sign_in(&return_to);
        }
    });

    view! {
        <Show
            when=move || auth.ready.get() && auth.session.with(Option::is_some)
            fallback=move || {
                view! {
                    <Show
                        when=move || auth.ready.get() && auth.notice.with(Option::is_some)
                        fallback=|| view! { <p class="muted">"Checking your sign-in…"</p> }
                    >
                        <button
                            id="sign-in-again"
                            on:click=move |_| {
                                auth.notice.set(None);
                                auth.sign_in(&location.pathname.get_untracked());
                            }
                        >
                            "Sign in again"
                        </button>
                    </Show>
                }
            }
        >
            {children.with_value(|c| c())}
        </Show>
    }
}

/// Renders the result of a protected call: the data, or the error in words.
fn show_result<T: Clone + Send + Sync + 'static, V: IntoView + 'static>(
    result: Option<Result<T, ApiError>>,
    render: impl FnOnce(T) -> V,
) -> AnyView {
    let auth = use_auth();
    match result {
        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
        Some(Ok(data)) => render(data).into_any(),
        Some(Err(err)) => {
            let text = auth.explain(&err);
            view! { <p class="error" role="alert" id="api-error">{text}</p> }.into_any()
        }
    }
}

#[component]
pub fn ProfilePage() -> impl IntoView {
    view! {
        <h1>"Profile"</h1>
        <RequireAuth>
            <ProfileDetails />
        </RequireAuth>
    }
}

#[component]
fn ProfileDetails() -> impl IntoView {
    let auth = use_auth();
    let now = RwSignal::new(0i64);
    #[cfg(feature = "hydrate")]
    {
        now.set(crate::auth::browser::now());
        if let Ok(handle) = set_interval_with_handle(
            move || now.set(crate::auth::browser::now()),
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    }

    let claims = move || {
        auth.session
            .with(|s| s.as_ref().and_then(|s| s.claims.clone()))
    };
    // The session's own expiry, so the countdown moves on when the tokens
    // are renewed, without asking the server again.
    let expires_in = move || {
        let expires_at = auth
            .session
            .with(|s| s.as_ref().map_or(0, |s| s.expires_at));
        time_left(expires_at - now.get())
    };
    view! {
        <p>"Session: " <span id="expires-in">{expires_in}</span></p>
        <section>
            <h2>"From your ID token"</h2>
            {move || match claims() {
                Some(c) => view! {
                    <dl id="id-claims">
                        <dt>"Name"</dt><dd id="claim-name">{c.name.clone().unwrap_or_default()}</dd>
                        <dt>"Email"</dt><dd id="claim-email">{c.email.clone().unwrap_or_default()}</dd>
                        <dt>"Username"</dt><dd>{c.preferred_username.clone().unwrap_or_default()}</dd>
                        <dt>"Subject"</dt><dd>{c.sub.clone()}</dd>
                        <dt>"Issuer"</dt><dd>{c.iss.clone()}</dd>
                    </dl>
                }.into_any(),
                None => view! { <p class="muted">"No ID token was asked for."</p> }.into_any(),
            }}
        </section>
        <section>
            <h2>"What the server says"</h2>
            <ApiOnly>
                <WhoAmI />
            </ApiOnly>
        </section>
    }
}

#[component]
fn WhoAmI() -> impl IntoView {
    let auth = use_auth();
    let me = LocalResource::new(move || auth.call(whoami));
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || show_result(me.get(), |me| view! {
                <dl id="whoami">
                    <dt>"Subject"</dt><dd id="whoami-sub">{me.sub.clone()}</dd>
                    <dt>"Scopes"</dt><dd id="whoami-scopes">{me.scopes.join(" ")}</dd>
                    <dt>"Client"</dt><dd>{me.cid.clone().unwrap_or_default()}</dd>
                </dl>
            })}
        </Transition>
        <button id="refresh" on:click=move |_| me.refetch()>"Ask again"</button>
    }
}

/// Its children call the protected API; with a configuration that asks for
/// no access token (`RESPONSE_TYPE=id_token`) they are not shown, no call
/// is made, and the page says why.
#[component]
fn ApiOnly(children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    let children = StoredValue::new(children);
    view! {
        <Show
            when=move || auth.has_api_access()
            fallback=|| view! {
                <p id="no-access-token" class="muted">
                    "This app is set up to ask for an ID token only (RESPONSE_TYPE=id_token), so it holds "
                    "no access token and does not call the API. "
                    {format!("To call it, set {}.", PublicAuthConfig::ACCESS_TOKEN_SETTING)}
                </p>
            }
        >
            {children.with_value(|c| c())}
        </Show>
    }
}

#[component]
pub fn MessagesPage() -> impl IntoView {
    view! {
        <h1>"Messages"</h1>
        <RequireAuth>
            <ApiOnly>
                <MessageList />
            </ApiOnly>
        </RequireAuth>
    }
}

#[component]
fn MessageList() -> impl IntoView {
    let auth = use_auth();
    let list = LocalResource::new(move || auth.call(messages));
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || show_result(list.get(), |list| view! {
                <ul id="messages">
                    {list.into_iter().map(|m| view! {
                        <li><time>{m.date}</time>" "{m.text}</li>
                    }).collect_view()}
                </ul>
            })}
        </Suspense>
    }
}

#[component]
pub fn ReportPage() -> impl IntoView {
    view! {
        <h1>"Report"</h1>
        <RequireAuth>
            <ApiOnly>
                <ReportTable />
            </ApiOnly>
        </RequireAuth>
    }
}

#[component]
fn ReportTable() -> impl IntoView {
    let auth = use_auth();
    let data = LocalResource::new(move || auth.call(report));
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || show_result(data.get(), |r| view! {
                <table id="report">
                    <caption>{r.title}</caption>
                    <tbody>
                        {r.rows.into_iter().map(|row| view! {
                            <tr><th scope="row">{row.label}</th><td>{row.value}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </Suspense>
    }
}

/// Where the issuer sends the browser back (the default `REDIRECT_URI`).
pub const CALLBACK_PATH: &str = "/login/callback";

/// `/login/callback`: takes the tokens out of the fragment, checks them,
/// keeps them, and goes back to where the user was going. Inside the
/// hidden renewal iframe (when the server did not answer with its own
/// small page for it) it only hands the fragment to the app's window.
#[component]
pub fn LoginCallback() -> impl IntoView {
    let auth = use_auth();
    let failure = RwSignal::new(None::<(String, String)>);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use crate::auth::{browser, callback, fragment, silent};
        // Before any await: wipe the fragment and take the pending sign-in.
        let hash = browser::take_fragment();
        if silent::is_framed() {
            silent::hand_to_parent(&hash);
            return;
        }
        let pending = browser::take_pending();
        let retry_to = browser::return_path_of(&pending);
        let Some(cfg) = auth.config.get_value() else {
            failure.set(Some((
                "Sign-in is not configured on this server.".into(),
                retry_to,
            )));
            return;
        };
        let navigate = leptos_router::hooks::use_navigate();
        leptos::task::spawn_local(async move {
            let outcome = match fragment::parse_fragment(&hash) {
                Ok(params) => {
                    callback::complete_sign_in(
                        params,
                        pending,
                        &cfg,
                        browser::now(),
                        &browser::WebCryptoSignatures,
                    )
                    .await
                }
                Err(err) => Err(err.into()),
            };
            match outcome {
                Ok((session, return_to)) => {
                    auth.adopt(session, true);
                    navigate(
                        &return_to,
                        leptos_router::NavigateOptions {
                            replace: true,
                            ..Default::default()
                        },
                    );
                }
                Err(err) => {
                    let mut text = err.to_string();
                    if let Some(first) = text.get_mut(0..1) {
                        first.make_ascii_uppercase();
                    }
                    failure.set(Some((format!("{text}."), retry_to)));
                }
            }
        });
    });

    view! {
        <Show
            when=move || failure.with(Option::is_some)
            fallback=|| view! { <h1>"Signing in…"</h1> }
        >
            <Title text="Sign-in failed" />
            <h1>"Sign-in failed"</h1>
        </Show>
        {move || failure.get().map(|(why, retry_to)| view! {
            <p id="sign-in-error" role="alert" class="error">{why}</p>
            <button id="try-again" on:click=move |_| auth.sign_in(&retry_to)>"Try again"</button>
        })}
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
