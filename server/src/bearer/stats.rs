//! What the validator decided, counted: plain atomics, one relaxed add per
//! request, read by whoever exports them (the server's Prometheus endpoint,
//! `server/src/ops/telemetry.rs`). Every label is a fixed name from here, never
//! anything taken from a request.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{AuthError, ProofError, TokenError};

/// How the bearer layer answered a request for a protected path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A valid Bearer token; the function ran.
    Valid,
    /// A valid DPoP-bound token with a valid proof; the function ran.
    ValidDpop,
    /// No `Authorization` header, or another scheme (with
    /// `REQUIRE_DPOP=1`, Bearer too): 401.
    Missing,
    /// A malformed header or a token in the query string: 400.
    InvalidRequest,
    /// 401 `invalid_token`, for this reason.
    InvalidToken(TokenError),
    /// 401 `invalid_dpop_proof` (the reason is in [`DpopOutcome`]).
    InvalidDpopProof,
    /// 401 `use_dpop_nonce`.
    UseDpopNonce,
    /// A valid token without the function's scope: 403.
    InsufficientScope,
    /// The keys for the token's kid cannot be had, or the DPoP replay
    /// cache is full: 503.
    Unavailable,
}

/// Every outcome's label, in the order of [`Outcome::index`]:
/// `invalid_token:<reason>` for each of [`TokenError::REASONS`].
pub const OUTCOMES: [&str; 29] = [
    "valid",
    "valid_dpop",
    "missing",
    "invalid_request",
    "invalid_token:too_large",
    "invalid_token:not_compact_jws",
    "invalid_token:bad_header",
    "invalid_token:algorithm_not_allowed",
    "invalid_token:unsupported_crit",
    "invalid_token:bad_kid",
    "invalid_token:unknown_kid",
    "invalid_token:bad_signature",
    "invalid_token:bad_claims",
    "invalid_token:missing_claim",
    "invalid_token:expired",
    "invalid_token:not_yet_valid",
    "invalid_token:issued_in_future",
    "invalid_token:wrong_issuer",
    "invalid_token:wrong_audience",
    "invalid_token:id_token",
    "invalid_token:wrong_client",
    "invalid_token:dpop_bound",
    "invalid_token:not_dpop_bound",
    "invalid_token:unsupported_cnf",
    "invalid_token:dpop_key_mismatch",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "insufficient_scope",
    "unavailable",
];

impl Outcome {
    /// The outcome of a refusal.
    pub fn of(err: &AuthError) -> Outcome {
        match err {
            AuthError::MissingCredentials | AuthError::DpopRequired => Outcome::Missing,
            AuthError::InvalidRequest(_) => Outcome::InvalidRequest,
            AuthError::InvalidToken(problem) => Outcome::InvalidToken(*problem),
            AuthError::InvalidDpopProof(_) => Outcome::InvalidDpopProof,
            AuthError::UseDpopNonce(_) => Outcome::UseDpopNonce,
            AuthError::KeysUnavailable { .. } | AuthError::ReplayCacheFull { .. } => {
                Outcome::Unavailable
            }
        }
    }

    /// This outcome's place in [`OUTCOMES`].
    pub fn index(self) -> usize {
        const TOKEN: usize = 4;
        const AFTER_TOKEN: usize = TOKEN + TokenError::REASONS.len();
        match self {
            Outcome::Valid => 0,
            Outcome::ValidDpop => 1,
            Outcome::Missing => 2,
            Outcome::InvalidRequest => 3,
            Outcome::InvalidToken(problem) => TOKEN + problem.index(),
            Outcome::InvalidDpopProof => AFTER_TOKEN,
            Outcome::UseDpopNonce => AFTER_TOKEN + 1,
            Outcome::InsufficientScope => AFTER_TOKEN + 2,
            Outcome::Unavailable => AFTER_TOKEN + 3,
        }
    }

    /// Its label: one of [`OUTCOMES`].
    pub fn label(self) -> &'static str {
        OUTCOMES[self.index()]
    }
}

/// What became of a DPoP proof the bearer layer looked at (a request with
/// `Authorization: DPoP` and a valid token), for `dpop_proofs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopOutcome {
    /// Accepted: the function ran.
    Valid,
    /// Refused as `invalid_dpop_proof`, for this reason.
    Invalid(ProofError),
    /// A good proof by another key than the token's `cnf.jkt`.
    KeyMismatch,
    /// `DPOP_NONCE=1` and no nonce in the proof.
    NonceMissing,
    /// A nonce of another secret, altered, or expired.
    NonceInvalid,
    /// The replay cache is full: 503.
    ReplayCacheFull,
}

