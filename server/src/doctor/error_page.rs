//! Pages the authorize endpoint shows instead of redirecting back: an
//! issuer must not send the browser to a redirect URI it cannot trust, so
//! an unknown client or an unregistered redirect URI gets a page of the
//! issuer's own (Okta's 400 page, the dev server's sign-in page with an
//! alert). Its words tell which setting it blames.

use super::report::{printable, Check};

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

/// What a page the authorize endpoint showed instead of redirecting means:
/// HTTP `status`, the start of the page `body`, for a request with
/// `client_id` and `redirect_uri`.
pub fn error_page(status: u16, body: &str, client_id: &str, redirect_uri: &str) -> Check {
    if body.contains("E0000015") {
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
    let says = alert_text(body)
        .map(|text| format!(" (the page says: {text})"))
        .unwrap_or_default();
    let client_id = printable(client_id);
    let redirect_uri = printable(redirect_uri);
    match blame(body) {
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
    use super::*;

    #[test]
    fn pages_blame_the_client_or_the_redirect_uri() {
        let okta_client = "<h1>400 Bad Request</h1><p>Error Code: invalid_client</p><p>Description: Invalid value for 'client_id' parameter.</p>";
        let okta_redirect = "<p>Error Code: invalid_request</p><p>Description: The 'redirect_uri' parameter must be a Login redirect URI in the client app settings: https://x-admin.okta.com/admin/app/oidc_client/instance/0oa1#tab-general</p>";
        assert_eq!(blame(okta_client), Blame::ClientId);
        assert_eq!(blame(okta_redirect), Blame::RedirectUri);
        assert_eq!(blame("<p>Something went wrong</p>"), Blame::Either);
    }
}
