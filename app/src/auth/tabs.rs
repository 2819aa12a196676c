//! The app's tabs working as one: a `BroadcastChannel` that carries new
//! sessions, sign-outs and the end of renewal to every other tab of the
//! app (same origin only, by the browser's rules), and a Web Lock so that
//! one tab at a time renews.

use super::callback::Session;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

const CHANNEL_NAME: &str = "okta-implicit";

/// Held by the tab that is renewing (or deciding whether to).
pub const RENEW_LOCK: &str = "okta-implicit.renew";

/// What one tab tells the others. Externally tagged (serde's default):
/// reading an internally tagged enum costs the wasm far more code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TabMessage {
    /// A tab signed in or renewed: these are the tokens now.
    Session { session: Session },
    /// A tab signed out: every tab forgets the session.
    SignedOut,
    /// A tab that holds no tokens (memory storage) asks for them.
    Ask,
    /// Renewal of the current session stopped for good; every tab ends it
    /// at expiry with this message, and none tries again.
    RenewalEnded { why: String },
}

thread_local! {
    static CHANNEL: Option<web_sys::BroadcastChannel> =
        web_sys::BroadcastChannel::new(CHANNEL_NAME).ok();
}

/// Sends `message` to every other tab of the app.
pub fn post(message: &TabMessage) {
    let Ok(json) = serde_json::to_string(message) else {
        return;
    };
    CHANNEL.with(|channel| {
        if let Some(channel) = channel {
            let _ = channel.post_message(&JsValue::from_str(&json));
        }
    });
}

/// Calls `handler` with every message another tab sends; anything that is
/// not a [`TabMessage`] is dropped.
pub fn listen(handler: impl Fn(TabMessage) + 'static) {
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
    CHANNEL.with(|channel| {
        if let Some(channel) = channel {
            channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        }
    });
    // Listens for the life of the page.
    on_message.forget();
}

/// Runs `work` while holding the Web Lock `name`, shared by every tab of
/// the origin; without Web Locks (old browsers) it runs unguarded. `None`
/// if the browser refused the lock and the work did not run.
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
    drop(granted);
    result.await.ok()
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ =
                window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = JsFuture::from(promise).await;
}
