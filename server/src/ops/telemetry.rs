//! Prometheus metrics, served on their own address (`METRICS_ADDR`), never
//! on the public site.
//!
//! The `metrics` facade with `metrics-exporter-prometheus`'s recorder,
//! which formats the text exposition. The recorder is this server's own
//! (not installed globally), and every series is registered on it up
//! front, so the set of series is fixed from the start: each label value is
//! a `&'static str` from a fixed list ([`ROUTES`], the bearer layer's
//! [`OUTCOMES`], the JWKS cache's [`FetchCause`] and [`FetchResult`], the
//! dev server's [`DevIdpEvent`]), never a `sub`, `kid`, path or token part.
//!
//! Only the request-duration histogram is recorded per request, by
//! [`crate::edge::request_span`] (two clock reads and a lock-free push). The
//! rest is counted where it happens in plain atomics (the validator's
//! [`Stats`](crate::bearer::stats::Stats), the JWKS cache's fetch counts,
//! the connection loop's [`Stats`](crate::edge::serve::Stats), the dev server's
//! [`DevIdpStats`]) and copied into the registry when `/metrics` is
//! scraped, so those cost the same with metrics off.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bearer_decisions_total` | counter | `outcome`: [`OUTCOMES`] |
//! | `dpop_proofs_total` | counter | `outcome`: [`DPOP_OUTCOMES`] |
//! | `dpop_nonces_issued_total` | counter | |
//! | `verified_token_cache_hits_total`, `_misses_total`, `_evictions_total` | counter | |
//! | `verified_token_cache_size` | gauge | |
//! | `jwks_fetches_total` | counter | `cause`: `startup`, `scheduled`, `unknown_kid`; `result`: `ok`, `not_modified`, `http_error`, `timeout`, `parse_error`, `rate_limited` |
//! | `jwks_keys` | gauge | |
//! | `jwks_last_success_age_seconds` | gauge | |
//! | `http_request_duration_seconds` | histogram | `route`: [`ROUTES`] |
//! | `http_connections_open` | gauge | |
//! | `http_connections_total` | counter | `event`: `accepted`, `header_timeout`, `idle_timeout`, `body_timeout`, `send_timeout`, `evicted`, `refused`, `accept_error` |
//! | `dev_idp_sign_ins_total`, `dev_idp_errors_total` | counter | `event` (only while the dev server runs) |

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::bearer::stats::{DPOP_OUTCOMES, OUTCOMES};
use crate::bearer::{FetchCause, FetchResult, Validator};
use crate::dev_idp::{DevIdpEvent, DevIdpStats};
use crate::edge::serve::StatsHandle;

/// The route names of the request-duration histogram; every path maps to
/// one of them ([`route_of`]).
pub const ROUTES: [&str; 12] = [
    "whoami",
    "messages",
    "report",
    "health",
    "auth_config",
    "issuer_key",
    // Any other path under /api/: unknown functions, refused or not.
    "api_other",
    "healthz",
    "readyz",
    "login_callback",
    // Hashed static files.
    "pkg",
    // Pages, other files and 404s.
    "page",
];

/// The histogram's buckets, in seconds: a cached call takes tens of
/// microseconds, a cold one about a millisecond, one that waits for the
/// issuer up to the fetch timeout (5 s).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

const DURATION: &str = "http_request_duration_seconds";

/// The index in [`ROUTES`] of a request for `path`.
pub fn route_of(path: &str) -> usize {
    if let Some(function) = path.strip_prefix("/api/") {
        return match function {
            "whoami" => 0,
            "messages" => 1,
            "report" => 2,
            "health" => 3,
            "auth_config" => 4,
            "issuer_key" => 5,
            _ => 6,
        };
    }
    match path {
        "/healthz" => 7,
        "/readyz" => 8,
        "/login/callback" => 9,
        _ if path.starts_with("/pkg/") => 10,
        _ => 11,
    }
}

