//! Parsing the URL fragment the authorization server redirects back with.

use serde::{Deserialize, Serialize};

/// The parameters of an implicit-flow authorization response (RFC 6749
/// §4.2.2 / §4.2.2.1, OpenID Connect Core §3.2.2.5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentParams {
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub access_token: Option<String>,
    pub token_type: Option<String>,
    pub expires_in: Option<String>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("the sign-in response is empty: the authorization server sent nothing back")]
    Empty,
    #[error("the sign-in response is too large")]
    TooLarge,
    #[error("the sign-in response repeats the parameter '{0}'")]
    Repeated(String),
}

/// The callback page's one inline script, in its head (`shell.rs`, allowed
/// by its hash in the page's Content-Security-Policy). It runs while the
/// page is parsed, before the wasm has even been asked for: it takes the
/// fragment, with the tokens, out of the address bar and the history
/// entry, and leaves it where the wasm reads it once
/// (`browser::take_fragment`). So the tokens are never in the URL while the
/// wasm downloads, nor for good if it fails to load.
pub const CALLBACK_SCRIPT: &str = "(function(){var h=location.hash;if(h){\
history.replaceState(null,'',location.pathname+location.search);\
window.__oktaCallbackFragment=h}})();";

/// Where [`CALLBACK_SCRIPT`] leaves the fragment for the wasm.
pub const CALLBACK_FRAGMENT_GLOBAL: &str = "__oktaCallbackFragment";

/// Largest fragment we read; real ones are a few KiB.
pub const MAX_FRAGMENT_LEN: usize = 64 * 1024;

/// Parses `hash` (with or without the leading `#`). Unknown parameters are
/// ignored; a known one given twice is refused, as RFC 6749 §3.1 forbids it.
pub fn parse_fragment(hash: &str) -> Result<FragmentParams, FragmentError> {
    let hash = hash.strip_prefix('#').unwrap_or(hash);
    if hash.is_empty() {
        return Err(FragmentError::Empty);
    }
    if hash.len() > MAX_FRAGMENT_LEN {
        return Err(FragmentError::TooLarge);
    }
    let mut params = FragmentParams::default();
    for (name, value) in form_urlencoded::parse(hash.as_bytes()) {
        let slot = match name.as_ref() {
            "state" => &mut params.state,
            "error" => &mut params.error,
            "error_description" => &mut params.error_description,
            "access_token" => &mut params.access_token,
            "token_type" => &mut params.token_type,
            "expires_in" => &mut params.expires_in,
            "scope" => &mut params.scope,
            "id_token" => &mut params.id_token,
            _ => continue,
        };
        if slot.is_some() {
            return Err(FragmentError::Repeated(name.into_owned()));
        }
        *slot = Some(value.into_owned());
    }
    if params == FragmentParams::default() {
        return Err(FragmentError::Empty);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_script_leaves_the_fragment_where_the_wasm_reads_it() {
        assert!(CALLBACK_SCRIPT.contains(&format!("window.{CALLBACK_FRAGMENT_GLOBAL}=h")));
        // It keeps the path and query, and drops only the fragment.
        assert!(CALLBACK_SCRIPT.contains("location.pathname+location.search"));
        assert!(!CALLBACK_SCRIPT.contains('\n'));
    }

    #[test]
    fn parses_a_success_response() {
        let p = parse_fragment(
            "#access_token=a.b.c&token_type=Bearer&expires_in=3600&scope=openid%20profile&id_token=x.y.z&state=s1",
        )
        .unwrap();
        assert_eq!(p.access_token.as_deref(), Some("a.b.c"));
        assert_eq!(p.token_type.as_deref(), Some("Bearer"));
        assert_eq!(p.expires_in.as_deref(), Some("3600"));
        assert_eq!(p.scope.as_deref(), Some("openid profile"));
        assert_eq!(p.id_token.as_deref(), Some("x.y.z"));
        assert_eq!(p.state.as_deref(), Some("s1"));
        assert_eq!(p.error, None);
    }

    #[test]
    fn parses_an_error_response_with_plus_and_percent_encoding() {
        let p = parse_fragment("error=access_denied&error_description=User+cancelled%21&state=s")
            .unwrap();
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.error_description.as_deref(), Some("User cancelled!"));
    }

    #[test]
    fn refuses_repeated_parameters() {
        assert_eq!(
            parse_fragment("state=a&access_token=t&state=b"),
            Err(FragmentError::Repeated("state".into()))
        );
    }

    #[test]
    fn refuses_empty_and_unknown_only_fragments() {
        assert_eq!(parse_fragment(""), Err(FragmentError::Empty));
        assert_eq!(parse_fragment("#"), Err(FragmentError::Empty));
        assert_eq!(parse_fragment("#foo=bar"), Err(FragmentError::Empty));
    }

    #[test]
    fn refuses_huge_fragments() {
        let huge = format!("state={}", "a".repeat(MAX_FRAGMENT_LEN));
        assert_eq!(parse_fragment(&huge), Err(FragmentError::TooLarge));
    }

    #[test]
    fn tolerates_invalid_percent_encoding_and_utf8() {
        // form_urlencoded decodes lossily; the value simply will not match.
        let p = parse_fragment("state=%FF%FE&error=%zz").unwrap();
        assert_eq!(p.state.as_deref(), Some("\u{FFFD}\u{FFFD}"));
        assert_eq!(p.error.as_deref(), Some("%zz"));
    }
}
