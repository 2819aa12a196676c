//! The issuer's discovery document (`{ISSUER}/.well-known/openid-configuration`):
//! whether it can be had, whether its `issuer` is exactly `ISSUER`, and
//! what it says about the configured response type, response mode,
//! scopes, sign-out and ID token signatures. The code flow's own endpoints
//! (token, revocation) are checked in [`super::code_flow`].
//!
//! A document that cannot be had stops the run: every later check reads it.

use serde::Deserialize;
use url::Url;

use crate::bearer::discovery::discovery_url;
use crate::bearer::fetch::HttpClient;
use crate::bearer::FetchError;
use crate::config::{Config, ResponseMode, ResponseType};

use super::report::{printable, Check};

/// Fetches and reads the discovery document of `issuer`, or the line that
/// says why it cannot be had.
pub async fn fetch(http: &HttpClient, issuer: &str) -> Result<Metadata, Check> {
    let url = discovery_url(issuer).map_err(|err| {
        Check::fail(
            err.to_string(),
            "set ISSUER to the authorization server's issuer URL",
        )
    })?;
    let fetched = http
        .get(&url)
        .await
        .map_err(|err| discovery_unreachable(&url, &err))?;
    Metadata::parse(&fetched.body).map_err(|reason| {
        Check::fail(
            format!("{url} is not an OpenID Connect discovery document: {reason}"),
            "set ISSUER to the authorization server's issuer (Okta: its Issuer URI, e.g. https://<org>.okta.com/oauth2/default)",
        )
    })
}

fn discovery_unreachable(url: &Url, err: &FetchError) -> Check {
    match err {
        FetchError::Status(404) => Check::fail(
            format!("{url} answered HTTP 404: there is no authorization server at ISSUER's path"),
            "copy the authorization server's issuer exactly into ISSUER (Okta: Security > API > Authorization Servers > Issuer URI, e.g. https://<org>.okta.com/oauth2/default)",
        ),
        FetchError::Status(status @ (401 | 403)) => Check::fail(
            format!("{url} answered HTTP {status}"),
            "at Okta this means the org has no API Access Management (E0000015): use an org that has it, such as an Integrator Free Plan org (docs/okta.md § 1)",
        ),
        FetchError::Status(status) => Check::fail(
            format!("{url} answered HTTP {status}"),
            "check ISSUER, and retry if the issuer is having trouble",
        ),
        FetchError::Transport(reason) | FetchError::Timeout(reason) => Check::fail(
            format!("cannot reach the issuer: GET {url} failed: {reason}"),
            "check ISSUER's host and port, and that this machine can reach it (proxy, firewall, VPN)",
        ),
        FetchError::TooLarge(_) => Check::fail(
            format!("{url}: {err}"),
            "ISSUER must be an authorization server's issuer; this URL serves something else",
        ),
    }
}

/// The fields of the discovery document the checks read; anything may be
/// missing except `issuer`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub end_session_endpoint: Option<String>,
    /// Where the code flow's browser exchanges its code and refreshes.
    pub token_endpoint: Option<String>,
    /// Where the code flow's sign-out revokes the refresh token (RFC 7009).
    pub revocation_endpoint: Option<String>,
    pub response_types_supported: Option<Vec<String>>,
    pub response_modes_supported: Option<Vec<String>>,
    pub scopes_supported: Option<Vec<String>>,
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9449 §5.1: the issuer takes DPoP proofs with these algorithms.
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

impl Metadata {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|err| err.to_string())
    }
}

/// The document's `issuer` must be `ISSUER`, character for character
/// (OpenID Connect Discovery §4.3), as the server requires.
pub fn issuer_matches(configured: &str, found: &str) -> Check {
    if configured == found {
        Check::pass("the discovery document's issuer is exactly ISSUER")
    } else {
        Check::fail(
            format!("the discovery document says the issuer is {found:?}, but ISSUER is {configured:?}"),
            "set ISSUER to the document's issuer character for character (trailing slash, http/https, host); with an Okta custom domain, make the authorization server's Issuer the URL you use",
        )
    }
}

