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
//! the origin is a Trusted Origin of type CORS. With `DPOP=1` the token
//! requests also carry a `DPoP` header, so the preflight asks for it and
//! the answer must allow it; and [`dpop_required`] asks the token endpoint
//! whether the client requires DPoP proofs at all.

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
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: Option<String>,
}

/// Sends the browser's CORS preflight for the token request from `origin`
/// (`PUBLIC_ORIGIN`) to `endpoint`, with the `DPoP` header among those
/// asked for when `dpop`, and reads the answer.
pub async fn cors(endpoint: &Url, origin: &str, dpop: bool, http: &HttpOptions) -> Check {
    match send_preflight(endpoint, origin, dpop, http).await {
        Ok(answer) => interpret_preflight(&answer, origin, dpop),
        Err(reason) => Check::fail(
            format!("cannot reach the token endpoint {endpoint}: {reason}"),
            "the token_endpoint of the discovery document must be reachable (by the browser too)",
        ),
    }
}

async fn send_preflight(
    endpoint: &Url,
    origin: &str,
    dpop: bool,
    http: &HttpOptions,
) -> Result<PreflightAnswer, String> {
    let response = http::client(http)?
        .request(reqwest::Method::OPTIONS, endpoint.clone())
        .header(reqwest::header::ORIGIN, origin)
        .header(reqwest::header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            reqwest::header::ACCESS_CONTROL_REQUEST_HEADERS,
            if dpop {
                "content-type,dpop"
            } else {
                "content-type"
            },
        )
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            })
    };
    Ok(PreflightAnswer {
        status: response.status().as_u16(),
        allow_origin: header(reqwest::header::ACCESS_CONTROL_ALLOW_ORIGIN),
        allow_headers: header(reqwest::header::ACCESS_CONTROL_ALLOW_HEADERS),
    })
}

/// Whether the preflight's answer lets a page on `origin` read the token
/// endpoint's answers: a 2xx status and `Access-Control-Allow-Origin`
/// naming `origin` (or `*`, enough for the app's requests, which carry no
/// credentials); with `dpop`, `Access-Control-Allow-Headers` naming `dpop`
/// (or `*`) too.
pub fn interpret_preflight(answer: &PreflightAnswer, origin: &str, dpop: bool) -> Check {
    let status = answer.status;
    let fix = format!(
        "add {origin} (PUBLIC_ORIGIN) to the issuer's Trusted Origins with CORS (Okta: Security > API > Trusted Origins > Add Origin, Origin URL {origin}, type CORS; docs/okta.md § 8)"
    );
    let allowed = answer
        .allow_origin
        .as_deref()
        .map(str::trim)
        .is_some_and(|allowed| allowed == origin || allowed == "*");
    let dpop_allowed = answer.allow_headers.as_deref().is_some_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|h| h == "*" || h.eq_ignore_ascii_case("dpop"))
    });
    match &answer.allow_origin {
        _ if allowed && (200..300).contains(&status) && dpop && !dpop_allowed => Check::fail(
            format!(
                "DPOP=1, but the token endpoint's CORS preflight from {origin} does not allow the DPoP request header (Access-Control-Allow-Headers: {}): browsers will not send the app's token requests",
                printable(answer.allow_headers.as_deref().unwrap_or("none"))
            ),
            "the issuer must allow the DPoP header in CORS requests to its token endpoint (Okta does for apps with DPoP; check that the app requires DPoP), or set DPOP back to 0",
        ),
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

/// With `DPOP=1`: whether the client requires DPoP proofs in its token
/// requests (Okta: the app's "Require Demonstrating Proof of Possession
/// (DPoP) header in token requests"). Asked with a token request that
/// carries no proof and a made-up code: a client that requires DPoP is
/// refused for the missing proof before the code is looked at
/// (`invalid_dpop_proof`, RFC 9449 §5), one that does not gets as far as
/// the code (`invalid_grant`). No real code is spent.
pub async fn dpop_required(
    endpoint: &Url,
    client_id: &str,
    redirect_uri: &str,
    http: &HttpOptions,
) -> Check {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "doctor-probe-not-a-real-code"),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        // 43 characters, the shortest verifier RFC 7636 allows.
        (
            "code_verifier",
            "doctor-probe-verifier-of-forty-three-chars-",
        ),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let answer = async {
        let response = http::client(http)?
            .post(endpoint.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|err| error_chain(&err))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Ok::<_, String>((status, body["error"].as_str().map(str::to_owned)))
    };
    match answer.await {
        Ok((status, error)) => interpret_dpop_probe(status, error.as_deref()),
        Err(reason) => Check::fail(
            format!("cannot reach the token endpoint {endpoint}: {reason}"),
            "the token_endpoint of the discovery document must be reachable (by the browser too)",
        ),
    }
}