/// The server's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    durations: [Histogram; ROUTES.len()],
    decisions: [Counter; OUTCOMES.len()],
    dpop: Dpop,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_evictions: Counter,
    cache_size: Gauge,
    /// By cause, then result, as [`FetchCause::ALL`] and
    /// [`FetchResult::ALL`].
    fetches: Vec<Vec<Counter>>,
    keys: Gauge,
    keys_age: Gauge,
    connections_open: Gauge,
    connections: [Counter; CONNECTION_EVENTS.len()],
    sources: Mutex<Sources>,
}

const CONNECTION_EVENTS: [&str; 8] = [
    "accepted",
    "header_timeout",
    "idle_timeout",
    "body_timeout",
    "send_timeout",
    "evicted",
    "refused",
    "accept_error",
];

/// The DPoP series (issue 27): proofs by outcome, nonces handed out.
struct Dpop {
    proofs: [Counter; DPOP_OUTCOMES.len()],
    nonces: Counter,
}

impl Dpop {
    fn register(r: &PrometheusRecorder) -> Dpop {
        describe_counter(
            r,
            "dpop_proofs_total",
            "DPoP proofs sent with DPoP-bound tokens to protected paths, by outcome.",
        );
        describe_counter(
            r,
            "dpop_nonces_issued_total",
            "DPoP-Nonce values handed out by the bearer layer (DPOP_NONCE=1).",
        );
        Dpop {
            proofs: DPOP_OUTCOMES
                .map(|outcome| counter(r, "dpop_proofs_total", &[("outcome", outcome)])),
            nonces: counter(r, "dpop_nonces_issued_total", &[]),
        }
    }

    fn collect(&self, stats: &crate::bearer::stats::Stats) {
        for (index, counter) in self.proofs.iter().enumerate() {
            counter.absolute(stats.dpop(index));
        }
        self.nonces.absolute(stats.nonces_issued());
    }
}

