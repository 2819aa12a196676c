//! Signing in without leaving the page: the issuer's authorize endpoint in
//! a hidden iframe with `prompt=none`. The iframe comes back to the app's
//! registered `/login/callback`, whose page hands what follows its path
//! (the fragment with the tokens, or the query with a code) to this window
//! with `postMessage` (to this origin only) and nothing else; this
//! side accepts it only from this origin and from that iframe, then
//! removes the iframe. The caller checks the answer exactly as a first
//! sign-in's ([`super::flow::complete_renewal`]).

use super::browser::{new_pending, BrowserPlatform};
use super::callback::CallbackError;
use super::clock::sleep;
use super::config::PublicAuthConfig;
use super::flow::Flow;
use super::renewal::{SILENT_MESSAGE_PREFIX as MESSAGE_PREFIX, SILENT_TIMEOUT_MS};
use super::request::{PendingSignIn, Prompt};
use futures::future::{select, Either};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// After the iframe's load event, how long its message may still take: the
/// server's small callback page posts it before that event, the whole app
/// (for browsers that do not send `Sec-Fetch-Dest`) once it has hydrated.
const AFTER_LOAD_GRACE_MS: u32 = 1500;

/// Asks the issuer for new tokens in a hidden iframe. Returns what its
/// answer carried after the callback's path (`?query#fragment`) and the
/// attempt (`state`, `nonce`, and the code flow's verifier: kept in this
/// function's memory only, so parallel attempts in other tabs can never
/// consume it).
///
/// It waits at most `timeout_ms` (and never more than
/// [`SILENT_TIMEOUT_MS`]) for the answer.
pub async fn authorize(
    cfg: &PublicAuthConfig,
    timeout_ms: u32,
) -> Result<(String, PendingSignIn), CallbackError> {
    let timeout_ms = timeout_ms.min(SILENT_TIMEOUT_MS);
    let no_page = || CallbackError::Browser("no page to put the iframe in".into());
    let window = web_sys::window().ok_or_else(no_page)?;
    let return_to = window.location().pathname().unwrap_or_default();
    let pending = new_pending(cfg, &return_to).map_err(CallbackError::Browser)?;
    let url = Flow::of(cfg)
        .authorize_url(cfg, &pending, Prompt::None, &BrowserPlatform)
        .await?;

    let document = window.document().ok_or_else(no_page)?;
    let frame: web_sys::HtmlIFrameElement = document
        .create_element("iframe")
        .ok()
        .and_then(|e| e.dyn_into().ok())
        .ok_or_else(no_page)?;
    let _ = frame.set_attribute("hidden", "");
    let _ = frame.set_attribute("aria-hidden", "true");
    let _ = frame.set_attribute("tabindex", "-1");
    frame.set_src(&url);

    let (answer_tx, answer_rx) = futures::channel::oneshot::channel::<String>();
    let answer_tx = Rc::new(RefCell::new(Some(answer_tx)));
    let origin = window.location().origin().unwrap_or_default();
    let on_message = {
        let frame = frame.clone();
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            // Only our origin, only our iframe, only our message.
            let from_frame = match (event.source(), frame.content_window()) {
                (Some(source), Some(ours)) => js_sys::Object::is(source.as_ref(), ours.as_ref()),
                _ => false,
            };
            if event.origin() != origin || !from_frame {
                return;
            }
            let Some(fragment) = event
                .data()
                .as_string()
                .and_then(|data| data.strip_prefix(MESSAGE_PREFIX).map(str::to_string))
            else {
                return;
            };
            if let Some(tx) = answer_tx.borrow_mut().take() {
                let _ = tx.send(fragment);
            }
        })
    };
    let _ = window.add_event_listener_with_callback("message", on_message.as_ref().unchecked_ref());
    // The server's callback page posts its message while it is parsed,
    // before its load event. An iframe that finished loading something
    // else (the browser's error page when the issuer cannot be reached, a
    // page of the issuer's) will not answer: no need to wait the timeout.
    let (loaded_tx, loaded_rx) = futures::channel::oneshot::channel::<()>();
    let loaded_tx = RefCell::new(Some(loaded_tx));
    let on_load = Closure::<dyn Fn()>::new(move || {
        if let Some(tx) = loaded_tx.borrow_mut().take() {
            let _ = tx.send(());
        }
    });
    frame.set_onload(Some(on_load.as_ref().unchecked_ref()));
    let appended = document
        .body()
        .is_some_and(|body| body.append_child(&frame).is_ok());

    let outcome = if appended {
        let loaded_then_grace = Box::pin(async {
            if loaded_rx.await.is_ok() {
                sleep(AFTER_LOAD_GRACE_MS).await;
                CallbackError::NoAnswer(0)
            } else {
                futures::future::pending().await
            }
        });
        let timeout = Box::pin(async {
            sleep(timeout_ms).await;
            CallbackError::NoAnswer(timeout_ms.div_ceil(1000))
        });
        match select(answer_rx, select(loaded_then_grace, timeout)).await {
            Either::Left((Ok(fragment), _)) => Ok(fragment),
            Either::Left((Err(_), _)) => Err(CallbackError::NoAnswer(0)),
            Either::Right((Either::Left((err, _)) | Either::Right((err, _)), _)) => Err(err),
        }
    } else {
        Err(no_page())
    };
    frame.set_onload(None);
    let _ =
        window.remove_event_listener_with_callback("message", on_message.as_ref().unchecked_ref());
    frame.remove();
    outcome.map(|fragment| (fragment, pending))
}

/// True when this page is inside a frame.
pub fn is_framed() -> bool {
    web_sys::window()
        .and_then(|w| {
            let parent = w.parent().ok().flatten()?;
            Some(!js_sys::Object::is(parent.as_ref(), w.as_ref()))
        })
        .unwrap_or(false)
}

/// In the iframe (when the server did not answer with its own small page):
/// hands the answer (`?query#fragment`) to the parent window, if the
/// parent is this origin.
pub fn hand_to_parent(answer: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let origin = window.location().origin().unwrap_or_default();
    if let Ok(Some(parent)) = window.parent() {
        let message = format!("{MESSAGE_PREFIX}{answer}");
        let _ = parent.post_message(&JsValue::from_str(&message), &origin);
    }
}
