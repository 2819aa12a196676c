//! The page the hidden renewal iframe lands on. The iframe goes to the
//! issuer's authorize endpoint with `prompt=none` and comes back to the
//! app's registered `/login/callback` (so nothing more needs registering
//! at the issuer); for that one navigation, which the browser marks
//! `Sec-Fetch-Dest: iframe`, the server answers with this small page
//! instead of the whole app. Its only script takes the answer (the
//! fragment with the tokens, or the query with a code) out of the address
//! bar and hands it to the parent window with `postMessage`,
//! addressed to the app's own origin, so no other site can receive it; the
//! app's window checks it as it checks a first sign-in
//! (`app/src/auth/silent.rs`).
//!
//! A browser that does not send `Sec-Fetch-Dest` gets the whole app, whose
//! callback page does the same when it finds itself in a frame.

use std::sync::LazyLock;

use app::auth::renewal::SILENT_MESSAGE_PREFIX as MESSAGE_PREFIX;
use app::routes::CALLBACK as CALLBACK_PATH;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::{engine::general_purpose::STANDARD, Engine};
use sha2::{Digest, Sha256};

/// The page's one script (allowed by its hash in the page's CSP).
static SCRIPT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "(function(){{var a=location.search+location.hash;history.replaceState(null,'',location.pathname);\
         if(parent!==window){{parent.postMessage('{MESSAGE_PREFIX}'+a,location.origin)}}}})();"
    )
});

static PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>Renewing your sign-in</title>\
         <script>{}</script></head><body></body></html>",
        *SCRIPT
    )
});

static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; frame-ancestors 'self'; \
         base-uri 'none'; form-action 'none'"
    );
    HeaderValue::from_str(&csp).expect("the CSP is ASCII")
});

fn is_silent_callback(request: &Request) -> bool {
    request.method() == Method::GET
        && request.uri().path() == CALLBACK_PATH
        && request
            .headers()
            .get("sec-fetch-dest")
            .is_some_and(|v| v.as_bytes() == b"iframe")
}

/// The middleware: answers the iframe's navigation to the callback with the
/// small page; every other request goes on. Both callback answers vary by
/// `Sec-Fetch-Dest`.
pub async fn silent_callback(request: Request, next: Next) -> Response {
    let callback = request.uri().path() == CALLBACK_PATH;
    let mut response = if is_silent_callback(&request) {
        page()
    } else {
        next.run(request).await
    };
    if callback {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("sec-fetch-dest"));
    }
    response
}

fn page() -> Response {
    let mut response = Response::new(Body::from(PAGE.as_str()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_allowed_by_its_hash_and_nothing_else() {
        let csp = CSP.to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(csp.contains("frame-ancestors 'self'"));
        assert!(PAGE.contains(SCRIPT.as_str()));
        // It posts to this origin only, never to '*'.
        assert!(SCRIPT.contains("location.origin)"));
        assert!(!SCRIPT.contains("'*'"));
    }
}
