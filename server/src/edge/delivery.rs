//! How the site's bytes reach the browser: the build's files under `/pkg/`
//! precompressed and cached for good, everything else compressed on the fly
//! when it is worth it, and a cache policy per kind of answer.
//!
//! | answer | `Cache-Control` | compression |
//! |---|---|---|
//! | `/pkg/…` (wasm, JS, CSS; hashed names) | `public, max-age=31536000, immutable` | the build's `.br` / `.gz` files (`cargo leptos build --release --precompress`), else on the fly |
//! | `/pkg/…` when names are not hashed | `no-cache` | as above |
//! | HTML pages | `no-cache` | on the fly above [`COMPRESS_ABOVE`] bytes |
//! | `/api/…` (server functions) | `no-store`: they carry personal data | on the fly above [`COMPRESS_ABOVE`] bytes |
//! | other files (favicon) | `public, max-age=3600` | on the fly |

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use crate::edge::bearer_layer::API_PREFIX;

/// Smaller answers are sent as they are: below about one packet, the
/// compressed form saves nothing on the wire and costs CPU each time.
pub const COMPRESS_ABOVE: u16 = 1024;

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const SHORT: HeaderValue = HeaderValue::from_static("public, max-age=3600");
/// Bytes read from a file at a time (tower-http's default is 64 KiB): an
/// open file keeps a buffer this size, and a slow reader holds it.
pub const FILE_CHUNK: usize = 8 * 1024;

/// Serves `site_root/pkg_dir` at `/{pkg_dir}`, answering with the
/// precompressed `.br` or `.gz` copy of a file when the browser accepts it
/// (with `Vary: Accept-Encoding`). With `hashed` names (cargo-leptos
/// `hash-files`) a file's name changes with its content, so a successful
/// answer may be cached for a year.
pub fn pkg_router<S: Clone + Send + Sync + 'static>(
    site_root: &str,
    pkg_dir: &str,
    hashed: bool,
) -> Router<S> {
    let files = ServeDir::new(Path::new(site_root).join(pkg_dir))
        // Small reads, so a client that does not read its answer holds
        // little of the file in memory (`crate::edge::serve::WRITE_BUFFER`).
        .with_buf_chunk_size(FILE_CHUNK)
        .precompressed_br()
        .precompressed_gzip();
    let cache = if hashed { IMMUTABLE } else { NO_CACHE };
    Router::new()
        .nest_service(&format!("/{pkg_dir}"), files)
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let cache = cache.clone();
                async move {
                    let mut response = next.run(request).await;
                    let found = matches!(
                        response.status(),
                        StatusCode::OK | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
                    );
                    let headers = response.headers_mut();
                    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                    headers.insert(header::CACHE_CONTROL, if found { cache } else { NO_STORE });
                    response
                }
            },
        ))
}

/// Brotli or gzip, whichever the browser prefers, for answers above
/// [`COMPRESS_ABOVE`] bytes (or of unknown length, such as streamed HTML)
/// that are not already encoded and are not images, event streams or gRPC.
pub fn compression() -> CompressionLayer<impl Predicate> {
    let predicate = SizeAbove::new(COMPRESS_ABOVE)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    // Only the br and gzip features of tower-http are enabled; its default
    // Brotli level for this is 4, as nginx's, not the slow 11.
    CompressionLayer::new().compress_when(predicate)
}

/// Puts the cache policy of the table above on every answer that has none
/// yet (`/api/` answers always get `no-store`).
pub async fn cache_policy(request: Request, next: Next) -> Response<Body> {
    let api = request.uri().path().starts_with(API_PREFIX);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if api {
        headers.insert(header::CACHE_CONTROL, NO_STORE);
    } else if !headers.contains_key(header::CACHE_CONTROL) {
        let html = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let value = if html || response.status() != StatusCode::OK {
            NO_CACHE
        } else {
            SHORT
        };
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
