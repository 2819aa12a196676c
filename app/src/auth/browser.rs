//! Browser glue for signing in and out: where the tab keeps its session
//! (memory, `localStorage`), `sessionStorage` for a sign-in in progress,
//! the CSPRNG, the address bar, WebCrypto for the ID token's RS256
//! signature and SHA-256, and `fetch` for the issuer's token and
//! revocation endpoints. Kept thin; the decisions are made in the plain
//! modules beside it.

use super::callback::{CallbackError, HttpAnswer, Platform};
use super::config::{issuer_key, PublicAuthConfig, PublicJwk, TokenStorage};
use super::current;
use super::flow::{code, Flow};
use super::id_token::IdTokenError;
use super::request::{logout_url, safe_return_path, PendingSignIn, Prompt};
use super::session::{KeptSession, Session};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{de::DeserializeOwned, Serialize};
use std::cell::{Cell, RefCell};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The names this app's keys and channel take in the browser: the client
/// id is part of each, so two apps on one origin never share a session.
/// `session`: `localStorage` with `TOKEN_STORAGE=local`, the session the
/// tabs share. `signed-in`: `localStorage` with `TOKEN_STORAGE=memory`, no
/// token, only the fact that this browser was signed in, so a reload knows
/// to ask for the session. `signed-out`: `localStorage`, when this browser
/// last signed out (milliseconds). `pending`, `logout-state`:
/// `sessionStorage` (this tab only), the sign-in or sign-out this tab
/// started. `tabs`: the `BroadcastChannel`. `renew`: the renewal's Web Lock.
pub fn key(name: &str) -> String {
    CLIENT_ID.with_borrow(|client| format!("okta-implicit.{name}.{client}"))
}

thread_local! {
    static STORAGE: Cell<TokenStorage> = const { Cell::new(TokenStorage::Local) };
    static CLIENT_ID: RefCell<String> = const { RefCell::new(String::new()) };
    /// When this tab saw the browser sign out (milliseconds), for when
    /// `localStorage` is not there to say.
    static SIGNED_OUT_AT: Cell<Option<i64>> = const { Cell::new(None) };
}

pub use super::clock::{now, now_ms};

/// A User Timing mark (`performance.mark`): the steps of a sign-in show
/// in the browser's performance panel, and `end2end/tests/timing.spec.ts`
/// reads them to say where the callback's time goes.
pub fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn load<T: DeserializeOwned>(storage: Option<web_sys::Storage>, key: &str) -> Option<T> {
    let raw = storage?.get_item(key).ok()??;
    serde_json::from_str(&raw).ok()
}

fn save<T: Serialize>(storage: Option<web_sys::Storage>, key: &str, value: &T) -> bool {
    let (Some(storage), Ok(json)) = (storage, serde_json::to_string(value)) else {
        return false;
    };
    storage.set_item(key, &json).is_ok()
}

fn remove(storage: Option<web_sys::Storage>, key: &str) {
    if let Some(storage) = storage {
        let _ = storage.remove_item(key);
    }
}

/// 256 bits from `crypto.getRandomValues`.
fn random_bytes() -> Option<[u8; 32]> {
    let crypto = web_sys::window()?.crypto().ok()?;
    let mut bytes = [0u8; 32];
    crypto.get_random_values_with_u8_array(&mut bytes).ok()?;
    Some(bytes)
}

/// 256 bits from `crypto.getRandomValues`, base64url.
fn random_token() -> Option<String> {
    random_bytes().map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
}

/// Sets where sessions are kept (`TOKEN_STORAGE`) and the client id that
/// names the keys, once at start-up.
pub fn use_storage(storage: TokenStorage, client_id: &str) {
    STORAGE.set(storage);
    CLIENT_ID.set(client_id.to_string());
}

/// The session the tab holds (expired or not).
pub fn current_session() -> Option<Session> {
    current::session()
}

