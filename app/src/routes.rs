//! The app's pages' paths, in one place that the pages, the sign-in code
//! and the server all read. (`shell.rs` spells them again in its routes,
//! where the router's `path!` macro takes only literals.)

/// The home page.
pub const HOME: &str = "/";
/// The signed-in person's profile, where a sign-in lands by default.
pub const PROFILE: &str = "/profile";
/// Where the issuer sends the browser back (the default `REDIRECT_URI`).
pub const CALLBACK: &str = "/login/callback";
