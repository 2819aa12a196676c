//! What the settings tell before and besides the issuer's answers:
//! `ISSUER` itself, whether it is an Okta org authorization server (from
//! its host, or its layout once discovery has been read), whether
//! `CLIENT_ID` looks like Okta's, and whether `AUDIENCE` can be known.

use url::Url;

use crate::bearer::fetch::checked_url;

use super::discovery::Metadata;
use super::report::{printable, Check};

/// `ISSUER` as the server reads it: https, or http on a loopback host.
pub fn issuer_setting(issuer: &str) -> Check {
    match checked_url("ISSUER", issuer) {
        Ok(url) if url.scheme() == "https" => {
            Check::pass(format!("ISSUER {issuer} is an https URL"))
        }
        Ok(_) => Check::pass(format!(
            "ISSUER {issuer} is an http URL on a loopback host (allowed for development)"
        )),
        // Config refuses these before the checks start.
        Err(err) => Check::fail(
            err.to_string(),
            "set ISSUER to an https URL (http only for localhost)",
        ),
    }
}

/// `ISSUER` unset: the server runs the embedded development authorization
/// server on `dev_addr` (`DEV_IDP_ADDR`); the run checks one of its own at
/// `checked_issuer`.
pub fn embedded_issuer(dev_addr: &str, checked_issuer: &str) -> Check {
    Check::pass(format!(
        "ISSUER is not set: the server uses the embedded development authorization server \
         (on {dev_addr}); checking one started for this check at {checked_issuer}"
    ))
}

/// Okta's own domains.
pub fn is_okta_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    ["okta.com", "oktapreview.com", "okta-emea.com"]
        .iter()
        .any(|domain| host.ends_with(&format!(".{domain}")))
}

/// Whether `path` names a custom authorization server: `/oauth2/<id>`.
fn names_custom_server(path: &str) -> bool {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment == "oauth2" {
            return segments.next().is_some_and(|id| id != "v1");
        }
    }
    false
}

/// Warns when `ISSUER` is an Okta org authorization server: on an Okta
/// domain, or laid out as one according to its discovery document `doc`
/// (its endpoints under `{issuer}/oauth2/v1/`, which is how an org server
/// behind a custom domain shows itself), and with no `/oauth2/<id>` in its
/// path. `None` for any other issuer.
pub fn org_authorization_server(issuer: &Url, doc: Option<&Metadata>) -> Option<Check> {
    let okta_host = issuer.host_str().is_some_and(is_okta_host);
    let org_layout = doc.is_some_and(|doc| {
        let org_base = format!("{}/oauth2/v1/", doc.issuer.trim_end_matches('/'));
        [&doc.authorization_endpoint, &doc.jwks_uri]
            .into_iter()
            .flatten()
            .any(|endpoint| endpoint.starts_with(&org_base))
    });
    if !(okta_host || org_layout) {
        return None;
    }
    Some(if names_custom_server(issuer.path()) {
        Check::pass("ISSUER is an Okta custom authorization server (/oauth2/<id>), whose access tokens are meant for your API")
    } else {
        Check::warn(
            "ISSUER is an Okta org authorization server: its access tokens are for Okta's own APIs and cannot be validated by your API",
            "use a custom authorization server, e.g. ISSUER=https://<org>.okta.com/oauth2/default (docs/okta.md § 1)",
        )
    })
}

/// On an Okta domain, `CLIENT_ID` should look like Okta's client ids:
/// `0oa` and 17 letters or digits.
pub fn okta_client_id(issuer: &Url, client_id: &str) -> Option<Check> {
    if !issuer.host_str().is_some_and(is_okta_host) {
        return None;
    }
    let rest = client_id.strip_prefix("0oa").unwrap_or("");
    Some(
        if rest.len() == 17 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Check::pass("CLIENT_ID looks like an Okta client id")
        } else {
            Check::warn(
                format!(
                    "CLIENT_ID {:?} does not look like an Okta client id (0oa and 17 letters or digits)",
                    printable(client_id)
                ),
                "copy the Client ID from the app's General tab (Client Credentials), not its name or the app's URL",
            )
        },
    )
}

