//! `{issuer}/v1/authorize`: checks an authorization request and answers it
//! with the sign-in page, a code or tokens ([`super::answer`]), or an
//! error, following RFC 6749 §4.1 and §4.2, RFC 7636 and OIDC Core §3.1
//! and §3.2 as Okta does. The answer reaches the client in the request's
//! `response_mode` ([`super::response_mode`]): the query or the fragment of
//! a redirect, or Okta's `okta_post_message` page.
//!
//! Until `client_id` and `redirect_uri` are known good, nothing is sent to
//! the `redirect_uri` (an error page is shown instead): otherwise the server
//! would be an open redirector. After that, every error goes back to the
//! client, with `state`.
//!
//! The client's own settings are checked as Okta checks an app and its
//! authorization server's access policy: a response type the client may not
//! use is `unsupported_response_type` (Okta's "Configured response types:
//! […]"), a known scope that no rule grants the client is `access_denied`
//! "Policy evaluation failed…", and a scope the server does not define at
//! all is `invalid_scope`.
//!
//! Every client is public (Okta's token endpoint authentication method
//! `none`), so `response_type=code` needs a PKCE `code_challenge` with
//! `code_challenge_method=S256` ([`super::pkce`]); a missing challenge and
//! `plain` (which is also what no method means, RFC 7636 §4.3) are
//! refused with `invalid_request`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::answer::answer_request;
use super::config::Config;
use super::html;
use super::params::Params;
use super::pkce;
use super::request::{AuthorizeRequest, ErrorCode, ErrorResponse, Prompt};
use super::response_mode::ResponseMode;
use super::response_type::ResponseType;
use super::{sign_in, DevIdpEvent, DevIdpState};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The client or its redirect URI is unknown: tell the person, never
    /// redirect.
    Page(String),
    /// Anything else: tell the client.
    ToClient(ErrorResponse),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Page(message) => html::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in request is not valid",
                &message,
            ),
            Self::ToClient(error) => error.into_response(),
        }
    }
}

/// Okta's `error_description` when no access policy rule matches the
/// request (System Log: `no_matching_policy`).
pub const POLICY_EVALUATION_FAILED: &str =
    "Policy evaluation failed for this request, please check the policy configurations.";

