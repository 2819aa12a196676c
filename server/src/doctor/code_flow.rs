//! The endpoints the authorization code flow's browser calls by itself
//! (`RESPONSE_TYPE=code`): the token endpoint, where it exchanges the code
//! and refreshes the session, and which must therefore answer CORS for the
//! app's origin; and the revocation endpoint, where sign-out revokes the
//! refresh token. The flow's authorize request is probed with the implicit
//! one's, in [`super::authorize`].
//!
//! The CORS check is the preflight a browser would send from the app's
//! origin (`OPTIONS`, `Origin: <PUBLIC_ORIGIN>`, `Access-Control-Request-
//! Method: POST`, `Access-Control-Request-Headers: content-type`); what
//! decides is whether the answer allows that origin. Okta allows it once
//! the origin is a Trusted Origin of type CORS.

use url::Url;

use crate::bearer::fetch::{checked_url, error_chain};
use crate::bearer::HttpOptions;

use super::discovery::Metadata;
use super::http;
use super::report::{printable, Check};

/// The token endpoint of `doc`, with its line; `None` when there is none
/// the browser could use.
pub fn token_endpoint(doc: &Metadata) -> (Check, Option<Url>) {
    let Some(raw) = doc.token_endpoint.as_deref() else {
        return (
            Check::fail(
                "the discovery document has no token_endpoint, which RESPONSE_TYPE=code needs to exchange the code (the server will not start without one)",
                "use an authorization server with a token endpoint (Okta's have /v1/token), or set RESPONSE_TYPE back to \"id_token token\"",
            ),
            None,
        );
    };
    match checked_url("token_endpoint", raw) {
        Ok(url) => (
            Check::pass(format!(
                "token_endpoint {url}: the browser exchanges the code and refreshes the session there"
            )),
            Some(url),
        ),
        Err(err) => (
            Check::fail(
                format!("{err} (the server will not start with it)"),
                "the issuer must serve its token endpoint over https",
            ),
            None,
        ),
    }
}

/// The revocation endpoint of `doc`: without one, sign-out cannot revoke
/// the refresh token, which then stays usable until it expires. That
/// matters only when `SCOPES` asks for refresh tokens (`offline_access`).
pub fn revocation_endpoint(doc: &Metadata, offline_access: bool) -> Check {
    match doc.revocation_endpoint.as_deref() {
        Some(raw) => match checked_url("revocation_endpoint", raw) {
            Ok(url) => Check::pass(format!(
                "revocation_endpoint {url}: sign-out revokes the refresh token there"
            )),
            Err(err) => Check::fail(
                format!("{err} (the server will not start with it)"),
                "the issuer must serve its revocation endpoint over https",
            ),
        },
        None if offline_access => Check::warn(
            "the issuer has no revocation_endpoint: sign-out cannot revoke refresh tokens, which stay usable until they expire",
            "nothing to change in the app; Okta's authorization servers publish one (/v1/revoke). Keep the refresh token lifetime short in the access policy rule",
        ),
        None => Check::info(
            "the issuer has no revocation_endpoint; without offline_access in SCOPES there is no refresh token to revoke",
        ),
    }
}

/// The token endpoint could not be had, so no preflight was sent.
pub fn cors_not_checked() -> Check {
    Check::info(
        "the token endpoint's CORS cannot be checked without a usable token_endpoint (above)",
    )
}

/// What the token endpoint answered to the preflight, as far as the check
/// needs it.
#[derive(Clone, Debug, Default)]
pub struct PreflightAnswer {
    pub status: u16,
    /// `Access-Control-Allow-Origin`.
    pub allow_origin: Option<String>,
}

/// Sends the browser's CORS preflight for the token request from `origin`
/// (`PUBLIC_ORIGIN`) to `endpoint`, and reads the answer.
pub async fn cors(endpoint: &Url, origin: &str, http: &HttpOptions) -> Check {
    match send_preflight(endpoint, origin, http).await {
        Ok(answer) => interpret_preflight(&answer, origin),
        Err(reason) => Check::fail(
            format!("cannot reach the token endpoint {endpoint}: {reason}"),
            "the token_endpoint of the discovery document must be reachable (by the browser too)",
        ),
    }
}

