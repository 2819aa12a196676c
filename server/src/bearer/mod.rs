//! Validation of OAuth 2.0 access tokens signed by an OpenID Connect
//! issuer, against the issuer's JWKS: Bearer tokens (RFC 6750) and
//! DPoP-bound tokens with their proofs (RFC 9449).
//!
//! Self-contained apart from the shared wire types of `app::api`
//! ([`AccessClaims`](app::api::AccessClaims) and the
//! [`ApiError`](app::error::ApiError) that [`AuthError`] maps onto): copy the
//! folder to reuse it.
//!
//! ```text
//! let policy = Policy::new(issuer, "api://default", Some(client_id), DEFAULT_LEEWAY)?;
//! let (validator, discovery) = Validator::discover(policy, ValidatorOptions::default()).await?;
//! validator.spawn_refresh();
//! let caller = validator.authenticate(method, path, request.headers(), query).await?;
//! ```
//!
//! A request passes through them in this order:
//!
//! | module | owns |
//! |---|---|
//! | [`header`] | the `Authorization` header (`Bearer` or `DPoP`) and the query-string rule |
//! | [`verified`] | the verified-token cache |
//! | [`jws`] | compact JWS structure and the protected header |
//! | [`jwks`] | the key cache: refresh, single-flight refetch, rate limit |
//! | [`keys`] | a JWKS document parsed into RS256 keys |
//! | [`claims`] | the claim rules ([`Policy`]), and `cnf.jkt` |
//! | [`dpop`] | a DPoP proof: `typ`, `alg`, `jwk`, signature, `htm`, `htu`, `iat`, `ath`; the RFC 7638 thumbprint |
//! | [`nonce`] | stateless server-issued DPoP nonces (`DPOP_NONCE`) |
//! | [`replay`] | the DPoP replay cache: each proof once, bounded |
//! | [`validator`] | the pipeline tying them together |
//! | [`error`] | [`InitError`] and the request-time [`AuthError`] |
//! | [`challenge`] | the `WWW-Authenticate` challenges of a refusal, Bearer and DPoP |
//! | [`stats`] | counts of decisions, DPoP proofs and cache hits, for metrics |
//!
//! Beside the request path: [`fetch`] (bounded HTTP fetches and the
//! https/loopback rule), [`discovery`] (the OpenID Connect discovery
//! document) and [`clock`] (injectable time).

pub mod challenge;
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

pub use challenge::Schemes;
pub use claims::{Policy, DEFAULT_LEEWAY, MAX_LEEWAY};
pub use clock::{Clock, ManualClock, SystemClock};
pub use discovery::Discovery;
pub use error::{AuthError, FetchError, InitError, NonceProblem, ProofError, TokenError};
pub use fetch::HttpOptions;
pub use jwks::{CacheOptions, FetchCause, FetchResult, Freshness};
pub use stats::{DpopOutcome, Outcome};
pub use validator::{Authenticated, DpopOptions, Refusal, Validator, ValidatorOptions};
