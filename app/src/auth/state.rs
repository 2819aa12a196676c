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
//! - a failed renewal is retried with backoff until expiry (the lock is
//!   let go while it waits), unless the issuer says the person must sign
//!   in again; at expiry the session ends with the reason;
//! - sign-in and sign-out in one tab reach every tab.
//!
//! Every result that arrives later than it was asked for (a renewal, a
//! refused call, a tab's message) is applied only if the tab still holds
//! the session it was about: a renewal that finishes after the tab signed
//! out or took another person's session is dropped, and so is a message
//! about a session the tab no longer holds.

use super::config::PublicAuthConfig;
use super::session::{Session, SessionKey};
use crate::error::ApiError;
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
    /// After a session ended by expiry or a refused token, its ID token:
    /// what ending the person's session at the issuer still needs
    /// (`id_token_hint`), so a person on a shared computer can sign out
    /// there too. Memory only.
    pub ended_id_token: RwSignal<Option<String>>,
    /// Why the session it names will not be renewed, once that is known;
    /// it is what the person reads when that session ends.
    ending: StoredValue<Option<(SessionKey, String)>>,
    /// A renewal of the current session has failed and not yet succeeded:
    /// if it expires so, the person is told it could not be renewed.
    unrenewed: StoredValue<bool>,
}

/// Id of the `<script type="application/json">` that carries the config.
pub const CONFIG_ELEMENT_ID: &str = "auth-config";

/// What a session that ended because its token was refused says.
pub const EXPIRED: &str = "Your session has expired. Please sign in again.";

