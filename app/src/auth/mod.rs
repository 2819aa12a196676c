//! Signing in, browser side, with the implicit flow or the authorization
//! code flow with PKCE (`RESPONSE_TYPE`): what the server tells the
//! browser about the issuer, the requests to the issuer, the checks of its
//! answer, the kept session shared by the tabs, and the server-function
//! client that sends the access token.
//!
//! Where each step of a sign-in is handled, in the order it happens:
//!
//! | step | where |
//! |---|---|
//! | the issuer's settings reach the page (rendered into it by the server) | [`config`] |
//! | Sign in: `state`, `nonce` (and a PKCE verifier), kept in `sessionStorage`, off to `/authorize` | [`state`] `Auth::sign_in` → [`browser`] `start_sign_in` → [`flow`] `authorize_url` → [`request`] |
//! | back on `/login/callback`: the answer out of the address bar while the page is parsed | [`fragment`] `CALLBACK_SCRIPT`, then [`browser`] `take_answer` (called from `pages.rs`, `LoginCallback`) |
//! | the answer's `state` and `error` | [`callback`] `check_answer` |
//! | the tokens: in the fragment, or the code exchanged at the token endpoint | [`flow`]: [`flow::implicit`] or [`flow::code`] |
//! | the tokens' checks: type, expiry, the ID token's signature and claims, `at_hash`, the person | [`callback`] `check_tokens`, [`id_token`] |
//! | the session kept, in this tab and (per `TOKEN_STORAGE`) for the others | [`session`], [`state`] `Auth::adopt`, [`browser`], [`current`], [`tabs`] |
//! | a protected call with `Authorization: Bearer` | [`client`] (`AuthClient`), [`state`] `Auth::call` |
//! | renewal before expiry: the refresh token, or a hidden `prompt=none` iframe; one tab at a time | [`state`] (`renew_until_expiry`, `renew_now`), [`flow::code`] `refresh`, [`silent`], [`idb`], [`renewal`] |
//! | a session from `localStorage` or another tab, checked before use | [`session`] `KeptSession::check` |
//! | sign-out: here, in every tab, then the refresh token revoked and the issuer's logout | [`state`] `Auth::sign_out`, [`browser`] `sign_out_here`, `sign_out_at_issuer` |
//!
//! Everything but the browser glue (`browser`, `clock`, `current`, `idb`,
//! `silent`, `tabs`, and the browser half of `state`) is plain logic,
//! tested on the host with `cargo test`.

pub mod callback;
pub mod client;
pub mod config;
pub mod dpop;
pub mod flow;
pub mod fragment;
pub mod id_token;
pub mod renewal;
pub mod request;
pub mod session;
pub mod state;

#[cfg(feature = "hydrate")]
pub mod browser;
#[cfg(feature = "hydrate")]
pub mod clock;
#[cfg(feature = "hydrate")]
pub mod current;
#[cfg(feature = "hydrate")]
pub mod idb;
#[cfg(feature = "hydrate")]
pub mod silent;
#[cfg(feature = "hydrate")]
pub mod tabs;