/// Checks the parameters of an authorization request against the config.
pub fn validate(params: &Params, config: &Config) -> Result<AuthorizeRequest, Rejection> {
    let page = |m: String| Rejection::Page(m);

    let client_id = params
        .get("client_id")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request has no client_id.".into()))?;
    let client = config
        .client(client_id)
        .ok_or_else(|| page("The client_id is not registered with this server.".into()))?;
    let redirect_uri = params
        .get("redirect_uri")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request has no redirect_uri.".into()))?;
    if !client.has_redirect_uri(redirect_uri) {
        return Err(page(
            "The redirect_uri is not registered for this client.".into(),
        ));
    }

    // From here on the redirect URI is trusted, so errors go back to it, in
    // the asked-for response mode if this server speaks it and it suits the
    // response type (even when the request is wrong in other ways: a silent
    // renewal in a hidden iframe hears only a posted message), else in the
    // response type's default mode (the query for `code`), else in the
    // fragment.
    let response_type = params
        .get("response_type")
        .ok()
        .flatten()
        .and_then(ResponseType::parse);
    let response_mode = match params.get("response_mode") {
        Ok(Some(mode)) => ResponseMode::parse(mode).filter(|mode| {
            (*mode != ResponseMode::OktaPostMessage || html::csp_source(redirect_uri).is_some())
                && response_type.is_none_or(|t| t.allows_response_mode(*mode))
        }),
        Ok(None) => {
            Some(response_type.map_or(ResponseMode::Fragment, |t| t.default_response_mode()))
        }
        Err(_) => None,
    };
    let error_mode = response_mode.unwrap_or_else(|| {
        response_type.map_or(ResponseMode::Fragment, |t| t.default_response_mode())
    });
    let fail = |error, description: &str, state: Option<&str>| {
        Rejection::ToClient(ErrorResponse {
            redirect_uri: redirect_uri.to_owned(),
            response_mode: error_mode,
            error,
            description: description.to_owned(),
            state: state.map(str::to_owned),
        })
    };
    use ErrorCode::*;

    let state = match params.get("state") {
        Ok(Some(state)) => state,
        Ok(None) => {
            return Err(fail(
                InvalidRequest,
                "The 'state' parameter is required.",
                None,
            ))
        }
        Err(_) => {
            return Err(fail(
                InvalidRequest,
                "The 'state' parameter was sent more than once.",
                None,
            ))
        }
    };
    let fail = |error, description: &str| fail(error, description, Some(state));

    if let Some(name) = params.first_repeated() {
        let description = if is_plain_name(name) {
            format!("The '{name}' parameter was sent more than once.")
        } else {
            "A parameter was sent more than once.".to_owned()
        };
        return Err(fail(InvalidRequest, &description));
    }
    // No parameter is repeated past this point, so `get` cannot fail.
    let get = |name: &str| params.get(name).ok().flatten();

    let Some(response_mode) = response_mode else {
        return Err(match (get("response_mode"), response_type) {
            (Some("okta_post_message"), _) => fail(
                InvalidRequest,
                "The 'okta_post_message' response mode needs an http or https redirect_uri.",
            ),
            (_, Some(ResponseType::Code)) => fail(
                UnsupportedResponseMode,
                "The 'response_mode' must be 'query', 'fragment' or 'okta_post_message'.",
            ),
            _ => fail(
                UnsupportedResponseMode,
                "The 'response_mode' must be 'fragment' or 'okta_post_message' \
                 for the implicit flow.",
            ),
        });
    };

    let response_type = match (get("response_type"), response_type) {
        (None, _) => {
            return Err(fail(
                InvalidRequest,
                "The 'response_type' parameter is required.",
            ))
        }
        (Some(_), Some(response_type)) => response_type,
        (Some(_), None) => {
            return Err(fail(
                UnsupportedResponseType,
                "The 'response_type' must be 'code', 'token', 'id_token' or 'id_token token'.",
            ))
        }
    };
    if !client.allows_response_type(response_type) {
        // Okta's wording, listing what the app allows.
        let description = format!(
            "The response type is not supported by the authorization server. \
             Configured response types: [{}].",
            client.response_types.join(", ")
        );
        return Err(fail(UnsupportedResponseType, &description));
    }

    let Some(scope) = get("scope") else {
        return Err(fail(InvalidRequest, "The 'scope' parameter is required."));
    };
    let mut scopes: Vec<String> = Vec::new();
    for word in scope.split(' ').filter(|w| !w.is_empty()) {
        if !config.is_supported_scope(word) {
            let description = if is_plain_name(word) {
                format!("The scope '{word}' is not supported.")
            } else {
                "A requested scope is not supported.".to_owned()
            };
            return Err(fail(InvalidScope, &description));
        }
        if !scopes.iter().any(|s| s == word) {
            scopes.push(word.to_owned());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(fail(InvalidScope, "The 'openid' scope is required."));
    }

    let nonce = get("nonce");
    if response_type.id_token_in_response() && nonce.is_none() {
        return Err(fail(
            InvalidRequest,
            "The 'nonce' parameter is required when an ID token is requested.",
        ));
    }

    let code_challenge = match response_type {
        ResponseType::Code => Some(
            check_pkce(get("code_challenge"), get("code_challenge_method"))
                .map_err(|description| fail(InvalidRequest, description))?,
        ),
        // The implicit flow has no use for PKCE: its parameters are
        // ignored, not refused.
        ResponseType::Implicit { .. } => None,
    };

    let prompt = match get("prompt") {
        None => Prompt::Default,
        Some("none") => Prompt::None,
        Some("login") => Prompt::Login,
        Some(_) => {
            return Err(fail(
                InvalidRequest,
                "The 'prompt' parameter must be 'none' or 'login'.",
            ))
        }
    };

    // The access policy comes last, as at Okta: a well-formed request for
    // scopes that exist but that no rule grants this client.
    if scopes.iter().any(|s| !client.allows_scope(s)) {
        return Err(fail(AccessDenied, POLICY_EVALUATION_FAILED));
    }

    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        response_type,
        response_mode,
        scopes,
        state: state.to_owned(),
        nonce: nonce.map(str::to_owned),
        prompt,
        login_hint: get("login_hint").map(str::to_owned),
        code_challenge,
    })
}

