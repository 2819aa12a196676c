//! DPoP at the token endpoint (RFC 9449 §5, §8), as Okta does it: a token
//! request with a valid proof gets tokens bound to the proof's key.
//!
//! The proof is checked by the resource server's own rules
//! ([`crate::bearer::dpop`]): `typ`, `alg` (ES256 or RS256), a public
//! `jwk`, the signature, `htm` `POST`, `htu` this token endpoint, `iat`
//! within a minute (plus a minute of skew) either way. Then, as Okta:
//!
//! | case | answer |
//! |---|---|
//! | no `DPoP` header, client not requiring DPoP | Bearer tokens, as before |
//! | no `DPoP` header, client with `dpop_bound_access_tokens` | `400 invalid_dpop_proof`, "The DPoP proof JWT header is missing." |
//! | several `DPoP` headers, or a proof failing a check | `400 invalid_dpop_proof` |
//! | a client with `dpop_nonce_required` (the default), no nonce or not ours | `400 use_dpop_nonce` with a fresh `DPoP-Nonce` |
//! | a proof seen before (its `jti`) | `400 invalid_dpop_proof` |
//!
//! These come before the grant is looked at, so a refused proof spends no
//! code and rotates no refresh token. The nonces are stateless
//! ([`crate::bearer::nonce`]) under a key made at start-up; the `jti`s are
//! remembered in a bounded replay cache of this server's own.

use std::borrow::Cow;

use aws_lc_rs::digest;
use axum::http::HeaderMap;

use crate::bearer::dpop::{self, Expected, Htu, ProofError, DEFAULT_IAT_WINDOW_SECS, DPOP_HEADER};
use crate::bearer::nonce::{NonceCheck, NonceKey};
use crate::bearer::replay::{ReplayCache, ReplayError};
use crate::bearer::DEFAULT_LEEWAY;

use super::config::Client;
use super::tokens;

/// Okta's description when a client that requires DPoP sends no proof, or
/// a bound refresh token comes without one.
pub const PROOF_MISSING: &str = "The DPoP proof JWT header is missing.";
/// Okta's description of a `use_dpop_nonce` answer.
pub const NONCE_REQUIRED: &str = "Authorization server requires nonce in DPoP proof.";
/// How many proofs are remembered against replay: a development server's
/// token endpoint sees few.
const REPLAY_CAPACITY: usize = 10_000;

/// The token endpoint's DPoP state: the nonce key and the replay cache.
pub struct TokenEndpointDpop {
    nonces: NonceKey,
    replay: ReplayCache,
    /// `{issuer}/v1/token`, as `htu` must name it.
    url: Htu,
}

impl std::fmt::Debug for TokenEndpointDpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpointDpop")
            .field("url", &self.url)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

/// A checked proof: the key's thumbprint, to bind the tokens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenProof {
    pub jkt: String,
    /// The proof's nonce is getting old: answer with a fresh one.
    pub renew_nonce: bool,
}

