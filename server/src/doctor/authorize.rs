//! The authorize probe: one `prompt=none` request to the authorize
//! endpoint with the configured client, redirect URI, response type and
//! scopes, the request a signed-out browser's silent renewal sends
//! (following no redirect, sending no cookie), and what its answer says:
//! `login_required` back at `REDIRECT_URI` means the issuer accepts them
//! all; an error there, or an error page of the issuer's own
//! ([`super::error_page`]), names the setting to change.
//!
//! With `RESPONSE_TYPE=code` the probe is the code flow's request: a fresh
//! PKCE challenge (S256) and the configured `response_mode`, whose answer
//! must come back where that mode puts it. When `SCOPES` has
//! `offline_access` and the answer refuses a scope, a second probe without
//! `offline_access` tells whether that is the one refused (Okta refuses it
//! for an app without the Refresh Token grant or a rule without the scope).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use url::Url;

use crate::bearer::fetch::{checked_url, error_chain};
use crate::bearer::HttpOptions;
use crate::config::Config;

use super::discovery::Metadata;
use super::error_page::error_page;
use super::http;
use super::report::{printable, Check, Status};

/// Most bytes of an authorize answer read (error pages are a few KiB).
const MAX_PAGE_BYTES: usize = 64 * 1024;

/// The scope that asks for a refresh token.
const OFFLINE_ACCESS: &str = "offline_access";

/// What the authorize endpoint answered, as far as the checks need it.
#[derive(Clone, Debug, Default)]
pub struct ProbeAnswer {
    pub status: u16,
    pub location: Option<String>,
    /// The start of the body, for telling error pages apart.
    pub body: String,
}

/// What the probe asked for.
#[derive(Clone, Debug)]
pub struct ProbeRequest<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub client_id: &'a str,
    pub response_type: &'a str,
    /// `fragment` in the implicit flow; `RESPONSE_MODE` with `code`.
    pub response_mode: &'a str,
    pub scopes: &'a str,
    /// The S256 PKCE challenge, with `code` only.
    pub code_challenge: Option<&'a str>,
    /// `offline_access` was taken out of `SCOPES` for this probe, to learn
    /// whether it is the scope refused.
    pub without_offline_access: bool,
}

impl ProbeRequest<'_> {
    fn is_code(&self) -> bool {
        self.response_type == "code"
    }
}

/// The `prompt=none` authorization request a signed-out browser's silent
/// renewal sends.
pub fn probe_url(endpoint: &Url, request: &ProbeRequest<'_>, nonce: &str) -> Url {
    let mut url = endpoint.clone();
    let mut query = url.query_pairs_mut();
    query
        .append_pair("client_id", request.client_id)
        .append_pair("response_type", request.response_type)
        .append_pair("response_mode", request.response_mode)
        .append_pair("scope", request.scopes)
        .append_pair("redirect_uri", request.redirect_uri)
        .append_pair("state", request.state)
        .append_pair("nonce", nonce);
    if let Some(challenge) = request.code_challenge {
        query
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
    }
    query.append_pair("prompt", "none");
    drop(query);
    url
}

/// The S256 `code_challenge` of a PKCE `verifier` (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh PKCE verifier as the app makes them: 32 random bytes in
/// base64url, 43 characters (RFC 7636 §4.1). The probe never redeems a
/// code, but an issuer may check the challenge's shape.
fn pkce_verifier() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The lines of the authorize probe for `client_id` and the settings in
/// `config`, at the authorize endpoint of `doc`: the request's, and with
/// `RESPONSE_TYPE=code` one about `offline_access`.
pub async fn checks(
    doc: &Metadata,
    client_id: &str,
    config: &Config,
    http: &HttpOptions,
) -> Vec<Check> {
    let endpoint = match authorization_endpoint(doc) {
        Ok(endpoint) => endpoint,
        Err(check) => return vec![check],
    };
    let first = probe(&endpoint, client_id, config, &config.scopes, http).await;
    if !config.response_type.is_code() {
        return vec![first.check];
    }
    if !asks_offline_access(&config.scopes) {
        return vec![first.check, offline_access_not_asked()];
    }
    if first.check.status == Status::Pass {
        return vec![first.check, offline_access_accepted()];
    }
    let Some(refusal) = first.scope_refusal.clone() else {
        return vec![first.check, offline_access_unknown()];
    };
    let without = without_offline_access(&config.scopes);
    let second = probe(&endpoint, client_id, config, &without, http).await;
    if second.check.status == Status::Pass {
        vec![second.check, offline_access_refused(&refusal)]
    } else {
        vec![first.check, offline_access_unknown()]
    }
}