/// The S256 challenge of a code request, or why there is none.
fn check_pkce(challenge: Option<&str>, method: Option<&str>) -> Result<String, &'static str> {
    let challenge = challenge.ok_or(pkce::REQUIRED)?;
    if method != Some(pkce::S256) {
        return Err(pkce::METHOD_UNSUPPORTED);
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(
            "The 'code_challenge' must be the base64url SHA-256 hash of the \
             code_verifier: 43 characters of A-Z, a-z, 0-9, '-' and '_'.",
        );
    }
    Ok(challenge.to_owned())
}

/// Short and safe to quote in an `error_description`.
fn is_plain_name(text: &str) -> bool {
    text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
}

/// `GET {issuer}/v1/authorize`.
pub async fn authorize(
    State(state): State<DevIdpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match Params::parse(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(err) => {
            state.record(DevIdpEvent::InvalidRequest);
            return Rejection::Page(format!("{err}.")).into_response();
        }
    };
    let request = match validate(&params, state.config()) {
        Ok(request) => request,
        Err(rejection) => {
            state.record(DevIdpEvent::InvalidRequest);
            tracing::debug!(?rejection, "authorization request refused");
            return rejection.into_response();
        }
    };
    match (request.prompt, state.session(&headers)) {
        (Prompt::None, None) => {
            state.record(DevIdpEvent::LoginRequired);
            ErrorResponse::new(
                &request,
                ErrorCode::LoginRequired,
                "The user is not signed in.",
            )
            .into_response()
        }
        (Prompt::Login, _) | (Prompt::Default, None) => sign_in::begin(&state, &headers, request),
        (_, Some((session_id, session))) => answer_request(&state, &request, &session_id, &session),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "http://app.test/login/callback";

    fn config() -> Config {
        let mut config = Config::demo().unwrap();
        config.register_app_origin("http://app.test").unwrap();
        config
    }

    fn check(query: &str) -> Result<AuthorizeRequest, Rejection> {
        validate(&Params::parse(query).unwrap(), &config())
    }

    fn base() -> String {
        format!(
            "client_id=0oa-dev-spa&redirect_uri={}&response_type=id_token%20token\
             &scope=openid+profile&state=s1&nonce=n1",
            super::super::params::encode_component(CB)
        )
    }

    fn error_of(query: &str) -> (ErrorCode, Option<String>) {
        match check(query) {
            Err(Rejection::ToClient(r)) => {
                assert_eq!(r.redirect_uri, CB);
                (r.error, r.state)
            }
            other => panic!("expected an error redirect, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_good_request() {
        let r = check(&base()).unwrap();
        assert_eq!(r.scopes, ["openid", "profile"]);
        assert_eq!(r.prompt, Prompt::Default);
        assert_eq!(r.nonce.as_deref(), Some("n1"));
        assert_eq!(r.response_type.words(), ["id_token", "token"]);
        assert_eq!(r.response_mode, ResponseMode::Fragment);
        assert_eq!(r.code_challenge, None);
    }

    #[test]
    fn unknown_client_or_redirect_uri_is_a_page() {
        for query in [
            base().replace("0oa-dev-spa", "nope"),
            base().replace("client_id=0oa-dev-spa&", ""),
            base().replace("callback", "callback2"),
            base().replace("redirect_uri=", "x="),
            format!("{}&client_id=0oa-dev-spa", base()),
            format!("{}&redirect_uri=x", base()),
        ] {
            assert!(matches!(check(&query), Err(Rejection::Page(_))), "{query}");
        }
    }

    #[test]
    fn other_errors_redirect_with_state() {
        use ErrorCode::*;
        let cases = [
            (
                base().replace("id_token%20token", "code%20id_token"),
                UnsupportedResponseType,
            ),
            (base().replace("response_type=", "x="), InvalidRequest),
            (base().replace("openid+profile", "profile"), InvalidScope),
            (
                base().replace("openid+profile", "openid+admin"),
                InvalidScope,
            ),
            (base().replace("scope=", "x="), InvalidRequest),
            (base().replace("&nonce=n1", ""), InvalidRequest),
            (
                format!("{}&response_mode=query", base()),
                UnsupportedResponseMode,
            ),
            (
                format!("{}&response_mode=web_message", base()),
                UnsupportedResponseMode,
            ),
            (
                format!("{}&response_mode=fragment&response_mode=fragment", base()),
                InvalidRequest,
            ),
            (format!("{}&prompt=consent", base()), InvalidRequest),
            (format!("{}&nonce=n2", base()), InvalidRequest),
        ];
        for (query, code) in cases {
            assert_eq!(error_of(&query), (code, Some("s1".into())), "{query}");
        }
    }

    #[test]
    fn missing_or_repeated_state_redirects_without_state() {
        let no_state = base().replace("&state=s1", "");
        assert_eq!(error_of(&no_state), (ErrorCode::InvalidRequest, None));
        let twice = format!("{}&state=s2", base());
        assert_eq!(error_of(&twice), (ErrorCode::InvalidRequest, None));
    }

    #[test]
    fn token_alone_needs_no_nonce() {
        let query = base()
            .replace("id_token%20token", "token")
            .replace("&nonce=n1", "");
        let r = check(&query).unwrap();
        assert_eq!(r.response_type.words(), ["token"]);
        assert_eq!(r.nonce, None);
    }

    #[test]
    fn prompt_and_duplicate_scopes() {
        let r = check(&format!(
            "{}&prompt=none&login_hint=bob%40example.com",
            base().replace("openid+profile", "openid++openid+email")
        ))
        .unwrap();
        assert_eq!(r.prompt, Prompt::None);
        assert_eq!(r.scopes, ["openid", "email"]);
        assert_eq!(r.login_hint.as_deref(), Some("bob@example.com"));
    }

    /// The demo config with one more client, `0oa-narrow`, registered for
    /// the callback and restricted as `client` says.
    fn narrow_config(client: serde_json::Value) -> Config {
        let mut value: serde_json::Value =
            serde_json::from_str(super::super::config::DEMO_CONFIG).unwrap();
        let mut client = client;
        client["client_id"] = "0oa-narrow".into();
        client["redirect_uris"] = serde_json::json!([CB]);
        value["clients"].as_array_mut().unwrap().push(client);
        Config::parse(&value.to_string(), "test config").unwrap()
    }

    fn narrow(client: serde_json::Value, query: &str) -> Result<AuthorizeRequest, Rejection> {
        let query = query.replace("0oa-dev-spa", "0oa-narrow");
        validate(&Params::parse(&query).unwrap(), &narrow_config(client))
    }

    fn redirect_of(result: Result<AuthorizeRequest, Rejection>) -> ErrorResponse {
        match result {
            Err(Rejection::ToClient(r)) => r,
            other => panic!("expected an error redirect, got {other:?}"),
        }
    }

    #[test]
    fn clients_allow_every_response_type_and_scope_by_default() {
        let config = narrow_config(serde_json::json!({}));
        let client = config.client("0oa-narrow").unwrap();
        assert_eq!(client.response_types, ["code", "id_token", "token"]);
        assert_eq!(client.scopes, config.scopes_supported);
        let r = narrow(serde_json::json!({}), &base()).unwrap();
        assert_eq!(r.client_id, "0oa-narrow");
        assert!(narrow(serde_json::json!({}), &code_base()).is_ok());
    }

    #[test]
    fn a_response_type_the_client_may_not_use_is_unsupported_as_at_okta() {
        let id_token_only = serde_json::json!({"response_types": ["id_token"]});
        let r = redirect_of(narrow(id_token_only.clone(), &base()));
        assert_eq!(r.error, ErrorCode::UnsupportedResponseType);
        assert_eq!(r.state.as_deref(), Some("s1"));
        assert_eq!(
            r.description,
            "The response type is not supported by the authorization server. \
             Configured response types: [id_token]."
        );
        let token_alone = base()
            .replace("id_token%20token", "token")
            .replace("&nonce=n1", "");
        assert_eq!(
            redirect_of(narrow(id_token_only.clone(), &token_alone)).error,
            ErrorCode::UnsupportedResponseType
        );
        let id_token_alone = base().replace("id_token%20token", "id_token");
        assert!(narrow(id_token_only, &id_token_alone).is_ok());
        // Listing both words, in one entry or two, allows all three.
        let both = serde_json::json!({"response_types": ["token id_token"]});
        assert!(narrow(both.clone(), &base()).is_ok());
        assert!(narrow(both, &token_alone).is_ok());
    }

    #[test]
    fn a_scope_no_rule_grants_the_client_fails_policy_evaluation() {
        let no_reports = serde_json::json!({"scopes": ["openid", "profile", "email"]});
        let asks_reports = base().replace("openid+profile", "openid+reports%3Aread");
        let r = redirect_of(narrow(no_reports.clone(), &asks_reports));
        assert_eq!(r.error, ErrorCode::AccessDenied);
        assert_eq!(
            r.description,
            "Policy evaluation failed for this request, please check the policy configurations."
        );
        assert_eq!(r.state.as_deref(), Some("s1"));
        assert!(narrow(no_reports.clone(), &base()).is_ok());
        // A scope the server does not know at all is still invalid_scope.
        let unknown = base().replace("openid+profile", "openid+admin");
        assert_eq!(
            redirect_of(narrow(no_reports, &unknown)).error,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn client_restrictions_are_checked_when_the_config_is_read() {
        let mut value: serde_json::Value =
            serde_json::from_str(super::super::config::DEMO_CONFIG).unwrap();
        value["clients"][0]["response_types"] = serde_json::json!(["code id_token"]);
        assert!(Config::parse(&value.to_string(), "t").is_err());
        value["clients"][0]["response_types"] = serde_json::json!(["code"]);
        assert!(Config::parse(&value.to_string(), "t").is_ok());
        value["clients"][0]["response_types"] = serde_json::json!(["token"]);
        value["clients"][0]["scopes"] = serde_json::json!(["openid", "admin"]);
        assert!(Config::parse(&value.to_string(), "t").is_err());
        value["clients"][0]["scopes"] = serde_json::json!(["openid"]);
        // Refresh token settings for a client that cannot have refresh
        // tokens are a mistake.
        assert!(Config::parse(&value.to_string(), "t").is_err());
        for field in [
            "refresh_token_lifetime_secs",
            "refresh_token_idle_secs",
            "refresh_token_rotation_grace_secs",
        ] {
            value["clients"][0].as_object_mut().unwrap().remove(field);
        }
        assert!(Config::parse(&value.to_string(), "t").is_ok());
    }

    #[test]
    fn response_mode_is_fragment_or_okta_post_message() {
        assert_eq!(
            check(&base()).unwrap().response_mode,
            ResponseMode::Fragment
        );
        let fragment = check(&format!("{}&response_mode=fragment", base())).unwrap();
        assert_eq!(fragment.response_mode, ResponseMode::Fragment);
        let post = check(&format!("{}&response_mode=okta_post_message", base())).unwrap();
        assert_eq!(post.response_mode, ResponseMode::OktaPostMessage);
    }

    #[test]
    fn errors_use_the_asked_for_response_mode_when_it_is_spoken() {
        let post = format!("{}&response_mode=okta_post_message", base());
        let r = redirect_of(check(&post.replace("openid+profile", "profile")));
        assert_eq!(r.response_mode, ResponseMode::OktaPostMessage);
        assert_eq!(r.error, ErrorCode::InvalidScope);
        // Even without state: the SDK's iframe hears nothing else.
        let r = redirect_of(check(&post.replace("&state=s1", "")));
        assert_eq!(r.response_mode, ResponseMode::OktaPostMessage);
        let r = redirect_of(check(&format!("{}&response_mode=form_post", base())));
        assert_eq!(r.response_mode, ResponseMode::Fragment);
    }

    #[test]
    fn okta_post_message_needs_a_web_origin() {
        let mut value: serde_json::Value =
            serde_json::from_str(super::super::config::DEMO_CONFIG).unwrap();
        value["clients"][0]["redirect_uris"] = serde_json::json!(["com.example.app:/cb"]);
        let native = Config::parse(&value.to_string(), "t").unwrap();
        let query = base().replace(
            &super::super::params::encode_component(CB),
            "com.example.app%3A%2Fcb",
        ) + "&response_mode=okta_post_message";
        let r = match validate(&Params::parse(&query).unwrap(), &native) {
            Err(Rejection::ToClient(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.error, ErrorCode::InvalidRequest);
        assert_eq!(r.response_mode, ResponseMode::Fragment);
    }

    /// RFC 7636 Appendix B's challenge.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn code_base() -> String {
        format!(
            "client_id=0oa-dev-spa&redirect_uri={}&response_type=code\
             &scope=openid+profile+offline_access&state=s1\
             &code_challenge={CHALLENGE}&code_challenge_method=S256",
            super::super::params::encode_component(CB)
        )
    }

    #[test]
    fn accepts_a_code_request_with_an_s256_challenge() {
        let r = check(&code_base()).unwrap();
        assert_eq!(r.response_type, ResponseType::Code);
        assert_eq!(
            r.response_mode,
            ResponseMode::Query,
            "Okta's default for code"
        );
        assert_eq!(r.code_challenge.as_deref(), Some(CHALLENGE));
        assert_eq!(r.nonce, None, "optional in the code flow");
        assert_eq!(r.scopes, ["openid", "profile", "offline_access"]);
        for mode in ["query", "fragment", "okta_post_message"] {
            let r = check(&format!("{}&response_mode={mode}&prompt=none", code_base())).unwrap();
            assert_eq!(r.response_mode.as_str(), mode);
            assert_eq!(r.prompt, Prompt::None);
        }
    }

    #[test]
    fn a_code_request_needs_an_s256_challenge() {
        let cases = [
            (
                code_base().replace(&format!("&code_challenge={CHALLENGE}"), ""),
                pkce::REQUIRED,
            ),
            (
                code_base().replace("S256", "plain"),
                pkce::METHOD_UNSUPPORTED,
            ),
            (
                code_base().replace("&code_challenge_method=S256", ""),
                pkce::METHOD_UNSUPPORTED,
            ),
            (
                code_base().replace("S256", "S512"),
                pkce::METHOD_UNSUPPORTED,
            ),
            (
                code_base().replace("S256", "s256"),
                pkce::METHOD_UNSUPPORTED,
            ),
        ];
        for (query, description) in cases {
            let r = redirect_of(check(&query));
            assert_eq!(r.error, ErrorCode::InvalidRequest, "{query}");
            assert_eq!(r.description, description, "{query}");
            assert_eq!(r.response_mode, ResponseMode::Query, "{query}");
            assert_eq!(r.state.as_deref(), Some("s1"));
        }
        let short = code_base().replace(CHALLENGE, &CHALLENGE[..42]);
        assert_eq!(redirect_of(check(&short)).error, ErrorCode::InvalidRequest);
        // The implicit flow has no use for PKCE, and is not refused for it.
        assert!(check(&format!("{}&code_challenge_method=plain", base())).is_ok());
    }

    #[test]
    fn errors_of_code_requests_go_to_the_query_unless_another_mode_is_asked() {
        let no_scope = code_base().replace("&scope=openid+profile+offline_access", "");
        assert_eq!(
            redirect_of(check(&no_scope)).response_mode,
            ResponseMode::Query
        );
        let fragment = format!("{no_scope}&response_mode=fragment");
        assert_eq!(
            redirect_of(check(&fragment)).response_mode,
            ResponseMode::Fragment
        );
        let r = redirect_of(check(&format!("{}&response_mode=form_post", code_base())));
        assert_eq!(r.error, ErrorCode::UnsupportedResponseMode);
        assert_eq!(r.response_mode, ResponseMode::Query);
        // Tokens never in a query: refused, and said in the fragment.
        let r = redirect_of(check(&format!("{}&response_mode=query", base())));
        assert_eq!(r.error, ErrorCode::UnsupportedResponseMode);
        assert_eq!(r.response_mode, ResponseMode::Fragment);
    }

    #[test]
    fn a_client_without_code_or_offline_access_is_refused_as_at_okta() {
        let implicit_only = serde_json::json!({"response_types": ["id_token", "token"]});
        let r = redirect_of(narrow(implicit_only, &code_base()));
        assert_eq!(r.error, ErrorCode::UnsupportedResponseType);
        assert_eq!(
            r.description,
            "The response type is not supported by the authorization server. \
             Configured response types: [id_token, token]."
        );
        let no_offline = serde_json::json!({"scopes": ["openid", "profile"]});
        let r = redirect_of(narrow(no_offline, &code_base()));
        assert_eq!(r.error, ErrorCode::AccessDenied);
        assert_eq!(r.description, POLICY_EVALUATION_FAILED);
    }
}
