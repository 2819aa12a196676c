//! `server doctor` (`./dev.sh doctor`): checks the configuration against the
//! live issuer before anyone signs in, and says what to change.
//!
//! It reads the same settings as the server ([`Config`](crate::config::Config)),
//! then fetches the issuer's discovery document and JWKS, and sends the
//! authorize endpoint one `prompt=none` request with the configured client,
//! redirect URI, response type and scopes (following no redirect and
//! sending no cookie), the request a signed-out browser's silent renewal
//! would send. With `RESPONSE_TYPE=code` that request is the code flow's,
//! with a PKCE challenge, and the run also checks what the browser itself
//! calls in that flow: the token endpoint (and its CORS answer for the
//! app's origin) and the revocation endpoint. Each check is a [`Check`]: a line with ✓ (passes), ! (a
//! warning), · (for information) or ✗ (fails, with the fix in one
//! sentence). With `--token <access token>` (or `--token -`, read from
//! standard input) it also validates that token exactly as the server
//! would and prints its claims and the rule, if any, that refuses it. The
//! token itself is never printed. With `ISSUER` unset it starts the
//! embedded development authorization server on a free port and checks
//! that.
//!
//! Exit status: 0 when no check fails (warnings allowed), 1 when one does,
//! 2 with one line on standard error for a bad setting or bad arguments, as
//! the server does. Each check is a plain function of what it reads (a
//! setting, a fetched document, an answer) returning its line, unit-tested
//! beside it; `server/tests/doctor.rs` runs the whole thing against the dev
//! server and stub issuers over loopback.
//!
//! | file | holds |
//! |---|---|
//! | [`cli`] | the command line, `--token -`, exit status 2 |
//! | [`checkup`] | one run: the issuer checked, the checks in order |
//! | [`settings`] | what the settings tell: `ISSUER`, Okta org server and client id, `AUDIENCE` |
//! | [`discovery`] | the discovery document: exact issuer, response type and mode, scopes, sign-out, RS256 |
//! | [`code_flow`] | with `RESPONSE_TYPE=code`: the token endpoint and its CORS for the app's origin, the revocation endpoint |
//! | [`keys`] | `jwks_uri`, the JWKS's RS256 keys, its cache lifetime |
//! | [`authorize`] | the `prompt=none` probe (with PKCE for `code`) and what its answer means, `offline_access` |
//! | [`error_page`] | what a page the authorize endpoint shows instead of answering blames |
//! | [`token`] | an access token given with `--token`: its claims, the server's verdict |
//! | [`report`] | a check's line, the report and exit status, printing as checks are made |
//! | [`http`] | the doctor's own browser-like requests: no redirect followed, no cookie |
//!
//! The order a run checks in (a line per check, some only where they
//! apply):
//!
//! 1. settings: `ISSUER` (or the embedded server), an Okta org server by
//!    its host, `CLIENT_ID`'s shape on an Okta domain;
//! 2. discovery: fetched (the run stops here if it cannot be), its
//!    `issuer`, an org server by its layout, then response type, response
//!    mode, scopes, sign-out and RS256;
//! 3. code flow (`RESPONSE_TYPE=code`): `token_endpoint`,
//!    `revocation_endpoint`;
//! 4. keys: `jwks_uri`, the keys, their cache lifetime;
//! 5. code flow: the token endpoint's CORS preflight from `PUBLIC_ORIGIN`;
//! 6. authorize: the `prompt=none` probe; with `code`, `offline_access`
//!    (a second probe without it when the first refuses a scope);
//! 7. settings: `AUDIENCE`;
//! 8. token (with `--token`): its claims, then its validation.

pub mod authorize;
pub mod checkup;
pub mod cli;
pub mod code_flow;
pub mod discovery;
pub mod error_page;
#[cfg(test)]
mod fixtures;
pub mod http;
pub mod keys;
pub mod report;
pub mod settings;
pub mod token;

pub use checkup::{run, Options};
pub use cli::{main, EXIT_BAD_CONFIG};
pub use report::{Check, Report, Status, EXIT_FAILED};
