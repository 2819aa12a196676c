//! The authorize probe: one `prompt=none` request to the authorize
//! endpoint with the configured client, redirect URI, response type and
//! scopes, the request a signed-out browser's silent renewal sends
//! (following no redirect, sending no cookie), and what its answer says:
//! `login_required` back at `REDIRECT_URI` means the issuer accepts them
//! all; an error there, or an error page of the issuer's own, names the
//! setting to change.

use url::Url;

use crate::bearer::fetch::{checked_url, error_chain};
use crate::bearer::HttpOptions;
use crate::config::Config;

use super::discovery::Metadata;
use super::report::{printable, Check};

/// Most bytes of an authorize answer read (error pages are a few KiB).
const MAX_PAGE_BYTES: usize = 64 * 1024;

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
    pub scopes: &'a str,
}

/// The `prompt=none` authorization request a signed-out browser's silent
/// renewal sends.
pub fn probe_url(endpoint: &Url, request: &ProbeRequest<'_>, nonce: &str) -> Url {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("client_id", request.client_id)
        .append_pair("response_type", request.response_type)
        .append_pair("response_mode", "fragment")
        .append_pair("scope", request.scopes)
        .append_pair("redirect_uri", request.redirect_uri)
        .append_pair("state", request.state)
        .append_pair("nonce", nonce)
        .append_pair("prompt", "none");
    url
}

/// Sends the probe for `client_id` and the settings in `config` to the
/// authorize endpoint of `doc`, and reads its answer.
pub async fn probe(doc: &Metadata, client_id: &str, config: &Config, http: &HttpOptions) -> Check {
    let Some(raw) = doc.authorization_endpoint.as_deref() else {
        return Check::fail(
            "the discovery document has no authorization_endpoint, so browsers cannot sign in",
            "ISSUER must be an authorization server that signs people in with a browser",
        );
    };
    let endpoint = match checked_url("authorization_endpoint", raw) {
        Ok(url) => url,
        Err(err) => {
            return Check::fail(
                err.to_string(),
                "the issuer must serve its authorize endpoint over https",
            )
        }
    };
    let state = format!("doctor-{:032x}", rand::random::<u128>());
    let nonce = format!("{:032x}", rand::random::<u128>());
    let request = ProbeRequest {
        redirect_uri: &config.redirect_uri,
        state: &state,
        client_id,
        response_type: config.response_type.as_str(),
        scopes: &config.scopes,
    };
    let url = probe_url(&endpoint, &request, &nonce);
    match send_probe(url, http).await {
        Ok(answer) => interpret_probe(&answer, &request),
        Err(reason) => Check::fail(
            format!("cannot reach the authorize endpoint {endpoint}: {reason}"),
            "the authorization_endpoint of the discovery document must be reachable",
        ),
    }
}

