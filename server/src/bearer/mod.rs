//! Validation of OAuth 2.0 Bearer access tokens (RFC 6750) signed by an
//! OpenID Connect issuer, against the issuer's JWKS.
//!
//! Self-contained apart from the shared wire types of `app::api`
//! ([`AccessClaims`](app::api::AccessClaims) and the
//! [`ApiError`](app::api::ApiError) that [`AuthError`] maps onto): copy the
//! folder to reuse it.
//!
//! ```text
//! let policy = Policy::new(issuer, "api://default", Some(client_id), DEFAULT_LEEWAY)?;
//! let (validator, discovery) = Validator::discover(policy, ValidatorOptions::default()).await?;
//! validator.spawn_refresh();
//! let claims = validator.authenticate(request.headers(), request.uri().query()).await?;
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`header`] | the `Authorization` header and the query-string rule |
//! | [`jws`] | compact JWS structure and the protected header |
//! | [`claims`] | the claim rules ([`Policy`]) |
//! | [`keys`] | a JWKS document parsed into RS256 keys |
//! | [`jwks`] | the key cache: refresh, single-flight refetch, rate limit |
//! | [`verified`] | the verified-token cache |
//! | [`fetch`] | bounded HTTP fetches and the https/loopback rule |
//! | [`discovery`] | the OpenID Connect discovery document |
//! | [`clock`] | injectable time |
//! | [`stats`] | counts of decisions and cache hits, for metrics |
//! | [`error`] | [`InitError`] and the request-time [`AuthError`] |
//! | [`validator`] | the pipeline tying them together |

pub mod claims;
pub mod clock;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod fetch;
pub mod header;
pub mod jwks;
pub mod jws;
pub mod keys;
pub mod nonce;
pub mod replay;
pub mod stats;
pub mod validator;
pub mod verified;

pub use claims::{Policy, DEFAULT_LEEWAY, MAX_LEEWAY};
pub use clock::{Clock, ManualClock, SystemClock};
pub use discovery::Discovery;
pub use error::{AuthError, FetchError, InitError, TokenError};
pub use fetch::HttpOptions;
pub use jwks::{CacheOptions, FetchCause, FetchResult, Freshness};
pub use stats::Outcome;
pub use validator::{Validator, ValidatorOptions};
