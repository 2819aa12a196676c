//! The app's tabs working as one: a `BroadcastChannel` that carries new
//! sessions, sign-outs and the end of renewal to every other tab of the
//! app (same origin only, by the browser's rules; named with the client id,
//! so two apps on one origin do not hear each other), and a Web Lock so
//! that one tab at a time renews.
//!
//! Nothing a message carries is used unchecked: a session is a
//! [`KeptSession`] until [`KeptSession::check`] passes, and the end of a
//! renewal names the session it is about, so tabs holding another ignore it.

use super::browser;
use super::session::{KeptSession, SessionKey};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// The Web Lock held by the tab that is renewing (or deciding whether to).
pub fn renew_lock() -> String {
    browser::key("renew")
}

/// What one tab tells the others. Externally tagged (serde's default):
/// reading an internally tagged enum costs the wasm far more code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TabMessage {
    /// A tab signed in or renewed: these are the tokens now.
    Session { session: KeptSession },
    /// A tab signed out: every tab forgets the session, and takes no
    /// session issued before `at_ms` again.
    SignedOut { at_ms: i64 },
    /// A tab that holds no tokens (memory storage) asks for them.
    Ask,
    /// Renewal of the session `about` stopped for good; every tab holding
    /// that session ends it at expiry with this message, and none tries
    /// again.
    RenewalEnded { about: SessionKey, why: String },
}

thread_local! {
    static CHANNEL: RefCell<Option<web_sys::BroadcastChannel>> = const { RefCell::new(None) };
}

/// Opens the app's channel (after [`browser::use_storage`] named the
/// client) and calls `handler` with every message another tab sends;
/// anything that is not a [`TabMessage`] is dropped.
pub fn listen(handler: impl Fn(TabMessage) + 'static) {
    let Ok(channel) = web_sys::BroadcastChannel::new(&browser::key("tabs")) else {
        return;
    };
    let on_message =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let message = event
                .data()
                .as_string()
                .and_then(|json| serde_json::from_str::<TabMessage>(&json).ok());
            if let Some(message) = message {
                handler(message);
            }
        });
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // Listens for the life of the page.
    on_message.forget();
    CHANNEL.set(Some(channel));
}

/// Sends `message` to every other tab of the app.
pub fn post(message: &TabMessage) {
    let Ok(json) = serde_json::to_string(message) else {
        return;
    };
    CHANNEL.with_borrow(|channel| {
        if let Some(channel) = channel {
            let _ = channel.post_message(&JsValue::from_str(&json));
        }
    });
}

/// Runs `work` while holding the Web Lock `name`, shared by every tab of
/// the origin; without Web Locks (old browsers) it runs unguarded. `None`
/// if the browser refused the lock, or settled the request without
/// granting it, and the work did not run: it never waits for a grant that
/// will not come.
pub async fn with_lock<T: 'static>(
    name: &str,
    work: impl Future<Output = T> + 'static,
) -> Option<T> {
    let work = Rc::new(RefCell::new(Some(Box::pin(work))));
    let (done, result) = futures::channel::oneshot::channel::<T>();
    let done = Rc::new(RefCell::new(Some(done)));

    let granted = {
        let (work, done) = (work.clone(), done.clone());
        Closure::once(move |_lock: JsValue| -> js_sys::Promise {
            wasm_bindgen_futures::future_to_promise(async move {
                let work = work.borrow_mut().take();
                if let Some(work) = work {
                    let value = work.await;
                    if let Some(done) = done.borrow_mut().take() {
                        let _ = done.send(value);
                    }
                }
                Ok(JsValue::UNDEFINED)
            })
        })
    };
    let request = web_sys::window()
        .map(|w| w.navigator())
        .and_then(|n| js_sys::Reflect::get(&n, &"locks".into()).ok())
        .filter(|locks| !locks.is_undefined())
        .and_then(|locks| {
            let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into())
                .ok()?
                .dyn_into()
                .ok()?;
            request
                .call2(&locks, &name.into(), granted.as_ref())
                .ok()?
                .dyn_into::<js_sys::Promise>()
                .ok()
        });
    match request {
        Some(promise) => {
            let _ = JsFuture::from(promise).await;
        }
        None => {
            let unguarded = work.borrow_mut().take();
            if let Some(work) = unguarded {
                return Some(work.await);
            }
        }
    }
    // The request has settled: the work ran and sent its value, or it never
    // will. Dropping every handle on the sender ends the wait either way.
    drop(granted);
    drop(done);
    result.await.ok()
}
