//! OpenID Connect discovery of the issuer: where its keys are, and the
//! endpoints a client needs.
//!
//! The document's `issuer` must equal the configured issuer exactly
//! (OpenID Connect Discovery §4.3); a mismatch means the configuration or
//! the document is wrong, and start-up stops rather than trust either.

use serde::Deserialize;
use url::Url;

use super::error::InitError;
use super::fetch::{checked_url, HttpClient};

/// The parts of `/.well-known/openid-configuration` this server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: Url,
    pub authorization_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    /// Where the authorization code flow exchanges its code and refreshes.
    pub token_endpoint: Option<String>,
    /// Where sign-out revokes a refresh token (RFC 7009).
    pub revocation_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct RawDiscovery {
    issuer: String,
    jwks_uri: String,
    authorization_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

/// The discovery URL of `issuer`: `{issuer}/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> Result<Url, InitError> {
    let base = checked_url("ISSUER", issuer)?;
    let with_path = format!(
        "{}/.well-known/openid-configuration",
        base.as_str().trim_end_matches('/')
    );
    Url::parse(&with_path).map_err(|err| InitError::BadUrl {
        what: "ISSUER",
        url: issuer.to_string(),
        reason: err.to_string(),
    })
}

/// Fetches and checks the discovery document of `issuer`.
pub async fn discover(http: &HttpClient, issuer: &str) -> Result<Discovery, InitError> {
    let url = discovery_url(issuer)?;
    let fetched = http.get(&url).await.map_err(|source| InitError::Fetch {
        url: url.to_string(),
        source,
    })?;
    parse_discovery(&url, issuer, &fetched.body)
}

/// Checks a fetched discovery document `body` (from `url`) against `issuer`.
pub fn parse_discovery(url: &Url, issuer: &str, body: &[u8]) -> Result<Discovery, InitError> {
    let raw: RawDiscovery = serde_json::from_slice(body).map_err(|err| InitError::BadDocument {
        url: url.to_string(),
        what: "OpenID Connect discovery document",
        reason: err.to_string(),
    })?;
    if raw.issuer != issuer {
        return Err(InitError::IssuerMismatch {
            expected: issuer.to_string(),
            found: raw.issuer,
        });
    }
    let jwks_uri = checked_url("jwks_uri", &raw.jwks_uri)?;
    // The browser is sent to these, or posts to them, with secrets (state
    // and nonce, a code and its verifier, refresh tokens, at sign-out the
    // ID token): https only, except on loopback.
    let endpoint = |what: &'static str, value: Option<String>| match value {
        Some(value) => checked_url(what, &value).map(|_| Some(value)),
        None => Ok(None),
    };
    Ok(Discovery {
        issuer: raw.issuer,
        jwks_uri,
        authorization_endpoint: endpoint("authorization_endpoint", raw.authorization_endpoint)?,
        end_session_endpoint: endpoint("end_session_endpoint", raw.end_session_endpoint)?,
        token_endpoint: endpoint("token_endpoint", raw.token_endpoint)?,
        revocation_endpoint: endpoint("revocation_endpoint", raw.revocation_endpoint)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://dev-1.okta.com/oauth2/default";

    fn url() -> Url {
        discovery_url(ISS).unwrap()
    }

    #[test]
    fn builds_the_well_known_url() {
        assert_eq!(
            url().as_str(),
            "https://dev-1.okta.com/oauth2/default/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("http://localhost:3100/oauth2/default/")
                .unwrap()
                .as_str(),
            "http://localhost:3100/oauth2/default/.well-known/openid-configuration"
        );
        assert!(discovery_url("http://dev-1.okta.com/oauth2/default").is_err());
    }

    #[test]
    fn reads_a_document() {
        let body = format!(
            r#"{{"issuer":"{ISS}","jwks_uri":"{ISS}/v1/keys","authorization_endpoint":"{ISS}/v1/authorize","end_session_endpoint":"{ISS}/v1/logout","response_types_supported":["token"]}}"#
        );
        let doc = parse_discovery(&url(), ISS, body.as_bytes()).unwrap();
        assert_eq!(doc.jwks_uri.as_str(), format!("{ISS}/v1/keys"));
        assert_eq!(doc.end_session_endpoint, Some(format!("{ISS}/v1/logout")));
    }

    #[test]
    fn issuer_must_match_exactly() {
        let body = format!(r#"{{"issuer":"{ISS}/","jwks_uri":"{ISS}/v1/keys"}}"#);
        assert!(matches!(
            parse_discovery(&url(), ISS, body.as_bytes()),
            Err(InitError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn the_browsers_endpoints_must_be_https_off_loopback() {
        for what in [
            "authorization_endpoint",
            "end_session_endpoint",
            "token_endpoint",
            "revocation_endpoint",
        ] {
            for bad in [
                "http://dev-1.okta.com/oauth2/default/v1/x",
                "javascript:alert(1)",
                "ftp://dev-1.okta.com/x",
                "not a url",
            ] {
                let body = format!(
                    r#"{{"issuer":"{ISS}","jwks_uri":"{ISS}/v1/keys","{what}":{}}}"#,
                    serde_json::to_string(bad).unwrap()
                );
                let err = parse_discovery(&url(), ISS, body.as_bytes()).unwrap_err();
                assert!(
                    matches!(
                        err,
                        InitError::InsecureUrl { what: w, .. } | InitError::BadUrl { what: w, .. } if w == what
                    ),
                    "{what} = {bad}: {err}"
                );
            }
        }
        // Loopback may be plain http (the embedded development server).
        let local = "http://localhost:3100/oauth2/default";
        let body = format!(
            r#"{{"issuer":"{local}","jwks_uri":"{local}/v1/keys","authorization_endpoint":"{local}/v1/authorize","end_session_endpoint":"{local}/v1/logout"}}"#
        );
        let doc = parse_discovery(&url(), local, body.as_bytes()).unwrap();
        assert_eq!(doc.end_session_endpoint, Some(format!("{local}/v1/logout")));
    }

    #[test]
    fn jwks_uri_must_be_https() {
        let body = format!(r#"{{"issuer":"{ISS}","jwks_uri":"http://dev-1.okta.com/keys"}}"#);
        assert!(matches!(
            parse_discovery(&url(), ISS, body.as_bytes()),
            Err(InitError::InsecureUrl {
                what: "jwks_uri",
                ..
            })
        ));
    }

    #[test]
    fn garbage_is_a_bad_document() {
        assert!(matches!(
            parse_discovery(&url(), ISS, b"<html>"),
            Err(InitError::BadDocument { .. })
        ));
        assert!(matches!(
            parse_discovery(&url(), ISS, format!(r#"{{"issuer":"{ISS}"}}"#).as_bytes()),
            Err(InitError::BadDocument { .. })
        ));
    }
}