/// What the discovery document says about the configured response type,
/// response mode, scopes, sign-out and ID token signatures, and with
/// `DPOP=1` about DPoP.
pub fn metadata_checks(doc: &Metadata, config: &Config) -> Vec<Check> {
    let mut checks = vec![
        response_type(doc, config.response_type),
        response_mode(doc, config.response_type, config.response_mode),
        scopes(doc, &config.scopes),
        end_session(doc),
        id_token_signature(doc, config),
    ];
    if config.dpop.browser {
        checks.push(dpop(doc));
    }
    checks
}

/// With `DPOP=1`: the issuer offers DPoP (RFC 9449 §5.1), with ES256, the
/// algorithm the browser signs its proofs with.
pub fn dpop(doc: &Metadata) -> Check {
    match &doc.dpop_signing_alg_values_supported {
        Some(algs) if algs.iter().any(|a| a == "ES256") => Check::pass(
            "the issuer takes DPoP proofs signed with ES256 (dpop_signing_alg_values_supported)",
        ),
        Some(algs) => Check::fail(
            format!(
                "DPOP=1, but the issuer's dpop_signing_alg_values_supported [{}] does not list ES256, the algorithm the browser signs its proofs with",
                algs.join(" ")
            ),
            "use an authorization server that takes ES256 DPoP proofs (Okta's do), or unset DPOP",
        ),
        None => Check::fail(
            "DPOP=1, but the issuer does not advertise DPoP (no dpop_signing_alg_values_supported in its discovery document)",
            "turn DPoP on for the Okta org (Admin Console, Settings > Features: OAuth 2.0 Demonstrating Proof-of-Possession), or unset DPOP",
        ),
    }
}

/// `RESPONSE_TYPE` among `response_types_supported`.
pub fn response_type(doc: &Metadata, configured: ResponseType) -> Check {
    let response_type = configured.as_str();
    match &doc.response_types_supported {
        None => Check::warn(
            "the discovery document lists no response_types_supported",
            "the authorize probe below tells whether RESPONSE_TYPE is accepted",
        ),
        Some(listed) if listed.iter().any(|t| same_words(t, response_type)) => Check::pass(
            format!("the issuer supports RESPONSE_TYPE {response_type:?}"),
        ),
        Some(listed) => Check::fail(
            format!(
                "the issuer does not support RESPONSE_TYPE {response_type:?} (it lists {})",
                list(listed)
            ),
            if configured.is_code() {
                "use an authorization server that offers the authorization code flow (Okta's do), or set RESPONSE_TYPE to an implicit one it lists (\"id_token token\")"
            } else {
                "set RESPONSE_TYPE to one the issuer lists (\"id_token token\", \"token\" or \"id_token\")"
            },
        ),
    }
}

/// The response mode the app reads answers in, among
/// `response_modes_supported`: always `fragment` in the implicit flow,
/// `RESPONSE_MODE` with `code`.
pub fn response_mode(doc: &Metadata, response_type: ResponseType, mode: ResponseMode) -> Check {
    if !response_type.is_code() {
        return match &doc.response_modes_supported {
            // The default is ["query", "fragment"] (OpenID Connect Discovery).
            None => Check::pass("response_mode fragment (the default; the issuer lists no response_modes_supported)"),
            Some(listed) if listed.iter().any(|m| m == "fragment") => {
                Check::pass("the issuer supports response_mode fragment")
            }
            Some(listed) => Check::fail(
                format!("the issuer does not support response_mode fragment (it lists {})", list(listed)),
                "this app receives the tokens in the URL fragment: use an issuer that supports response_mode=fragment",
            ),
        };
    }
    let mode = mode.as_str();
    match &doc.response_modes_supported {
        None => Check::pass(format!(
            "RESPONSE_MODE {mode} (a default mode; the issuer lists no response_modes_supported)"
        )),
        Some(listed) if listed.iter().any(|m| m == mode) => {
            Check::pass(format!("the issuer supports RESPONSE_MODE {mode}"))
        }
        Some(listed) => Check::fail(
            format!(
                "the issuer does not support RESPONSE_MODE {mode} (it lists {})",
                list(listed)
            ),
            "set RESPONSE_MODE to query or fragment, whichever the issuer lists",
        ),
    }
}