/// The session kept in `localStorage` by any tab (`TOKEN_STORAGE=local`),
/// if it passes [`KeptSession::check`] for `cfg` (expired or not); always
/// `None` with memory storage. One that fails the check is removed.
pub fn stored_session(cfg: &PublicAuthConfig) -> Option<Session> {
    if STORAGE.get() == TokenStorage::Memory {
        return None;
    }
    let kept: KeptSession = load(local_storage(), &key("session"))?;
    match kept.check(cfg, signed_out_at()) {
        Ok(session) => Some(session),
        Err(why) => {
            leptos::logging::warn!("the session kept in this browser is not used: {why}");
            remove(local_storage(), &key("session"));
            None
        }
    }
}

/// With memory storage: whether this browser was signed in when its last
/// tab closed or reloaded (no token is kept, only this fact).
pub fn was_signed_in() -> bool {
    local_storage().is_some_and(|s| s.get_item(&key("signed-in")).ok().flatten().is_some())
}

/// Makes `session` the tab's session, and the browser's with local storage.
/// False when local storage refused it (the tab still holds it).
pub fn keep_session(session: &Session) -> bool {
    current::set(Some(session.clone()));
    match STORAGE.get() {
        TokenStorage::Local => save(local_storage(), &key("session"), &session.to_kept()),
        TokenStorage::Memory => save(local_storage(), &key("signed-in"), &true),
    }
}

/// Forgets the session in this tab and in `localStorage`.
pub fn forget_session() {
    current::set(None);
    remove(local_storage(), &key("session"));
    remove(local_storage(), &key("signed-in"));
}

/// Records that this browser signed out at `at_ms`: no session issued
/// before then is taken from storage or another tab again.
pub fn note_sign_out(at_ms: i64) {
    let latest = signed_out_at().map_or(at_ms, |before| before.max(at_ms));
    SIGNED_OUT_AT.set(Some(latest));
    save(local_storage(), &key("signed-out"), &latest);
}

/// When this browser last signed out (milliseconds), as far as this tab
/// knows.
pub fn signed_out_at() -> Option<i64> {
    let stored: Option<i64> = load(local_storage(), &key("signed-out"));
    match (stored, SIGNED_OUT_AT.get()) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A new `state` and `nonce` (and, for the code flow, a PKCE
/// `code_verifier`) for a sign-in or a renewal that returns to `return_to`.
pub fn new_pending(cfg: &PublicAuthConfig, return_to: &str) -> Result<PendingSignIn, String> {
    let no_random = || "this browser has no secure random number generator".to_string();
    let (Some(state), Some(nonce)) = (random_token(), random_token()) else {
        return Err(no_random());
    };
    let code_verifier = match cfg.is_code_flow() {
        true => Some(code::verifier_of(&random_bytes().ok_or_else(no_random)?)),
        false => None,
    };
    Ok(PendingSignIn {
        state,
        nonce,
        return_to: safe_return_path(return_to),
        created_at: now(),
        code_verifier,
    })
}

/// Starts a sign-in: a new attempt kept in this tab's `sessionStorage`
/// with the return path, then off to the issuer's authorize endpoint.
pub async fn start_sign_in(cfg: &PublicAuthConfig, return_to: &str) -> Result<(), String> {
    let pending = new_pending(cfg, return_to)?;
    let url = Flow::of(cfg)
        .authorize_url(cfg, &pending, Prompt::Default, &BrowserPlatform)
        .await
        .map_err(|err| err.to_string())?;
    if !save(session_storage(), &key("pending"), &pending) {
        return Err("this browser does not allow session storage, which sign-in needs".into());
    }
    assign(&url)
}

/// What the issuer sent the callback page after its path (`?query#fragment`),
/// now out of the address bar and the current history entry. The page's
/// inline script took it out while the page was parsed and left it for
/// this (see `shell.rs`); this takes it from there, once. Without that
/// script (a page of an older build, say) it reads and wipes the address
/// bar itself.
pub fn take_answer() -> String {
    let Some(window) = web_sys::window() else {
        return String::new();
    };
    let stash = JsValue::from_str(super::fragment::CALLBACK_ANSWER_GLOBAL);
    if let Some(answer) = js_sys::Reflect::get(&window, &stash)
        .ok()
        .and_then(|v| v.as_string())
    {
        let _ = js_sys::Reflect::delete_property(&window, &stash);
        return answer;
    }
    let location = window.location();
    let answer = format!(
        "{}{}",
        location.search().unwrap_or_default(),
        location.hash().unwrap_or_default()
    );
    let path = location.pathname().unwrap_or_default();
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&path));
    }
    answer
}

