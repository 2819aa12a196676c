//! The HTML pages (sign-in form, error, signed out, not found) and the
//! headers every page is sent with. Everything put into a page goes
//! through [`escape`].

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The only style on the pages, allowed by its hash in the CSP rather
/// than with `'unsafe-inline'`.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d1d21}\
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.5rem;margin-top:0}\
label{display:block;margin:1rem 0 .25rem;font-weight:600}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}\
.buttons{display:flex;gap:.5rem;margin-top:1.5rem}\
button{padding:.5rem 1rem;font-size:1rem;cursor:pointer}\
.error{color:#a4000f;background:#fde8ea;padding:.5rem;border-radius:4px}\
.dev{margin-top:2rem;font-size:.9rem;border-top:1px solid #ddd}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem .25rem 0}\
code{font-size:.9em;white-space:nowrap}";

static STYLE_HASH: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(STYLE))));

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sends `body` as a page that may not be framed, cached, or leak its URL
/// (which holds the authorization request) in a `Referer`.
///
/// `form_target` is the origin a form on the page ends up at: Chrome applies
/// `form-action` to the redirect that follows a form post too, so the
/// client's origin must be allowed besides `'self'`.
fn page(status: StatusCode, title: &str, body: &str, form_target: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Dev authorization server</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n",
        escape(title)
    );
    let form_action = match form_target {
        Some(target) => format!("'self' {target}"),
        None => "'none'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src {}; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'",
        *STYLE_HASH
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The CSP is made of constants and a checked origin (see `csp_source`);
    // should it ever be unsendable, a page without it is still a page.
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// A CSP source expression for the origin of `uri`, if it has a plain one.
pub fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let origin = url.origin();
    if !origin.is_tuple() {
        return None;
    }
    let origin = origin.ascii_serialization();
    origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:/-[]".contains(&b))
        .then_some(origin)
}

/// A request that cannot be answered by redirecting to the client: shown
/// to the person in the browser instead.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p id=\"error\" role=\"alert\" class=\"error\">{}</p>\
         <p>Go back to the application and try again.</p>",
        escape(title),
        escape(message)
    );
    page(status, title, &body, None)
}

pub fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

pub fn signed_out_page() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1>You are signed out</h1>\
         <p>Your session at the development authorization server has ended.</p>",
        None,
    )
}

/// One row of the demo users table.
pub struct DemoUser<'a> {
    pub login: &'a str,
    pub password: &'a str,
    pub scopes: String,
}

/// What the sign-in page shows.
pub struct SignInView<'a> {
    /// Path the form posts to.
    pub action: &'a str,
    /// Id of the pending authorization request, echoed back by the form.
    pub request_id: &'a str,
    pub client_name: &'a str,
    /// Pre-filled username (`login_hint`, or what was typed last time).
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub demo_users: Vec<DemoUser<'a>>,
    /// Origin of the redirect URI, for `form-action`.
    pub redirect_origin: Option<String>,
}

pub fn sign_in_page(view: &SignInView<'_>) -> Response {
    let error = view.error.map_or_else(String::new, |e| {
        format!(
            "<p id=\"error\" role=\"alert\" class=\"error\">{}</p>",
            escape(e)
        )
    });
    let rows: String = view
        .demo_users
        .iter()
        .map(|u| {
            format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                escape(u.login),
                escape(u.password),
                escape(&u.scopes)
            )
        })
        .collect();
    let demo = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "<section class=\"dev\" aria-labelledby=\"demo-users\">\
             <h2 id=\"demo-users\">Demo users</h2>\
             <p>These passwords are shown only because this is a development \
             authorization server. A real one never shows them.</p>\
             <table><thead><tr><th>Username</th><th>Password</th><th>Scopes</th></tr></thead>\
             <tbody>{rows}</tbody></table></section>"
        )
    };
    let autofocus_user = if view.username.is_empty() {
        " autofocus"
    } else {
        ""
    };
    let autofocus_password = if view.username.is_empty() {
        ""
    } else {
        " autofocus"
    };
    let body = format!(
        "<h1>Sign in</h1>\
         <p>to continue to <strong>{client}</strong></p>\
         {error}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{username}\" \
         autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\"{autofocus_user}>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\"{autofocus_password}>\
         <div class=\"buttons\">\
         <button type=\"submit\" id=\"sign-in\" name=\"action\" value=\"sign-in\">Sign in</button>\
         <button type=\"submit\" id=\"cancel\" name=\"action\" value=\"cancel\">Cancel</button>\
         </div></form>{demo}",
        client = escape(view.client_name),
        action = escape(view.action),
        request = escape(view.request_id),
        username = escape(view.username),
    );
    page(
        StatusCode::OK,
        "Sign in",
        &body,
        view.redirect_origin.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn csp_sources_are_plain_origins() {
        assert_eq!(
            csp_source("http://localhost:3000/login/callback?x=1").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            csp_source("https://[::1]:8443/cb").as_deref(),
            Some("https://[::1]:8443")
        );
        assert_eq!(csp_source("com.example.app:/callback"), None);
        assert_eq!(csp_source("not a uri"), None);
    }

    #[test]
    fn pages_carry_the_security_headers() {
        let response = error_page(StatusCode::BAD_REQUEST, "Bad", "<script>");
        let h = response.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains(&*STYLE_HASH));
    }
}
