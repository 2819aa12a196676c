//! The tab's sign-in state as the UI sees it, shared through context, and
//! everything that changes it: signing in and out, renewal before expiry,
//! renew-then-retry of a refused call, and the other tabs' news.
//!
//! In the browser (hydrate):
//! - at start-up the tab takes the session from `localStorage`
//!   (`TOKEN_STORAGE=local`) or, with memory storage, asks the other tabs
//!   for it and else tries a silent sign-in;
//! - a timer renews the tokens before they expire ([`Session::renew_at`]),
//!   one tab at a time under a Web Lock; the tab that renews hands the new
//!   tokens to the others, which then have nothing to do;
//! - a failed renewal is retried with backoff until expiry, unless the
//!   issuer says the person must sign in again; at expiry the session ends
//!   with the reason;
//! - sign-in and sign-out in one tab reach every tab.

use super::callback::Session;
use super::config::PublicAuthConfig;
use crate::api::ApiError;
use leptos::prelude::*;
use std::future::Future;

/// Sign-in state for the whole app.
#[derive(Clone, Copy)]
pub struct Auth {
    /// The issuer settings the server sent with the page.
    pub config: StoredValue<Option<PublicAuthConfig>>,
    /// The live session, once known in the browser.
    pub session: RwSignal<Option<Session>>,
    /// False until the browser knows whether it is signed in (and always
    /// during server rendering, where no token exists).
    pub ready: RwSignal<bool>,
    /// A message for the user about the session (ended, expired...).
    pub notice: RwSignal<Option<String>>,
    /// Why the current session will not be renewed, once that is known; it
    /// is what the person reads when the session ends.
    ending: StoredValue<Option<String>>,
    /// A renewal of the current session has failed and not yet succeeded:
    /// if it expires so, the person is told it could not be renewed.
    unrenewed: StoredValue<bool>,
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