/// The authorize endpoint of `doc`, or the line that says why there is
/// none to probe.
fn authorization_endpoint(doc: &Metadata) -> Result<Url, Check> {
    let raw = doc.authorization_endpoint.as_deref().ok_or_else(|| {
        Check::fail(
            "the discovery document has no authorization_endpoint, so browsers cannot sign in",
            "ISSUER must be an authorization server that signs people in with a browser",
        )
    })?;
    checked_url("authorization_endpoint", raw).map_err(|err| {
        Check::fail(
            err.to_string(),
            "the issuer must serve its authorize endpoint over https",
        )
    })
}

/// One probe's line, and the refusal of a scope it met, if any.
struct Probed {
    check: Check,
    /// `invalid_scope` or `access_denied` (with its description) at
    /// `REDIRECT_URI`: what Okta answers for a scope the client may not
    /// have.
    scope_refusal: Option<String>,
}

/// Sends one probe asking for `scopes` and reads its answer.
async fn probe(
    endpoint: &Url,
    client_id: &str,
    config: &Config,
    scopes: &str,
    http: &HttpOptions,
) -> Probed {
    let state = format!("doctor-{:032x}", rand::random::<u128>());
    let nonce = format!("{:032x}", rand::random::<u128>());
    let challenge = config
        .response_type
        .is_code()
        .then(|| s256_challenge(&pkce_verifier()));
    let request = ProbeRequest {
        redirect_uri: &config.redirect_uri,
        state: &state,
        client_id,
        response_type: config.response_type.as_str(),
        response_mode: config.response_mode.as_str(),
        scopes,
        code_challenge: challenge.as_deref(),
        without_offline_access: scopes != config.scopes,
    };
    let url = probe_url(endpoint, &request, &nonce);
    match send_probe(url, http).await {
        Ok(answer) => Probed {
            check: interpret_probe(&answer, &request),
            scope_refusal: scope_refusal(&answer, &request),
        },
        Err(reason) => Probed {
            check: Check::fail(
                format!("cannot reach the authorize endpoint {endpoint}: {reason}"),
                "the authorization_endpoint of the discovery document must be reachable",
            ),
            scope_refusal: None,
        },
    }
}

/// One GET, no redirect followed, no cookie sent.
async fn send_probe(url: Url, http: &HttpOptions) -> Result<ProbeAnswer, String> {
    let client = http::client(http)?;
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "text/html")
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(ProbeAnswer {
        status,
        location,
        body: http::body_start(response, MAX_PAGE_BYTES).await?,
    })
}

/// What the answer to the `prompt=none` probe says about the client, its
/// redirect URI, grant and scopes.
pub fn interpret_probe(answer: &ProbeAnswer, request: &ProbeRequest<'_>) -> Check {
    if !(300..400).contains(&answer.status) {
        return error_page(
            answer.status,
            &answer.body,
            request.client_id,
            request.redirect_uri,
        );
    }
    let Some(location) = answer.location.as_deref() else {
        return Check::fail(
            format!(
                "the authorize endpoint answered HTTP {} without a Location",
                answer.status
            ),
            "the issuer is misbehaving; check ISSUER",
        );
    };
    let Some(callback) = callback_params(location, request.redirect_uri) else {
        return Check::fail(
            format!(
                "the authorize endpoint sent the browser to {} instead of back to REDIRECT_URI",
                without_query(location)
            ),
            "a prompt=none request must come back to REDIRECT_URI; check that ISSUER is the authorization server itself (Okta: /oauth2/<id>)",
        );
    };
    if request.is_code() {
        interpret_code(&callback, request)
    } else {
        interpret_implicit(&callback.params, request)
    }
}