/// `SCOPES` among `scopes_supported`; only a warning, as an issuer may
/// define scopes it does not publish.
pub fn scopes(doc: &Metadata, scopes: &str) -> Check {
    let asked: Vec<&str> = scopes.split(' ').filter(|s| !s.is_empty()).collect();
    match &doc.scopes_supported {
        None => Check::info("the issuer publishes no scopes_supported: SCOPES are checked by the authorize probe only"),
        Some(published) => {
            let missing: Vec<&str> = asked
                .iter()
                .copied()
                .filter(|s| !published.iter().any(|p| p == s))
                .collect();
            if missing.is_empty() {
                Check::pass(format!("the issuer publishes every scope in SCOPES ({scopes})"))
            } else {
                Check::warn(
                    format!("SCOPES {:?} not in the issuer's scopes_supported", missing.join(" ")),
                    "an issuer may define scopes it does not publish (Okta: the scope's \"Include in public metadata\"); the authorize probe below tells whether they are accepted",
                )
            }
        }
    }
}

/// `end_session_endpoint`, for sign-out at the issuer.
pub fn end_session(doc: &Metadata) -> Check {
    match &doc.end_session_endpoint {
        Some(endpoint) => Check::pass(format!("end_session_endpoint {endpoint}: sign-out also ends the session at the issuer")),
        None => Check::warn(
            "the issuer has no end_session_endpoint: sign-out will be local, the session at the issuer stays",
            "nothing to change in the app; Okta's authorization servers publish one",
        ),
    }
}

/// RS256 among `id_token_signing_alg_values_supported`, when an ID token
/// is asked for: by the implicit response types that name it, and by
/// `code` with the `openid` scope (the token endpoint then sends one).
pub fn id_token_signature(doc: &Metadata, config: &Config) -> Check {
    let rs256 = doc
        .id_token_signing_alg_values_supported
        .as_ref()
        .is_some_and(|algs| algs.iter().any(|a| a == "RS256"));
    let openid = config.scopes.split(' ').any(|s| s == "openid");
    if rs256 {
        Check::pass("the issuer signs ID tokens with RS256")
    } else if config.response_type.wants_id_token() {
        Check::fail(
            "id_token_signing_alg_values_supported does not list RS256, the only algorithm the app checks ID tokens with",
            "configure the issuer to sign ID tokens with RS256, or set RESPONSE_TYPE=token",
        )
    } else if config.response_type.is_code() && openid {
        Check::fail(
            "id_token_signing_alg_values_supported does not list RS256, the only algorithm the app checks ID tokens with (SCOPES has openid, so the token endpoint sends one)",
            "configure the issuer to sign ID tokens with RS256",
        )
    } else if config.response_type.is_code() {
        Check::info("the issuer does not list RS256 for ID tokens; SCOPES has no openid, so the token endpoint sends none")
    } else {
        Check::info(
            "the issuer does not list RS256 for ID tokens; RESPONSE_TYPE token asks for none",
        )
    }
}

/// `"token id_token"` and `"id_token token"` are the same response type.
fn same_words(a: &str, b: &str) -> bool {
    fn words(s: &str) -> Vec<&str> {
        let mut words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
        words.sort_unstable();
        words
    }
    words(a) == words(b)
}

