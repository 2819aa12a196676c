//! The validator: from a request's `Authorization` (and `DPoP`) header to
//! checked claims, in the order that spends the least on bad input.
//!
//! 1. header syntax and size (no crypto, no I/O), and the scheme: `Bearer`,
//!    or `DPoP` with exactly one `DPoP` header;
//! 2. the verified-token cache (one SHA-256);
//! 3. JWS structure and protected header (`alg` RS256, no `crit`, a `kid`);
//! 4. the key for the `kid` (lock-free, or a shared rate-limited refetch);
//! 5. the RS256 signature, with the algorithm the key was loaded for;
//! 6. the claims (`iss`, `aud`, `exp`, `nbf`, `iat`, `cid`, scopes, `cnf`);
//! 7. the scheme against the binding: a token with `cnf.jkt` only as
//!    `DPoP` (RFC 9449 §7.2), one without only as `Bearer`, and only
//!    `DPoP` with `REQUIRE_DPOP=1`;
//! 8. for `DPoP`, the proof on every request, never cached
//!    ([`super::dpop`]): `htm`, `htu` (the public origin and the path),
//!    `iat`, `ath`, the signature by the key `cnf.jkt` names, the nonce
//!    when `DPOP_NONCE=1` ([`super::nonce`]), and last, once everything
//!    else holds, `jti` not seen before ([`super::replay`]).

use std::sync::Arc;

use app::api::AccessClaims;
use aws_lc_rs::constant_time::verify_slices_are_equal;
use http::HeaderMap;

use super::challenge::Schemes;
use super::claims::{self, Policy, RawClaims};
use super::clock::{Clock, SystemClock};
use super::discovery::{discover, Discovery};
use super::dpop::{self, Expected, Htu, DEFAULT_IAT_WINDOW_SECS, DPOP_HEADER};
use super::error::{AuthError, InitError, NonceProblem, ProofError, TokenError};
use super::fetch::{HttpClient, HttpOptions};
use super::header::{credentials, query_has_access_token, Scheme, MAX_AUTHORIZATION_LEN};
use super::jwks::{CacheOptions, JwksCache};
use super::jws;
use super::nonce::{NonceCheck, NonceKey};
use super::replay::{ReplayCache, ReplayError, DEFAULT_CAPACITY};
use super::stats::{DpopOutcome, Stats};
use super::verified::{token_hash, TokenHash, Verified, VerifiedCache};

/// What the resource server does with DPoP (RFC 9449).
#[derive(Clone, Debug)]
pub struct DpopOptions {
    /// `PUBLIC_ORIGIN`: the scheme, host and port browsers address this
    /// server by, which a proof's `htu` must name (never the `Host`
    /// header, which a proxy may rewrite and a client may choose). `None`
    /// turns the DPoP scheme off: it is refused as an unknown scheme and
    /// not offered in challenges. DPoP-bound tokens are refused as Bearer
    /// tokens either way.
    pub public_origin: Option<String>,
    /// `REQUIRE_DPOP=1`: Bearer tokens are refused.
    pub required: bool,
    /// `DPOP_NONCE=1`: proofs must carry a nonce made with this key.
    pub nonce: Option<NonceKey>,
    /// How far a proof's `iat` may be from now, before the leeway.
    pub iat_window_secs: i64,
    /// Most proofs remembered against replay.
    pub replay_capacity: usize,
}

impl Default for DpopOptions {
    fn default() -> Self {
        DpopOptions {
            public_origin: None,
            required: false,
            nonce: None,
            iat_window_secs: DEFAULT_IAT_WINDOW_SECS,
            replay_capacity: DEFAULT_CAPACITY,
        }
    }
}

/// A request that may call the protected function.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub claims: Arc<AccessClaims>,
    /// How it authenticated.
    pub scheme: Scheme,
    /// The proof's nonce is getting old: the answer should carry a fresh
    /// `DPoP-Nonce` (RFC 9449 §8.2).
    pub renew_nonce: bool,
}

/// A refused request: why, and the scheme it tried (for the challenge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub error: AuthError,
    /// `None` when the request had no usable credentials.
    pub scheme: Option<Scheme>,
}

impl Refusal {
    fn new(error: impl Into<AuthError>, scheme: Option<Scheme>) -> Refusal {
        Refusal {
            error: error.into(),
            scheme,
        }
    }
}