/// The implicit flow's answer, from the fragment or the query.
fn interpret_implicit(params: &[(String, String)], request: &ProbeRequest<'_>) -> Check {
    let get = |name: &str| param(params, name);
    let description = get("error_description").map(printable).unwrap_or_default();
    let said = |error: &str| {
        if description.is_empty() {
            error.to_owned()
        } else {
            format!("{error} ({description})")
        }
    };
    let scopes = request.scopes;
    let response_type = request.response_type;
    let accepted = |what: &str| {
        if get("state") != Some(request.state) {
            return Check::fail(
                "the issuer answered the authorization request without sending its state back",
                "the issuer must return state unchanged (RFC 6749 §4.2.2); the app refuses answers without it",
            );
        }
        Check::pass(format!(
            "the authorize endpoint accepts CLIENT_ID, REDIRECT_URI, RESPONSE_TYPE {response_type:?} and SCOPES {scopes:?} (a prompt=none request came back with {what})"
        ))
    };
    let tokens = get("access_token").is_some() || get("id_token").is_some();
    match get("error") {
        Some(error @ ("login_required" | "interaction_required")) => accepted(error),
        None if tokens => accepted("tokens"),
        None => Check::fail(
            "the authorize endpoint came back to REDIRECT_URI with neither tokens nor an error",
            "the issuer is misbehaving; check ISSUER",
        ),
        Some("consent_required") => consent_required(&said("consent_required")),
        Some("access_denied") if description.contains("Policy evaluation failed") => Check::fail(
            format!("no access policy rule of the authorization server lets CLIENT_ID have SCOPES {scopes:?} with the implicit grant: {}", said("access_denied")),
            "add a rule for this client that allows the Implicit grant and every scope in SCOPES (Okta: Security > API > Authorization Servers > Access Policies, docs/okta.md § 2.5), or ask for fewer SCOPES",
        ),
        Some("access_denied") => refused(&said("access_denied")),
        Some(error @ ("unsupported_response_type" | "unauthorized_client")) => Check::fail(
            format!("the client may not use RESPONSE_TYPE {response_type:?}: {}", said(error)),
            "allow it on the client (Okta: the app's General tab, Grant type Implicit (hybrid) with Allow ID Token and Allow Access Token with implicit grant type), or set RESPONSE_TYPE to what the client allows",
        ),
        Some("invalid_scope") => invalid_scope(scopes, &said("invalid_scope")),
        Some(error) => other_error(&said(&printable(error))),
    }
}

