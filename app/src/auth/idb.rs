//! The one record the tabs keep in IndexedDB: which refresh token is the
//! newest (its SHA-256, never the token, and the issue time of its
//! session). IndexedDB, unlike `localStorage`, is consistent across tabs
//! at once: a transaction that has completed in one tab is seen by the
//! next transaction of any other. The tab that refreshes writes the record
//! before it lets go of the renewal lock, so the next tab to take the lock
//! knows whether the refresh token it holds is still the newest, and never
//! sends one that another tab has already used (the issuer would take that
//! for a stolen token and revoke the whole family). See `state.rs`.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

const STORE: &str = "refresh";
const KEY: &str = "newest";

/// The newest refresh token, as far as the tabs know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Newest {
    /// The person of the session holding it: a record about someone else
    /// says nothing of this session's refresh token.
    pub sub: String,
    /// When the session holding it was issued (milliseconds).
    pub issued_at_ms: i64,
    /// Base64url SHA-256 of the refresh token.
    pub refresh_hash: String,
}

/// The record, if any.
pub async fn newest() -> Result<Option<Newest>, JsValue> {
    let db = open().await?;
    let tx = db.transaction_with_str(STORE)?;
    let request = tx.object_store(STORE)?.get(&KEY.into())?;
    let value = settled(&request).await?;
    db.close();
    Ok(value
        .as_string()
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// Writes the record (or removes it) and waits until the write is
/// committed, so every tab sees it from then on.
pub async fn set_newest(newest: Option<&Newest>) -> Result<(), JsValue> {
    let db = open().await?;
    let tx = db.transaction_with_str_and_mode(STORE, web_sys::IdbTransactionMode::Readwrite)?;
    let store = tx.object_store(STORE)?;
    match newest {
        Some(newest) => {
            let json =
                serde_json::to_string(newest).map_err(|e| JsValue::from_str(&e.to_string()))?;
            store.put_with_key(&json.into(), &KEY.into())?;
        }
        None => {
            store.delete(&KEY.into())?;
        }
    }
    committed(&tx).await?;
    db.close();
    Ok(())
}

async fn open() -> Result<web_sys::IdbDatabase, JsValue> {
    let factory = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .indexed_db()?
        .ok_or_else(|| JsValue::from_str("no IndexedDB"))?;
    let request = factory.open_with_u32(&super::browser::key("db"), 1)?;
    let upgrade = {
        let request = request.clone();
        Closure::once(move |_: web_sys::Event| {
            if let Ok(db) = request
                .result()
                .and_then(|r| r.dyn_into::<web_sys::IdbDatabase>())
            {
                let _ = db.create_object_store(STORE);
            }
        })
    };
    request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = settled(&request).await;
    request.set_onupgradeneeded(None);
    db?.dyn_into()
}

/// The result of `request` once it succeeds, or its error.
async fn settled(request: &web_sys::IdbRequest) -> Result<JsValue, JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let on_success = {
            let request = request.clone();
            Closure::once_into_js(move |_: web_sys::Event| {
                let _ = resolve.call1(
                    &JsValue::NULL,
                    &request.result().unwrap_or(JsValue::UNDEFINED),
                );
            })
        };
        let on_error = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = reject.call1(
                &JsValue::NULL,
                &JsValue::from_str("IndexedDB request failed"),
            );
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise).await
}

/// Resolves when `tx` has committed.
async fn committed(tx: &web_sys::IdbTransaction) -> Result<(), JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let on_complete = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let reject_abort = reject.clone();
        let on_error = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = reject.call1(&JsValue::NULL, &JsValue::from_str("IndexedDB write failed"));
        });
        let on_abort = Closure::once_into_js(move |_: web_sys::Event| {
            let _ = reject_abort.call1(
                &JsValue::NULL,
                &JsValue::from_str("IndexedDB write aborted"),
            );
        });
        tx.set_oncomplete(Some(on_complete.unchecked_ref()));
        tx.set_onerror(Some(on_error.unchecked_ref()));
        tx.set_onabort(Some(on_abort.unchecked_ref()));
    });
    JsFuture::from(promise).await.map(|_| ())
}
