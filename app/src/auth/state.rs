//! The tab's sign-in state as the UI sees it, shared through context, and
//! the actions that change it (sign in, sign out, end the session locally).

use super::callback::Session;
use super::config::PublicAuthConfig;
use crate::api::ApiError;
use leptos::prelude::*;

/// Sign-in state for the whole app.
#[derive(Clone, Copy)]
pub struct Auth {
    /// The issuer settings the server sent with the page.
    pub config: StoredValue<Option<PublicAuthConfig>>,
    /// The live session, once read from storage in the browser.
    pub session: RwSignal<Option<Session>>,
    /// False until the browser has looked in `sessionStorage` (and always
    /// during server rendering, where no token exists).
    pub ready: RwSignal<bool>,
    /// A message for the user about the session (ended, expired...).
    pub notice: RwSignal<Option<String>>,
}

/// Id of the `<script type="application/json">` that carries the config.
pub const CONFIG_ELEMENT_ID: &str = "auth-config";

impl Auth {
    /// Sends the browser to the issuer to sign in, coming back to `return_to`.
    pub fn sign_in(&self, return_to: &str) {
        let Some(cfg) = self.config.get_value() else {
            self.notice
                .set(Some("Sign-in is not configured on this server.".into()));
            return;
        };
        #[cfg(feature = "hydrate")]
        if let Err(err) = super::browser::start_sign_in(&cfg, return_to) {
            self.notice
                .set(Some(format!("Cannot start sign-in: {err}.")));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (cfg, return_to);
    }

    /// Clears the session here and at the issuer.
    pub fn sign_out(&self) {
        // The notice keeps protected pages from starting a new sign-in
        // while the browser is on its way to the issuer's logout.
        self.notice.set(Some("Signing you out…".into()));
        self.session.set(None);
        #[cfg(feature = "hydrate")]
        {
            let result = match self.config.get_value() {
                Some(cfg) => super::browser::sign_out(&cfg),
                None => {
                    super::browser::clear_session();
                    Ok(())
                }
            };
            if let Err(err) = result {
                self.notice
                    .set(Some(format!("Signed out here, but: {err}.")));
            }
        }
    }

    /// Forgets the session in this tab only, telling the user why.
    pub fn end_locally(&self, why: &str) {
        #[cfg(feature = "hydrate")]
        super::browser::clear_session();
        self.session.set(None);
        self.notice.set(Some(why.to_string()));
    }

    /// Turns a protected call's error into what the user reads, signing out
    /// locally when the server says the token is no good.
    pub fn explain(&self, err: &ApiError) -> String {
        match err {
            ApiError::InvalidToken { .. } | ApiError::Unauthorized { .. } => {
                self.end_locally("Your session has expired. Please sign in again.");
                "Your session has expired. Please sign in again.".into()
            }
            ApiError::InsufficientScope { scope } => format!("You do not have the {scope} scope."),
            ApiError::TemporarilyUnavailable { retry_after } => {
                format!("The server cannot check your sign-in right now. Try again in {retry_after} seconds.")
            }
            other => format!("Something went wrong: {other}."),
        }
    }
}

/// Creates the app's [`Auth`] and provides it as context. In the browser it
/// reads the kept session after hydration and ends it when it expires.
pub fn provide_auth() -> Auth {
    let auth = Auth {
        config: StoredValue::new(read_config()),
        session: RwSignal::new(None),
        ready: RwSignal::new(false),
        notice: RwSignal::new(None),
    };
    provide_context(auth);

    #[cfg(feature = "hydrate")]
    {
        use super::browser;
        // Effects run only in the browser, after hydration, so the first
        // render matches the server's.
        Effect::new(move |_| {
            match browser::load_session() {
                Some(s) if s.is_expired(browser::now()) => {
                    browser::clear_session();
                    auth.notice
                        .set(Some("Your session has ended. Please sign in again.".into()));
                }
                Some(s) => auth.session.set(Some(s)),
                None => {}
            }
            auth.ready.set(true);
        });
        // A page restored from the back-forward cache keeps its old memory:
        // read the session again, so Back after sign-out shows no session.
        let _ = window_event_listener(leptos::ev::pageshow, move |ev| {
            if ev.persisted() {
                auth.session
                    .set(browser::load_session().filter(|s| !s.is_expired(browser::now())));
            }
        });
        // End the session when it expires, even if the page is left open.
        Effect::new(move |_| {
            let Some(expires_at) = auth.session.with(|s| s.as_ref().map(|s| s.expires_at)) else {
                return;
            };
            let ms = ((expires_at - browser::now()).max(0) * 1000).min(i32::MAX as i64) as u64;
            set_timeout(
                move || {
                    let still_same = auth
                        .session
                        .with_untracked(|s| s.as_ref().is_some_and(|s| s.expires_at == expires_at));
                    if still_same && browser::now() >= expires_at {
                        auth.end_locally("Your session has ended. Please sign in again.");
                    }
                },
                std::time::Duration::from_millis(ms),
            );
        });
    }
    auth
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// On the server: the config the server put into context. In the browser:
/// the JSON the server rendered into the page.
fn read_config() -> Option<PublicAuthConfig> {
    #[cfg(feature = "ssr")]
    {
        use_context::<PublicAuthConfig>()
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        let text = document()
            .get_element_by_id(CONFIG_ELEMENT_ID)?
            .text_content()?;
        serde_json::from_str(&text).ok()
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        None
    }
}

/// The config as JSON safe to put inside a `<script>` element.
pub fn config_json_for_page(cfg: &PublicAuthConfig) -> String {
    serde_json::to_string(cfg)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}