/// The code flow's answer: it must come where `response_mode` put it (the
/// app's callback reads only there), with the state, and a code or
/// `login_required`.
fn interpret_code(callback: &Callback, request: &ProbeRequest<'_>) -> Check {
    let mode = request.response_mode;
    let get = |name: &str| param(&callback.params, name);
    let description = get("error_description").map(printable).unwrap_or_default();
    let said = |error: &str| {
        if description.is_empty() {
            error.to_owned()
        } else {
            format!("{error} ({description})")
        }
    };
    let scopes = request.scopes;
    let scopes_named = if request.without_offline_access {
        format!("SCOPES without offline_access ({scopes:?})")
    } else {
        format!("SCOPES {scopes:?}")
    };
    // An error is reported wherever it came (its cause is the news); an
    // answer the app would act on must come where the app reads it.
    let accepted = |what: &str| {
        let came_in = callback.place.as_str();
        if came_in != mode {
            return Check::fail(
                format!("the authorize endpoint answered in the {came_in}, but RESPONSE_MODE is {mode}: the app reads the answer in the {mode} only"),
                format!("set RESPONSE_MODE to where the issuer answers (query or fragment), or use an issuer that honours response_mode={mode}"),
            );
        }
        if get("state") != Some(request.state) {
            return Check::fail(
                "the issuer answered the authorization request without sending its state back",
                "the issuer must return state unchanged (RFC 6749 §4.1.2); the app refuses answers without it",
            );
        }
        Check::pass(format!(
            "the authorize endpoint accepts CLIENT_ID, REDIRECT_URI, RESPONSE_TYPE \"code\" with a PKCE S256 challenge, and {scopes_named} (a prompt=none request came back with {what}, in the {mode} as RESPONSE_MODE says)"
        ))
    };
    match get("error") {
        Some(error @ ("login_required" | "interaction_required")) => accepted(error),
        // A browser with a session at the issuer; the code is never shown.
        None if get("code").is_some() => accepted("a code"),
        None => Check::fail(
            "the authorize endpoint came back to REDIRECT_URI with neither a code nor an error",
            "the issuer is misbehaving; check ISSUER",
        ),
        Some("consent_required") => consent_required(&said("consent_required")),
        Some("access_denied") if description.contains("Policy evaluation failed") => Check::fail(
            format!("no access policy rule of the authorization server lets CLIENT_ID have {scopes_named} with the authorization code grant: {}", said("access_denied")),
            "add a rule for this client that allows the Authorization Code grant and every scope in SCOPES (Okta: Security > API > Authorization Servers > Access Policies, docs/okta.md § 8), or ask for fewer SCOPES",
        ),
        Some("access_denied") => refused(&said("access_denied")),
        Some(error @ ("unsupported_response_type" | "unauthorized_client")) => Check::fail(
            format!("the client may not use the authorization code flow (RESPONSE_TYPE \"code\"): {}", said(error)),
            "allow it on the client (Okta: the app's General tab, Grant type Authorization Code, on a Single-Page Application, docs/okta.md § 8), or set RESPONSE_TYPE back to \"id_token token\"",
        ),
        Some("invalid_request") if mentions_pkce(&description) => Check::fail(
            format!("the issuer refuses the PKCE challenge (S256): {}", said("invalid_request")),
            "the app sends S256 challenges only; use an authorization server that supports code_challenge_method=S256 (Okta's do)",
        ),
        Some("unsupported_response_mode") => Check::fail(
            format!("the issuer does not accept RESPONSE_MODE {mode} with the authorization code flow: {}", said("unsupported_response_mode")),
            "set RESPONSE_MODE to one the issuer accepts for code (query or fragment), or use an authorization server that offers the code flow",
        ),
        Some("invalid_scope") => invalid_scope(scopes, &said("invalid_scope")),
        Some(error) => other_error(&said(&printable(error))),
    }
}

fn mentions_pkce(description: &str) -> bool {
    let text = description.to_ascii_lowercase();
    text.contains("pkce") || text.contains("code_challenge")
}

fn consent_required(said: &str) -> Check {
    Check::warn(
        format!("the issuer wants the user's consent: {said}"),
        "silent renewal cannot show a consent screen; turn consent off for this app's scopes (Okta: the app's User consent, the scopes' Require user consent)",
    )
}

fn refused(said: &str) -> Check {
    Check::fail(
        format!("the issuer refused the request: {said}"),
        "the issuer's log gives the reason (Okta: Reports > System Log)",
    )
}

fn invalid_scope(scopes: &str, said: &str) -> Check {
    Check::fail(
        format!("the authorization server refuses SCOPES {scopes:?}: {said}"),
        "create the missing scope on the authorization server (Okta: Authorization Servers > Scopes > Add Scope) or remove it from SCOPES",
    )
}

fn other_error(said: &str) -> Check {
    Check::fail(
        format!("the authorize endpoint answered {said}"),
        "docs/okta.md § 6 says what each error means and which setting to change",
    )
}