    /// Ends the session in every tab, and at the issuer when it can.
    pub fn sign_out(&self) {
        // The notice keeps protected pages from starting a new sign-in
        // while the browser is on its way to the issuer's logout.
        self.notice.set(Some("Signing you out…".into()));
        let id_token = self
            .session
            .with_untracked(|s| s.as_ref().and_then(|s| s.id_token.clone()));
        self.session.set(None);
        #[cfg(feature = "hydrate")]
        {
            use super::{browser, tabs};
            tabs::post(&tabs::TabMessage::SignedOut);
            let result = match self.config.get_value() {
                Some(cfg) => browser::sign_out(&cfg, id_token.as_deref()),
                None => {
                    browser::forget_session();
                    Ok(false)
                }
            };
            match result {
                Ok(true) => {}
                Ok(false) => self
                    .notice
                    .set(Some(local_sign_out_notice(self.config.with_value(|c| {
                        c.as_ref().is_some_and(|c| c.wants_id_token())
                    })))),
                Err(err) => self
                    .notice
                    .set(Some(format!("Signed out here, but: {err}."))),
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = id_token;
    }

    /// Forgets the session in this tab, telling the user why.
    pub fn end_locally(&self, why: &str) {
        #[cfg(feature = "hydrate")]
        super::browser::forget_session();
        self.session.set(None);
        self.notice.set(Some(why.to_string()));
    }

    /// Makes `session` this tab's session; with `announce`, every other tab
    /// of the app gets it too.
    pub fn adopt(&self, session: Session, announce: bool) {
        #[cfg(feature = "hydrate")]
        {
            use super::tabs;
            if !super::browser::keep_session(&session) {
                leptos::logging::warn!("this browser would not keep the session in localStorage; it lasts as long as this tab");
            }
            if announce {
                tabs::post(&tabs::TabMessage::Session {
                    session: session.clone(),
                });
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = announce;
        self.ending.set_value(None);
        self.unrenewed.set_value(false);
        self.notice.set(None);
        self.session.set(Some(session));
    }

    /// Whether this configuration gets an access token at all; with
    /// `RESPONSE_TYPE=id_token` it does not, and the API is not called.
    pub fn has_api_access(&self) -> bool {
        self.config
            .with_value(|c| c.as_ref().is_some_and(|c| c.wants_access_token()))
    }

    /// Runs the protected call `call` with the tab's access token. A `401
    /// invalid_token` answer gets one renewal and one retry; a second one
    /// is returned as it is (and [`Auth::explain`] signs the tab out). No
    /// call is sent without a token.
    pub async fn call<T, F, Fut>(self, call: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let has_token = self
            .session
            .with_untracked(|s| s.as_ref().is_some_and(|s| s.access_token.is_some()));
        if !has_token {
            return Err(ApiError::Unauthorized {
                error_description: "this tab holds no access token".into(),
            });
        }
        let first = call().await;
        #[cfg(feature = "hydrate")]
        if matches!(first, Err(ApiError::InvalidToken { .. })) && renew_now(self).await {
            return call().await;
        }
        first
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

/// What a sign-out that could not reach the issuer says.
#[cfg(any(feature = "hydrate", test))]
fn local_sign_out_notice(has_id_token: bool) -> String {
    if has_id_token {
        "You are signed out of this app.".into()
    } else {
        "You are signed out of this app. Your session at the sign-in service stays open: \
         this app asks for no ID token (RESPONSE_TYPE=token), and the sign-in service \
         needs one to end it."
            .into()
    }
}

/// Creates the app's [`Auth`] and provides it as context. In the browser it
/// finds the session, keeps it renewed, follows the other tabs, and ends it
/// when it expires.
pub fn provide_auth() -> Auth {
    let auth = Auth {
        config: StoredValue::new(read_config()),
        session: RwSignal::new(None),
        ready: RwSignal::new(false),
        notice: RwSignal::new(None),
        ending: StoredValue::new(None),
        unrenewed: StoredValue::new(false),
    };
    provide_context(auth);
    #[cfg(feature = "hydrate")]
    browser_side::start(auth);
    auth
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

#[cfg(feature = "hydrate")]
async fn renew_now(auth: Auth) -> bool {
    browser_side::renew_now(auth).await
}

#[cfg(feature = "hydrate")]
mod browser_side {
    //! The browser's half of [`super::provide_auth`].

    use super::super::callback::{complete_renewal, complete_sign_in, CallbackError, Session};
    use super::super::config::TokenStorage;
    use super::super::fragment::parse_fragment;
    use super::super::renewal::{self, retry_delay};
    use super::super::tabs::{self, TabMessage, RENEW_LOCK};
    use super::super::{browser, silent};
    use super::Auth;
    use leptos::prelude::*;

    pub fn start(auth: Auth) {
        let storage = auth
            .config
            .with_value(|c| c.as_ref().map(|c| c.token_storage))
            .unwrap_or_default();
        browser::use_storage(storage);
        browser::use_page_keys(
            auth.config
                .with_value(|c| c.as_ref().map(|c| c.keys.clone()))
                .unwrap_or_default(),
        );
        tabs::listen(move |message| on_tab_message(auth, message));

        // Effects run only in the browser, after hydration, so the first
        // render matches the server's.
        Effect::new(move |_| {
            leptos::task::spawn_local(async move {
                find_session(auth, storage).await;
                auth.ready.set(true);
            });
        });

        // A page restored from the back-forward cache keeps its old memory:
        // look again, so Back after sign-out shows no session.
        let _ = window_event_listener(leptos::ev::pageshow, move |ev| {
            if !ev.persisted() {
                return;
            }
            let live = match storage {
                TokenStorage::Local => browser::stored_session(),
                // Signing out anywhere clears the signed-in mark.
                TokenStorage::Memory => {
                    browser::current_session().filter(|_| browser::was_signed_in())
                }
            }
            .filter(|s| !s.is_expired(browser::now()));
            match live {
                Some(session) => auth.adopt(session, false),
                None => {
                    browser::forget_session();
                    auth.session.set(None);
                }
            }
        });

        // Renew before expiry, and end the session at expiry.
        Effect::new(move |_| {
            let Some((renew_at, expires_at)) = auth.session.with(|s| {
                let before = auth
                    .config
                    .with_value(|c| c.as_ref().map_or(60, |c| c.renew_before_secs));
                s.as_ref().map(|s| (s.renew_at(before), s.expires_at))
            }) else {
                return;
            };
            let same_session = move || {
                auth.session
                    .with_untracked(|s| s.as_ref().is_some_and(|s| s.expires_at == expires_at))
            };
            // A little jitter, so the tabs' timers do not all fire at once.
            let jitter = (js_sys::Math::random() * 1000.0) as i64;
            set_timeout(
                move || {
                    if same_session() {
                        leptos::task::spawn_local(renew_until_expiry(auth));
                    }
                },
                millis_until(renew_at, jitter),
            );
            set_timeout(
                move || {
                    if same_session() && browser::now() >= expires_at {
                        let why = auth.ending.get_value().unwrap_or_else(|| {
                            let failed = auth.unrenewed.get_value();
                            let why = if failed {
                                renewal::ENDED_UNRENEWED
                            } else {
                                renewal::ENDED
                            };
                            why.to_string()
                        });
                        auth.end_locally(&why);
                    }
                },
                millis_until(expires_at, 0),
            );
        });
    }

    fn millis_until(at: i64, extra_ms: i64) -> std::time::Duration {
        let ms = ((at - browser::now()).max(0) * 1000 + extra_ms).clamp(0, i32::MAX as i64);
        std::time::Duration::from_millis(ms as u64)
    }

    /// Start-up: the session kept in `localStorage`, or (memory storage) the
    /// one another tab holds, or a silent sign-in when this browser was
    /// signed in. Not on the callback page, which makes its own.
    async fn find_session(auth: Auth, storage: TokenStorage) {
        let on_callback = web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .is_some_and(|p| p == crate::pages::CALLBACK_PATH);
        if on_callback {
            return;
        }
        let now = browser::now();
        match storage {
            TokenStorage::Local => match browser::stored_session() {
                Some(s) if s.is_expired(now) => {
                    browser::forget_session();
                    auth.notice.set(Some(renewal::ENDED.into()));
                }
                Some(s) => auth.adopt(s, false),
                None => {}
            },
            TokenStorage::Memory => {
                if !browser::was_signed_in() {
                    return;
                }
                tabs::post(&TabMessage::Ask);
                let step = 50;
                for _ in 0..renewal::ASK_TABS_MS / step {
                    tabs::sleep(step).await;
                    if auth.session.with_untracked(Option::is_some) {
                        return;
                    }
                }
                match silent_sign_in(auth).await {
                    Ok(session) => auth.adopt(session, true),
                    Err(err) => {
                        leptos::logging::warn!(
                            "no session from another tab, and the silent sign-in failed: {err}"
                        );
                        browser::forget_session();
                    }
                }
            }
        }
    }

    fn on_tab_message(auth: Auth, message: TabMessage) {
        match message {
            TabMessage::Session { session } => {
                if session.is_expired(browser::now()) {
                    return;
                }
                let newer = auth.session.with_untracked(|current| match current {
                    Some(current) => {
                        session.expires_at >= current.expires_at && session != *current
                    }
                    None => true,
                });
                if newer {
                    auth.adopt(session, false);
                }
            }
            TabMessage::SignedOut => {
                if auth.session.with_untracked(Option::is_some) {
                    auth.end_locally("You signed out in another tab.");
                }
            }
            TabMessage::Ask => {
                if let Some(session) = auth
                    .session
                    .get_untracked()
                    .filter(|s| !s.is_expired(browser::now()))
                {
                    tabs::post(&TabMessage::Session { session });
                }
            }
            TabMessage::RenewalEnded { why } => auth.ending.set_value(Some(why)),
        }
    }

    /// The newest session this tab can see: its own, or the one another tab
    /// left in `localStorage`.
    fn latest(auth: Auth) -> Option<Session> {
        let own = auth.session.get_untracked();
        match (own, browser::stored_session()) {
            (Some(own), Some(stored)) if stored.expires_at > own.expires_at => Some(stored),
            (own, stored) => own.or(stored),
        }
    }

    /// Another tab renewed (or signed in again) since this tab took `due`:
    /// take its session and report true.
    fn took_newer(auth: Auth, due: &Session) -> bool {
        match latest(auth) {
            Some(newer) if newer != *due && !newer.is_expired(browser::now()) => {
                if auth.session.with_untracked(|s| s.as_ref() != Some(&newer)) {
                    auth.adopt(newer, false);
                }
                true
            }
            _ => false,
        }
    }

    /// The scheduled renewal: under the renewal lock, unless another tab did
    /// it meanwhile, renew; retry what may pass with backoff until expiry.
    async fn renew_until_expiry(auth: Auth) {
        let Some(due) = auth.session.get_untracked() else {
            return;
        };
        tabs::with_lock(RENEW_LOCK, async move {
            let mut attempt = 0;
            loop {
                if auth.ending.with_value(Option::is_some) || took_newer(auth, &due) {
                    return;
                }
                // Until it succeeds, an expiry now is one that renewal could
                // not prevent.
                auth.unrenewed.set_value(true);
                match renew_once(auth, &due).await {
                    // Signed out (here or in another tab) meanwhile: keep it so.
                    Ok(_) if auth.session.with_untracked(Option::is_none) => return,
                    Ok(session) => {
                        auth.adopt(session, true);
                        tabs::sleep(renewal::HANDOVER_MS).await;
                        return;
                    }
                    Err(err) if !err.renewal_may_retry() => {
                        let why = match err {
                            CallbackError::DifferentUser => renewal::ENDED_OTHER_PERSON,
                            _ => renewal::ENDED_AT_ISSUER,
                        };
                        leptos::logging::warn!("session renewal stopped: {err}");
                        stop_renewing(auth, why);
                        return;
                    }
                    Err(err) => {
                        attempt += 1;
                        let delay = retry_delay(attempt);
                        leptos::logging::warn!(
                            "session renewal failed (try {attempt}): {err}; next try in {delay} s"
                        );
                        if browser::now() + delay >= due.expires_at {
                            stop_renewing(auth, renewal::ENDED_UNRENEWED);
                            return;
                        }
                        tabs::sleep((delay * 1000) as u32).await;
                    }
                }
            }
        })
        .await;
    }

    fn stop_renewing(auth: Auth, why: &str) {
        auth.ending.set_value(Some(why.to_string()));
        tabs::post(&TabMessage::RenewalEnded { why: why.into() });
    }

    /// After a `401 invalid_token`: one renewal now (or the session another
    /// tab already renewed). True when the tab has a new session.
    pub async fn renew_now(auth: Auth) -> bool {
        let Some(due) = auth.session.get_untracked() else {
            return false;
        };
        // The caller goes on as soon as the new tokens are in; the lock is
        // held a little longer (the handover) in the background.
        let (done, renewed) = futures::channel::oneshot::channel::<bool>();
        leptos::task::spawn_local(async move {
            tabs::with_lock(RENEW_LOCK, async move {
                if took_newer(auth, &due) {
                    let _ = done.send(true);
                    return;
                }
                match renew_once(auth, &due).await {
                    Ok(_) if auth.session.with_untracked(Option::is_none) => {
                        let _ = done.send(false);
                    }
                    Ok(session) => {
                        auth.adopt(session, true);
                        let _ = done.send(true);
                        tabs::sleep(renewal::HANDOVER_MS).await;
                    }
                    Err(err) => {
                        leptos::logging::warn!(
                            "session renewal after a refused call failed: {err}"
                        );
                        let _ = done.send(false);
                    }
                }
            })
            .await;
        });
        renewed.await.unwrap_or(false)
    }

    /// One silent renewal of `current`, checked as a first sign-in is.
    async fn renew_once(auth: Auth, current: &Session) -> Result<Session, CallbackError> {
        let cfg = auth
            .config
            .get_value()
            .ok_or_else(|| CallbackError::Browser("sign-in is not configured".into()))?;
        // An answer after expiry is of no use: wait at most until then.
        let left_ms = (current.expires_at - browser::now()).clamp(1, 3600) * 1000;
        let (fragment, pending) = silent::authorize(&cfg, left_ms as u32).await?;
        let params = parse_fragment(&fragment)?;
        complete_renewal(
            params,
            pending,
            &cfg,
            browser::now(),
            &browser::WebCryptoSignatures,
            current,
        )
        .await
    }

    /// A silent sign-in with no session to renew (a reload with memory
    /// storage and no other tab open).
    async fn silent_sign_in(auth: Auth) -> Result<Session, CallbackError> {
        let cfg = auth
            .config
            .get_value()
            .ok_or_else(|| CallbackError::Browser("sign-in is not configured".into()))?;
        let (fragment, pending) = silent::authorize(&cfg, renewal::SILENT_TIMEOUT_MS).await?;
        let params = parse_fragment(&fragment)?;
        let (session, _) = complete_sign_in(
            params,
            Some(pending),
            &cfg,
            browser::now(),
            &browser::WebCryptoSignatures,
        )
        .await?;
        Ok(session)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_sign_out_says_whether_the_issuer_session_stays() {
        assert_eq!(
            local_sign_out_notice(true),
            "You are signed out of this app."
        );
        let token_only = local_sign_out_notice(false);
        assert!(token_only.contains("stays open"), "{token_only}");
        assert!(token_only.contains("RESPONSE_TYPE=token"), "{token_only}");
    }
}