/// One GET, no redirect followed, no cookie sent.
async fn send_probe(url: Url, http: &HttpOptions) -> Result<ProbeAnswer, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(http.connect_timeout)
        .timeout(http.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("okta-implicit-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| err.to_string())?;
    let mut response = client
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
    let mut body = Vec::new();
    while body.len() < MAX_PAGE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => return Err(error_chain(&err)),
        }
    }
    body.truncate(MAX_PAGE_BYTES);
    Ok(ProbeAnswer {
        status,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// What the answer to the `prompt=none` probe says about the client, its
/// redirect URI, grant and scopes.
pub fn interpret_probe(answer: &ProbeAnswer, request: &ProbeRequest<'_>) -> Check {
    if !(300..400).contains(&answer.status) {
        return error_page(answer, request);
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
    let Some(params) = callback_params(location, request.redirect_uri) else {
        return Check::fail(
            format!(
                "the authorize endpoint sent the browser to {} instead of back to REDIRECT_URI",
                without_query(location)
            ),
            "a prompt=none request must come back to REDIRECT_URI; check that ISSUER is the authorization server itself (Okta: /oauth2/<id>)",
        );
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
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
        Some("consent_required") => Check::warn(
            format!("the issuer wants the user's consent: {}", said("consent_required")),
            "silent renewal cannot show a consent screen; turn consent off for this app's scopes (Okta: the app's User consent, the scopes' Require user consent)",
        ),
        Some("access_denied") if description.contains("Policy evaluation failed") => Check::fail(
            format!("no access policy rule of the authorization server lets CLIENT_ID have SCOPES {scopes:?} with the implicit grant: {}", said("access_denied")),
            "add a rule for this client that allows the Implicit grant and every scope in SCOPES (Okta: Security > API > Authorization Servers > Access Policies, docs/okta.md § 2.5), or ask for fewer SCOPES",
        ),
        Some("access_denied") => Check::fail(
            format!("the issuer refused the request: {}", said("access_denied")),
            "the issuer's log gives the reason (Okta: Reports > System Log)",
        ),
        Some(error @ ("unsupported_response_type" | "unauthorized_client")) => Check::fail(
            format!("the client may not use RESPONSE_TYPE {response_type:?}: {}", said(error)),
            "allow it on the client (Okta: the app's General tab, Grant type Implicit (hybrid) with Allow ID Token and Allow Access Token with implicit grant type), or set RESPONSE_TYPE to what the client allows",
        ),
        Some("invalid_scope") => Check::fail(
            format!("the authorization server refuses SCOPES {scopes:?}: {}", said("invalid_scope")),
            "create the missing scope on the authorization server (Okta: Authorization Servers > Scopes > Add Scope) or remove it from SCOPES",
        ),
        Some(error) => Check::fail(
            format!("the authorize endpoint answered {}", said(&printable(error))),
            "docs/okta.md § 6 says what each error means and which setting to change",
        ),
    }
}

/// The parameters of `location` if it leads back to `redirect_uri`: from
/// the fragment, else from the query.
fn callback_params(location: &str, redirect_uri: &str) -> Option<Vec<(String, String)>> {
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
    let encoded = fragment.or(query).unwrap_or("");
    Some(
        url::form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect(),
    )
}

/// `scheme://host/path` of `location`, without what follows.
fn without_query(location: &str) -> String {
    let end = location.find(['?', '#']).unwrap_or(location.len());
    printable(&location[..end])
}

/// Which setting an error page of the authorize endpoint blames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    ClientId,
    RedirectUri,
    Either,
}

/// Reads an error page: Okta's "Invalid value for 'client_id' parameter."
/// and "The 'redirect_uri' parameter must be a Login redirect URI…", the
/// dev server's "The client_id is not registered…" and "The redirect_uri
/// is not registered…", else whichever of the two names it mentions.
pub fn blame(page: &str) -> Blame {
    let text = page.to_ascii_lowercase();
    let client = text.contains("client_id");
    let redirect = text.contains("redirect_uri");
    if text.contains("must be a login redirect uri")
        || text.contains("redirect_uri is not registered")
    {
        Blame::RedirectUri
    } else if text.contains("invalid value for 'client_id'")
        || text.contains("client_id is not registered")
    {
        Blame::ClientId
    } else if redirect && !client {
        Blame::RedirectUri
    } else if client && !redirect {
        Blame::ClientId
    } else {
        Blame::Either
    }
}

fn error_page(answer: &ProbeAnswer, request: &ProbeRequest<'_>) -> Check {
    let status = answer.status;
    if answer.body.contains("E0000015") {
        return Check::fail(
            format!("the authorize endpoint answered HTTP {status} E0000015: the org has no API Access Management"),
            "use an Okta org with API Access Management, such as an Integrator Free Plan org (docs/okta.md § 1)",
        );
    }
    if (200..300).contains(&status) {
        return Check::fail(
            format!("the authorize endpoint showed a page (HTTP {status}) instead of answering a prompt=none request"),
            "the issuer ignores prompt=none, so silent renewal cannot work; use an authorization server that supports it (Okta's do)",
        );
    }
    if status >= 500 {
        return Check::fail(
            format!("the authorize endpoint answered HTTP {status}"),
            "the issuer is having trouble; try again later",
        );
    }
    let says = alert_text(&answer.body)
        .map(|text| format!(" (the page says: {text})"))
        .unwrap_or_default();
    let client_id = printable(request.client_id);
    let redirect_uri = printable(request.redirect_uri);
    match blame(&answer.body) {
        Blame::ClientId => Check::fail(
            format!("the issuer shows an error page (HTTP {status}): CLIENT_ID {client_id:?} is unknown{says}"),
            "set CLIENT_ID to the client id of the app at this issuer (Okta: the app's General tab, Client Credentials)",
        ),
        Blame::RedirectUri => Check::fail(
            format!("the issuer shows an error page (HTTP {status}): REDIRECT_URI {redirect_uri:?} is not registered for CLIENT_ID{says}"),
            "add REDIRECT_URI exactly to the app's sign-in redirect URIs (Okta: the app's General tab, Sign-in redirect URIs), or set REDIRECT_URI or PUBLIC_ORIGIN to a registered one",
        ),
        Blame::Either => Check::fail(
            format!("the issuer shows an error page (HTTP {status}): CLIENT_ID {client_id:?} unknown or REDIRECT_URI {redirect_uri:?} not registered{says}"),
            "check CLIENT_ID against the app's client id and add REDIRECT_URI exactly to its sign-in redirect URIs",
        ),
    }
}

/// The text of the dev server's `role="alert"` element, if any.
fn alert_text(page: &str) -> Option<String> {
    let start = page.find("role=\"alert\"")?;
    let open_end = start + page[start..].find('>')? + 1;
    let close = open_end + page[open_end..].find('<')?;
    let text = page[open_end..close]
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let text = printable(text.trim());
    (!text.is_empty()).then_some(text)
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
            scopes: "openid profile email",
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
    fn error_pages_blame_the_client_or_the_redirect_uri() {
        let okta_client = "<h1>400 Bad Request</h1><p>Error Code: invalid_client</p><p>Description: Invalid value for 'client_id' parameter.</p>";
        let okta_redirect = "<p>Error Code: invalid_request</p><p>Description: The 'redirect_uri' parameter must be a Login redirect URI in the client app settings: https://x-admin.okta.com/admin/app/oidc_client/instance/0oa1#tab-general</p>";
        assert_eq!(blame(okta_client), Blame::ClientId);
        assert_eq!(blame(okta_redirect), Blame::RedirectUri);
        assert_eq!(blame("<p>Something went wrong</p>"), Blame::Either);
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
}