/// `invalid_scope` or `access_denied` at `REDIRECT_URI` with the probe's
/// state, as `error (error_description)`: how Okta refuses a scope the
/// client may not have.
fn scope_refusal(answer: &ProbeAnswer, request: &ProbeRequest<'_>) -> Option<String> {
    let callback = callback_params(answer.location.as_deref()?, request.redirect_uri)?;
    let get = |name: &str| param(&callback.params, name);
    if get("state") != Some(request.state) {
        return None;
    }
    let error = get("error").filter(|e| matches!(*e, "invalid_scope" | "access_denied"))?;
    Some(match get("error_description") {
        Some(description) if !description.is_empty() => {
            format!("{error} ({})", printable(description))
        }
        _ => error.to_owned(),
    })
}

/// Whether `scopes` asks for a refresh token.
pub fn asks_offline_access(scopes: &str) -> bool {
    scopes.split(' ').any(|s| s == OFFLINE_ACCESS)
}

fn without_offline_access(scopes: &str) -> String {
    scopes
        .split(' ')
        .filter(|s| !s.is_empty() && *s != OFFLINE_ACCESS)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `offline_access` was in the accepted request.
fn offline_access_accepted() -> Check {
    Check::pass(
        "the authorize endpoint accepts offline_access for CLIENT_ID (it was in the request above): sign-ins ask the token endpoint for a refresh token",
    )
}

/// The request was refused with `refusal`, and accepted without
/// `offline_access`.
fn offline_access_refused(refusal: &str) -> Check {
    Check::fail(
        format!("the authorization server refuses offline_access for CLIENT_ID: {refusal} (the same request without offline_access is accepted)"),
        "enable the Refresh Token grant for the app (Okta: the app's General tab, Grant type Refresh Token) and allow offline_access in the access policy rule (Scopes requested: Any scopes, or offline_access among them; docs/okta.md § 8), or drop offline_access from SCOPES",
    )
}

fn offline_access_unknown() -> Check {
    Check::info(
        "whether offline_access is allowed cannot be told while the authorize endpoint refuses the request for another reason (above)",
    )
}

fn offline_access_not_asked() -> Check {
    Check::warn(
        "SCOPES has no offline_access: sign-ins get no refresh token, so sessions are renewed by the hidden prompt=none iframe, which needs the issuer's session cookie as a third-party cookie",
        "add offline_access to SCOPES (and allow it at the issuer, docs/okta.md § 8) so that sessions last in browsers that block third-party cookies",
    )
}

/// Where in `Location` the answer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Fragment,
    Query,
    /// Neither: the redirect URI alone.
    Nowhere,
}

impl Place {
    fn as_str(self) -> &'static str {
        match self {
            Place::Fragment => "fragment",
            Place::Query => "query",
            Place::Nowhere => "nowhere",
        }
    }
}

/// The answer's parameters, and where they came.
struct Callback {
    params: Vec<(String, String)>,
    place: Place,
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The parameters of `location` if it leads back to `redirect_uri`: from
/// the fragment, else from the query.
fn callback_params(location: &str, redirect_uri: &str) -> Option<Callback> {
    let rest = location.strip_prefix(redirect_uri)?;
    let (base_extra, fragment) = match rest.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (rest, None),
    };
    // Only the redirect URI itself, or it plus a query the issuer added.
    let query = match base_extra {
        "" => None,
        extra
            if extra.starts_with('?') || (redirect_uri.contains('?') && extra.starts_with('&')) =>
        {
            Some(&extra[1..])
        }
        _ => return None,
    };
    let (encoded, place) = match (fragment, query) {
        (Some(fragment), _) => (fragment, Place::Fragment),
        (None, Some(query)) => (query, Place::Query),
        (None, None) => ("", Place::Nowhere),
    };
    Some(Callback {
        params: url::form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect(),
        place,
    })
}

