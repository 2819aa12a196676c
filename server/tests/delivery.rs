//! How the site reaches the browser, through the real app router: the
//! build's precompressed `/pkg/` files with `Content-Encoding`, `Vary` and
//! a year-long `Cache-Control` for hashed names; HTML compressed on the fly
//! and `no-cache`; small API answers sent as they are, `no-store`; and the
//! frame rules around the callback page that the renewal iframe lands on.
//!
//! Run: `cargo test -p server --test delivery`

#[path = "common/bearer_fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use fixtures::*;
use leptos::prelude::LeptosOptions;
use server::bearer::ManualClock;
use server::browser_auth::BrowserAuth;
use tower::ServiceExt;

const WASM: &[u8] = b"\0asm-the-uncompressed-module-bytes";
const WASM_BR: &[u8] = b"brotli-bytes";
const WASM_GZ: &[u8] = b"gzip-bytes";

/// A site folder as `cargo leptos build --release --precompress` leaves it,
/// one per test.
fn site() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let root = std::env::temp_dir().join(format!("delivery-test-{}-{n}", std::process::id()));
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("app.0123abcd.wasm"), WASM).unwrap();
    std::fs::write(pkg.join("app.0123abcd.wasm.br"), WASM_BR).unwrap();
    std::fs::write(pkg.join("app.0123abcd.wasm.gz"), WASM_GZ).unwrap();
    std::fs::write(
        root.join("favicon.svg"),
        "<svg xmlns='http://www.w3.org/2000/svg'/>",
    )
    .unwrap();
    root
}

async fn app_router(site_root: &Path) -> (Router, JwksServer) {
    let [k1, _, _] = keys();
    let server = JwksServer::start(jwks(&[k1])).await;
    let validator = validator_for(&server, Arc::new(ManualClock::starting_now())).await;
    let issuer = server.issuer();
    let config = browser_config(&issuer);
    let options = LeptosOptions::builder()
        .output_name("okta-implicit")
        .site_root(site_root.to_str().unwrap())
        .build();
    let router = server::app_router(
        options,
        validator.clone(),
        BrowserAuth::new(config, validator),
    );
    (router, server)
}

async fn get(
    router: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 22).await.unwrap();
    (parts.status, parts.headers, body.to_vec())
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(&name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn hashed_pkg_files_go_out_precompressed_and_cached_for_a_year() {
    let root = site();
    let pkg: Router = server::edge::delivery::pkg_router(root.to_str().unwrap(), "pkg", true);
    let path = "/pkg/app.0123abcd.wasm";

    for (accept, encoding, body) in [
        ("br, gzip", "br", WASM_BR),
        ("gzip, deflate", "gzip", WASM_GZ),
        ("identity", "", WASM),
    ] {
        let (status, headers, got) = get(&pkg, path, &[("accept-encoding", accept)]).await;
        assert_eq!(status, StatusCode::OK, "{accept}");
        assert_eq!(
            header(&headers, header::CONTENT_ENCODING),
            encoding,
            "{accept}"
        );
        assert_eq!(got, body, "{accept}");
        assert_eq!(header(&headers, header::CONTENT_TYPE), "application/wasm");
        assert_eq!(header(&headers, header::VARY), "accept-encoding");
        assert_eq!(
            header(&headers, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
    }

    // A missing file is not cached, or a later build's file would be hidden.
    let (status, headers, _) = get(&pkg, "/pkg/app.ffffffff.wasm", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-store");

    // Names without a content hash must be checked again each time.
    let unhashed: Router = server::edge::delivery::pkg_router(root.to_str().unwrap(), "pkg", false);
    let (_, headers, _) = get(&unhashed, path, &[("accept-encoding", "br")]).await;
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header(&headers, header::CONTENT_ENCODING), "br");
}

#[tokio::test]
async fn pages_are_compressed_on_the_fly_and_revalidated() {
    let root = site();
    let (router, _issuer) = app_router(&root).await;

    let (status, headers, body) = get(&router, "/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, header::CONTENT_ENCODING), "gzip");
    assert!(header(&headers, header::VARY).contains("accept-encoding"));
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");

    // Without Accept-Encoding the page is sent as it is.
    let (_, headers, body) = get(&router, "/", &[]).await;
    assert_eq!(header(&headers, header::CONTENT_ENCODING), "");
    assert!(String::from_utf8(body)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));

    // Other site files: cached briefly (their names carry no hash).
    let (status, headers, _) = get(&router, "/favicon.svg", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, header::CACHE_CONTROL),
        "public, max-age=3600"
    );

    // The app router serves /pkg/ the same way.
    let (status, headers, body) = get(
        &router,
        "/pkg/app.0123abcd.wasm",
        &[("accept-encoding", "br")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, WASM_BR);
    assert_eq!(header(&headers, header::CONTENT_ENCODING), "br");
}

#[tokio::test]
async fn small_api_answers_are_not_compressed_and_never_cached() {
    let root = site();
    let (router, _issuer) = app_router(&root).await;
    let request = Request::post("/api/health")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT_ENCODING, "br, gzip")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn only_the_callback_may_be_framed_and_only_by_the_app() {
    let root = site();
    let (router, issuer) = app_router(&root).await;
    let issuer_origin = issuer.issuer();
    let issuer_origin =
        &issuer_origin[..issuer_origin.find("/oauth2").unwrap_or(issuer_origin.len())];

    // The hidden renewal iframe: the small page, nothing else.
    let (status, headers, body) =
        get(&router, "/login/callback", &[("sec-fetch-dest", "iframe")]).await;
    assert_eq!(status, StatusCode::OK);
    let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(header(&headers, header::X_FRAME_OPTIONS), "SAMEORIGIN");
    assert_eq!(header(&headers, header::CACHE_CONTROL), "no-store");
    assert!(header(&headers, header::VARY).contains("sec-fetch-dest"));
    let page = String::from_utf8(body).unwrap();
    // It hands over the query (a code) and the fragment (tokens) alike.
    assert!(page.contains("var a=location.search+location.hash"));
    assert!(page.contains("parent.postMessage('okta-implicit.silent-callback'+a,location.origin)"));
    assert!(!page.contains("/pkg/"), "the small page loads no app code");

    // The callback as a top-level page: the app, frameable by the app only.
    let (_, headers, body) = get(
        &router,
        "/login/callback",
        &[("sec-fetch-dest", "document")],
    )
    .await;
    let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(header(&headers, header::X_FRAME_OPTIONS), "SAMEORIGIN");
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("id=\"auth-config\""));

    // Every other page: never framed; frames only from the issuer.
    for path in ["/", "/profile", "/nowhere"] {
        let (_, headers, _) = get(&router, path, &[("sec-fetch-dest", "iframe")]).await;
        let csp = header(&headers, header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains(&format!("frame-src 'self' {issuer_origin};")),
            "{path}: {csp}"
        );
        assert_eq!(header(&headers, header::X_FRAME_OPTIONS), "DENY", "{path}");
    }
}