/// The pending sign-in, taken out of storage so it is used at most once.
pub fn take_pending() -> Option<PendingSignIn> {
    let pending = load(session_storage(), &key("pending"));
    remove(session_storage(), &key("pending"));
    pending
}

/// The return path of a sign-in that failed, to offer "try again".
pub fn return_path_of(pending: &Option<PendingSignIn>) -> String {
    pending
        .as_ref()
        .map(|p| p.return_to.clone())
        .unwrap_or_else(|| crate::routes::PROFILE.into())
}

/// Forgets the session here and records the sign-out, at once: whatever
/// happens next (the revocation, the issuer's logout), nobody stays
/// signed in in this browser.
pub fn sign_out_here() {
    forget_session();
    note_sign_out(now_ms());
    remove(session_storage(), &key("pending"));
}

/// After [`sign_out_here`]: revokes `refresh_token` at the issuer, when
/// there is one (RFC 7009; a failure is logged and changes nothing here),
/// then ends the issuer's session when it can (RP-initiated logout with a
/// `state` checked on return). `Ok(false)`: signed out here only, because
/// the issuer cannot be asked (no ID token for `id_token_hint`, or no
/// `end_session_endpoint`).
pub async fn sign_out_at_issuer(
    cfg: &PublicAuthConfig,
    id_token: Option<&str>,
    refresh_token: Option<&str>,
) -> Result<bool, String> {
    if let (Some(token), Some(endpoint)) = (refresh_token, cfg.revocation_endpoint.as_deref()) {
        use futures::future::{select, Either};
        let (platform, form) = (BrowserPlatform, code::revocation_form(cfg, token));
        let revoke = Box::pin(platform.post_form(endpoint, &form, None));
        let timeout = Box::pin(super::clock::sleep(REVOKE_TIMEOUT_MS));
        let outcome = match select(revoke, timeout).await {
            Either::Left((Ok(answer), _)) if answer.status == 200 => None,
            Either::Left((Ok(answer), _)) => {
                Some(format!("the issuer answered HTTP {}", answer.status))
            }
            Either::Left((Err(err), _)) => Some(err.to_string()),
            Either::Right(_) => Some("the issuer did not answer in time".to_string()),
        };
        if let Some(why) = outcome {
            leptos::logging::warn!(
                "the refresh token could not be revoked ({why}); signed out here all the same"
            );
        }
    }
    let state = random_token().unwrap_or_default();
    match logout_url(cfg, id_token, &state) {
        Some(url) => {
            save(session_storage(), &key("logout-state"), &state);
            assign(&url).map(|()| true)
        }
        None => Ok(false),
    }
}

/// How long sign-out waits for the revocation before it goes on.
const REVOKE_TIMEOUT_MS: u32 = 3_000;

/// After the issuer sends the browser back from logout: `true` when the
/// returned `state` is the one this tab sent. The state is used once.
pub fn take_logout_state(returned: &str) -> bool {
    let expected: Option<String> = load(session_storage(), &key("logout-state"));
    remove(session_storage(), &key("logout-state"));
    expected.is_some_and(|e| !e.is_empty() && e == returned)
}

/// Drops the query string from the current history entry.
pub fn strip_query() {
    if let Some(window) = web_sys::window() {
        let path = window.location().pathname().unwrap_or_else(|_| "/".into());
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&path));
        }
    }
}

