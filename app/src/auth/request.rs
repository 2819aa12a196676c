//! Building the requests the browser sends to the issuer: the authorize URL
//! that starts a sign-in and the logout URL that ends one.

use super::config::PublicAuthConfig;
use serde::{Deserialize, Serialize};

/// A sign-in the browser started and has not finished: kept in
/// `sessionStorage` until the callback uses it once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    /// The app path to go back to afterwards.
    pub return_to: String,
    /// Unix seconds; a pending sign-in older than [`PENDING_MAX_AGE`] is void.
    pub created_at: i64,
    /// With the code flow: the PKCE `code_verifier` (RFC 7636) of this
    /// attempt, 43 characters from the CSPRNG; the authorize request
    /// carries only its SHA-256 (`code_challenge`).
    #[serde(default)]
    pub code_verifier: Option<String>,
}

/// How long a started sign-in may take before its `state` is refused.
pub const PENDING_MAX_AGE: i64 = 15 * 60;

/// How the authorization server may deal with the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// As it sees fit: its sign-in page when there is no session.
    Default,
    /// `prompt=none`: never show a page; answer at once, with
    /// `login_required` (or another error) when it cannot sign in silently.
    /// Used for renewal in a hidden iframe.
    None,
}

/// Where to send the browser (or the hidden iframe) to sign in for
/// `pending`. Renewal uses the same `redirect_uri`, so nothing more needs
/// registering. `code_challenge` is the code flow's PKCE challenge (the
/// S256 of `pending`'s verifier), `None` in the implicit flow.
pub fn authorize_url(
    cfg: &PublicAuthConfig,
    pending: &PendingSignIn,
    code_challenge: Option<&str>,
    prompt: Prompt,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", &cfg.client_id)
        .append_pair("response_type", &cfg.response_type)
        .append_pair("response_mode", &cfg.response_mode)
        .append_pair("scope", &cfg.scopes)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce);
    if let Some(challenge) = code_challenge {
        query
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
    }
    if prompt == Prompt::None {
        query.append_pair("prompt", "none");
    }
    with_query(&cfg.authorization_endpoint, &query.finish())
}

/// Where to send the browser to end the issuer's session (RP-initiated
/// logout), or `None` when that cannot be done: the issuer has no
/// `end_session_endpoint`, or there is no ID token for `id_token_hint`,
/// which Okta requires (it shows an error page without one).
pub fn logout_url(
    cfg: &PublicAuthConfig,
    id_token_hint: Option<&str>,
    state: &str,
) -> Option<String> {
    let endpoint = cfg.end_session_endpoint.as_deref()?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", id_token_hint?)
        .append_pair("post_logout_redirect_uri", &cfg.post_logout_redirect_uri)
        .append_pair("state", state)
        .finish();
    Some(with_query(endpoint, &query))
}

fn with_query(endpoint: &str, query: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// Only same-app absolute paths may be returned to after sign-in, so a
/// crafted link cannot bounce the user to another site.
pub fn safe_return_path(path: &str) -> String {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.starts_with(crate::routes::CALLBACK)
        && path.chars().all(|c| !c.is_control());
    if ok {
        path.to_string()
    } else {
        crate::routes::PROFILE.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn cfg() -> PublicAuthConfig {
        PublicAuthConfig {
            issuer: "http://localhost:3100/oauth2/default".into(),
            authorization_endpoint: "http://localhost:3100/oauth2/default/v1/authorize".into(),
            end_session_endpoint: Some("http://localhost:3100/oauth2/default/v1/logout".into()),
            token_endpoint: Some("http://localhost:3100/oauth2/default/v1/token".into()),
            revocation_endpoint: Some("http://localhost:3100/oauth2/default/v1/revoke".into()),
            client_id: "0oa-dev-spa".into(),
            scopes: "openid profile email".into(),
            response_type: "id_token token".into(),
            response_mode: "fragment".into(),
            redirect_uri: "http://localhost:3000/login/callback".into(),
            post_logout_redirect_uri: "http://localhost:3000/".into(),
            renew_before_secs: 60,
            token_storage: Default::default(),
            dpop: false,
            keys: Vec::new(),
        }
    }

    fn query_pairs(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').unwrap().1;
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn pending(state: &str, nonce: &str) -> PendingSignIn {
        PendingSignIn {
            state: state.into(),
            nonce: nonce.into(),
            return_to: "/".into(),
            created_at: 0,
            code_verifier: None,
        }
    }

    #[test]
    fn the_code_flow_sends_its_challenge_and_response_mode() {
        let mut code = cfg();
        code.response_type = "code".into();
        code.response_mode = "query".into();
        let url = authorize_url(
            &code,
            &pending("s", "n"),
            Some("ch4llenge"),
            Prompt::Default,
        );
        let pairs = query_pairs(&url);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("response_mode"), Some("query"));
        assert_eq!(get("code_challenge"), Some("ch4llenge"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("nonce"), Some("n"));
    }

    #[test]
    fn authorize_url_carries_every_parameter_encoded() {
        let url = authorize_url(&cfg(), &pending("st&=", "no nce"), None, Prompt::Default);
        assert!(url.starts_with("http://localhost:3100/oauth2/default/v1/authorize?"));
        let pairs = query_pairs(&url);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("client_id"), Some("0oa-dev-spa"));
        assert_eq!(get("response_type"), Some("id_token token"));
        assert_eq!(get("response_mode"), Some("fragment"));
        assert_eq!(get("scope"), Some("openid profile email"));
        assert_eq!(
            get("redirect_uri"),
            Some("http://localhost:3000/login/callback")
        );
        assert_eq!(get("state"), Some("st&="));
        assert_eq!(get("nonce"), Some("no nce"));
        assert_eq!(pairs.len(), 7);

        let silent = authorize_url(&cfg(), &pending("s", "n"), None, Prompt::None);
        let pairs = query_pairs(&silent);
        assert_eq!(pairs.len(), 8);
        assert_eq!(pairs[7], ("prompt".into(), "none".into()));
    }

    #[test]
    fn logout_url_has_hint_redirect_and_state() {
        let url = logout_url(&cfg(), Some("a.b.c"), "s1").unwrap();
        let pairs = query_pairs(&url);
        assert_eq!(
            pairs,
            vec![
                ("id_token_hint".into(), "a.b.c".into()),
                (
                    "post_logout_redirect_uri".into(),
                    "http://localhost:3000/".into()
                ),
                ("state".into(), "s1".into()),
            ]
        );
        let mut no_endpoint = cfg();
        no_endpoint.end_session_endpoint = None;
        assert_eq!(logout_url(&no_endpoint, Some("a.b.c"), "s"), None);
        // Without an ID token (RESPONSE_TYPE=token) Okta cannot end its
        // session: sign-out stays local.
        assert_eq!(logout_url(&cfg(), None, "s"), None);
    }

    #[test]
    fn return_paths_stay_inside_the_app() {
        assert_eq!(safe_return_path("/messages"), "/messages");
        assert_eq!(safe_return_path("/report?x=1"), "/report?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "javascript:x",
            "",
            "/login/callback",
        ] {
            assert_eq!(safe_return_path(bad), "/profile", "{bad}");
        }
    }
}