/// What is read at each scrape.
#[derive(Default)]
struct Sources {
    validator: Option<Validator>,
    connections: Option<StatsHandle>,
    dev_idp: Option<(DevIdpStats, Vec<Counter>)>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series of the app registered.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), &DURATION_BUCKETS)
            .expect("the duration buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let r = &recorder;
        describe_counter(
            r,
            "bearer_decisions_total",
            "Requests for protected paths, by how the bearer layer answered them.",
        );
        describe_counter(
            r,
            "verified_token_cache_hits_total",
            "Tokens answered from the verified-token cache.",
        );
        describe_counter(
            r,
            "verified_token_cache_misses_total",
            "Tokens not in the verified-token cache (checked in full, or refused).",
        );
        describe_counter(
            r,
            "verified_token_cache_evictions_total",
            "Entries removed from the verified-token cache to make room.",
        );
        describe_gauge(
            r,
            "verified_token_cache_size",
            Unit::Count,
            "Tokens in the verified-token cache.",
        );
        describe_counter(r, "jwks_fetches_total", "Fetches of the issuer's JWKS by cause and result (rate_limited: an unknown kid refused without a fetch, within the cool-down).");
        describe_gauge(
            r,
            "jwks_keys",
            Unit::Count,
            "Keys in the issuer's key set as held.",
        );
        describe_gauge(
            r,
            "jwks_last_success_age_seconds",
            Unit::Seconds,
            "Seconds since the last successful JWKS fetch.",
        );
        r.describe_histogram(
            DURATION.into(),
            Some(Unit::Seconds),
            "Time from a request's head to its response's head, by route.".into(),
        );
        describe_gauge(
            r,
            "http_connections_open",
            Unit::Count,
            "Connections open to the app's listener.",
        );
        describe_counter(
            r,
            "http_connections_total",
            "Connections of the app's listener, by event.",
        );
        let inner = Inner {
            durations: ROUTES
                .map(|route| r.register_histogram(&key(DURATION, &[("route", route)]), &META)),
            decisions: OUTCOMES
                .map(|outcome| counter(r, "bearer_decisions_total", &[("outcome", outcome)])),
            dpop: Dpop::register(r),
            cache_hits: counter(r, "verified_token_cache_hits_total", &[]),
            cache_misses: counter(r, "verified_token_cache_misses_total", &[]),
            cache_evictions: counter(r, "verified_token_cache_evictions_total", &[]),
            cache_size: gauge(r, "verified_token_cache_size"),
            fetches: FetchCause::ALL
                .iter()
                .map(|cause| {
                    FetchResult::ALL
                        .iter()
                        .map(|result| {
                            counter(
                                r,
                                "jwks_fetches_total",
                                &[("cause", cause.as_str()), ("result", result.as_str())],
                            )
                        })
                        .collect()
                })
                .collect(),
            keys: gauge(r, "jwks_keys"),
            keys_age: gauge(r, "jwks_last_success_age_seconds"),
            connections_open: gauge(r, "http_connections_open"),
            connections: CONNECTION_EVENTS
                .map(|event| counter(r, "http_connections_total", &[("event", event)])),
            sources: Mutex::new(Sources::default()),
            handle,
            recorder,
        };
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// Reads the validator's decisions, caches and JWKS fetches at each
    /// scrape.
    pub fn watch_validator(&self, validator: &Validator) {
        self.sources().validator = Some(validator.clone());
    }

    /// Reads the app listener's connection counts at each scrape.
    pub fn watch_connections(&self, stats: StatsHandle) {
        self.sources().connections = Some(stats);
    }

    /// Reads the embedded dev authorization server's sign-ins and errors
    /// at each scrape; its series exist only from this call on.
    pub fn watch_dev_idp(&self, stats: DevIdpStats) {
        let r = &self.inner.recorder;
        describe_counter(
            r,
            "dev_idp_sign_ins_total",
            "Sign-ins at the embedded development authorization server, by result.",
        );
        describe_counter(
            r,
            "dev_idp_errors_total",
            "Requests the embedded development authorization server refused, by kind.",
        );
        let counters = DevIdpEvent::ALL
            .iter()
            .map(|event| counter(r, event.metric(), &[("event", event.as_str())]))
            .collect();
        self.sources().dev_idp = Some((stats, counters));
    }

    /// Records how long a request to route `ROUTES[route]` took.
    #[inline]
    pub fn observe(&self, route: usize, took: Duration) {
        self.inner.durations[route].record(took.as_secs_f64());
    }

    /// The text exposition, with every watched count brought up to date.
    pub fn render(&self) -> String {
        self.collect();
        self.inner.handle.render()
    }

    /// Folds the recorded durations into the histograms. Without this (or
    /// a scrape) every sample would be kept until the next scrape: run it
    /// every few seconds ([`Metrics::spawn_upkeep`]).
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// Runs [`Metrics::run_upkeep`] every 5 s until the task is aborted.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        })
    }

    /// `GET /metrics`, for its own listener.
    pub fn router(&self) -> Router {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { exposition(&metrics) }
            }),
        )
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.inner
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn collect(&self) {
        let inner = &self.inner;
        let sources = self.sources();
        if let Some(validator) = &sources.validator {
            let stats = validator.stats();
            for (index, counter) in inner.decisions.iter().enumerate() {
                counter.absolute(stats.decisions(index));
            }
            inner.dpop.collect(stats);
            inner.cache_hits.absolute(stats.cache_hits());
            inner.cache_misses.absolute(stats.cache_misses());
            let cache = validator.verified_cache();
            inner.cache_evictions.absolute(cache.evictions());
            inner.cache_size.set(cache.len() as f64);
            let jwks = validator.jwks();
            let counts = jwks.fetch_counts();
            for (cause, counters) in FetchCause::ALL.iter().zip(&inner.fetches) {
                for (result, counter) in FetchResult::ALL.iter().zip(counters) {
                    counter.absolute(counts.get(*cause, *result));
                }
            }
            let freshness = jwks.freshness();
            inner.keys.set(freshness.keys as f64);
            inner.keys_age.set(freshness.age.as_secs_f64());
        }
        if let Some(connections) = &sources.connections {
            let stats = connections.get();
            inner.connections_open.set(stats.open as f64);
            let counts = [
                stats.accepted,
                stats.head_timeouts,
                stats.idle_timeouts,
                stats.body_timeouts,
                stats.send_timeouts,
                stats.evicted,
                stats.refused,
                stats.accept_errors,
            ];
            for (counter, value) in inner.connections.iter().zip(counts) {
                counter.absolute(value);
            }
        }
        if let Some((stats, counters)) = &sources.dev_idp {
            for (event, counter) in DevIdpEvent::ALL.iter().zip(counters) {
                counter.absolute(stats.get(*event));
            }
        }
    }
}