/// Every [`DpopOutcome`]'s label, in the order of [`DpopOutcome::index`]:
/// `invalid:<reason>` for each of [`ProofError::REASONS`].
pub const DPOP_OUTCOMES: [&str; 23] = [
    "valid",
    "invalid:too_large",
    "invalid:not_compact_jws",
    "invalid:bad_header",
    "invalid:wrong_typ",
    "invalid:algorithm_not_allowed",
    "invalid:unsupported_crit",
    "invalid:missing_jwk",
    "invalid:private_key",
    "invalid:bad_key",
    "invalid:bad_signature",
    "invalid:bad_claims",
    "invalid:missing_claim",
    "invalid:wrong_htm",
    "invalid:wrong_htu",
    "invalid:stale_iat",
    "invalid:future_iat",
    "invalid:wrong_ath",
    "invalid:replayed",
    "key_mismatch",
    "nonce_missing",
    "nonce_invalid",
    "replay_cache_full",
];

impl DpopOutcome {
    /// This outcome's place in [`DPOP_OUTCOMES`].
    pub fn index(self) -> usize {
        const AFTER_PROOF: usize = 1 + ProofError::REASONS.len();
        match self {
            DpopOutcome::Valid => 0,
            DpopOutcome::Invalid(problem) => 1 + problem.index(),
            DpopOutcome::KeyMismatch => AFTER_PROOF,
            DpopOutcome::NonceMissing => AFTER_PROOF + 1,
            DpopOutcome::NonceInvalid => AFTER_PROOF + 2,
            DpopOutcome::ReplayCacheFull => AFTER_PROOF + 3,
        }
    }

    /// Its label: one of [`DPOP_OUTCOMES`].
    pub fn label(self) -> &'static str {
        DPOP_OUTCOMES[self.index()]
    }
}

/// The validator's counters.
#[derive(Debug, Default)]
pub struct Stats {
    decisions: [AtomicU64; OUTCOMES.len()],
    dpop: [AtomicU64; DPOP_OUTCOMES.len()],
    nonces_issued: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl Stats {
    pub fn record(&self, outcome: Outcome) {
        self.decisions[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests had the outcome of label `OUTCOMES[index]`.
    pub fn decisions(&self, index: usize) -> u64 {
        self.decisions[index].load(Ordering::Relaxed)
    }

    pub fn record_dpop(&self, outcome: DpopOutcome) {
        self.dpop[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many DPoP proofs had the outcome of label `DPOP_OUTCOMES[index]`.
    pub fn dpop(&self, index: usize) -> u64 {
        self.dpop[index].load(Ordering::Relaxed)
    }

    pub fn nonce_issued(&self) {
        self.nonces_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// How many `DPoP-Nonce`s the bearer layer has handed out.
    pub fn nonces_issued(&self) -> u64 {
        self.nonces_issued.load(Ordering::Relaxed)
    }

    pub(super) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Tokens answered from the verified-token cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Tokens not in it (checked in full, or refused).
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dpop_outcome_has_its_own_fixed_label() {
        assert_eq!(DpopOutcome::Valid.label(), "valid");
        for reason in ProofError::REASONS {
            assert!(DPOP_OUTCOMES.contains(&format!("invalid:{reason}").as_str()));
        }
        assert_eq!(
            DpopOutcome::Invalid(ProofError::Replayed).label(),
            "invalid:replayed"
        );
        assert_eq!(
            DpopOutcome::Invalid(ProofError::TooLarge).label(),
            "invalid:too_large"
        );
        assert_eq!(DpopOutcome::KeyMismatch.label(), "key_mismatch");
        assert_eq!(DpopOutcome::ReplayCacheFull.label(), "replay_cache_full");
        let mut labels = DPOP_OUTCOMES.to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DPOP_OUTCOMES.len());
    }

    #[test]
    fn every_outcome_has_its_own_fixed_label() {
        assert_eq!(Outcome::ValidDpop.label(), "valid_dpop");
        assert_eq!(Outcome::InvalidDpopProof.label(), "invalid_dpop_proof");
        assert_eq!(Outcome::UseDpopNonce.label(), "use_dpop_nonce");
        assert_eq!(
            Outcome::InvalidToken(TokenError::DpopKeyMismatch).label(),
            "invalid_token:dpop_key_mismatch"
        );
        assert_eq!(Outcome::Valid.label(), "valid");
        assert_eq!(Outcome::Missing.label(), "missing");
        assert_eq!(Outcome::InvalidRequest.label(), "invalid_request");
        assert_eq!(Outcome::InsufficientScope.label(), "insufficient_scope");
        assert_eq!(Outcome::Unavailable.label(), "unavailable");
        for reason in TokenError::REASONS {
            assert!(OUTCOMES.contains(&format!("invalid_token:{reason}").as_str()));
        }
        assert_eq!(
            Outcome::InvalidToken(TokenError::Expired).label(),
            "invalid_token:expired"
        );
        assert_eq!(
            Outcome::InvalidToken(TokenError::WrongClient).label(),
            "invalid_token:wrong_client"
        );
        assert_eq!(
            Outcome::of(&AuthError::KeysUnavailable { retry_after: 1 }),
            Outcome::Unavailable
        );
        let mut labels = OUTCOMES.to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), OUTCOMES.len());
    }
}
