//! What the validator decided, counted: plain atomics, one relaxed add per
//! request, read by whoever exports them (the server's Prometheus endpoint,
//! `server/src/telemetry.rs`). Every label is a fixed name from here, never
//! anything taken from a request.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{AuthError, TokenError};

/// How the bearer layer answered a request for a protected path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A valid token; the function ran.
    Valid,
    /// No `Authorization` header, or another scheme: 401.
    Missing,
    /// A malformed header or a token in the query string: 400.
    InvalidRequest,
    /// 401 `invalid_token`, for this reason.
    InvalidToken(TokenError),
    /// A valid token without the function's scope: 403.
    InsufficientScope,
    /// The keys for the token's kid cannot be had: 503.
    Unavailable,
}

/// Every outcome's label, in the order of [`Outcome::index`]:
/// `invalid_token:<reason>` for each of [`TokenError::REASONS`].
pub const OUTCOMES: [&str; 22] = [
    "valid",
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
    "insufficient_scope",
    "unavailable",
];

impl Outcome {
    /// The outcome of a refusal.
    pub fn of(err: &AuthError) -> Outcome {
        match err {
            AuthError::MissingCredentials => Outcome::Missing,
            AuthError::InvalidRequest(_) => Outcome::InvalidRequest,
            AuthError::InvalidToken(problem) => Outcome::InvalidToken(*problem),
            AuthError::KeysUnavailable { .. } => Outcome::Unavailable,
        }
    }

    /// This outcome's place in [`OUTCOMES`].
    pub fn index(self) -> usize {
        match self {
            Outcome::Valid => 0,
            Outcome::Missing => 1,
            Outcome::InvalidRequest => 2,
            Outcome::InvalidToken(problem) => 3 + problem.index(),
            Outcome::InsufficientScope => 20,
            Outcome::Unavailable => 21,
        }
    }

    /// Its label: one of [`OUTCOMES`].
    pub fn label(self) -> &'static str {
        OUTCOMES[self.index()]
    }
}

/// The validator's counters.
#[derive(Debug, Default)]
pub struct Stats {
    decisions: [AtomicU64; OUTCOMES.len()],
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
    fn every_outcome_has_its_own_fixed_label() {
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
