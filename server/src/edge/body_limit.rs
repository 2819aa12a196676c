//! The request-body limit (`BODY_LIMIT_BYTES`): a body larger than the limit
//! is answered `413 Payload Too Large` with the API's JSON error
//! (`{"error":"payload_too_large","limit":…}`), and the rest of it is never
//! read.
//!
//! A declared `Content-Length` over the limit is refused before a byte of
//! the body is read. A body without a length (chunked) is read up to the
//! limit and refused at the first byte past it; one within the limit is
//! handed on already read, which costs nothing here: every handler of the
//! app reads its whole (small) body anyway. Without this layer, a server
//! function read up to axum's default 2 MB and answered 400, its decoding
//! error.

use app::error::ssr::error_response;
use app::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// The largest body accepted, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn limit_body(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    match declared_length(&request) {
        Some(length) if length > limit.0 as u64 => return too_large(limit),
        // hyper ends a body at its declared length, so it cannot overrun.
        Some(_) => return next.run(request).await,
        None => {}
    }
    if hyper::body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match Limited::new(body, limit.0).collect().await {
        Ok(collected) => {
            let body = Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Err(err) if err.is::<LengthLimitError>() => too_large(limit),
        // The client went away or sent a broken chunked encoding.
        Err(err) => {
            tracing::debug!(%err, "request body could not be read");
            error_response(&ApiError::InvalidRequest {
                error_description: "the request body could not be read".into(),
            })
        }
    }
}

/// The `Content-Length` of `request`, if it has one (hyper has already
/// refused a malformed one).
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large(limit: BodyLimit) -> Response {
    let mut response = error_response(&ApiError::PayloadTooLarge {
        limit: limit.0 as u64,
    });
    // The unread rest leaves the connection unusable: say so, rather than
    // let the client find out when hyper closes it.
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