fn assign(url: &str) -> Result<(), String> {
    web_sys::window()
        .ok_or("no window")?
        .location()
        .assign(url)
        .map_err(|_| "the browser refused to navigate".to_string())
}

/// The checks' [`Platform`] in the browser: RS256 signatures checked with
/// WebCrypto, with the issuer's keys the page came with, or else from the
/// server's cache of the issuer's JWKS (`issuer_key`); SHA-256 from
/// WebCrypto; the server's `whoami` for whom an access token names; and
/// `fetch` for the issuer's token and revocation endpoints.
pub struct BrowserPlatform;

impl Platform for BrowserPlatform {
    async fn verify(
        &self,
        kid: &str,
        signing_input: &str,
        signature: &[u8],
    ) -> Result<(), CallbackError> {
        let key = match KEYS.with_borrow(|keys| {
            keys.iter()
                .find(|(k, _)| k == kid)
                .map(|(_, key)| key.clone())
        }) {
            Some(key) => key,
            None => {
                let from_page =
                    PAGE_KEYS.with_borrow(|keys| keys.iter().find(|k| k.kid == kid).cloned());
                let jwk = match from_page {
                    Some(jwk) => jwk,
                    None => issuer_key(kid.to_string()).await.map_err(|err| match err {
                        crate::error::ApiError::InvalidToken { .. } => {
                            IdTokenError::UnknownKey(kid.chars().take(64).collect()).into()
                        }
                        other => CallbackError::KeyUnavailable(other.to_string()),
                    })?,
                };
                let key = import_rs256_key(&jwk.n, &jwk.e).await.map_err(|_| {
                    CallbackError::KeyUnavailable("WebCrypto could not use the key".into())
                })?;
                KEYS.with_borrow_mut(|keys| {
                    if keys.len() >= MAX_KEYS {
                        keys.remove(0);
                    }
                    keys.push((kid.to_string(), key.clone()));
                });
                key
            }
        };
        let ok = webcrypto_verify(&key, signing_input.as_bytes(), signature)
            .await
            .map_err(|_| CallbackError::KeyUnavailable("WebCrypto could not use the key".into()))?;
        if ok {
            Ok(())
        } else {
            Err(IdTokenError::BadSignature.into())
        }
    }

    async fn sha256(&self, data: &[u8]) -> Result<Vec<u8>, CallbackError> {
        let unavailable = |_| CallbackError::Browser("WebCrypto could not compute SHA-256".into());
        let subtle = web_sys::window()
            .ok_or(JsValue::NULL)
            .and_then(|w| w.crypto())
            .map_err(unavailable)?
            .subtle();
        let digest = JsFuture::from(
            subtle
                .digest_with_str_and_u8_array("SHA-256", data)
                .map_err(unavailable)?,
        )
        .await
        .map_err(unavailable)?;
        Ok(js_sys::Uint8Array::new(&digest).to_vec())
    }

    async fn access_token_subject(&self, access_token: &str) -> Result<String, CallbackError> {
        crate::api::whoami_for(access_token)
            .await
            .map(|claims| claims.sub)
            .map_err(|err| CallbackError::Subject(err.to_string()))
    }

