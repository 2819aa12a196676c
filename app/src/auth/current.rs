//! The session this tab holds, in memory: what the server-function client
//! (`client.rs`) reads the access token from, and what `browser.rs` sets
//! when the tab signs in, takes a session or signs out. Its own module so
//! that the client, which the server functions name, does not depend on
//! the rest of the browser glue.

use super::clock::now;
use super::session::Session;
use std::cell::RefCell;

thread_local! {
    static CURRENT: RefCell<Option<Session>> = const { RefCell::new(None) };
}

/// The session the tab holds (expired or not).
pub fn session() -> Option<Session> {
    CURRENT.with_borrow(Clone::clone)
}

/// Makes `session` (or none) the tab's.
pub fn set(session: Option<Session>) {
    CURRENT.set(session);
}

/// The access token to send, only while the session is live.
pub fn live_access_token() -> Option<String> {
    CURRENT.with_borrow(|s| {
        s.as_ref()
            .filter(|s| !s.is_expired(now()))
            .and_then(|s| s.access_token.clone())
    })
}
