//! The app's pages. Protected pages load their data with `LocalResource`
//! (it runs only in the browser, where the token is) inside
//! [`require_auth`].
//!
//! Branches are `Either`s and `Option`s rather than `Show`, `Suspense` or
//! `.into_any()`: each type-erased view costs the wasm a sync and an async
//! hydration path of its own (together about 100 KB of the bundle before
//! this was so), where an `Either` costs only the code of its branches.

use crate::api::{messages, report, whoami, ApiError};
use crate::auth::config::PublicAuthConfig;
use crate::auth::renewal::time_left;
use crate::auth::state::use_auth;
use leptos::either::{Either, EitherOf3};
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

    let signed_in = Memo::new(move |_| auth.session.with(Option::is_some));
    view! {
        <h1>"Okta implicit sign-in"</h1>
        <p>
            "A Leptos + axum app that signs you in with Okta's implicit flow and calls "
            "server functions that check your access token against the issuer's keys."
        </p>
        {move || if signed_in.get() {
            Either::Left(view! {
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
            })
        } else {
            Either::Right(view! {
                <p id="signed-out">"You are not signed in."</p>
                <button id="sign-in" on:click=move |_| auth.sign_in(crate::routes::PROFILE)>"Sign in"</button>
            })
        }}
    }
}

/// Where a protected page stands with the tab's sign-in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Not known yet (server rendering, or the browser still looking).
    Checking,
    /// Signed in: the page is shown.
    Open,
    /// Signed out with a reason on screen: offer to sign in again.
    Ended,
}

/// A protected page: `page` once signed in; while signed out, sign-in
/// starts and comes back here, unless the user was just told their
/// session ended. `page` is built once per sign-in, not again when the
/// tokens are renewed.
fn require_auth<V: IntoView + 'static>(
    page: impl Fn() -> V + Send + Sync + 'static,
) -> impl IntoView {
    let auth = use_auth();
    let location = use_location();
    let gate = Memo::new(
        move |_| match (auth.ready.get(), auth.session.with(Option::is_some)) {
            (true, true) => Gate::Open,
            (true, false) if auth.notice.with(Option::is_some) => Gate::Ended,
            _ => Gate::Checking,
        },
    );

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

    move || match gate.get() {
        Gate::Open => EitherOf3::A(page()),
        Gate::Ended => EitherOf3::B(view! {
            <button
                id="sign-in-again"
                on:click=move |_| {
                    auth.notice.set(None);
                    auth.sign_in(&location.pathname.get_untracked());
                }
            >
                "Sign in again"
            </button>
            // The app's session is over, but the person's session at the
            // issuer may not be: on a shared computer they can end it too.
            {move || auth.ended_id_token.with(Option::is_some).then(|| view! {
                " "
                <button id="sign-out-at-issuer" on:click=move |_| auth.sign_out()>
                    "Sign out"
                </button>
            })}
        }),
        Gate::Checking => EitherOf3::C(view! { <p class="muted">"Checking your sign-in…"</p> }),
    }
}

/// Renders the result of a protected call: the data, or the error in words.
fn show_result<T, V: IntoView>(
    result: Option<Result<T, ApiError>>,
    render: impl FnOnce(T) -> V,
) -> impl IntoView {
    match result {
        None => EitherOf3::A(view! { <p class="muted">"Loading…"</p> }),
        Some(Ok(data)) => EitherOf3::B(render(data)),
        Some(Err(err)) => {
            let text = use_auth().explain(&err);
            EitherOf3::C(view! { <p class="error" role="alert" id="api-error">{text}</p> })
        }
    }
}

#[component]
pub fn ProfilePage() -> impl IntoView {
    view! {
        <h1>"Profile"</h1>
        {require_auth(ProfileDetails)}
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
                Some(c) => Either::Left(view! {
                    <dl id="id-claims">
                        <dt>"Name"</dt><dd id="claim-name">{c.name.clone().unwrap_or_default()}</dd>
                        <dt>"Email"</dt><dd id="claim-email">{c.email.clone().unwrap_or_default()}</dd>
                        <dt>"Username"</dt><dd>{c.preferred_username.clone().unwrap_or_default()}</dd>
                        <dt>"Subject"</dt><dd>{c.sub.clone()}</dd>
                        <dt>"Issuer"</dt><dd>{c.iss.clone()}</dd>
                    </dl>
                }),
                None => Either::Right(view! { <p class="muted">"No ID token was asked for."</p> }),
            }}
        </section>
        <section>
            <h2>"What the server says"</h2>
            {api_only(WhoAmI)}
        </section>
    }
}