/// Why a token request's proof is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopRefusal {
    /// `400 invalid_dpop_proof`.
    Invalid(Cow<'static, str>),
    /// `400 use_dpop_nonce`, with a fresh nonce.
    UseNonce(&'static str),
    /// The replay cache is full: `503`.
    Busy { retry_after: u64 },
}

impl TokenEndpointDpop {
    /// For the token endpoint of `issuer`. `None` if the issuer is not a
    /// URL or the system random generator fails.
    pub fn new(issuer: &str) -> Option<TokenEndpointDpop> {
        Some(TokenEndpointDpop {
            nonces: NonceKey::random(leeway())?,
            replay: ReplayCache::new(REPLAY_CAPACITY),
            url: Htu::parse(&format!("{issuer}/v1/token"))?,
        })
    }

    /// A fresh nonce.
    pub fn nonce(&self) -> String {
        self.nonces.issue(now())
    }

    /// The proof of a token request by `client` with `headers`: `None`
    /// without one (Bearer tokens), or the key to bind the tokens to.
    pub fn check(
        &self,
        client: &Client,
        headers: &HeaderMap,
    ) -> Result<Option<TokenProof>, DpopRefusal> {
        let mut values = headers.get_all(DPOP_HEADER).iter();
        let proof = match (values.next(), values.next()) {
            (None, _) if client.dpop.required => {
                return Err(DpopRefusal::Invalid(PROOF_MISSING.into()))
            }
            (None, _) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(DpopRefusal::Invalid(
                    "The request has more than one DPoP header.".into(),
                ))
            }
            (Some(one), None) => one
                .to_str()
                .map_err(|_| invalid(ProofError::NotCompactJws))?,
        };
        let now = now();
        let window = DEFAULT_IAT_WINDOW_SECS + leeway();
        let proof = dpop::verify(
            proof,
            &Expected {
                method: "POST",
                url: &self.url,
                token_hash: None,
                now,
                iat_window_secs: window,
            },
        )
        .map_err(invalid)?;
        let mut renew_nonce = false;
        if client.dpop.nonce_required {
            let nonce = proof
                .nonce
                .as_deref()
                .ok_or(DpopRefusal::UseNonce(NONCE_REQUIRED))?;
            match self.nonces.check(nonce, now) {
                NonceCheck::Fresh => {}
                NonceCheck::Renew => renew_nonce = true,
                NonceCheck::Invalid => {
                    return Err(DpopRefusal::UseNonce(
                        "The DPoP proof JWT nonce is invalid or expired.",
                    ))
                }
            }
        }
        match self.replay.check_and_remember(
            &proof.jkt,
            &proof.jti,
            dpop::stale_from(proof.iat, window),
            now,
        ) {
            Ok(()) => Ok(Some(TokenProof {
                jkt: proof.jkt,
                renew_nonce,
            })),
            Err(ReplayError::Replayed) => Err(invalid(ProofError::Replayed)),
            Err(ReplayError::Full { retry_after }) => Err(DpopRefusal::Busy { retry_after }),
        }
    }
}

impl TokenEndpointDpop {
    /// The proof of a userinfo request (`method` to `url`) made with the
    /// access `token`: the thumbprint of its key, or why it is refused
    /// (`invalid_dpop_proof`). No nonce is asked for here.
    pub fn check_resource_request(
        &self,
        headers: &HeaderMap,
        method: &str,
        url: &Htu,
        token: &str,
    ) -> Result<String, Cow<'static, str>> {
        let mut values = headers.get_all(DPOP_HEADER).iter();
        let proof = match (values.next(), values.next()) {
            (None, _) => return Err(PROOF_MISSING.into()),
            (Some(_), Some(_)) => return Err("The request has more than one DPoP header.".into()),
            (Some(one), None) => one
                .to_str()
                .map_err(|_| described(ProofError::NotCompactJws))?,
        };
        let token_hash: [u8; 32] = digest::digest(&digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| described(ProofError::WrongAth))?;
        let now = now();
        let window = DEFAULT_IAT_WINDOW_SECS + leeway();
        let proof = dpop::verify(
            proof,
            &Expected {
                method,
                url,
                token_hash: Some(&token_hash),
                now,
                iat_window_secs: window,
            },
        )
        .map_err(described)?;
        match self.replay.check_and_remember(
            &proof.jkt,
            &proof.jti,
            dpop::stale_from(proof.iat, window),
            now,
        ) {
            Ok(()) => Ok(proof.jkt),
            Err(ReplayError::Replayed) => Err(described(ProofError::Replayed)),
            Err(ReplayError::Full { retry_after }) => Err(format!(
                "Too many DPoP proofs are being checked; retry in {retry_after} s."
            )
            .into()),
        }
    }
}

fn invalid(problem: ProofError) -> DpopRefusal {
    DpopRefusal::Invalid(described(problem))
}

/// Okta's wording where it is known (`'htu' claim in the DPoP proof JWT is
/// invalid.`), the same shape for the other claims, and this server's own
/// description of the rest.
fn described(problem: ProofError) -> Cow<'static, str> {
    let claim = |name: &str| format!("'{name}' claim in the DPoP proof JWT is invalid.");
    match problem {
        ProofError::WrongUri => claim("htu").into(),
        ProofError::WrongMethod => claim("htm").into(),
        ProofError::Stale | ProofError::IssuedInFuture => claim("iat").into(),
        ProofError::MissingClaim(name) => {
            format!("'{name}' claim in the DPoP proof JWT is missing.").into()
        }
        ProofError::Replayed => "The DPoP proof JWT has already been used.".into(),
        other => format!("The DPoP proof JWT is invalid: {other}.").into(),
    }
}

fn leeway() -> i64 {
    DEFAULT_LEEWAY.as_secs() as i64
}

fn now() -> i64 {
    i64::try_from(tokens::now()).unwrap_or(i64::MAX)
}
