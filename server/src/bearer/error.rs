//! The two error types of the validator: [`InitError`] stops start-up (bad
//! settings, an issuer that cannot be discovered), [`AuthError`] answers one
//! request in RFC 6750's terms.
//!
//! Descriptions never contain the token or anything else copied from the
//! request, so they are safe to log and to put in a `WWW-Authenticate`
//! header.

use app::error::ApiError;

/// Why the validator cannot be set up. Each message names what is wrong
/// in one line.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{what} {url:?} is not a valid URL: {reason}")]
    BadUrl {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error("{what} {url:?} must use https (http:// is only allowed for localhost and loopback addresses)")]
    InsecureUrl { what: &'static str, url: String },
    #[error("cannot fetch {url}: {source}")]
    Fetch { url: String, source: FetchError },
    #[error("{url} is not a usable {what}: {reason}")]
    BadDocument {
        url: String,
        what: &'static str,
        reason: String,
    },
    #[error("the discovery document says the issuer is {found:?}, but ISSUER is {expected:?}; they must be equal")]
    IssuerMismatch { expected: String, found: String },
    #[error("the JWKS at {url} has no RS256 signing key with a kid")]
    NoUsableKeys { url: String },
    #[error("the clock-skew leeway must be at most 120 s, not {0} s")]
    Leeway(u64),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Why fetching a document (discovery, JWKS) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Transport(String),
    /// The connect or total timeout ran out.
    #[error("{0}")]
    Timeout(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
}

/// What is wrong with a token. Every variant is answered `401
/// invalid_token`; the message is the `error_description`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is larger than 8 KiB")]
    TooLarge,
    #[error("the token is not a JWS in compact serialization (three base64url parts)")]
    NotCompactJws,
    #[error("the token's header is not base64url-encoded UTF-8 JSON")]
    BadHeader,
    #[error("the token is not signed with RS256")]
    AlgorithmNotAllowed,
    #[error("the token has critical header parameters this server does not understand")]
    UnsupportedCrit,
    #[error("the token's header has no usable kid")]
    BadKid,
    #[error("the token is signed with a key the issuer does not publish")]
    UnknownKid,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token's claims are not base64url-encoded UTF-8 JSON of the expected types")]
    BadClaims,
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not meant for this API (aud)")]
    WrongAudience,
    #[error("an ID token cannot be used as an access token")]
    IdToken,
    #[error("the token was issued to another client (cid)")]
    WrongClient,
    /// RFC 9449 §7.2: a DPoP-bound token is never accepted as a Bearer one.
    #[error("the token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof")]
    DpopBound,
    #[error("the token is not bound to a DPoP key (it has no cnf.jkt)")]
    NotDpopBound,
    #[error("the token is bound to a key by a confirmation method (cnf) this server cannot check")]
    UnsupportedConfirmation,
    /// RFC 9449 §7.1, Figure 16: "Invalid DPoP key binding".
    #[error(
        "the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt)"
    )]
    DpopKeyMismatch,
}

impl TokenError {
    /// Every [`TokenError::reason`], in the order of [`TokenError::index`].
    pub const REASONS: [&'static str; 21] = [
        "too_large",
        "not_compact_jws",
        "bad_header",
        "algorithm_not_allowed",
        "unsupported_crit",
        "bad_kid",
        "unknown_kid",
        "bad_signature",
        "bad_claims",
        "missing_claim",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "wrong_issuer",
        "wrong_audience",
        "id_token",
        "wrong_client",
        "dpop_bound",
        "not_dpop_bound",
        "unsupported_cnf",
        "dpop_key_mismatch",
    ];

    /// This problem's place in [`TokenError::REASONS`].
    pub fn index(self) -> usize {
        match self {
            TokenError::TooLarge => 0,
            TokenError::NotCompactJws => 1,
            TokenError::BadHeader => 2,
            TokenError::AlgorithmNotAllowed => 3,
            TokenError::UnsupportedCrit => 4,
            TokenError::BadKid => 5,
            TokenError::UnknownKid => 6,
            TokenError::BadSignature => 7,
            TokenError::BadClaims => 8,
            TokenError::MissingClaim(_) => 9,
            TokenError::Expired => 10,
            TokenError::NotYetValid => 11,
            TokenError::IssuedInFuture => 12,
            TokenError::WrongIssuer => 13,
            TokenError::WrongAudience => 14,
            TokenError::IdToken => 15,
            TokenError::WrongClient => 16,
            TokenError::DpopBound => 17,
            TokenError::NotDpopBound => 18,
            TokenError::UnsupportedConfirmation => 19,
            TokenError::DpopKeyMismatch => 20,
        }
    }