fn list(items: &[String]) -> String {
    let shown: Vec<String> = items
        .iter()
        .map(|i| format!("{:?}", printable(i)))
        .collect();
    format!("[{}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{config, okta_doc, statuses, ISS};
    use super::super::report::Status;
    use super::*;

    #[test]
    fn issuer_must_match_exactly() {
        assert_eq!(issuer_matches(ISS, ISS).status, Status::Pass);
        let check = issuer_matches(&format!("{ISS}/"), ISS);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("ISSUER"), "{check}");
    }

    #[test]
    fn okta_metadata_passes() {
        let checks = metadata_checks(&okta_doc(), &config(&[]));
        assert_eq!(statuses(&checks), [Status::Pass; 5], "{checks:#?}");
    }

    #[test]
    fn metadata_problems() {
        let c = config(&[("RESPONSE_TYPE", "token id_token")]);
        let mut doc = okta_doc();
        doc.response_types_supported = Some(vec!["code".into()]);
        doc.response_modes_supported = Some(vec!["query".into()]);
        doc.scopes_supported = Some(vec!["openid".into()]);
        doc.end_session_endpoint = None;
        doc.id_token_signing_alg_values_supported = Some(vec!["ES256".into()]);
        let checks = metadata_checks(&doc, &c);
        assert_eq!(
            statuses(&checks),
            [
                Status::Fail,
                Status::Fail,
                Status::Warn,
                Status::Warn,
                Status::Fail
            ],
            "{checks:#?}"
        );
        assert!(checks[0].line.contains("RESPONSE_TYPE"));
        assert!(checks[2].line.contains("profile email"), "{}", checks[2]);

        // Absent lists: defaults, or left to the probe.
        let bare = Metadata::parse(br#"{"issuer": "https://x.test"}"#).unwrap();
        let checks = metadata_checks(&bare, &config(&[("RESPONSE_TYPE", "token")]));
        assert_eq!(
            statuses(&checks),
            [
                Status::Warn,
                Status::Pass,
                Status::Info,
                Status::Warn,
                Status::Info
            ],
            "{checks:#?}"
        );
    }

    #[test]
    fn with_dpop_the_issuer_must_offer_es256_proofs() {
        let c = config(&[("RESPONSE_TYPE", "code"), ("DPOP", "1")]);
        let mut doc = okta_doc();
        doc.dpop_signing_alg_values_supported = Some(vec!["RS256".into(), "ES256".into()]);
        let checks = metadata_checks(&doc, &c);
        assert_eq!(statuses(&checks), [Status::Pass; 6], "{checks:#?}");
        doc.dpop_signing_alg_values_supported = Some(vec!["RS256".into()]);
        assert_eq!(dpop(&doc).status, Status::Fail);
        doc.dpop_signing_alg_values_supported = None;
        let check = dpop(&doc);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.fix.as_deref().unwrap().contains("Features"),
            "{check}"
        );
        // Without DPOP the check is not made.
        assert_eq!(metadata_checks(&doc, &config(&[])).len(), 5);
    }

    #[test]
    fn the_code_flow_reads_its_own_response_mode_and_ids() {
        let doc = okta_doc();
        let code = config(&[("RESPONSE_TYPE", "code")]);
        let checks = metadata_checks(&doc, &code);
        assert_eq!(statuses(&checks), [Status::Pass; 5], "{checks:#?}");
        assert_eq!(checks[0].line, "the issuer supports RESPONSE_TYPE \"code\"");
        assert_eq!(checks[1].line, "the issuer supports RESPONSE_MODE query");
        let fragment = config(&[("RESPONSE_TYPE", "code"), ("RESPONSE_MODE", "fragment")]);
        assert_eq!(
            metadata_checks(&doc, &fragment)[1].line,
            "the issuer supports RESPONSE_MODE fragment"
        );

        let mut implicit_only = okta_doc();
        implicit_only.response_types_supported = Some(vec!["id_token token".into()]);
        implicit_only.response_modes_supported = Some(vec!["fragment".into()]);
        implicit_only.id_token_signing_alg_values_supported = Some(vec!["ES256".into()]);
        let checks = metadata_checks(&implicit_only, &code);
        assert_eq!(
            statuses(&checks),
            [
                Status::Fail,
                Status::Fail,
                Status::Pass,
                Status::Pass,
                Status::Fail
            ],
            "{checks:#?}"
        );
        assert!(checks[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("authorization code flow"));
        assert!(
            checks[1].line.contains("RESPONSE_MODE query"),
            "{}",
            checks[1]
        );
        assert!(
            checks[4].line.contains("SCOPES has openid"),
            "{}",
            checks[4]
        );
        // Without openid the token endpoint sends no ID token.
        let no_openid = config(&[("RESPONSE_TYPE", "code"), ("SCOPES", "reports:read")]);
        assert_eq!(
            id_token_signature(&implicit_only, &no_openid).status,
            Status::Info
        );
        // Absent modes: query and fragment are the defaults.
        let bare = Metadata::parse(br#"{"issuer": "https://x.test"}"#).unwrap();
        assert_eq!(
            response_mode(&bare, ResponseType::Code, ResponseMode::Query).status,
            Status::Pass
        );
    }
}