/// `scheme://host/path` of `location`, without what follows.
fn without_query(location: &str) -> String {
    let end = location.find(['?', '#']).unwrap_or(location.len());
    printable(&location[..end])
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::ISS;
    use super::super::report::Status;
    use super::*;

    const CB: &str = "http://localhost:3000/login/callback";

    fn request() -> ProbeRequest<'static> {
        ProbeRequest {
            redirect_uri: CB,
            state: "doctor-1",
            client_id: "0oa1b2c3d4e5f6g7h8i9",
            response_type: "id_token token",
            response_mode: "fragment",
            scopes: "openid profile email",
            code_challenge: None,
            without_offline_access: false,
        }
    }

    fn code_request(mode: &'static str) -> ProbeRequest<'static> {
        ProbeRequest {
            response_type: "code",
            response_mode: mode,
            scopes: "openid profile offline_access",
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ..request()
        }
    }

    fn to(separator: char, answer: &str) -> ProbeAnswer {
        ProbeAnswer {
            status: 302,
            location: Some(format!("{CB}{separator}{answer}")),
            body: String::new(),
        }
    }

    fn redirect(fragment: &str) -> ProbeAnswer {
        ProbeAnswer {
            status: 302,
            location: Some(format!("{CB}#{fragment}")),
            body: String::new(),
        }
    }

    fn page(status: u16, body: &str) -> ProbeAnswer {
        ProbeAnswer {
            status,
            location: None,
            body: body.into(),
        }
    }

    #[test]
    fn the_probe_url_is_a_silent_renewal() {
        let endpoint = Url::parse(&format!("{ISS}/v1/authorize")).unwrap();
        let url = probe_url(&endpoint, &request(), "n1");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("prompt"), Some("none"));
        assert_eq!(get("response_mode"), Some("fragment"));
        assert_eq!(get("response_type"), Some("id_token token"));
        assert_eq!(get("redirect_uri"), Some(CB));
        assert_eq!(get("state"), Some("doctor-1"));
        assert_eq!(get("nonce"), Some("n1"));
    }

    #[test]
    fn login_required_means_everything_is_accepted() {
        let ok = interpret_probe(&redirect("error=login_required&state=doctor-1"), &request());
        assert_eq!(ok.status, Status::Pass, "{ok}");
        let wrong_state =
            interpret_probe(&redirect("error=login_required&state=other"), &request());
        assert_eq!(wrong_state.status, Status::Fail);
        // Tokens (a browser with a session) pass too, and are never shown.
        let tokens = interpret_probe(
            &redirect("access_token=SECRET.TOKEN.X&token_type=Bearer&state=doctor-1"),
            &request(),
        );
        assert_eq!(tokens.status, Status::Pass);
        assert!(!tokens.to_string().contains("SECRET"));
        // In the query, as some issuers send errors.
        let query = ProbeAnswer {
            location: Some(format!("{CB}?error=login_required&state=doctor-1")),
            ..redirect("")
        };
        assert_eq!(interpret_probe(&query, &request()).status, Status::Pass);
    }

    #[test]
    fn refusals_name_the_setting() {
        let cases = [
            (
                "error=access_denied&error_description=Policy+evaluation+failed+for+this+request%2C+please+check+the+policy+configurations.&state=doctor-1",
                "access policy",
            ),
            (
                "error=unsupported_response_type&error_description=The+response+type+is+not+supported+by+the+authorization+server.+Configured+response+types%3A+%5Bcode%5D.&state=doctor-1",
                "RESPONSE_TYPE",
            ),
            ("error=unauthorized_client&state=doctor-1", "RESPONSE_TYPE"),
            (
                "error=invalid_scope&error_description=One+or+more+scopes+are+not+configured.&state=doctor-1",
                "SCOPES",
            ),
            ("error=server_error&state=doctor-1", "server_error"),
        ];
        for (fragment, named) in cases {
            let check = interpret_probe(&redirect(fragment), &request());
            assert_eq!(check.status, Status::Fail, "{fragment}");
            assert!(check.line.contains(named), "{check}");
        }
        let elsewhere = ProbeAnswer {
            location: Some("https://integrator-1234567.okta.com/login/login.htm?fromURI=x".into()),
            ..redirect("")
        };
        let check = interpret_probe(&elsewhere, &request());
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("/login/login.htm instead"), "{check}");
        // A longer path that merely starts with the redirect URI is not it.
        let longer = ProbeAnswer {
            location: Some(format!("{CB}2#error=login_required&state=doctor-1")),
            ..redirect("")
        };
        assert_eq!(interpret_probe(&longer, &request()).status, Status::Fail);
    }

    #[test]
    fn error_pages_name_the_setting() {
        let okta_client = "<h1>400 Bad Request</h1><p>Error Code: invalid_client</p><p>Description: Invalid value for 'client_id' parameter.</p>";
        let dev = r#"<p id="error" role="alert" class="error">The redirect_uri is not registered for this client.</p>"#;
        let check = interpret_probe(&page(400, dev), &request());
        assert!(check.line.contains("REDIRECT_URI"), "{check}");
        assert!(
            check
                .line
                .contains("the page says: The redirect_uri is not registered"),
            "{check}"
        );
        let check = interpret_probe(&page(400, okta_client), &request());
        assert!(
            check
                .line
                .contains("CLIENT_ID \"0oa1b2c3d4e5f6g7h8i9\" is unknown"),
            "{check}"
        );
        let check = interpret_probe(&page(401, r#"{"errorCode":"E0000015"}"#), &request());
        assert!(check.line.contains("API Access Management"), "{check}");
    }

    #[test]
    fn a_page_instead_of_an_answer_is_a_failure() {
        let check = interpret_probe(&page(200, "<form>Sign in</form>"), &request());
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("prompt=none"), "{check}");
        let check = interpret_probe(&page(503, ""), &request());
        assert!(check.line.contains("HTTP 503"), "{check}");
    }

    #[test]
    fn pkce_is_s256_as_rfc_7636_computes_it() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = pkce_verifier();
        assert_eq!(verifier.len(), 43);
        assert_ne!(verifier, pkce_verifier());
    }

    #[test]
    fn the_code_probe_carries_pkce_and_the_response_mode() {
        let endpoint = Url::parse(&format!("{ISS}/v1/authorize")).unwrap();
        let url = probe_url(&endpoint, &code_request("query"), "n1");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("response_mode"), Some("query"));
        assert_eq!(get("prompt"), Some("none"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(
            get("code_challenge"),
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
        assert_eq!(get("scope"), Some("openid profile offline_access"));
        // The implicit probe has no challenge.
        let url = probe_url(&endpoint, &request(), "n1");
        assert!(!url.as_str().contains("code_challenge"), "{url}");
    }

    #[test]
    fn the_code_answer_must_come_where_response_mode_says() {
        let query = to('?', "error=login_required&state=doctor-1");
        let check = interpret_probe(&query, &code_request("query"));
        assert_eq!(check.status, Status::Pass, "{check}");
        assert!(check.line.contains("RESPONSE_TYPE \"code\" with a PKCE S256 challenge, and SCOPES \"openid profile offline_access\""), "{check}");
        assert!(
            check
                .line
                .ends_with("came back with login_required, in the query as RESPONSE_MODE says)"),
            "{check}"
        );

        let fragment = to('#', "error=login_required&state=doctor-1");
        assert_eq!(
            interpret_probe(&fragment, &code_request("fragment")).status,
            Status::Pass
        );
        let check = interpret_probe(&fragment, &code_request("query"));
        assert_eq!(check.status, Status::Fail);
        assert!(
            check
                .line
                .contains("answered in the fragment, but RESPONSE_MODE is query"),
            "{check}"
        );
        let check = interpret_probe(&query, &code_request("fragment"));
        assert!(
            check
                .line
                .contains("answered in the query, but RESPONSE_MODE is fragment"),
            "{check}"
        );

        // A code (a browser with a session) passes and is never shown.
        let code = to('?', "code=SECRETCODE&state=doctor-1");
        let check = interpret_probe(&code, &code_request("query"));
        assert_eq!(check.status, Status::Pass, "{check}");
        assert!(!check.to_string().contains("SECRETCODE"));
        // Tokens are not the code flow's answer.
        let tokens = to('?', "access_token=SECRET&state=doctor-1");
        assert_eq!(
            interpret_probe(&tokens, &code_request("query")).status,
            Status::Fail
        );
        let wrong_state = to('?', "error=login_required&state=other");
        assert_eq!(
            interpret_probe(&wrong_state, &code_request("query")).status,
            Status::Fail
        );
    }

    #[test]
    fn code_refusals_name_the_code_flow_settings() {
        let cases = [
            (
                "error=unsupported_response_type&error_description=The+response+type+is+not+supported+by+the+authorization+server.+Configured+response+types%3A+%5Bid_token%2C+token%5D.&state=doctor-1",
                "may not use the authorization code flow",
                "Grant type Authorization Code",
            ),
            (
                "error=access_denied&error_description=Policy+evaluation+failed+for+this+request%2C+please+check+the+policy+configurations.&state=doctor-1",
                "with the authorization code grant",
                "allows the Authorization Code grant",
            ),
            (
                "error=invalid_request&error_description=PKCE+code+challenge+is+required+when+the+token+endpoint+authentication+method+is+%27NONE%27.&state=doctor-1",
                "refuses the PKCE challenge",
                "S256",
            ),
            (
                "error=invalid_scope&error_description=One+or+more+scopes+are+not+configured.&state=doctor-1",
                "refuses SCOPES",
                "Add Scope",
            ),
        ];
        for (answer, line, fix) in cases {
            // Errors are read wherever they came.
            for place in ['?', '#'] {
                let check = interpret_probe(&to(place, answer), &code_request("query"));
                assert_eq!(check.status, Status::Fail, "{answer}");
                assert!(check.line.contains(line), "{check}");
                assert!(check.fix.as_deref().unwrap().contains(fix), "{check}");
            }
        }
    }

    #[test]
    fn a_refused_scope_is_told_apart() {
        let refused = to(
            '?',
            "error=invalid_scope&error_description=The+requested+scope+is+invalid.&state=doctor-1",
        );
        assert_eq!(
            scope_refusal(&refused, &code_request("query")).as_deref(),
            Some("invalid_scope (The requested scope is invalid.)")
        );
        let denied = to('?', "error=access_denied&state=doctor-1");
        assert_eq!(
            scope_refusal(&denied, &code_request("query")).as_deref(),
            Some("access_denied")
        );
        for other in [
            "error=login_required&state=doctor-1",
            "error=unsupported_response_type&state=doctor-1",
            "error=invalid_scope&state=someone-else",
        ] {
            assert_eq!(scope_refusal(&to('?', other), &code_request("query")), None);
        }
        assert_eq!(scope_refusal(&page(400, "x"), &code_request("query")), None);

        assert!(asks_offline_access("openid offline_access"));
        assert!(!asks_offline_access("openid offline_access_x"));
        assert_eq!(
            without_offline_access("openid offline_access  profile"),
            "openid profile"
        );
        let request = ProbeRequest {
            scopes: "openid profile",
            without_offline_access: true,
            ..code_request("query")
        };
        let check = interpret_probe(&to('?', "error=login_required&state=doctor-1"), &request);
        assert!(
            check
                .line
                .contains("SCOPES without offline_access (\"openid profile\")"),
            "{check}"
        );
    }

    #[test]
    fn offline_access_lines() {
        assert_eq!(offline_access_accepted().status, Status::Pass);
        let refused = offline_access_refused("invalid_scope (x)");
        assert_eq!(refused.status, Status::Fail);
        assert!(refused
            .line
            .contains("refuses offline_access for CLIENT_ID: invalid_scope (x)"));
        let fix = refused.fix.unwrap();
        assert!(fix.contains("Refresh Token grant"), "{fix}");
        assert!(fix.contains("access policy rule"), "{fix}");
        assert_eq!(offline_access_unknown().status, Status::Info);
        assert_eq!(offline_access_not_asked().status, Status::Warn);
    }
}