    /// A short fixed name for the problem, for metrics labels: one of
    /// [`TokenError::REASONS`], never anything taken from the token.
    pub fn reason(self) -> &'static str {
        Self::REASONS[self.index()]
    }
}

/// Why a request is not let through. Maps one to one onto the rows of the
/// RFC 6750 table in DESIGN.md, and RFC 9449 §7.1's errors, through
/// [`ApiError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or another scheme: 401 with a bare
    /// challenge.
    #[error("the request has no access token in its Authorization header")]
    MissingCredentials,
    /// `REQUIRE_DPOP=1` and a Bearer token: an authentication scheme this
    /// server does not take, so, as RFC 6750 §3.1 has it for those, 401
    /// with a bare (DPoP) challenge.
    #[error("this API takes DPoP-bound tokens only: send Authorization: DPoP with a DPoP proof")]
    DpopRequired,
    /// A malformed request: 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `invalid_token`.
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// The key for the token's `kid` cannot be had because the issuer's JWKS
    /// endpoint is failing: 503 with `Retry-After`.
    #[error("the issuer's signing keys cannot be fetched right now; retry in {retry_after} s")]
    KeysUnavailable { retry_after: u64 },
    /// 401 `invalid_dpop_proof` (RFC 9449 §7.1).
    #[error(transparent)]
    InvalidDpopProof(#[from] ProofError),
    /// 401 `use_dpop_nonce` with a fresh `DPoP-Nonce` (RFC 9449 §9).
    #[error(transparent)]
    UseDpopNonce(#[from] NonceProblem),
    /// The replay cache is full of proofs still in their window: 503 with
    /// `Retry-After` rather than a proof accepted unremembered.
    #[error("the server cannot take more DPoP proofs right now; retry in {retry_after} s")]
    ReplayCacheFull { retry_after: u64 },
}

/// Why a proof's nonce is refused: answered `use_dpop_nonce`, with a fresh
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NonceProblem {
    #[error(
        "the resource server requires a nonce in the DPoP proof: use the DPoP-Nonce of this answer"
    )]
    Missing,
    #[error("the DPoP proof's nonce is not one this server issued, or has expired: use the DPoP-Nonce of this answer")]
    Invalid,
}

impl AuthError {
    /// Whether this is the server's problem (logged at `error!`) rather than
    /// the caller's (logged at `debug!`).
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            AuthError::KeysUnavailable { .. } | AuthError::ReplayCacheFull { .. }
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::MissingCredentials | AuthError::DpopRequired => ApiError::Unauthorized {
                error_description: err.to_string(),
            },
            AuthError::InvalidRequest(error_description) => {
                ApiError::InvalidRequest { error_description }
            }
            AuthError::InvalidToken(problem) => ApiError::InvalidToken {
                error_description: problem.to_string(),
            },
            AuthError::KeysUnavailable { retry_after }
            | AuthError::ReplayCacheFull { retry_after } => {
                ApiError::TemporarilyUnavailable { retry_after }
            }
            AuthError::InvalidDpopProof(problem) => ApiError::InvalidDpopProof {
                error_description: problem.to_string(),
            },
            AuthError::UseDpopNonce(problem) => ApiError::UseDpopNonce {
                error_description: problem.to_string(),
            },
        }
    }
}

/// What is wrong with a DPoP proof. Every variant is answered
/// `invalid_dpop_proof`; the message is the `error_description`, and
/// never contains anything taken from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the DPoP proof is larger than 8 KiB")]
    TooLarge,
    #[error("the DPoP proof is not a JWS in compact serialization (three base64url parts)")]
    NotCompactJws,
    #[error("the DPoP proof's header is not base64url-encoded UTF-8 JSON of the expected types")]
    BadHeader,
    #[error("the DPoP proof's typ is not dpop+jwt")]
    WrongType,
    #[error("the DPoP proof is not signed with one of ES256 RS256")]
    AlgorithmNotAllowed,
    #[error("the DPoP proof has critical header parameters this server does not understand")]
    UnsupportedCrit,
    #[error("the DPoP proof's header has no jwk")]
    MissingJwk,
    #[error("the DPoP proof's jwk contains a private key")]
    PrivateKey,
    #[error("the DPoP proof's jwk is not a public key for its alg (ES256: EC P-256; RS256: RSA of 2048 to 8192 bits)")]
    BadKey,
    #[error("the DPoP proof's signature is not valid for its jwk")]
    BadSignature,
    #[error("the DPoP proof's claims are not base64url-encoded UTF-8 JSON of the expected types")]
    BadClaims,
    #[error("the DPoP proof has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the DPoP proof's htm is not this request's method")]
    WrongMethod,
    #[error("the DPoP proof's htu is not this request's URL")]
    WrongUri,
    #[error("the DPoP proof was made too long ago (iat)")]
    Stale,
    #[error("the DPoP proof was made in the future (iat)")]
    IssuedInFuture,
    #[error("the DPoP proof's ath is not the hash of the access token sent with it")]
    WrongAth,
    #[error("the DPoP proof has been used before (jti)")]
    Replayed,
}