async fn send_preflight(
    endpoint: &Url,
    origin: &str,
    http: &HttpOptions,
) -> Result<PreflightAnswer, String> {
    let response = http::client(http)?
        .request(reqwest::Method::OPTIONS, endpoint.clone())
        .header(reqwest::header::ORIGIN, origin)
        .header(reqwest::header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            reqwest::header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type",
        )
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    Ok(PreflightAnswer {
        status: response.status().as_u16(),
        allow_origin: response
            .headers()
            .get(reqwest::header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    })
}

/// Whether the preflight's answer lets a page on `origin` read the token
/// endpoint's answers: a 2xx status and `Access-Control-Allow-Origin`
/// naming `origin` (or `*`, enough for the app's requests, which carry no
/// credentials).
pub fn interpret_preflight(answer: &PreflightAnswer, origin: &str) -> Check {
    let status = answer.status;
    let fix = format!(
        "add {origin} (PUBLIC_ORIGIN) to the issuer's Trusted Origins with CORS (Okta: Security > API > Trusted Origins > Add Origin, Origin URL {origin}, type CORS; docs/okta.md § 8)"
    );
    let allowed = answer
        .allow_origin
        .as_deref()
        .map(str::trim)
        .is_some_and(|allowed| allowed == origin || allowed == "*");
    match &answer.allow_origin {
        _ if allowed && (200..300).contains(&status) => Check::pass(format!(
            "the token endpoint allows CORS from the app's origin {origin} (a preflight for its POST was answered with Access-Control-Allow-Origin: {})",
            printable(answer.allow_origin.as_deref().unwrap_or_default())
        )),
        _ if allowed => Check::fail(
            format!("the token endpoint answered a CORS preflight from {origin} with HTTP {status}: browsers will not send the app's token requests"),
            "the issuer must answer preflights to its token endpoint with a 2xx status; check ISSUER and the Trusted Origin",
        ),
        None => Check::fail(
            format!("the token endpoint does not allow the app's origin {origin}: a CORS preflight from it got HTTP {status} without Access-Control-Allow-Origin, so browsers will refuse the code exchange and refresh"),
            fix,
        ),
        Some(other) => Check::fail(
            format!(
                "the token endpoint does not allow the app's origin {origin}: a CORS preflight from it got Access-Control-Allow-Origin: {}",
                printable(other)
            ),
            fix,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{okta_doc, ISS};
    use super::super::report::Status;
    use super::*;

    const ORIGIN: &str = "http://localhost:3000";

    #[test]
    fn the_token_endpoint_must_be_there_and_on_https() {
        let mut doc = okta_doc();
        let (check, url) = token_endpoint(&doc);
        assert_eq!(check.status, Status::Pass, "{check}");
        assert_eq!(url.unwrap().as_str(), format!("{ISS}/v1/token"));

        doc.token_endpoint = None;
        let (check, url) = token_endpoint(&doc);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("no token_endpoint"), "{check}");
        assert!(url.is_none());

        doc.token_endpoint = Some("http://issuer.example.com/v1/token".into());
        let (check, url) = token_endpoint(&doc);
        assert_eq!(check.status, Status::Fail, "{check}");
        assert!(url.is_none());
    }

    #[test]
    fn a_missing_revocation_endpoint_matters_with_refresh_tokens() {
        let mut doc = okta_doc();
        let check = revocation_endpoint(&doc, true);
        assert_eq!(check.status, Status::Pass, "{check}");
        assert!(check.line.contains("/v1/revoke"), "{check}");

        doc.revocation_endpoint = None;
        let check = revocation_endpoint(&doc, true);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.line.contains("cannot revoke refresh tokens"),
            "{check}"
        );
        assert_eq!(revocation_endpoint(&doc, false).status, Status::Info);

        doc.revocation_endpoint = Some("http://issuer.example.com/v1/revoke".into());
        assert_eq!(revocation_endpoint(&doc, true).status, Status::Fail);
    }

    fn answer(status: u16, allow_origin: Option<&str>) -> PreflightAnswer {
        PreflightAnswer {
            status,
            allow_origin: allow_origin.map(str::to_owned),
        }
    }

    #[test]
    fn the_preflight_must_allow_the_app_origin() {
        let check = interpret_preflight(&answer(200, Some(ORIGIN)), ORIGIN);
        assert_eq!(check.status, Status::Pass, "{check}");
        assert_eq!(
            interpret_preflight(&answer(204, Some("*")), ORIGIN).status,
            Status::Pass
        );

        // Okta without a Trusted Origin: no CORS headers.
        let check = interpret_preflight(&answer(403, None), ORIGIN);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.line.contains("without Access-Control-Allow-Origin"),
            "{check}"
        );
        let fix = check.fix.unwrap();
        assert!(fix.contains("Trusted Origins with CORS"), "{fix}");
        assert!(fix.contains(ORIGIN), "{fix}");

        let check = interpret_preflight(&answer(200, Some("http://other.test")), ORIGIN);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("http://other.test"), "{check}");

        // The origin named, but not an ok status: the browser stops there.
        let check = interpret_preflight(&answer(405, Some(ORIGIN)), ORIGIN);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("HTTP 405"), "{check}");
    }
}