impl Auth {
    /// Sends the browser to the issuer to sign in, coming back to `return_to`.
    pub fn sign_in(&self, return_to: &str) {
        let Some(cfg) = self.config.get_value() else {
            self.notice
                .set(Some("Sign-in is not configured on this server.".into()));
            return;
        };
        #[cfg(feature = "hydrate")]
        {
            let (auth, return_to) = (*self, return_to.to_string());
            leptos::task::spawn_local(async move {
                if let Err(err) = super::browser::start_sign_in(&cfg, &return_to).await {
                    auth.notice
                        .set(Some(format!("Cannot start sign-in: {err}.")));
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (cfg, return_to);
    }

    /// Ends the session in every tab at once, then at the issuer when it
    /// can: a refresh token is revoked first, and the live session's, or
    /// else the ended one's, ID token is the logout's hint. Nothing that
    /// fails at the issuer keeps anyone signed in here.
    pub fn sign_out(&self) {
        // The notice keeps protected pages from starting a new sign-in
        // while the browser is on its way to the issuer's logout.
        self.notice.set(Some("Signing you out…".into()));
        let (id_token, refresh_token, dpop) = self
            .session
            .with_untracked(|s| {
                s.as_ref().map(|s| {
                    (
                        s.id_token.clone(),
                        s.refresh_token.clone(),
                        s.dpop_jkt.is_some(),
                    )
                })
            })
            .unwrap_or_default();
        let id_token = id_token.or_else(|| self.ended_id_token.get_untracked());
        self.session.set(None);
        self.ended_id_token.set(None);
        #[cfg(feature = "hydrate")]
        {
            use super::{browser, idb, tabs};
            browser::sign_out_here();
            tabs::post(&tabs::TabMessage::SignedOut {
                at_ms: browser::signed_out_at().unwrap_or_else(browser::now_ms),
            });
            let auth = *self;
            leptos::task::spawn_local(async move {
                if refresh_token.is_some() {
                    let _ = idb::set_newest(None).await;
                }
                if dpop {
                    super::dpop::browser::forget_keys().await;
                }
                let result = match auth.config.get_value() {
                    Some(cfg) => {
                        browser::sign_out_at_issuer(
                            &cfg,
                            id_token.as_deref(),
                            refresh_token.as_deref(),
                        )
                        .await
                    }
                    None => Ok(false),
                };
                match result {
                    Ok(true) => {}
                    Ok(false) => auth
                        .notice
                        .set(Some(local_sign_out_notice(auth.config.with_value(|c| {
                            c.as_ref().is_some_and(|c| c.wants_id_token())
                        })))),
                    Err(err) => auth
                        .notice
                        .set(Some(format!("Signed out here, but: {err}."))),
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (id_token, refresh_token, dpop);
    }

    /// Forgets the session in this tab, telling the user why. With
    /// `keep_hint`, its ID token is kept so that the person can still end
    /// their session at the issuer ([`Auth::ended_id_token`]).
    pub fn end_locally(&self, why: &str, keep_hint: bool) {
        #[cfg(feature = "hydrate")]
        {
            super::browser::forget_session();
            if self
                .session
                .with_untracked(|s| s.as_ref().is_some_and(|s| s.dpop_jkt.is_some()))
            {
                leptos::task::spawn_local(super::dpop::browser::forget_keys());
            }
        }
        let hint = self
            .session
            .with_untracked(|s| s.as_ref().and_then(|s| s.id_token.clone()));
        if keep_hint && hint.is_some() {
            self.ended_id_token.set(hint);
        }
        self.session.set(None);
        self.notice.set(Some(why.to_string()));
    }

    /// [`Auth::end_locally`], if the tab still holds `session`: a result
    /// about a session the tab has since left behind changes nothing.
    pub fn end_if_current(&self, session: &Session, why: &str, keep_hint: bool) -> bool {
        let current = self.holds(session);
        if current {
            self.end_locally(why, keep_hint);
        }
        current
    }

    /// Whether the tab's session is `session`.
    pub fn holds(&self, session: &Session) -> bool {
        self.session.with_untracked(|s| s.as_ref() == Some(session))
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
                    session: session.to_kept(),
                });
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = announce;
        self.ending.set_value(None);
        self.unrenewed.set_value(false);
        self.notice.set(None);
        self.ended_id_token.set(None);
        self.session.set(Some(session));
    }

    /// Whether this configuration gets an access token at all; with
    /// `RESPONSE_TYPE=id_token` it does not, and the API is not called.
    pub fn has_api_access(&self) -> bool {
        self.config
            .with_value(|c| c.as_ref().is_some_and(|c| c.wants_access_token()))
    }

    /// Runs the protected call `call` with the tab's access token. With
    /// DPoP, a `use_dpop_nonce` answer is tried once more, with the nonce
    /// the answer carried (RFC 9449 §9). A `401 invalid_token` (or a
    /// refused DPoP proof) gets one renewal and one retry; a second one
    /// signs the tab out, as a `401` without a token error does at once,
    /// but only if the tab still holds the session the refused call was
    /// sent with. A token that expired before its renewal ran (the
    /// computer slept) is renewed before the call, not sent. No call is
    /// sent without a token.
    pub async fn call<T, F, Fut>(self, call: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let Some(sent_with) = self
            .session
            .get_untracked()
            .filter(|s| s.access_token.is_some())
        else {
            return Err(ApiError::Unauthorized {
                error_description: "this tab holds no access token".into(),
            });
        };
        // The token expired before its renewal ran: the computer slept, or
        // its clock moved on, while the renewal timer (which counts time
        // awake) had not fired yet. The token is not sent; renew first, as
        // for a refused call, and call with what that gives.
        #[cfg(feature = "hydrate")]
        let sent_with = if sent_with.is_expired(super::clock::now())
            && self.may_renew(&sent_with)
            && renew_now(self, &sent_with).await
        {
            self.session
                .get_untracked()
                .filter(|s| s.access_token.is_some())
                .unwrap_or(sent_with)
        } else {
            sent_with
        };
        let first = with_nonce(&call).await;
        #[cfg(feature = "hydrate")]
        if refused_token(&first) && renew_now(self, &sent_with).await {
            // The tab holds another session now (renewed here or by
            // another tab): the retry goes with it.
            if let Some(retried_with) = self.session.get_untracked() {
                let second = with_nonce(&call).await;
                if refused_token(&second) || is_unauthorized(&second) {
                    self.end_if_current(&retried_with, EXPIRED, true);
                }
                return second;
            }
        }
        if refused_token(&first) || is_unauthorized(&first) {
            self.end_if_current(&sent_with, EXPIRED, true);
        }
        first
    }

    /// Whether renewing `session` is still worth a try: not once its
    /// renewal stopped for good (the issuer ended the session, or it now
    /// has someone else signed in).
    #[cfg(feature = "hydrate")]
    fn may_renew(&self, session: &Session) -> bool {
        let key = session.key();
        !self
            .ending
            .with_value(|e| e.as_ref().is_some_and(|(about, _)| *about == key))
    }

    /// Turns a protected call's error into what the user reads.
    pub fn explain(&self, err: &ApiError) -> String {
        match err {
            ApiError::InvalidToken { .. }
            | ApiError::InvalidDpopProof { .. }
            | ApiError::Unauthorized { .. } => EXPIRED.into(),
            ApiError::InsufficientScope { scope } => format!("You do not have the {scope} scope."),
            ApiError::TemporarilyUnavailable { retry_after } => {
                format!("The server cannot check your sign-in right now. Try again in {retry_after} seconds.")
            }
            other => format!("Something went wrong: {other}."),
        }
    }
}

/// `call`, and once more if the server wants a DPoP nonce: the server
/// function client has kept the one its answer carried.
async fn with_nonce<T, F, Fut>(call: &F) -> Result<T, ApiError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    match call().await {
        Err(ApiError::UseDpopNonce { .. }) => call().await,
        other => other,
    }
}

/// The server refused the token, or the proof of its key: a renewal may help.
fn refused_token<T>(result: &Result<T, ApiError>) -> bool {
    matches!(
        result,
        Err(ApiError::InvalidToken { .. } | ApiError::InvalidDpopProof { .. })
    )
}

/// The server saw no usable credentials at all.
fn is_unauthorized<T>(result: &Result<T, ApiError>) -> bool {
    matches!(result, Err(ApiError::Unauthorized { .. }))
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
        ended_id_token: RwSignal::new(None),
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
async fn renew_now(auth: Auth, due: &Session) -> bool {
    browser_side::renew_now(auth, due.clone()).await
}

#[cfg(feature = "hydrate")]
mod browser_side {
    //! The browser's half of [`super::provide_auth`].

    use super::super::browser::BrowserPlatform;
    use super::super::callback::{CallbackError, Platform};
    use super::super::config::{PublicAuthConfig, TokenStorage};
    use super::super::flow::{code, complete_renewal, complete_sign_in, Flow};
    use super::super::idb;
    use super::super::renewal::{self, retry_delay};
    use super::super::session::{KeptSession, Session};
    use super::super::tabs::{self, renew_lock, TabMessage};
    use super::super::{browser, clock, silent};
    use super::Auth;
    use leptos::prelude::*;

    pub fn start(auth: Auth) {
        let (storage, client_id) = auth
            .config
            .with_value(|c| c.as_ref().map(|c| (c.token_storage, c.client_id.clone())))
            .unwrap_or_default();
        browser::use_storage(storage, &client_id);
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
                TokenStorage::Local => stored_session(auth),
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

        // Renew before expiry, and end the session at expiry: each timer
        // acts only if the tab still holds the session it was set for.
        Effect::new(move |_| {
            let Some(session) = auth.session.get() else {
                return;
            };
            let before = auth
                .config
                .with_value(|c| c.as_ref().map_or(60, |c| c.renew_before_secs));
            let (renew_at, expires_at) = (session.renew_at(before), session.expires_at);
            // A little jitter, so the tabs' timers do not all fire at once.
            let jitter = (js_sys::Math::random() * 1000.0) as i64;
            let due = session.clone();
            set_timeout(
                move || {
                    if auth.holds(&due) {
                        leptos::task::spawn_local(renew_until_expiry(auth, due));
                    }
                },
                millis_until(renew_at, jitter),
            );
            set_timeout(
                move || {
                    if !auth.holds(&session) || browser::now() < expires_at {
                        return;
                    }
                    let key = session.key();
                    let why = auth
                        .ending
                        .get_value()
                        .filter(|(about, _)| *about == key)
                        .map(|(_, why)| why)
                        .unwrap_or_else(|| {
                            let why = if auth.unrenewed.get_value() {
                                renewal::ENDED_UNRENEWED
                            } else {
                                renewal::ENDED
                            };
                            why.to_string()
                        });
                    // The ID token of someone the issuer no longer has
                    // signed in is no hint for ending its session there.
                    let keep_hint = why != renewal::ENDED_OTHER_PERSON;
                    auth.end_locally(&why, keep_hint);
                },
                millis_until(expires_at, 0),
            );
        });
    }

    fn millis_until(at: i64, extra_ms: i64) -> std::time::Duration {
        let ms = ((at - browser::now()).max(0) * 1000 + extra_ms).clamp(0, i32::MAX as i64);
        std::time::Duration::from_millis(ms as u64)
    }

    /// The session kept in `localStorage`, checked against this page's
    /// configuration.
    fn stored_session(auth: Auth) -> Option<Session> {
        auth.config
            .with_value(|c| c.as_ref().and_then(browser::stored_session))
    }

    /// A session another tab sent, if it passes the checks for this page.
    fn checked(auth: Auth, kept: KeptSession) -> Option<Session> {
        let cfg = auth.config.get_value()?;
        match kept.check(&cfg, browser::signed_out_at()) {
            Ok(session) => Some(session),
            Err(why) => {
                leptos::logging::warn!("a session another tab sent is not used: {why}");
                None
            }
        }
    }

    /// Start-up: the session kept in `localStorage`, or (memory storage) the
    /// one another tab holds, or a silent sign-in when this browser was
    /// signed in. Not on the callback page, which makes its own.
    async fn find_session(auth: Auth, storage: TokenStorage) {
        let on_callback = web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .is_some_and(|p| p == crate::routes::CALLBACK);
        if on_callback {
            return;
        }
        let now = browser::now();
        match storage {
            TokenStorage::Local => match stored_session(auth) {
                Some(s) if s.is_expired(now) => {
                    browser::forget_session();
                    auth.ended_id_token.set(s.id_token);
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
                    clock::sleep(step).await;
                    if auth.session.with_untracked(Option::is_some) {
                        return;
                    }
                }
                match silent_sign_in(auth).await {
                    // Another tab answered (or signed in) meanwhile: keep that.
                    Ok(_) if auth.session.with_untracked(Option::is_some) => {}
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
                let Some(session) = checked(auth, session) else {
                    return;
                };
                if session.is_expired(browser::now()) {
                    return;
                }
                let newer = auth.session.with_untracked(|current| {
                    current
                        .as_ref()
                        .is_none_or(|current| session.is_newer_than(current))
                });
                if newer {
                    auth.adopt(session, false);
                }
            }
            TabMessage::SignedOut { at_ms } => {
                // What the other tab wrote to localStorage may not have
                // reached this one yet: note it here too.
                browser::note_sign_out(at_ms);
                if auth.session.with_untracked(Option::is_some) {
                    auth.end_locally("You signed out in another tab.", false);
                }
                auth.ended_id_token.set(None);
            }
            TabMessage::Ask => {
                if let Some(session) = auth
                    .session
                    .get_untracked()
                    .filter(|s| !s.is_expired(browser::now()))
                {
                    tabs::post(&TabMessage::Session {
                        session: session.to_kept(),
                    });
                }
            }
            TabMessage::RenewalEnded { about, why } => {
                let ours = auth
                    .session
                    .with_untracked(|s| s.as_ref().is_some_and(|s| s.key() == about));
                if ours {
                    auth.ending.set_value(Some((about, why)));
                }
            }
        }
    }

    /// Another tab renewed (or signed in again) since this tab took `due`:
    /// take its session and report true.
    fn took_newer(auth: Auth, due: &Session) -> bool {
        match stored_session(auth) {
            Some(newer) if newer.is_newer_than(due) && !newer.is_expired(browser::now()) => {
                if auth.session.with_untracked(|s| s.as_ref() != Some(&newer)) {
                    auth.adopt(newer, false);
                }
                true
            }
            _ => false,
        }
    }

    /// What one try at renewing came to.
    enum Try {
        /// Nothing more to do: renewed, renewed by another tab, no longer
        /// this tab's session, or stopped for good.
        Done,
        /// It failed in a way that may pass: try again after a while.
        Again,
    }

    /// The scheduled renewal of `due`: one try at a time under the renewal
    /// lock, unless another tab did it meanwhile; what may pass is tried
    /// again with backoff until expiry, with the lock let go while waiting,
    /// so another tab's renewal after a refused call never waits behind it.
    async fn renew_until_expiry(auth: Auth, due: Session) {
        let mut attempt = 0;
        loop {
            let tried = tabs::with_lock(&renew_lock(), try_renewal(auth, due.clone())).await;
            if matches!(tried, Some(Try::Done)) || !auth.holds(&due) {
                return;
            }
            // Failed, or the lock was not granted.
            attempt += 1;
            let delay = retry_delay(attempt);
            if browser::now() + delay >= due.expires_at {
                stop_renewing(auth, &due, renewal::ENDED_UNRENEWED);
                return;
            }
            clock::sleep((delay * 1000) as u32).await;
        }
    }

    /// One try, under the lock.
    async fn try_renewal(auth: Auth, due: Session) -> Try {
        if !auth.holds(&due) || !auth.may_renew(&due) || took_newer(auth, &due) {
            return Try::Done;
        }
        // Until it succeeds, an expiry now is one that renewal could not
        // prevent.
        auth.unrenewed.set_value(true);
        let result = renew_once(auth, &due).await;
        if !still_due(auth, &due) {
            return Try::Done;
        }
        match result {
            Ok(session) => {
                if adopt_renewed(auth, &due, session).await {
                    clock::sleep(renewal::HANDOVER_MS).await;
                }
                Try::Done
            }
            Err(err) if !err.renewal_may_retry() => {
                let why = match err {
                    CallbackError::DifferentUser => renewal::ENDED_OTHER_PERSON,
                    _ => renewal::ENDED_AT_ISSUER,
                };
                leptos::logging::warn!("session renewal stopped: {err}");
                stop_renewing(auth, &due, why);
                Try::Done
            }
            Err(err) => {
                leptos::logging::warn!("session renewal failed: {err}");
                Try::Again
            }
        }
    }

    /// After a renewal's answer came: whether it still concerns this tab.
    /// Not if the tab signed out or took another session meanwhile, nor if
    /// another tab did (a sign-in as someone else, seen in `localStorage`
    /// before its message arrives); then the answer is dropped.
    fn still_due(auth: Auth, due: &Session) -> bool {
        let here = auth.holds(due);
        let elsewhere = stored_session(auth).is_some_and(|s| s.is_newer_than(due));
        if !here || elsewhere {
            leptos::logging::warn!(
                "a renewal ended after this tab left the session it was for; its answer is dropped"
            );
            if elsewhere {
                took_newer(auth, due);
            }
            return false;
        }
        true
    }

    fn stop_renewing(auth: Auth, due: &Session, why: &str) {
        auth.ending.set_value(Some((due.key(), why.to_string())));
        tabs::post(&TabMessage::RenewalEnded {
            about: due.key(),
            why: why.into(),
        });
    }

    /// After a `401 invalid_token` for `due`: one renewal now (or the
    /// session another tab already renewed). True when the tab holds
    /// another live session than `due` by the end, to retry with.
    pub async fn renew_now(auth: Auth, due: Session) -> bool {
        // The caller goes on as soon as the new tokens are in; the lock is
        // held a little longer (the handover) in the background.
        let (done, renewed) = futures::channel::oneshot::channel::<bool>();
        leptos::task::spawn_local(async move {
            let left = due.clone();
            let moved_on = move || {
                auth.session.with_untracked(|s| {
                    s.as_ref()
                        .is_some_and(|s| *s != left && !s.is_expired(browser::now()))
                })
            };
            tabs::with_lock(&renew_lock(), async move {
                if !auth.holds(&due) || took_newer(auth, &due) {
                    let _ = done.send(moved_on());
                    return;
                }
                let result = renew_once(auth, &due).await;
                if !still_due(auth, &due) {
                    let _ = done.send(moved_on());
                    return;
                }
                match result {
                    Ok(session) => {
                        if adopt_renewed(auth, &due, session).await {
                            let _ = done.send(true);
                            clock::sleep(renewal::HANDOVER_MS).await;
                        } else {
                            let _ = done.send(moved_on());
                        }
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

    /// One renewal of `current`: with the refresh token when the session
    /// has one (and, if the issuer refuses it, one silent sign-in, which
    /// may still work where the browser sends the issuer's cookie), else a
    /// silent sign-in in a hidden iframe. Either way checked as a first
    /// sign-in is, and for the same person.
    async fn renew_once(auth: Auth, current: &Session) -> Result<Session, CallbackError> {
        let cfg = auth
            .config
            .get_value()
            .ok_or_else(|| CallbackError::Browser("sign-in is not configured".into()))?;
        if current.refresh_token.is_none() {
            return renew_silently(&cfg, current).await;
        }
        match refresh(auth, &cfg, current).await {
            Err(refused) if refused.refresh_refused() => {
                leptos::logging::warn!(
                    "the refresh token was refused ({refused}); trying a silent sign-in"
                );
                renew_silently(&cfg, current).await.map_err(|err| {
                    if err.renewal_may_retry() {
                        refused
                    } else {
                        err
                    }
                })
            }
            other => other,
        }
    }

    /// A silent sign-in in a hidden iframe, for the person of `current`.
    async fn renew_silently(
        cfg: &PublicAuthConfig,
        current: &Session,
    ) -> Result<Session, CallbackError> {
        // An answer after expiry is of no use: wait at most until then.
        let left_ms = (current.expires_at - browser::now()).clamp(1, 3600) * 1000;
        let (answer, pending) = silent::authorize(cfg, left_ms as u32).await?;
        let answer = Flow::of(cfg).answer(cfg, &answer)?;
        complete_renewal(
            answer,
            pending,
            cfg,
            browser::now_ms(),
            &BrowserPlatform,
            current,
        )
        .await
    }

    /// How long a tab that finds its refresh token already used waits for
    /// the tab that used it to hand over the new tokens.
    const HANDOVER_WAIT_MS: u32 = 3_000;

    /// Refreshes `current`, under the renewal lock, unless its refresh
    /// token is no longer the newest: then another tab has used it, and
    /// sending it again would look to the issuer like a stolen token (it
    /// revokes the whole family). The newest is what IndexedDB says
    /// ([`idb`]), which every tab sees at once; the tab that used it
    /// hands the new tokens over on the channel before it lets go of the
    /// lock, so this tab waits for them rather than refresh.
    async fn refresh(
        auth: Auth,
        cfg: &PublicAuthConfig,
        current: &Session,
    ) -> Result<Session, CallbackError> {
        let mine = refresh_hash(current).await?;
        match idb::newest().await {
            Ok(Some(newest))
                if newest.sub == current.sub
                    && newest.issued_at_ms >= current.issued_at_ms
                    && newest.refresh_hash != mine =>
            {
                for _ in 0..HANDOVER_WAIT_MS / 50 {
                    clock::sleep(50).await;
                    if !auth.holds(current) {
                        // The caller sees the tab has moved on and drops this.
                        return Err(CallbackError::Browser("another tab renewed the session".into()));
                    }
                }
                return Err(CallbackError::Browser(
                    "another tab renewed the session, but its tokens have not reached this tab".into(),
                ));
            }
            Ok(_) => {}
            Err(_) => leptos::logging::warn!(
                "IndexedDB is not available: the renewal lock alone keeps the tabs from using one refresh token twice"
            ),
        }
        code::refresh(cfg, current, browser::now_ms(), &BrowserPlatform).await
    }

    /// Takes `renewed`, the renewal of `due`, as this tab's session and
    /// every tab's, if the tab still holds `due`. With a refresh token,
    /// IndexedDB records it as the newest first (committed before the
    /// renewal lock is let go), so no tab sends the one it replaced again.
    /// False when the tab moved on meanwhile and `renewed` was dropped.
    async fn adopt_renewed(auth: Auth, due: &Session, renewed: Session) -> bool {
        if renewed.refresh_token.is_some() {
            let newest = match refresh_hash(&renewed).await {
                Ok(refresh_hash) => Some(idb::Newest {
                    sub: renewed.sub.clone(),
                    issued_at_ms: renewed.issued_at_ms,
                    refresh_hash,
                }),
                Err(_) => None,
            };
            if idb::set_newest(newest.as_ref()).await.is_err() {
                leptos::logging::warn!("IndexedDB did not take the newest refresh token's record");
            }
            if !still_due(auth, due) {
                return false;
            }
        }
        auth.adopt(renewed, true);
        true
    }

    /// Base64url SHA-256 of `session`'s refresh token (never the token).
    async fn refresh_hash(session: &Session) -> Result<String, CallbackError> {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
        let token = session.refresh_token.as_deref().unwrap_or_default();
        Ok(URL_SAFE_NO_PAD.encode(BrowserPlatform.sha256(token.as_bytes()).await?))
    }

    /// A silent sign-in with no session to renew (a reload with memory
    /// storage and no other tab open).
    async fn silent_sign_in(auth: Auth) -> Result<Session, CallbackError> {
        let cfg = auth
            .config
            .get_value()
            .ok_or_else(|| CallbackError::Browser("sign-in is not configured".into()))?;
        let (answer, pending) = silent::authorize(&cfg, renewal::SILENT_TIMEOUT_MS).await?;
        let answer = Flow::of(&cfg).answer(&cfg, &answer)?;
        let (session, _) = complete_sign_in(
            answer,
            Some(pending),
            &cfg,
            browser::now_ms(),
            &BrowserPlatform,
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
