//! Signing in with the implicit flow, browser side: what the server tells
//! the browser about the issuer, the requests to the issuer, the callback's
//! checks, the kept session and the server-function client that sends the
//! access token.
//!
//! Everything except `browser`, `silent`, `tabs` and `client` is plain
//! logic, tested on the host with `cargo test`.

pub mod callback;
pub mod config;
#[cfg(feature = "hydrate")]
pub mod current;
pub mod flow;
pub mod fragment;
pub mod id_token;
pub mod renewal;
pub mod request;
pub mod session;
pub mod state;

#[cfg(feature = "hydrate")]
pub mod browser;
pub mod client;
#[cfg(feature = "hydrate")]
pub mod idb;
#[cfg(feature = "hydrate")]
pub mod silent;
#[cfg(feature = "hydrate")]
pub mod tabs;