/// What the token endpoint's answer to [`dpop_required`]'s request says.
pub fn interpret_dpop_probe(status: u16, error: Option<&str>) -> Check {
    match error {
        Some("invalid_dpop_proof") => Check::pass(
            "the client requires DPoP proofs in token requests (a token request without one was refused: invalid_dpop_proof)",
        ),
        Some("invalid_grant") => Check::fail(
            "DPOP=1, but the client does not require DPoP: a token request without a proof got as far as the code (invalid_grant for a made-up one); the issuer will not bind its tokens, and the browser keeps only DPoP-bound ones",
            "turn DPoP on for the app (Okta: Applications > the app > General > General Settings > Edit: check \"Require Demonstrating Proof of Possession (DPoP) header in token requests\"; docs/okta.md), or set DPOP back to 0",
        ),
        Some(other) => Check::fail(
            format!(
                "the token endpoint refused the doctor's token request with {} (HTTP {status}), so whether the client requires DPoP is unknown",
                printable(other)
            ),
            "check CLIENT_ID and REDIRECT_URI against the app at the issuer (the other lines say which is wrong)",
        ),
        None => Check::fail(
            format!("the token endpoint answered the doctor's token request with HTTP {status} and no OAuth error"),
            "check ISSUER: a token endpoint answers a bad token request with an RFC 6749 § 5.2 error",
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
            allow_headers: Some("content-type".into()),
        }
    }

    #[test]
    fn with_dpop_the_preflight_must_allow_the_dpop_header() {
        let mut ok = answer(200, Some(ORIGIN));
        assert_eq!(interpret_preflight(&ok, ORIGIN, false).status, Status::Pass);
        let check = interpret_preflight(&ok, ORIGIN, true);
        assert_eq!(check.status, Status::Fail, "{check}");
        assert!(
            check
                .line
                .contains("does not allow the DPoP request header"),
            "{check}"
        );
        for allowed in ["content-type, DPoP", "dpop,content-type", "*"] {
            ok.allow_headers = Some(allowed.into());
            assert_eq!(
                interpret_preflight(&ok, ORIGIN, true).status,
                Status::Pass,
                "{allowed}"
            );
        }
        ok.allow_headers = None;
        assert_eq!(interpret_preflight(&ok, ORIGIN, true).status, Status::Fail);
    }

    #[test]
    fn the_dpop_probe_tells_a_client_requiring_dpop_from_one_that_does_not() {
        assert_eq!(
            interpret_dpop_probe(400, Some("invalid_dpop_proof")).status,
            Status::Pass
        );
        let check = interpret_dpop_probe(400, Some("invalid_grant"));
        assert_eq!(check.status, Status::Fail);
        assert!(check
            .fix
            .unwrap()
            .contains("Require Demonstrating Proof of Possession"));
        let check = interpret_dpop_probe(401, Some("invalid_client"));
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("invalid_client (HTTP 401)"), "{check}");
        assert_eq!(interpret_dpop_probe(500, None).status, Status::Fail);
    }

    #[test]
    fn the_preflight_must_allow_the_app_origin() {
        let check = interpret_preflight(&answer(200, Some(ORIGIN)), ORIGIN, false);
        assert_eq!(check.status, Status::Pass, "{check}");
        assert_eq!(
            interpret_preflight(&answer(204, Some("*")), ORIGIN, false).status,
            Status::Pass
        );

        // Okta without a Trusted Origin: no CORS headers.
        let check = interpret_preflight(&answer(403, None), ORIGIN, false);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.line.contains("without Access-Control-Allow-Origin"),
            "{check}"
        );
        let fix = check.fix.unwrap();
        assert!(fix.contains("Trusted Origins with CORS"), "{fix}");
        assert!(fix.contains(ORIGIN), "{fix}");

        let check = interpret_preflight(&answer(200, Some("http://other.test")), ORIGIN, false);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("http://other.test"), "{check}");

        // The origin named, but not an ok status: the browser stops there.
        let check = interpret_preflight(&answer(405, Some(ORIGIN)), ORIGIN, false);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("HTTP 405"), "{check}");
    }
}
