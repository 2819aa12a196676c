//! The embedded Okta-compatible development authorization server.
