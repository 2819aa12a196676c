//! The `response_type` of an authorization request: which flow it starts
//! and what the authorization response carries. The authorization endpoint
//! parses it; a client's settings in the config list the response types it
//! may use.
//!
//! | value | flow | the authorization response carries |
//! |---|---|---|
//! | `code` | authorization code with PKCE (RFC 6749 §4.1, RFC 7636) | a code, exchanged at `/v1/token` |
//! | `token`, `id_token`, `id_token token` | implicit (RFC 6749 §4.2, OIDC Core §3.2) | the tokens themselves |
//!
//! The hybrid types (`code id_token`, …) are not implemented.

use super::response_mode::ResponseMode;

/// What `response_type` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// `code`.
    Code,
    /// `token`, `id_token`, or both.
    Implicit { access_token: bool, id_token: bool },
}

impl ResponseType {
    /// `code`, `token`, `id_token`, or `id_token token` in either order
    /// (RFC 6749 §3.1.1: the order of space-delimited values does not
    /// matter).
    pub fn parse(value: &str) -> Option<Self> {
        let mut words: Vec<&str> = value.split(' ').collect();
        words.sort_unstable();
        let implicit = |access_token, id_token| {
            Some(Self::Implicit {
                access_token,
                id_token,
            })
        };
        match words.as_slice() {
            ["code"] => Some(Self::Code),
            ["token"] => implicit(true, false),
            ["id_token"] => implicit(false, true),
            ["id_token", "token"] => implicit(true, true),
            _ => None,
        }
    }

    /// The words it is made of, `id_token` before `token`.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Self::Code => &["code"],
            Self::Implicit {
                id_token: true,
                access_token: true,
            } => &["id_token", "token"],
            Self::Implicit { id_token: true, .. } => &["id_token"],
            Self::Implicit {
                access_token: true, ..
            } => &["token"],
            Self::Implicit { .. } => &[],
        }
    }

    /// Whether the authorization response itself carries an ID token,
    /// which then needs a `nonce` (OIDC Core §3.2.2.1; in the code flow
    /// the nonce is optional, §3.1.2.1).
    pub fn id_token_in_response(self) -> bool {
        matches!(self, Self::Implicit { id_token: true, .. })
    }

    /// The response mode when the request names none (OAuth 2.0 Multiple
    /// Response Type Encoding Practices §2.1, §3): the query for `code`,
    /// the fragment for anything that returns tokens.
    pub fn default_response_mode(self) -> ResponseMode {
        match self {
            Self::Code => ResponseMode::Query,
            Self::Implicit { .. } => ResponseMode::Fragment,
        }
    }

    /// Whether the response may travel in `mode`: never tokens in a query
    /// string (Encoding Practices §5: it ends up in logs and `Referer`).
    pub fn allows_response_mode(self, mode: ResponseMode) -> bool {
        !(matches!(self, Self::Implicit { .. }) && mode == ResponseMode::Query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types() {
        let both = Some(ResponseType::Implicit {
            access_token: true,
            id_token: true,
        });
        assert_eq!(ResponseType::parse("id_token token"), both);
        assert_eq!(ResponseType::parse("token id_token"), both);
        assert_eq!(ResponseType::parse("code"), Some(ResponseType::Code));
        assert_eq!(ResponseType::parse("token").unwrap().words(), ["token"]);
        assert_eq!(
            ResponseType::parse("id_token").unwrap().words(),
            ["id_token"]
        );
        for bad in [
            "",
            "token token",
            "id_token  token",
            "code id_token",
            "code token",
            "code code",
            "TOKEN",
            "Code",
        ] {
            assert_eq!(ResponseType::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn code_answers_in_the_query_and_tokens_never_do() {
        let code = ResponseType::Code;
        let implicit = ResponseType::parse("id_token token").unwrap();
        assert_eq!(code.default_response_mode(), ResponseMode::Query);
        assert_eq!(implicit.default_response_mode(), ResponseMode::Fragment);
        for mode in ResponseMode::ALL {
            assert!(code.allows_response_mode(mode), "{mode:?}");
        }
        assert!(!implicit.allows_response_mode(ResponseMode::Query));
        assert!(implicit.allows_response_mode(ResponseMode::OktaPostMessage));
        assert!(!code.id_token_in_response());
        assert!(implicit.id_token_in_response());
        assert!(!ResponseType::parse("token").unwrap().id_token_in_response());
    }
}
