//! The probes a load balancer or an orchestrator asks, public and cheap,
//! outside the bearer layer (they are not under `/api/`):
//!
//! - `GET /healthz`, liveness: the process answers. Always 200.
//! - `GET /readyz`, readiness: the issuer's keys are loaded and the last
//!   successful JWKS fetch is younger than its `max-age` plus
//!   [`READY_GRACE`]; else 503 with a JSON reason. The background refresh
//!   refetches before `max-age` runs out and retries every 30 s after a
//!   failure, so a stale set means the issuer has been unreachable for the
//!   whole grace, or the refresh is stuck. Known keys keep working
//!   meanwhile; the probe only says so, and every instance sees the same
//!   issuer, so a long issuer outage turns every instance unready at once
//!   (see README, "Deploying").
//!
//! Both answer a few bytes of JSON with `Cache-Control: no-store`, from
//! memory: one lock-free load of the key snapshot, no I/O.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::bearer::{Freshness, Validator};

/// How long past its `max-age` the key set may go unrefreshed before the
/// instance says it is not ready: ten retries of the background refresh.
pub const READY_GRACE: Duration = Duration::from_secs(300);

/// Why an instance is not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// No key is held (never the case once the server listens: it does not
    /// start without keys).
    NoKeys,
    /// The last successful fetch is older than its `max-age` plus the
    /// grace.
    KeysStale,
}

impl NotReady {
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::NoKeys => "no_keys",
            NotReady::KeysStale => "keys_stale",
        }
    }
}

/// Whether a key set this fresh makes the instance ready.
pub fn readiness(freshness: &Freshness, grace: Duration) -> Result<(), NotReady> {
    if freshness.keys == 0 {
        return Err(NotReady::NoKeys);
    }
    if freshness.age > freshness.max_age + grace {
        return Err(NotReady::KeysStale);
    }
    Ok(())
}

/// `/healthz` and `/readyz`.
pub fn routes<S: Clone + Send + Sync + 'static>(validator: Validator) -> Router<S> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { answer(StatusCode::OK, json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let freshness = validator.jwks().freshness();
                async move { readyz(&freshness) }
            }),
        )
}

fn readyz(freshness: &Freshness) -> Response {
    let (status, state, reason) = match readiness(freshness, READY_GRACE) {
        Ok(()) => (StatusCode::OK, "ready", None),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            Some(why.as_str()),
        ),
    };
    let mut body = json!({
        "status": state,
        "keys": freshness.keys,
        "keys_age_secs": freshness.age.as_secs(),
        "max_age_secs": freshness.max_age.as_secs(),
        "grace_secs": READY_GRACE.as_secs(),
    });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    answer(status, body)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(keys: usize, age: u64, max_age: u64) -> Freshness {
        Freshness {
            keys,
            age: Duration::from_secs(age),
            max_age: Duration::from_secs(max_age),
        }
    }

    #[test]
    fn ready_while_the_keys_are_younger_than_max_age_plus_grace() {
        let grace = Duration::from_secs(300);
        assert_eq!(readiness(&fresh(1, 0, 3600), grace), Ok(()));
        assert_eq!(readiness(&fresh(2, 3600, 3600), grace), Ok(()));
        assert_eq!(readiness(&fresh(2, 3900, 3600), grace), Ok(()));
        assert_eq!(
            readiness(&fresh(2, 3901, 3600), grace),
            Err(NotReady::KeysStale)
        );
        assert_eq!(readiness(&fresh(0, 0, 3600), grace), Err(NotReady::NoKeys));
    }
}