/// Whether `AUDIENCE` is what the issuer puts in access tokens, as far as
/// that can be known without signing in.
pub fn audience_check(
    audience: &str,
    known: Option<&str>,
    okta_host: bool,
    token_given: bool,
) -> Check {
    match known {
        Some(known) if known == audience => Check::pass(format!(
            "AUDIENCE {audience:?} is the aud of this issuer's access tokens"
        )),
        Some(known) => Check::fail(
            format!("the issuer puts aud {known:?} in its access tokens, but AUDIENCE is {audience:?}"),
            format!("set AUDIENCE to {known:?} (or leave it unset for api://default)"),
        ),
        None if token_given => Check::info(format!(
            "AUDIENCE {audience:?} is checked against the token's aud below"
        )),
        None if okta_host => Check::warn(
            format!("AUDIENCE {audience:?} cannot be checked without a token: Okta publishes an authorization server's audience nowhere public"),
            "compare it with the Audience column of Security > API > Authorization Servers in the Admin Console (api://default for default), or run doctor with --token -",
        ),
        None => Check::warn(
            format!("AUDIENCE {audience:?} cannot be checked without a token: the issuer does not publish the audience of its access tokens"),
            "run doctor with --token - and an access token from a sign-in to check it",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{okta_doc, ISS};
    use super::super::report::Status;
    use super::*;

    #[test]
    fn okta_hosts() {
        for host in [
            "dev-1.okta.com",
            "x.OKTAPREVIEW.com",
            "integrator-1.okta-emea.com",
        ] {
            assert!(is_okta_host(host), "{host}");
        }
        for host in ["okta.com.evil.test", "login.example.com", "localhost"] {
            assert!(!is_okta_host(host), "{host}");
        }
    }

    #[test]
    fn org_authorization_server_is_warned_about() {
        let url = |u: &str| Url::parse(u).unwrap();
        let custom = org_authorization_server(&url(ISS), None).unwrap();
        assert_eq!(custom.status, Status::Pass);

        // An Okta domain is enough, before discovery.
        let org = "https://integrator-1234567.okta.com";
        let check = org_authorization_server(&url(org), None).unwrap();
        assert_eq!(check.status, Status::Warn);
        assert!(check.line.contains("org authorization server"), "{check}");
        assert!(check.fix.unwrap().contains("/oauth2/default"));

        // An org server behind a custom domain shows itself by its layout.
        let custom_domain = "https://login.example.com";
        let mut doc = okta_doc();
        doc.issuer = custom_domain.into();
        doc.authorization_endpoint = Some(format!("{custom_domain}/oauth2/v1/authorize"));
        doc.jwks_uri = Some(format!("{custom_domain}/oauth2/v1/keys"));
        assert_eq!(org_authorization_server(&url(custom_domain), None), None);
        let check = org_authorization_server(&url(custom_domain), Some(&doc)).unwrap();
        assert_eq!(check.status, Status::Warn);

        // Any other OpenID Connect issuer is none of this check's business.
        let other = "https://accounts.example.com";
        doc.issuer = other.into();
        doc.authorization_endpoint = Some(format!("{other}/o/oauth2/v2/auth"));
        doc.jwks_uri = Some(format!("{other}/oauth2/v3/certs"));
        assert_eq!(org_authorization_server(&url(other), Some(&doc)), None);
        assert!(names_custom_server("/oauth2/aus1a2b3c4"));
        assert!(!names_custom_server("/oauth2/v1"));
        assert!(!names_custom_server("/"));
    }

    #[test]
    fn okta_client_ids() {
        let okta = Url::parse(ISS).unwrap();
        assert_eq!(
            okta_client_id(&okta, "0oa1b2c3d4e5f6g7h8i9")
                .unwrap()
                .status,
            Status::Pass
        );
        for bad in ["0oa1b2c3", "my-app", "0oa1b2c3d4e5f6g7h8i-"] {
            assert_eq!(
                okta_client_id(&okta, bad).unwrap().status,
                Status::Warn,
                "{bad}"
            );
        }
        let other = Url::parse("http://localhost:3100/oauth2/default").unwrap();
        assert_eq!(okta_client_id(&other, "0oa-dev-spa"), None);
    }

    #[test]
    fn audience() {
        assert_eq!(
            audience_check("api://default", Some("api://default"), false, false).status,
            Status::Pass
        );
        let wrong = audience_check("api://mine", Some("api://default"), false, false);
        assert_eq!(wrong.status, Status::Fail);
        assert!(wrong.fix.unwrap().contains("api://default"));
        let okta = audience_check("api://default", None, true, false);
        assert_eq!(okta.status, Status::Warn);
        assert!(okta.fix.unwrap().contains("Admin Console"));
        assert_eq!(
            audience_check("api://default", None, false, true).status,
            Status::Info
        );
    }
}
