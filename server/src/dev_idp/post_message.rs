//! `response_mode=okta_post_message`: instead of a redirect, a small page
//! that hands the authorization response to the window that opened it (a
//! popup) or framed it (the hidden iframe of a silent renewal) with
//! `window.postMessage`, as Okta's does.
//!
//! The message is an object of the response parameters (`access_token`,
//! `token_type`, `expires_in`, `scope`, `id_token`, `state`, or `error`,
//! `error_description`, `state`), the shape okta-auth-js reads. It is
//! addressed to the origin of the client's registered `redirect_uri` only,
//! so no other page that framed or opened this one can receive the tokens;
//! the receiving SDK in turn accepts it only from the issuer's origin and
//! with its own `state`.
//!
//! The parameters travel in a JSON data block that the one inline script
//! reads; that script never changes, so the page's Content-Security-Policy
//! allows it by its hash and nothing else runs. `frame-ancestors` lets the
//! client's origin, and only it, frame the page.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The page's only script. Opened as a popup, the page posts to its
/// opener; framed, to its parent; on its own (neither), to nobody.
pub const SCRIPT: &str = "(function(){\
var data=JSON.parse(document.getElementById('okta-response').textContent);\
var target=window.opener||(window.parent!==window?window.parent:null);\
if(target){target.postMessage(data.message,data.targetOrigin);}\
})();";

static SCRIPT_HASH: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(SCRIPT))));

/// The message posted for the response `params`. Every value is a string
/// as in the fragment, except `expires_in`, a number, as Okta's message
/// carries it (the SDK reads it with `Number()` either way).
pub fn message(params: &[(&str, &str)]) -> Value {
    let mut message = Map::new();
    for (name, value) in params {
        let value = match (*name, value.parse::<u64>()) {
            ("expires_in", Ok(seconds)) => Value::from(seconds),
            _ => Value::from(*value),
        };
        message.insert((*name).to_owned(), value);
    }
    Value::Object(message)
}

/// JSON that can sit inside a `<script>` element: `<`, `>` and `&` are
/// written as `\u003c`, `\u003e`, `\u0026`, so neither `</script>` nor
/// `<!--` in a value (`state` is the client's free text) can end or
/// change the block. `JSON.parse` reads the escapes back.
pub fn script_safe_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The page posting `params` to `target_origin` (a bare origin, checked by
/// `html::csp_source`, so it is safe in a header).
pub fn page(target_origin: &str, params: &[(&str, &str)]) -> Response {
    let data = json!({ "targetOrigin": target_origin, "message": message(params) });
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Returning to the application · Dev authorization server</title>\
         <script type=\"application/json\" id=\"okta-response\">{}</script>\
         <script>{SCRIPT}</script></head>\
         <body><p>This page hands the sign-in result to the application \
         that asked for it.</p></body></html>\n",
        script_safe_json(&data)
    );
    let csp = format!(
        "default-src 'none'; script-src {}; frame-ancestors {target_origin}; \
         base-uri 'none'; form-action 'none'",
        *SCRIPT_HASH
    );
    let mut response = (StatusCode::OK, html).into_response();
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
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match HeaderValue::from_str(&csp) {
        Ok(value) => {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        // Never without its CSP: a page carrying tokens that any site
        // could frame is worse than no page.
        Err(_) => {
            tracing::error!("the okta_post_message page's CSP is not a header value");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The sign-in result could not be sent.",
            )
                .into_response();
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_the_parameters_with_a_numeric_expires_in() {
        let m = message(&[
            ("access_token", "a.b.c"),
            ("token_type", "Bearer"),
            ("expires_in", "3600"),
            ("scope", "openid email"),
            ("state", "s"),
        ]);
        assert_eq!(
            m,
            json!({
                "access_token": "a.b.c",
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "openid email",
                "state": "s"
            })
        );
        let error = message(&[
            ("error", "login_required"),
            ("error_description", "The user is not signed in."),
            ("state", "s"),
        ]);
        assert_eq!(error["error"], "login_required");
        assert_eq!(error.as_object().unwrap().len(), 3);
    }

    #[test]
    fn json_in_the_page_cannot_close_its_script_element() {
        let value = json!({ "state": "</script><script>alert(1)</script><!--&" });
        let text = script_safe_json(&value);
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn the_page_posts_to_the_client_origin_under_a_strict_csp() {
        let response = page("http://app.test", &[("state", "s")]);
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(
            csp.contains(&format!("script-src {}", *SCRIPT_HASH)),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors http://app.test;"), "{csp}");
        assert!(h.get("x-frame-options").is_none());
        assert_eq!(h["cache-control"], "no-store");
    }
}
