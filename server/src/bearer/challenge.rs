//! The `WWW-Authenticate` challenges of a refusal, for the schemes the
//! server takes (RFC 6750 §3, RFC 9449 §7.1–7.2).
//!
//! | DPoP | challenges |
//! |---|---|
//! | off (no public origin) | `Bearer realm="api"[, error=…]`, as [`ApiError::www_authenticate`] has it |
//! | on | `Bearer realm="api"` and `DPoP algs="ES256 RS256"`, each its own header field |
//! | required (`REQUIRE_DPOP=1`) | `DPoP algs="ES256 RS256"` only |
//!
//! The error (`error`, `error_description`, `scope`) goes on the challenge
//! of the scheme the request tried (RFC 9449 §7.2: "the corresponding
//! challenge SHOULD be used to deliver error information"): on `DPoP` for a
//! `DPoP` request and for the DPoP-only errors, on `Bearer` otherwise; a
//! request without credentials gets no error at all (RFC 6750 §3.1). The
//! two challenges are two header fields, which HTTP reads as one
//! comma-separated list (RFC 9110 §5.3): `fetch` in a browser joins them
//! into `Bearer realm="api", DPoP algs="ES256 RS256"`, RFC 9449's Figure
//! 17, and a client reading only the first field still sees the Bearer
//! challenge it always saw.

use app::error::ApiError;

use super::dpop::ALGS;
use super::header::Scheme;

/// Which schemes the server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schemes {
    /// Bearer only: DPoP is off.
    Bearer,
    /// Bearer and DPoP.
    Both,
    /// DPoP only (`REQUIRE_DPOP=1`).
    Dpop,
}

/// The `WWW-Authenticate` field values for `err`, answered to a request
/// that tried `scheme` (`None`: no usable credentials), in order. Empty
/// for errors that are not about credentials (503, 413, 500).
pub fn challenges(err: &ApiError, scheme: Option<Scheme>, schemes: Schemes) -> Vec<String> {
    let Some(bearer_form) = err.www_authenticate() else {
        return Vec::new();
    };
    let params = error_params(err);
    let dpop_specific = matches!(
        err,
        ApiError::InvalidDpopProof { .. } | ApiError::UseDpopNonce { .. }
    );
    let error_on_dpop = scheme == Some(Scheme::Dpop) || dpop_specific;
    match schemes {
        Schemes::Bearer => vec![bearer_form],
        Schemes::Dpop => vec![dpop_challenge(&params)],
        Schemes::Both if error_on_dpop => {
            vec![BARE_BEARER.to_string(), dpop_challenge(&params)]
        }
        Schemes::Both => vec![bearer_form, dpop_challenge(&[])],
    }
}

/// The Bearer challenge without an error.
const BARE_BEARER: &str = "Bearer realm=\"api\"";

/// `DPoP [error params, ]algs="ES256 RS256"`: the error first, as RFC 9449
/// Figure 16 has it.
fn dpop_challenge(params: &[(&str, String)]) -> String {
    let mut challenge = String::from("DPoP ");
    for (name, value) in params {
        challenge.push_str(name);
        challenge.push_str("=\"");
        challenge.push_str(&quoted_string_safe(value));
        challenge.push_str("\", ");
    }
    challenge.push_str("algs=\"");
    challenge.push_str(ALGS);
    challenge.push('"');
    challenge
}

/// The auth-params that name `err`.
fn error_params(err: &ApiError) -> Vec<(&'static str, String)> {
    let described = |code: &'static str, description: &str| {
        vec![
            ("error", code.to_string()),
            ("error_description", description.to_string()),
        ]
    };
    match err {
        ApiError::InvalidRequest { error_description } => {
            described("invalid_request", error_description)
        }
        ApiError::InvalidToken { error_description } => {
            described("invalid_token", error_description)
        }
        ApiError::InvalidDpopProof { error_description } => {
            described("invalid_dpop_proof", error_description)
        }
        ApiError::UseDpopNonce { error_description } => {
            described("use_dpop_nonce", error_description)
        }
        ApiError::InsufficientScope { scope } => vec![
            ("error", "insufficient_scope".to_string()),
            ("scope", scope.clone()),
        ],
        ApiError::Unauthorized { .. }
        | ApiError::TemporarilyUnavailable { .. }
        | ApiError::ServerError { .. }
        | ApiError::PayloadTooLarge { .. } => Vec::new(),
    }
}