/// The exposition as Prometheus's text format 0.0.4.
fn exposition(metrics: &Metrics) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        metrics.render(),
    )
        .into_response()
}

static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(name, value)| Label::from_static_parts(name, value))
        .collect();
    Key::from_parts(name, labels)
}

fn counter(
    r: &PrometheusRecorder,
    name: &'static str,
    labels: &[(&'static str, &'static str)],
) -> Counter {
    let counter = r.register_counter(&key(name, labels), &META);
    // Registered series are rendered once touched: start each at zero.
    counter.absolute(0);
    counter
}

fn gauge(r: &PrometheusRecorder, name: &'static str) -> Gauge {
    let gauge = r.register_gauge(&key(name, &[]), &META);
    gauge.set(0.0);
    gauge
}

fn describe_counter(r: &PrometheusRecorder, name: &'static str, help: &'static str) {
    r.describe_counter(name.into(), None, SharedString::const_str(help));
}

fn describe_gauge(r: &PrometheusRecorder, name: &'static str, unit: Unit, help: &'static str) {
    r.describe_gauge(name.into(), Some(unit), SharedString::const_str(help));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_maps_to_a_fixed_route() {
        let route = |path| ROUTES[route_of(path)];
        assert_eq!(route("/api/whoami"), "whoami");
        assert_eq!(route("/api/messages"), "messages");
        assert_eq!(route("/api/report"), "report");
        assert_eq!(route("/api/health"), "health");
        assert_eq!(route("/api/auth_config"), "auth_config");
        assert_eq!(route("/api/issuer_key"), "issuer_key");
        assert_eq!(route("/api/whoami/x"), "api_other");
        assert_eq!(route("/api/"), "api_other");
        assert_eq!(route("/healthz"), "healthz");
        assert_eq!(route("/readyz"), "readyz");
        assert_eq!(route("/login/callback"), "login_callback");
        assert_eq!(route("/pkg/okta-implicit.abc.wasm"), "pkg");
        assert_eq!(route("/"), "page");
        assert_eq!(route("/profile"), "page");
        assert_eq!(route("/no/such/page"), "page");
        assert_eq!(route("/apix"), "page");
    }

    #[test]
    fn a_fresh_registry_renders_every_series_at_zero() {
        let metrics = Metrics::new();
        let text = metrics.render();
        assert!(
            text.contains("bearer_decisions_total{outcome=\"valid\"} 0"),
            "{text}"
        );
        assert!(text.contains("bearer_decisions_total{outcome=\"invalid_token:expired\"} 0"));
        assert!(text.contains("dpop_proofs_total{outcome=\"invalid:replayed\"} 0"));
        assert!(text.contains("dpop_nonces_issued_total 0"));
        assert!(
            text.contains("jwks_fetches_total{cause=\"unknown_kid\",result=\"rate_limited\"} 0")
        );
        assert!(text.contains("http_request_duration_seconds_count{route=\"whoami\"} 0"));
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
        assert!(!text.contains("dev_idp"));
        metrics.observe(0, Duration::from_micros(30));
        let text = metrics.render();
        assert!(
            text.contains("http_request_duration_seconds_count{route=\"whoami\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{route=\"whoami\",le=\"0.0001\"} 1"),
            "{text}"
        );
    }
}
