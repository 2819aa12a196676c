//! The validator: from a request's `Authorization` header to checked
//! claims, in the order that spends the least on bad input.
//!
//! 1. header syntax and size (no crypto, no I/O);
//! 2. the verified-token cache (one SHA-256);
//! 3. JWS structure and protected header (`alg` RS256, no `crit`, a `kid`);
//! 4. the key for the `kid` (lock-free, or a shared rate-limited refetch);
//! 5. the RS256 signature, with the algorithm the key was loaded for;
//! 6. the claims (`iss`, `aud`, `exp`, `nbf`, `iat`, `cid`, scopes).

use std::sync::Arc;

use app::api::AccessClaims;
use http::HeaderMap;

use super::claims::{self, Policy, RawClaims};
use super::clock::{Clock, SystemClock};
use super::discovery::{discover, Discovery};
use super::error::{AuthError, InitError, TokenError};
use super::fetch::{HttpClient, HttpOptions};
use super::header::{bearer_token, query_has_access_token, MAX_AUTHORIZATION_LEN};
use super::jwks::{CacheOptions, JwksCache};
use super::jws;
use super::stats::Stats;
use super::verified::{token_hash, VerifiedCache};

/// How the validator fetches, caches and tells the time.
#[derive(Clone)]
pub struct ValidatorOptions {
    pub clock: Arc<dyn Clock>,
    pub http: HttpOptions,
    pub cache: CacheOptions,
    /// Most tokens kept in the verified-token cache (0 disables it).
    pub verified_cache_capacity: usize,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        ValidatorOptions {
            clock: Arc::new(SystemClock),
            http: HttpOptions::default(),
            cache: CacheOptions::default(),
            verified_cache_capacity: 10_000,
        }
    }
}

/// Validates Bearer access tokens of one issuer. Cheap to clone: clones
/// share the key and token caches.
#[derive(Clone, Debug)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Policy,
    jwks: Arc<JwksCache>,
    verified: VerifiedCache,
    clock: Arc<dyn Clock>,
    stats: Stats,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("policy", &self.policy)
            .field("jwks", &self.jwks)
            .field("verified", &self.verified)
            .finish()
    }
}

impl Validator {
    /// Discovers the policy's issuer and loads its JWKS.
    pub async fn discover(
        policy: Policy,
        options: ValidatorOptions,
    ) -> Result<(Validator, Discovery), InitError> {
        let http = HttpClient::new(&options.http)?;
        let discovery = discover(&http, policy.issuer()).await?;
        let validator =
            Self::with_client(policy, discovery.jwks_uri.clone(), http, options).await?;
        Ok((validator, discovery))
    }

    /// Loads the JWKS at `jwks_uri` (already known, e.g. from discovery).
    pub async fn new(
        policy: Policy,
        jwks_uri: url::Url,
        options: ValidatorOptions,
    ) -> Result<Validator, InitError> {
        let http = HttpClient::new(&options.http)?;
        Self::with_client(policy, jwks_uri, http, options).await
    }

    async fn with_client(
        policy: Policy,
        jwks_uri: url::Url,
        http: HttpClient,
        options: ValidatorOptions,
    ) -> Result<Validator, InitError> {
        let jwks =
            JwksCache::load(jwks_uri, http, options.clock.clone(), options.cache.clone()).await?;
        Ok(Validator {
            inner: Arc::new(Inner {
                policy,
                jwks: Arc::new(jwks),
                verified: VerifiedCache::new(options.verified_cache_capacity),
                clock: options.clock,
                stats: Stats::default(),
            }),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.inner.jwks
    }

    /// The decisions and verified-token cache hits counted so far.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The verified-token cache (its size and evictions, for metrics).
    pub fn verified_cache(&self) -> &VerifiedCache {
        &self.inner.verified
    }

    /// The clock the validator tells the time by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Starts the background JWKS refresh; abort the handle to stop it.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        self.inner.jwks.clone().spawn_refresh()
    }

    /// The caller's claims, from the `Authorization` header of a request
    /// with these `headers` and `query`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Arc<AccessClaims>, AuthError> {
        if query_has_access_token(query) {
            return Err(AuthError::InvalidRequest(
                "access tokens are not accepted in the query string; send them in the Authorization header".into(),
            ));
        }
        // Two values are enough to tell one header from several.
        let mut values = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        let token = match (values.next(), values.next()) {
            (None, _) => bearer_token(&[]),
            (Some(one), None) => bearer_token(&[one]),
            (Some(first), Some(second)) => bearer_token(&[first, second]),
        }?;
        self.validate_shared(token).await
    }

    /// Validates `token`, answering from the verified-token cache when it
    /// can.
    pub async fn validate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        self.validate_shared(token).await.map(Arc::unwrap_or_clone)
    }

    /// [`Validator::validate`], handing out the cached claims themselves:
    /// on the hot path a repeated token costs no copy of its claims.
    pub async fn validate_shared(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        if token.len() > MAX_AUTHORIZATION_LEN {
            return Err(TokenError::TooLarge.into());
        }
        let inner = &self.inner;
        let hash = token_hash(token);
        let now = inner.clock.now_secs();
        if let Some(claims) = inner
            .verified
            .get(&hash, now, |kid| inner.jwks.contains(kid))
        {
            inner.stats.cache_hit();
            return Ok(claims);
        }
        inner.stats.cache_miss();
        let (claims, kid) = self.check(token).await?;
        let claims = Arc::new(claims);
        inner.verified.insert(hash, &kid, claims.clone(), now);
        Ok(claims)
    }

    /// Validates `token` without consulting or filling the verified-token
    /// cache: every call checks the signature.
    pub async fn validate_uncached(&self, token: &str) -> Result<AccessClaims, AuthError> {
        if token.len() > MAX_AUTHORIZATION_LEN {
            return Err(TokenError::TooLarge.into());
        }
        self.check(token).await.map(|(claims, _)| claims)
    }

    /// Steps 3–6; returns the claims and the kid that verified them.
    async fn check(&self, token: &str) -> Result<(AccessClaims, String), AuthError> {
        let jws = jws::split(token)?;
        let header = jws::decode_header(jws.header)?;
        let key = self.inner.jwks.key_for(&header.kid).await?;
        // RS256 is fixed by the key, not read from the token: the header's
        // alg was only checked to be RS256 so that a token claiming another
        // algorithm is refused rather than silently reinterpreted.
        let signature = jws::decode_part(jws.signature).ok_or(TokenError::BadSignature)?;
        if !key.verify(jws.signing_input.as_bytes(), &signature) {
            return Err(TokenError::BadSignature.into());
        }
        let payload = jws::decode_part(jws.payload).ok_or(TokenError::BadClaims)?;
        let raw = RawClaims::from_json(&payload)?;
        let claims = claims::check(raw, &self.inner.policy, self.inner.clock.now_secs())?;
        Ok((claims, header.kid))
    }
}