/// A quoted-string's content (RFC 9110 §5.6.4) limited as RFC 6750 limits
/// `error_description` and `scope`: printable ASCII without `"` and `\`.
fn quoted_string_safe(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_token() -> ApiError {
        ApiError::InvalidToken {
            error_description: "the token has expired".into(),
        }
    }

    fn unauthorized() -> ApiError {
        ApiError::Unauthorized {
            error_description: "no token".into(),
        }
    }

    #[test]
    fn with_dpop_off_the_bearer_challenge_is_unchanged() {
        assert_eq!(
            challenges(&invalid_token(), Some(Scheme::Bearer), Schemes::Bearer),
            [
                r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
            ]
        );
        assert_eq!(
            challenges(&unauthorized(), None, Schemes::Bearer),
            [r#"Bearer realm="api""#]
        );
    }

    #[test]
    fn without_credentials_both_schemes_are_offered_without_an_error() {
        // RFC 9449 Figure 17.
        assert_eq!(
            challenges(&unauthorized(), None, Schemes::Both),
            [r#"Bearer realm="api""#, r#"DPoP algs="ES256 RS256""#]
        );
        assert_eq!(
            challenges(&unauthorized(), None, Schemes::Dpop),
            [r#"DPoP algs="ES256 RS256""#]
        );
    }

    #[test]
    fn the_error_goes_on_the_scheme_the_request_tried() {
        // RFC 9449 Figure 18.
        assert_eq!(
            challenges(&invalid_token(), Some(Scheme::Bearer), Schemes::Both),
            [
                r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#,
                r#"DPoP algs="ES256 RS256""#
            ]
        );
        assert_eq!(
            challenges(&invalid_token(), Some(Scheme::Dpop), Schemes::Both),
            [
                r#"Bearer realm="api""#,
                r#"DPoP error="invalid_token", error_description="the token has expired", algs="ES256 RS256""#
            ]
        );
        let proof = ApiError::InvalidDpopProof {
            error_description: "the DPoP proof has been used before (jti)".into(),
        };
        assert_eq!(
            challenges(&proof, Some(Scheme::Dpop), Schemes::Dpop),
            [
                r#"DPoP error="invalid_dpop_proof", error_description="the DPoP proof has been used before (jti)", algs="ES256 RS256""#
            ]
        );
        let scope = ApiError::InsufficientScope {
            scope: "reports:read".into(),
        };
        assert_eq!(
            challenges(&scope, Some(Scheme::Dpop), Schemes::Both),
            [
                r#"Bearer realm="api""#,
                r#"DPoP error="insufficient_scope", scope="reports:read", algs="ES256 RS256""#
            ]
        );
    }

    #[test]
    fn errors_not_about_credentials_have_no_challenge() {
        let down = ApiError::TemporarilyUnavailable { retry_after: 3 };
        assert!(challenges(&down, Some(Scheme::Dpop), Schemes::Both).is_empty());
    }

    #[test]
    fn quoted_values_stay_quoted_strings() {
        let odd = ApiError::InvalidRequest {
            error_description: "a \"quoted\" \\ thing\u{e9}".into(),
        };
        assert_eq!(
            challenges(&odd, Some(Scheme::Dpop), Schemes::Dpop),
            [
                r#"DPoP error="invalid_request", error_description="a quoted  thing", algs="ES256 RS256""#
            ]
        );
    }
}