#[component]
fn WhoAmI() -> impl IntoView {
    let auth = use_auth();
    let me = LocalResource::new(move || auth.call(whoami));
    // No Suspense: the resource keeps its last answer while it loads
    // again, so "Ask again" does not flicker.
    view! {
        {move || show_result(me.get(), |me| view! {
            <dl id="whoami">
                <dt>"Subject"</dt><dd id="whoami-sub">{me.sub.clone()}</dd>
                <dt>"Scopes"</dt><dd id="whoami-scopes">{me.scopes.join(" ")}</dd>
                <dt>"Client"</dt><dd>{me.cid.clone().unwrap_or_default()}</dd>
            </dl>
        })}
        <button id="refresh" on:click=move |_| me.refetch()>"Ask again"</button>
    }
}

/// `page` calls the protected API; with a configuration that asks for no
/// access token (`RESPONSE_TYPE=id_token`) it is not built, no call is
/// made, and the page says why.
fn api_only<V: IntoView>(page: impl FnOnce() -> V) -> impl IntoView {
    if use_auth().has_api_access() {
        Either::Left(page())
    } else {
        Either::Right(view! {
            <p id="no-access-token" class="muted">
                "This app is set up to ask for an ID token only (RESPONSE_TYPE=id_token), so it holds "
                "no access token and does not call the API. "
                {format!("To call it, set {}.", PublicAuthConfig::ACCESS_TOKEN_SETTING)}
            </p>
        })
    }
}

#[component]
pub fn MessagesPage() -> impl IntoView {
    view! {
        <h1>"Messages"</h1>
        {require_auth(|| api_only(MessageList))}
    }
}

#[component]
fn MessageList() -> impl IntoView {
    let auth = use_auth();
    let list = LocalResource::new(move || auth.call(messages));
    move || {
        show_result(list.get(), |list| {
            view! {
                <ul id="messages">
                    {list.into_iter().map(|m| view! {
                        <li><time>{m.date}</time>" "{m.text}</li>
                    }).collect_view()}
                </ul>
            }
        })
    }
}

#[component]
pub fn ReportPage() -> impl IntoView {
    view! {
        <h1>"Report"</h1>
        {require_auth(|| api_only(ReportTable))}
    }
}

#[component]
fn ReportTable() -> impl IntoView {
    let auth = use_auth();
    let data = LocalResource::new(move || auth.call(report));
    move || {
        show_result(data.get(), |r| {
            view! {
                <table id="report">
                    <caption>{r.title}</caption>
                    <tbody>
                        {r.rows.into_iter().map(|row| view! {
                            <tr><th scope="row">{row.label}</th><td>{row.value}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            }
        })
    }
}

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
        use crate::auth::{browser, flow, silent};
        // Before any await: take the answer (out of the address bar since
        // the page was parsed) and the pending sign-in.
        let answer = browser::take_answer();
        browser::mark("sign-in: callback started");
        if silent::is_framed() {
            silent::hand_to_parent(&answer);
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
            let outcome = match flow::Flow::of(&cfg).answer(&cfg, &answer) {
                Ok(answer) => {
                    flow::complete_sign_in(
                        answer,
                        pending,
                        &cfg,
                        browser::now_ms(),
                        &browser::BrowserPlatform,
                    )
                    .await
                }
                Err(err) => Err(err),
            };
            match outcome {
                Ok((session, return_to)) => {
                    browser::mark("sign-in: tokens checked");
                    auth.adopt(session, true);
                    navigate(
                        &return_to,
                        leptos_router::NavigateOptions {
                            replace: true,
                            ..Default::default()
                        },
                    );
                    browser::mark("sign-in: signed in");
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

    move || match failure.get() {
        None => Either::Left(view! { <h1>"Signing in…"</h1> }),
        Some((why, retry_to)) => Either::Right(view! {
            <Title text="Sign-in failed" />
            <h1>"Sign-in failed"</h1>
            <p id="sign-in-error" role="alert" class="error">{why}</p>
            <button id="try-again" on:click=move |_| auth.sign_in(&retry_to)>"Try again"</button>
        }),
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