/// How the validator fetches, caches and tells the time.
#[derive(Clone)]
pub struct ValidatorOptions {
    pub clock: Arc<dyn Clock>,
    pub http: HttpOptions,
    pub cache: CacheOptions,
    /// Most tokens kept in the verified-token cache (0 disables it).
    pub verified_cache_capacity: usize,
    /// DPoP (RFC 9449): off unless given a public origin.
    pub dpop: DpopOptions,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        ValidatorOptions {
            clock: Arc::new(SystemClock),
            http: HttpOptions::default(),
            cache: CacheOptions::default(),
            verified_cache_capacity: 10_000,
            dpop: DpopOptions::default(),
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
    dpop: DpopOptions,
    replay: ReplayCache,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("policy", &self.policy)
            .field("jwks", &self.jwks)
            .field("verified", &self.verified)
            .field("dpop", &self.dpop)
            .field("replay", &self.replay)
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
                replay: ReplayCache::new(options.dpop.replay_capacity),
                dpop: options.dpop,
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

    /// The DPoP settings.
    pub fn dpop(&self) -> &DpopOptions {
        &self.inner.dpop
    }

    /// Whether the DPoP scheme is taken (a public origin is configured).
    pub fn dpop_enabled(&self) -> bool {
        self.inner.dpop.public_origin.is_some()
    }

    /// The schemes the challenges offer.
    pub fn schemes(&self) -> Schemes {
        match (self.dpop_enabled(), self.inner.dpop.required) {
            (_, true) => Schemes::Dpop,
            (true, false) => Schemes::Both,
            (false, false) => Schemes::Bearer,
        }
    }

    /// A fresh `DPoP-Nonce` value, when `DPOP_NONCE=1`.
    pub fn issue_nonce(&self) -> Option<String> {
        let key = self.inner.dpop.nonce.as_ref()?;
        self.inner.stats.nonce_issued();
        Some(key.issue(self.inner.clock.now_secs()))
    }

    /// The caller, from a request with this `method`, `path` (as the
    /// request line has it), `headers` and `query`: its token's claims
    /// and how it authenticated, or why it is refused.
    pub async fn authenticate(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Authenticated, Refusal> {
        if query_has_access_token(query) {
            return Err(Refusal::new(
                AuthError::InvalidRequest(
                    "access tokens are not accepted in the query string; send them in the Authorization header".into(),
                ),
                None,
            ));
        }
        // Two values are enough to tell one header from several.
        let mut values = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        let parsed = match (values.next(), values.next()) {
            (None, _) => credentials(&[]),
            (Some(one), None) => credentials(&[one]),
            (Some(first), Some(second)) => credentials(&[first, second]),
        };
        let (scheme, token) = parsed.map_err(|err| Refusal::new(err, None))?;
        let dpop = &self.inner.dpop;
        match scheme {
            // Without a public origin no proof can be checked: the scheme
            // is one this server does not take.
            Scheme::Dpop if dpop.public_origin.is_none() => {
                return Err(Refusal::new(AuthError::MissingCredentials, None))
            }
            Scheme::Bearer if dpop.required => {
                return Err(Refusal::new(AuthError::DpopRequired, Some(scheme)))
            }
            _ => {}
        }
        let refuse = |error: AuthError| Refusal::new(error, Some(scheme));
        // RFC 9449 §4.3 (1): one proof, in one header field. Looked at
        // before the token, so a malformed request costs no crypto.
        let proof = match scheme {
            Scheme::Bearer => None,
            Scheme::Dpop => Some(single_proof(headers).map_err(refuse)?),
        };

        let (hash, verified) = self.validate_hashed(token).await.map_err(refuse)?;
        match (proof, verified.jkt.as_deref()) {
            (None, None) => Ok(Authenticated {
                claims: verified.claims,
                scheme,
                renew_nonce: false,
            }),
            (None, Some(_)) => Err(refuse(TokenError::DpopBound.into())),
            (Some(_), None) => Err(refuse(TokenError::NotDpopBound.into())),
            (Some(proof), Some(jkt)) => {
                let result = self.check_proof(method, path, proof, &hash, jkt);
                let stats = &self.inner.stats;
                match result {
                    Ok(renew_nonce) => {
                        stats.record_dpop(DpopOutcome::Valid);
                        Ok(Authenticated {
                            claims: verified.claims,
                            scheme,
                            renew_nonce,
                        })
                    }
                    Err(error) => {
                        stats.record_dpop(dpop_outcome(&error));
                        Err(refuse(error))
                    }
                }
            }
        }
    }

    /// Step 8 for a token bound to `jkt` whose hash is `token_hash`: the
    /// proof, then its key, nonce and `jti`. `Ok(true)` when the nonce
    /// should be renewed.
    fn check_proof(
        &self,
        method: &str,
        path: &str,
        proof: &str,
        token_hash: &TokenHash,
        jkt: &str,
    ) -> Result<bool, AuthError> {
        let inner = &self.inner;
        let dpop = &inner.dpop;
        let origin = dpop.public_origin.as_deref().unwrap_or_default();
        // The origin was checked at start-up and the path comes from the
        // request line, so this fails only for a request line no client
        // would send: refused as a proof for another URL.
        let url = Htu::at(origin, path).ok_or(ProofError::WrongUri)?;
        let now = inner.clock.now_secs();
        let window = dpop
            .iat_window_secs
            .saturating_add(inner.policy.leeway_secs());
        let proof = dpop::verify(
            proof,
            &Expected {
                method,
                url: &url,
                token_hash: Some(token_hash),
                now,
                iat_window_secs: window,
            },
        )?;
        if verify_slices_are_equal(proof.jkt.as_bytes(), jkt.as_bytes()).is_err() {
            return Err(TokenError::DpopKeyMismatch.into());
        }
        let mut renew_nonce = false;
        if let Some(key) = &dpop.nonce {
            let nonce = proof.nonce.as_deref().ok_or(NonceProblem::Missing)?;
            match key.check(nonce, now) {
                NonceCheck::Fresh => {}
                NonceCheck::Renew => renew_nonce = true,
                NonceCheck::Invalid => return Err(NonceProblem::Invalid.into()),
            }
        }
        // Last: a proof refused for any other reason is not remembered,
        // so it cannot use up room in the cache.
        match inner.replay.check_and_remember(
            &proof.jkt,
            &proof.jti,
            dpop::stale_from(proof.iat, window),
            now,
        ) {
            Ok(()) => Ok(renew_nonce),
            Err(ReplayError::Replayed) => Err(ProofError::Replayed.into()),
            Err(ReplayError::Full { retry_after }) => {
                Err(AuthError::ReplayCacheFull { retry_after })
            }
        }
    }

    /// Validates `token`, answering from the verified-token cache when it
    /// can.
    pub async fn validate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        self.validate_shared(token).await.map(Arc::unwrap_or_clone)
    }

    /// [`Validator::validate`], handing out the cached claims themselves:
    /// on the hot path a repeated token costs no copy of its claims.
    pub async fn validate_shared(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        self.validate_hashed(token)
            .await
            .map(|(_, verified)| verified.claims)
    }

    /// Validates `token`, with its hash (the cache key, and what a DPoP
    /// proof's `ath` is made of) and the key it is bound to.
    async fn validate_hashed(&self, token: &str) -> Result<(TokenHash, Verified), AuthError> {
        if token.len() > MAX_AUTHORIZATION_LEN {
            return Err(TokenError::TooLarge.into());
        }
        let inner = &self.inner;
        let hash = token_hash(token);
        let now = inner.clock.now_secs();
        if let Some(verified) = inner
            .verified
            .get(&hash, now, |kid| inner.jwks.contains(kid))
        {
            inner.stats.cache_hit();
            return Ok((hash, verified));
        }
        inner.stats.cache_miss();
        let (verified, kid) = self.check(token).await?;
        inner.verified.insert(hash, &kid, verified.clone(), now);
        Ok((hash, verified))
    }

    /// Validates `token` without consulting or filling the verified-token
    /// cache: every call checks the signature.
    pub async fn validate_uncached(&self, token: &str) -> Result<AccessClaims, AuthError> {
        if token.len() > MAX_AUTHORIZATION_LEN {
            return Err(TokenError::TooLarge.into());
        }
        self.check(token)
            .await
            .map(|(verified, _)| Arc::unwrap_or_clone(verified.claims))
    }

    /// Steps 3–6; returns the claims with the token's binding, and the kid
    /// that verified them.
    async fn check(&self, token: &str) -> Result<(Verified, String), AuthError> {
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
        let mut raw = RawClaims::from_json(&payload)?;
        let jkt = raw.take_dpop_binding()?;
        let claims = claims::check(raw, &self.inner.policy, self.inner.clock.now_secs())?;
        let verified = Verified {
            claims: Arc::new(claims),
            jkt: jkt.map(Arc::from),
        };
        Ok((verified, header.kid))
    }
}

/// The one `DPoP` header of a request with the DPoP scheme (RFC 9449 §4.3,
/// check 1). None, or several, make the request malformed.
fn single_proof(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(one), None) => one.to_str().map_err(|_| ProofError::NotCompactJws.into()),
        (None, _) => Err(AuthError::InvalidRequest(
            "the DPoP scheme needs a DPoP proof in a DPoP header, and the request has none".into(),
        )),
        (Some(_), Some(_)) => Err(AuthError::InvalidRequest(
            "the request has more than one DPoP header; send exactly one proof".into(),
        )),
    }
}

/// What a refusal of a proof counts as in `dpop_proofs_total`.
fn dpop_outcome(error: &AuthError) -> DpopOutcome {
    match error {
        AuthError::InvalidDpopProof(problem) => DpopOutcome::Invalid(*problem),
        AuthError::UseDpopNonce(NonceProblem::Missing) => DpopOutcome::NonceMissing,
        AuthError::UseDpopNonce(NonceProblem::Invalid) => DpopOutcome::NonceInvalid,
        AuthError::ReplayCacheFull { .. } => DpopOutcome::ReplayCacheFull,
        _ => DpopOutcome::KeyMismatch,
    }
}
