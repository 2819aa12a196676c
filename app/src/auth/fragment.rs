//! Parsing the authorization response the issuer redirects back with: in
//! the URL fragment (the implicit flow; the code flow with
//! `RESPONSE_MODE=fragment`) or the query (the code flow's default), both
//! in the same `application/x-www-form-urlencoded` form, and the callback
//! page's script that takes it out of the address bar.

use serde::{Deserialize, Serialize};

/// The parameters of an authorization response: the implicit flow's
/// (RFC 6749 §4.2.2 / §4.2.2.1, OpenID Connect Core §3.2.2.5) or the code
/// flow's (RFC 6749 §4.1.2 / §4.1.2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentParams {
    pub state: Option<String>,
    /// The authorization code (the code flow).
    pub code: Option<String>,
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
/// query and the fragment, with the tokens or the code, out of the address
/// bar and the history entry, and leaves them where the wasm reads them
/// once (`browser::take_answer`). So neither tokens nor a code are ever in
/// the URL while the wasm downloads, nor for good if it fails to load.
pub const CALLBACK_SCRIPT: &str = "(function(){var a=location.search+location.hash;if(a){\
history.replaceState(null,'',location.pathname);\
window.__oktaCallbackAnswer=a}})();";

/// Where [`CALLBACK_SCRIPT`] leaves the answer (`?query#fragment`) for the wasm.
pub const CALLBACK_ANSWER_GLOBAL: &str = "__oktaCallbackAnswer";

/// What the callback's URL carried after its path (`?query#fragment`, as
/// [`CALLBACK_SCRIPT`] keeps it), split: the query and the fragment, each
/// without its mark.
pub fn split_answer(tail: &str) -> (&str, &str) {
    let (query, fragment) = tail.split_once('#').unwrap_or((tail, ""));
    (query.strip_prefix('?').unwrap_or(query), fragment)
}

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
            "code" => &mut params.code,
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
    fn the_callback_script_leaves_the_answer_where_the_wasm_reads_it() {
        assert!(CALLBACK_SCRIPT.contains(&format!("window.{CALLBACK_ANSWER_GLOBAL}=a")));
        // It takes the query and the fragment, and leaves the path alone.
        assert!(CALLBACK_SCRIPT.contains("var a=location.search+location.hash"));
        assert!(CALLBACK_SCRIPT.contains("history.replaceState(null,'',location.pathname)"));
        assert!(!CALLBACK_SCRIPT.contains('\n'));
    }

    #[test]
    fn an_answer_splits_into_query_and_fragment() {
        assert_eq!(split_answer("?code=c&state=s"), ("code=c&state=s", ""));
        assert_eq!(split_answer("#access_token=a"), ("", "access_token=a"));
        assert_eq!(split_answer("?x=1#y=2#z"), ("x=1", "y=2#z"));
        assert_eq!(split_answer(""), ("", ""));
        let p = parse_fragment(split_answer("?code=abc&state=s1").0).unwrap();
        assert_eq!(
            (p.code.as_deref(), p.state.as_deref()),
            (Some("abc"), Some("s1"))
        );
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
