//! What the tabs keep in IndexedDB, which, unlike `localStorage`, is
//! consistent across tabs at once (a transaction that has completed in one
//! tab is seen by the next transaction of any other) and keeps a
//! `CryptoKey` as it is, by structured cloning:
//!
//! - `refresh`: which refresh token is the newest (its SHA-256, never the
//!   token, with the person and the issue time of its session). The tab
//!   that refreshes writes it before it lets go of the renewal lock, so the
//!   next tab to take the lock knows whether the refresh token it holds is
//!   still the newest, and never sends one that another tab has already
//!   used (the issuer would take that for a stolen token and revoke the
//!   whole family). See `state.rs`.
//! - `dpop-keys`: the session's DPoP key pair, by its thumbprint, with a
//!   private key the page cannot export (`dpop.rs`).

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// The stores, created when the database is made or upgraded.
pub const REFRESH: &str = "refresh";
pub const DPOP_KEYS: &str = "dpop-keys";
const STORES: [&str; 2] = [REFRESH, DPOP_KEYS];
const VERSION: u32 = 2;

const NEWEST: &str = "newest";

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
    let value = get(REFRESH, NEWEST).await?;
    Ok(value
        .as_string()
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// Writes the record (or removes it) and waits until the write is
/// committed, so every tab sees it from then on.
pub async fn set_newest(newest: Option<&Newest>) -> Result<(), JsValue> {
    match newest {
        Some(newest) => {
            let json =
                serde_json::to_string(newest).map_err(|e| JsValue::from_str(&e.to_string()))?;
            put(REFRESH, NEWEST, &json.into()).await
        }
        None => delete(REFRESH, Some(NEWEST)).await,
    }
}

/// The value under `key` in `store` (`undefined` when there is none).
pub async fn get(store: &str, key: &str) -> Result<JsValue, JsValue> {
    let db = open().await?;
    let tx = db.transaction_with_str(store)?;
    let request = tx.object_store(store)?.get(&key.into())?;
    let value = settled(&request).await;
    db.close();
    value
}

/// Puts `value` under `key` in `store`, committed when this returns.
pub async fn put(store: &str, key: &str, value: &JsValue) -> Result<(), JsValue> {
    let db = open().await?;
    let tx = db.transaction_with_str_and_mode(store, web_sys::IdbTransactionMode::Readwrite)?;
    tx.object_store(store)?.put_with_key(value, &key.into())?;
    let done = committed(&tx).await;
    db.close();
    done
}

/// Deletes `key` from `store`, or everything in it with `None`; committed
/// when this returns.
pub async fn delete(store: &str, key: Option<&str>) -> Result<(), JsValue> {
    let db = open().await?;
    let tx = db.transaction_with_str_and_mode(store, web_sys::IdbTransactionMode::Readwrite)?;
    let objects = tx.object_store(store)?;
    match key {
        Some(key) => objects.delete(&key.into())?,
        None => objects.clear()?,
    };
    let done = committed(&tx).await;
    db.close();
    done
}

async fn open() -> Result<web_sys::IdbDatabase, JsValue> {
    let factory = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .indexed_db()?
        .ok_or_else(|| JsValue::from_str("no IndexedDB"))?;
    let request = factory.open_with_u32(&super::browser::key("db"), VERSION)?;
    let upgrade = {
        let request = request.clone();
        Closure::once(move |_: web_sys::Event| {
            if let Ok(db) = request
                .result()
                .and_then(|r| r.dyn_into::<web_sys::IdbDatabase>())
            {
                let existing = db.object_store_names();
                for store in STORES {
                    if !existing.contains(store) {
                        let _ = db.create_object_store(store);
                    }
                }
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
