//! What wraps every request, outermost: its id, its tracing span and, with
//! metrics on, its duration.
//!
//! - **Request id**: an incoming `X-Request-Id` is kept when well-formed
//!   (1–64 characters of `A-Z a-z 0-9 . _ -`, what nginx's `$request_id`
//!   and UUIDs are made of), else one is made up: a random per-process
//!   prefix and a counter, unique across instances without a random draw
//!   per request. Every answer carries it back in `X-Request-Id`.
//! - **Span**: `request{request_id, route}` at INFO, so every line logged
//!   while the request is served carries its id (the JSON format puts it
//!   under `"span"`). Neither the path nor the query is in it: the query
//!   may hold a token (refused, but not to be logged).
//! - **Duration**: from the request's head to its answer's head, into
//!   [`Metrics`]'s histogram under the route's fixed name.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::ops::telemetry::{route_of, Metrics, ROUTES};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether an incoming `X-Request-Id` may be kept: 1 to 64 characters of
/// `A-Z a-z 0-9 . _ -`. Anything else (empty, long, spaces, quotes,
/// control characters) is replaced, so a log line never carries what a
/// client chose to put there beyond a plain token.
pub fn is_well_formed(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Makes up request ids: `<16 random hex digits>-<counter>`.
#[derive(Debug)]
struct Ids {
    prefix: u64,
    next: AtomicU64,
}

impl Ids {
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The string's buffer becomes the header's: one allocation.
        let id = format!("{:016x}-{n:x}", self.prefix);
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id)).expect("hex digits and a dash")
    }
}

/// The layer; install it last, so it wraps everything else.
#[derive(Clone, Debug)]
pub struct RequestSpanLayer {
    ids: Arc<Ids>,
    metrics: Option<Metrics>,
}

impl RequestSpanLayer {
    /// With `metrics`, every request's duration is recorded there.
    pub fn new(metrics: Option<Metrics>) -> RequestSpanLayer {
        RequestSpanLayer {
            ids: Arc::new(Ids {
                prefix: rand::random(),
                next: AtomicU64::new(0),
            }),
            metrics,
        }
    }
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> RequestSpan<S> {
        RequestSpan {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequestSpan<S> {
    inner: S,
    layer: RequestSpanLayer,
}

impl<S> Service<Request> for RequestSpan<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let start = self.layer.metrics.as_ref().map(|_| Instant::now());
        let id = match request.headers().get(&X_REQUEST_ID) {
            Some(id) if is_well_formed(id.as_bytes()) => id.clone(),
            _ => self.layer.ids.next(),
        };
        let route = route_of(request.uri().path());
        let span = tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            route = ROUTES[route],
        );
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let metrics = self.layer.metrics.clone();
        Box::pin(
            async move {
                let mut response = response.await?;
                response.headers_mut().insert(X_REQUEST_ID, id);
                if let (Some(metrics), Some(start)) = (metrics, start) {
                    metrics.observe(route, start.elapsed());
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_kept() {
        for good in [
            "a",
            "0123456789abcdef0123456789abcdef",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "req_1.2-3",
            &"x".repeat(64),
        ] {
            assert!(is_well_formed(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a b",
            "a\"b",
            "a\nb",
            "a/b",
            "a=b",
            "é",
            "a:b",
        ] {
            assert!(!is_well_formed(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn made_up_ids_are_well_formed_and_unique() {
        let ids = Ids {
            prefix: 0x0123_4567_89ab_cdef,
            next: AtomicU64::new(0),
        };
        let a = ids.next();
        let b = ids.next();
        assert_eq!(a.to_str().unwrap(), "0123456789abcdef-0");
        assert_eq!(b.to_str().unwrap(), "0123456789abcdef-1");
        assert!(is_well_formed(a.as_bytes()));
        let last = Ids {
            prefix: u64::MAX,
            next: AtomicU64::new(u64::MAX),
        }
        .next();
        assert!(is_well_formed(last.as_bytes()));
    }
}
