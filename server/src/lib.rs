//! The server half of the app: configuration, the bearer-token validation of
//! the protected server functions, and the embedded development
//! authorization server.

pub mod bearer;
pub mod dev_idp;
