//! Reading the access token out of a request: the `Bearer` scheme (RFC
//! 6750 §2.1) and the `DPoP` scheme (RFC 9449 §7.1), which share one
//! syntax (`scheme 1*SP token68`).
//!
//! Pure functions over header values and the query string, so every rule is
//! unit-tested without a server. Nothing here decodes or verifies the token:
//! a header that is too large or malformed is refused before any crypto or
//! network work happens.

use super::error::AuthError;

/// Larger `Authorization` values are refused unread. Okta access tokens are
/// around 1 KiB; 8 KiB leaves room for large custom claims.
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// Why an `Authorization` header does not carry a usable Bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No `Authorization` header at all.
    #[error("no Authorization header")]
    Missing,
    /// Credentials of another scheme (Basic, Digest, ...).
    #[error("the Authorization header uses neither the Bearer nor the DPoP scheme")]
    OtherScheme,
    #[error("more than one Authorization header")]
    MultipleHeaders,
    #[error("the Authorization header is larger than 8 KiB")]
    TooLarge,
    #[error("the access token in the Authorization header is empty")]
    Empty,
    #[error("the access token has characters outside the b64token syntax of RFC 6750")]
    BadCharacters,
    #[error("the Authorization header carries more than one token")]
    MultipleTokens,
}

impl From<HeaderError> for AuthError {
    fn from(err: HeaderError) -> Self {
        match err {
            // RFC 6750 §3.1: a request without authentication information
            // gets a bare challenge, with no error code.
            HeaderError::Missing | HeaderError::OtherScheme => AuthError::MissingCredentials,
            other => AuthError::InvalidRequest(other.to_string()),
        }
    }
}

/// The authentication scheme of a request's access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer …` (RFC 6750): whoever holds the token.
    Bearer,
    /// `Authorization: DPoP …` (RFC 9449 §7.1): a token bound to a key,
    /// with a proof of that key in the `DPoP` header.
    Dpop,
}

impl Scheme {
    /// The scheme's name as challenges spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        }
    }
}

/// The Bearer token of a request whose `Authorization` header values are
/// `values` (in the order received). A `DPoP` credential counts as another
/// scheme here.
pub fn bearer_token<'a>(values: &[&'a [u8]]) -> Result<&'a str, HeaderError> {
    match credentials(values)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(HeaderError::OtherScheme),
    }
}

/// The scheme and access token of a request whose `Authorization` header
/// values are `values` (in the order received): `Bearer` or `DPoP`.
pub fn credentials<'a>(values: &[&'a [u8]]) -> Result<(Scheme, &'a str), HeaderError> {
    let value = match values {
        [] => return Err(HeaderError::Missing),
        [one] => *one,
        _ => return Err(HeaderError::MultipleHeaders),
    };
    // Checked first so a huge header costs one comparison.
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(HeaderError::TooLarge);
    }
    let value = trim_ows(value);

    // credentials = auth-scheme [ 1*SP b64token ]; the scheme is
    // case-insensitive (RFC 7235 §2.1).
    let scheme_len = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_len);
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        return Err(HeaderError::OtherScheme);
    };
    let token = trim_leading_spaces(rest);
    if token.is_empty() {
        return Err(HeaderError::Empty);
    }
    if !is_b64token(token) {
        // Only now tell the two refusals apart: a second token is the
        // likelier mistake, so it gets its own message.
        return Err(if token.iter().any(|b| matches!(b, b' ' | b'\t')) {
            HeaderError::MultipleTokens
        } else {
            HeaderError::BadCharacters
        });
    }
    // b64token is ASCII, so this cannot fail; no unwrap on request data.
    let token = std::str::from_utf8(token).map_err(|_| HeaderError::BadCharacters)?;
    Ok((scheme, token))
}

/// Whether the query string carries an `access_token` parameter (RFC 6750
/// §2.3), which this server never accepts: URLs end up in logs and
/// `Referer` headers.
pub fn query_has_access_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "access_token")
    })
}

/// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
///
/// Every protected request passes through here with a ~1 KiB token, so the
/// body check is written to compile to vector compares: no early exit, no
/// table (a per-byte chain of branches cost a microsecond a request, more
/// than the SHA-256 of the token).
fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|b| **b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty() && body.iter().fold(true, |ok, b| ok & is_b64token_char(*b))
}

/// ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", without branches.
fn is_b64token_char(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Optional whitespace around a field value is not part of it (RFC 9110 §5.5).
fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn trim_leading_spaces(mut v: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<&str, HeaderError> {
        bearer_token(&[value.as_bytes()])
    }

    #[test]
    fn accepts_a_bearer_token() {
        assert_eq!(parse("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(parse("bearer abc"), Ok("abc"));
        assert_eq!(parse("BEARER abc"), Ok("abc"));
        assert_eq!(parse("bEaReR abc"), Ok("abc"));
    }

    #[test]
    fn tolerates_surrounding_whitespace_and_extra_spaces() {
        assert_eq!(parse("  Bearer   abc  "), Ok("abc"));
    }

    #[test]
    fn accepts_every_b64token_character_and_trailing_padding() {
        assert_eq!(parse("Bearer aZ09-._~+/=="), Ok("aZ09-._~+/=="));
    }

    #[test]
    fn missing_header_is_missing_credentials() {
        assert_eq!(bearer_token(&[]), Err(HeaderError::Missing));
    }

    #[test]
    fn other_schemes_are_not_bearer() {
        assert_eq!(parse("Basic dXNlcjpwYXNz"), Err(HeaderError::OtherScheme));
        assert_eq!(parse("Bearerabc"), Err(HeaderError::OtherScheme));
        assert_eq!(parse(""), Err(HeaderError::OtherScheme));
        assert_eq!(parse("DPoP abc"), Err(HeaderError::OtherScheme));
    }

    #[test]
    fn the_dpop_scheme_has_the_same_syntax() {
        fn parse(value: &str) -> Result<(Scheme, &str), HeaderError> {
            credentials(&[value.as_bytes()])
        }
        assert_eq!(parse("DPoP abc.def"), Ok((Scheme::Dpop, "abc.def")));
        assert_eq!(parse("dpop  abc "), Ok((Scheme::Dpop, "abc")));
        assert_eq!(parse("Bearer abc"), Ok((Scheme::Bearer, "abc")));
        assert_eq!(parse("DPoP"), Err(HeaderError::Empty));
        assert_eq!(parse("DPoP a b"), Err(HeaderError::MultipleTokens));
        assert_eq!(parse("DPoPabc"), Err(HeaderError::OtherScheme));
        assert_eq!(
            credentials(&[b"DPoP a", b"Bearer a"]),
            Err(HeaderError::MultipleHeaders)
        );
    }

    #[test]
    fn empty_token_is_malformed() {
        assert_eq!(parse("Bearer"), Err(HeaderError::Empty));
        assert_eq!(parse("Bearer    "), Err(HeaderError::Empty));
    }

    #[test]
    fn two_tokens_are_malformed() {
        assert_eq!(parse("Bearer abc def"), Err(HeaderError::MultipleTokens));
        assert_eq!(parse("Bearer abc\tdef"), Err(HeaderError::MultipleTokens));
    }

    #[test]
    fn characters_outside_b64token_are_malformed() {
        for bad in [
            "Bearer abc,def",
            "Bearer \"abc\"",
            "Bearer abc=def",
            "Bearer =abc",
            "Bearer ab%63",
            "Bearer ab\u{e9}c",
        ] {
            assert_eq!(parse(bad), Err(HeaderError::BadCharacters), "{bad}");
        }
    }

    #[test]
    fn admits_exactly_the_b64token_characters() {
        let allowed: Vec<u8> = (0..=255u8).filter(|b| is_b64token_char(*b)).collect();
        let expected: Vec<u8> = [b'+', b'-', b'.', b'/']
            .into_iter()
            .chain(b'0'..=b'9')
            .chain(b'A'..=b'Z')
            .chain([b'_'])
            .chain(b'a'..=b'z')
            .chain([b'~'])
            .collect();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn padding_only_at_the_end() {
        assert_eq!(parse("Bearer abc=="), Ok("abc=="));
        assert_eq!(parse("Bearer abc==d"), Err(HeaderError::BadCharacters));
        assert_eq!(parse("Bearer ==="), Err(HeaderError::BadCharacters));
        assert_eq!(parse("Bearer abc= def"), Err(HeaderError::MultipleTokens));
    }

    #[test]
    fn two_headers_are_malformed() {
        assert_eq!(
            bearer_token(&[b"Bearer a", b"Bearer b"]),
            Err(HeaderError::MultipleHeaders)
        );
    }

    #[test]
    fn oversized_header_is_refused_before_parsing() {
        let huge = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_LEN));
        assert_eq!(parse(&huge), Err(HeaderError::TooLarge));
        let just_fits = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_LEN - 7));
        assert!(parse(&just_fits).is_ok());
    }

    #[test]
    fn maps_to_rfc6750_errors() {
        assert_eq!(
            AuthError::from(HeaderError::Missing),
            AuthError::MissingCredentials
        );
        assert_eq!(
            AuthError::from(HeaderError::OtherScheme),
            AuthError::MissingCredentials
        );
        assert!(matches!(
            AuthError::from(HeaderError::MultipleTokens),
            AuthError::InvalidRequest(_)
        ));
    }

    #[test]
    fn finds_access_token_in_query() {
        assert!(query_has_access_token(Some("access_token=abc")));
        assert!(query_has_access_token(Some("x=1&access_token=")));
        assert!(query_has_access_token(Some("access%5Ftoken=abc")));
        assert!(!query_has_access_token(Some("token=abc")));
        assert!(!query_has_access_token(None));
    }
}