    async fn post_form(
        &self,
        url: &str,
        form: &str,
        dpop_proof: Option<&str>,
    ) -> Result<HttpAnswer, CallbackError> {
        let unusable = |what: &str| CallbackError::TokenEndpointUnusable(what.to_string());
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        // A cross-origin call that sends and receives no cookies: the
        // issuer's session plays no part in it.
        init.set_mode(web_sys::RequestMode::Cors);
        init.set_credentials(web_sys::RequestCredentials::Omit);
        init.set_body(&JsValue::from_str(form));
        let headers = web_sys::Headers::new().map_err(|_| unusable("could not be asked"))?;
        headers
            .set("Content-Type", "application/x-www-form-urlencoded")
            .and_then(|()| headers.set("Accept", "application/json"))
            .and_then(|()| match dpop_proof {
                Some(proof) => headers.set("DPoP", proof),
                None => Ok(()),
            })
            .map_err(|_| unusable("could not be asked"))?;
        init.set_headers(&headers);
        let request = web_sys::Request::new_with_str_and_init(url, &init)
            .map_err(|_| unusable("could not be asked"))?;
        let window = web_sys::window().ok_or_else(|| unusable("could not be asked"))?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .and_then(JsValue::dyn_into)
            .map_err(|_| {
                unusable("could not be reached (offline, or it does not allow this app's origin: add it to the Trusted Origins, with CORS, at Okta)")
            })?;
        let body = JsFuture::from(response.text().map_err(|_| unusable("sent no answer"))?)
            .await
            .ok()
            .and_then(|text| text.as_string())
            .ok_or_else(|| unusable("sent no answer"))?;
        let dpop_nonce = response.headers().get("DPoP-Nonce").ok().flatten();
        if let Some(nonce) = &dpop_nonce {
            super::dpop::browser::remember_nonce(url, nonce);
        }
        Ok(HttpAnswer {
            status: response.status(),
            body,
            dpop_nonce,
        })
    }

    async fn dpop_proof(
        &self,
        jkt: Option<&str>,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
    ) -> Result<(String, String), CallbackError> {
        let nonce = super::dpop::browser::nonce_for(htu);
        super::dpop::browser::proof(jkt, htm, htu, access_token, nonce.as_deref())
            .await
            .map_err(CallbackError::Dpop)
    }
}

/// Issuers publish one to three keys; a few more cover rotations while the
/// page stays open.
const MAX_KEYS: usize = 8;

thread_local! {
    /// The issuer's keys this page has imported, by `kid`: a renewal checks
    /// its ID token without asking the server again. A `kid` names one key
    /// for good, so a cached key is never stale.
    static KEYS: RefCell<Vec<(String, web_sys::CryptoKey)>> = const { RefCell::new(Vec::new()) };
    /// The issuer's keys the server rendered into the page.
    static PAGE_KEYS: RefCell<Vec<PublicJwk>> = const { RefCell::new(Vec::new()) };
}

/// The issuer's keys the page came with (`PublicAuthConfig::keys`), used
/// before asking the server for a `kid`.
pub fn use_page_keys(keys: Vec<PublicJwk>) {
    PAGE_KEYS.set(keys);
}

fn object(pairs: &[(&str, JsValue)]) -> Result<js_sys::Object, JsValue> {
    let obj = js_sys::Object::new();
    for (k, v) in pairs {
        js_sys::Reflect::set(&obj, &JsValue::from_str(k), v)?;
    }
    Ok(obj)
}

async fn import_rs256_key(n: &str, e: &str) -> Result<web_sys::CryptoKey, JsValue> {
    let subtle = web_sys::window().ok_or(JsValue::NULL)?.crypto()?.subtle();
    let jwk = object(&[
        ("kty", "RSA".into()),
        ("alg", "RS256".into()),
        ("n", n.into()),
        ("e", e.into()),
        ("ext", true.into()),
    ])?;
    let algorithm = object(&[
        ("name", "RSASSA-PKCS1-v1_5".into()),
        ("hash", "SHA-256".into()),
    ])?;
    let usages = js_sys::Array::of1(&"verify".into());
    let key =
        JsFuture::from(subtle.import_key_with_object("jwk", &jwk, &algorithm, false, &usages)?)
            .await?;
    key.dyn_into()
}

async fn webcrypto_verify(
    key: &web_sys::CryptoKey,
    data: &[u8],
    signature: &[u8],
) -> Result<bool, JsValue> {
    let subtle = web_sys::window().ok_or(JsValue::NULL)?.crypto()?.subtle();
    let ok = JsFuture::from(subtle.verify_with_str_and_u8_array_and_u8_array(
        "RSASSA-PKCS1-v1_5",
        key,
        signature,
        data,
    )?)
    .await?;
    Ok(ok.as_bool().unwrap_or(false))
}