impl ProofError {
    /// Every [`ProofError::reason`], in the order of [`ProofError::index`].
    pub const REASONS: [&'static str; 18] = [
        "too_large",
        "not_compact_jws",
        "bad_header",
        "wrong_typ",
        "algorithm_not_allowed",
        "unsupported_crit",
        "missing_jwk",
        "private_key",
        "bad_key",
        "bad_signature",
        "bad_claims",
        "missing_claim",
        "wrong_htm",
        "wrong_htu",
        "stale_iat",
        "future_iat",
        "wrong_ath",
        "replayed",
    ];

    /// This problem's place in [`ProofError::REASONS`].
    pub fn index(self) -> usize {
        match self {
            ProofError::TooLarge => 0,
            ProofError::NotCompactJws => 1,
            ProofError::BadHeader => 2,
            ProofError::WrongType => 3,
            ProofError::AlgorithmNotAllowed => 4,
            ProofError::UnsupportedCrit => 5,
            ProofError::MissingJwk => 6,
            ProofError::PrivateKey => 7,
            ProofError::BadKey => 8,
            ProofError::BadSignature => 9,
            ProofError::BadClaims => 10,
            ProofError::MissingClaim(_) => 11,
            ProofError::WrongMethod => 12,
            ProofError::WrongUri => 13,
            ProofError::Stale => 14,
            ProofError::IssuedInFuture => 15,
            ProofError::WrongAth => 16,
            ProofError::Replayed => 17,
        }
    }

    /// A short fixed name for the problem, for metrics labels.
    pub fn reason(self) -> &'static str {
        Self::REASONS[self.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_onto_the_rfc6750_table() {
        assert_eq!(ApiError::from(AuthError::MissingCredentials).status(), 401);
        assert_eq!(
            ApiError::from(AuthError::MissingCredentials).www_authenticate(),
            Some("Bearer realm=\"api\"".into())
        );
        assert_eq!(
            ApiError::from(AuthError::InvalidRequest("x".into())).status(),
            400
        );
        let invalid = ApiError::from(AuthError::InvalidToken(TokenError::Expired));
        assert_eq!(invalid.status(), 401);
        assert_eq!(
            invalid.www_authenticate().as_deref(),
            Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\"")
        );
        let down = ApiError::from(AuthError::KeysUnavailable { retry_after: 30 });
        assert_eq!(down.status(), 503);
        assert_eq!(down.www_authenticate(), None);
    }

    /// One of each variant.
    const EVERY_TOKEN_ERROR: [TokenError; 21] = [
        TokenError::TooLarge,
        TokenError::NotCompactJws,
        TokenError::BadHeader,
        TokenError::AlgorithmNotAllowed,
        TokenError::UnsupportedCrit,
        TokenError::BadKid,
        TokenError::UnknownKid,
        TokenError::BadSignature,
        TokenError::BadClaims,
        TokenError::MissingClaim("exp"),
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::IdToken,
        TokenError::WrongClient,
        TokenError::DpopBound,
        TokenError::NotDpopBound,
        TokenError::UnsupportedConfirmation,
        TokenError::DpopKeyMismatch,
    ];

    #[test]
    fn reasons_are_a_fixed_list_one_per_variant() {
        let reasons: Vec<&str> = EVERY_TOKEN_ERROR.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons, TokenError::REASONS);
        assert_eq!(TokenError::MissingClaim("iss").reason(), "missing_claim");
    }

    #[test]
    fn descriptions_are_header_safe() {
        // Every description must survive ApiError's quoted-string filter
        // unchanged, or the header and the body would disagree.
        let texts = EVERY_TOKEN_ERROR
            .iter()
            .map(ToString::to_string)
            .chain([NonceProblem::Missing, NonceProblem::Invalid].map(|p| p.to_string()))
            .chain([AuthError::DpopRequired.to_string()]);
        for text in texts {
            assert!(
                text.chars()
                    .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')),
                "{text}"
            );
        }
    }
}
