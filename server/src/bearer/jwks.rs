//! The JWKS cache: the issuer's keys, kept fresh, shared by every request.
//!
//! - The hot path (a `kid` already known) is one lock-free load of an
//!   immutable snapshot (`arc-swap`) and a map lookup.
//! - The snapshot is replaced whole by a successful fetch and never by a
//!   failed one, so while the issuer is down the known keys keep working.
//! - A background task refetches when the last response's
//!   `Cache-Control: max-age` runs out (clamped to 5 min – 24 h, less up to
//!   10 % jitter so a fleet of servers does not refetch in step).
//! - An unknown `kid` (the issuer rotated its key) causes at most one fetch
//!   shared by every request waiting on it: fetches are serialised by an
//!   async mutex, and a waiter that finds the snapshot replaced while it
//!   waited uses the new one instead of fetching again. Fetches for unknown
//!   kids are at least `refetch_cooldown` apart; during the cool-down an
//!   unknown kid is refused without a fetch, so random kids cannot make the
//!   server hammer the issuer.
//!
//! - Refetches are conditional (`If-None-Match`) when the issuer sent an
//!   `ETag`, so an unchanged set costs the issuer a 304.
//!
//! No lock is held on the hot path; the async mutex is held across a fetch
//! only by requests that need a key the snapshot does not have, and every
//! fetch is bounded by the HTTP timeouts.
//!
//! Every fetch is counted by cause and result ([`FetchCounts`]), and the
//! time of the last successful one is kept, for metrics and readiness
//! ([`JwksCache::freshness`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use url::Url;

use super::clock::Clock;
use super::error::{AuthError, FetchError, InitError, TokenError};
use super::fetch::{Conditional, HttpClient};
use super::keys::{KeySet, VerifyingKey};

/// Timing of the cache.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Least time between two fetches caused by unknown kids.
    pub refetch_cooldown: Duration,
    /// Bounds of the background refresh interval taken from `max-age`.
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    /// The refresh interval when the response has no `max-age`.
    pub default_refresh: Duration,
    /// How soon the background task tries again after a failed refresh.
    pub retry_after_failure: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            refetch_cooldown: Duration::from_secs(30),
            min_refresh: Duration::from_secs(5 * 60),
            max_refresh: Duration::from_secs(24 * 60 * 60),
            default_refresh: Duration::from_secs(60 * 60),
            retry_after_failure: Duration::from_secs(30),
        }
    }
}

/// The largest share of the refresh interval taken off as jitter.
const MAX_JITTER: f64 = 0.1;

/// Why the JWKS was fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchCause {
    /// The first fetch, before the server starts.
    Startup,
    /// The background refresh (`max-age` ran out, or a retry after a
    /// failed one).
    Scheduled,
    /// A token named a kid the snapshot does not have.
    UnknownKid,
}

impl FetchCause {
    pub const ALL: [FetchCause; 3] = [
        FetchCause::Startup,
        FetchCause::Scheduled,
        FetchCause::UnknownKid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FetchCause::Startup => "startup",
            FetchCause::Scheduled => "scheduled",
            FetchCause::UnknownKid => "unknown_kid",
        }
    }
}

/// How a fetch of the JWKS ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchResult {
    /// A usable key set, now in the snapshot.
    Ok,
    /// 304 to a conditional request: the keys are unchanged.
    NotModified,
    /// The issuer could not be reached or answered an error status.
    HttpError,
    /// The connect or total timeout ran out.
    Timeout,
    /// The answer was not a usable JWKS (not JSON, too large, no RS256
    /// key with a kid).
    ParseError,
    /// Not made: an unknown kid within the refetch cool-down.
    RateLimited,
}

impl FetchResult {
    pub const ALL: [FetchResult; 6] = [
        FetchResult::Ok,
        FetchResult::NotModified,
        FetchResult::HttpError,
        FetchResult::Timeout,
        FetchResult::ParseError,
        FetchResult::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FetchResult::Ok => "ok",
            FetchResult::NotModified => "not_modified",
            FetchResult::HttpError => "http_error",
            FetchResult::Timeout => "timeout",
            FetchResult::ParseError => "parse_error",
            FetchResult::RateLimited => "rate_limited",
        }
    }

    fn of(result: &Result<Fresh, RefreshError>) -> FetchResult {
        match result {
            Ok(Fresh::Keys { .. }) => FetchResult::Ok,
            Ok(Fresh::Unchanged { .. }) => FetchResult::NotModified,
            Err(RefreshError::Fetch(FetchError::Timeout(_))) => FetchResult::Timeout,
            Err(RefreshError::Fetch(FetchError::Transport(_) | FetchError::Status(_))) => {
                FetchResult::HttpError
            }
            Err(
                RefreshError::Fetch(FetchError::TooLarge(_))
                | RefreshError::NotAJwks(_)
                | RefreshError::NoUsableKeys,
            ) => FetchResult::ParseError,
        }
    }
}

/// Fetches so far, by cause and result.
#[derive(Debug, Default)]
pub struct FetchCounts([[AtomicU64; 6]; 3]);

impl FetchCounts {
    fn add(&self, cause: FetchCause, result: FetchResult) {
        self.0[cause as usize][result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, cause: FetchCause, result: FetchResult) -> u64 {
        self.0[cause as usize][result as usize].load(Ordering::Relaxed)
    }
}

/// How fresh the key set is, for readiness and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// Keys in the current set.
    pub keys: usize,
    /// Time since the last successful fetch (a 304 counts).
    pub age: Duration,
    /// The freshness lifetime that fetch gave (`max-age`, clamped to the
    /// refresh bounds; without jitter).
    pub max_age: Duration,
}

/// One immutable state of the cache.
#[derive(Debug)]
struct Snapshot {
    keys: KeySet,
    /// Bumped by every successful fetch; lets a waiter tell that someone
    /// else fetched while it waited.
    generation: u64,
    /// When the background task should fetch next (clock time).
    refresh_at: Duration,
    /// When the last successful fetch ended (clock time).
    fetched_at: Duration,
    /// The freshness lifetime it gave, clamped, before jitter.
    max_age: Duration,
}

impl Snapshot {
    /// This snapshot with the next background refresh at `refresh_at`.
    fn retry_at(&self, refresh_at: Duration) -> Snapshot {
        Snapshot {
            keys: self.keys.clone(),
            generation: self.generation,
            refresh_at,
            fetched_at: self.fetched_at,
            max_age: self.max_age,
        }
    }
}

/// A successful fetch.
enum Fresh {
    Keys {
        keys: KeySet,
        max_age: Option<Duration>,
        etag: Option<String>,
    },
    /// 304: the keys are the ones already held.
    Unchanged { max_age: Option<Duration> },
}

/// Bookkeeping of fetches; only touched under the fetch mutex.
#[derive(Debug, Default)]
struct FetchState {
    /// When the last fetch for an unknown kid started (clock time).
    last_unknown_kid_fetch: Option<Duration>,
    /// Whether the last fetch of any kind failed.
    last_failed: bool,
    /// The `ETag` of the key set held, sent as `If-None-Match`.
    etag: Option<String>,
}

/// The issuer's keys; see the module documentation.
pub struct JwksCache {
    uri: Url,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    options: CacheOptions,
    snapshot: ArcSwap<Snapshot>,
    fetch_state: Mutex<FetchState>,
    fetches: AtomicU64,
    counts: FetchCounts,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("uri", &self.uri.as_str())
            .field("snapshot", &self.snapshot.load())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// Fetches the JWKS at `uri` once; fails if it cannot be had or has no
    /// usable key, so a server never starts without keys.
    pub async fn load(
        uri: Url,
        http: HttpClient,
        clock: Arc<dyn Clock>,
        options: CacheOptions,
    ) -> Result<Self, InitError> {
        let cache = JwksCache {
            snapshot: ArcSwap::from_pointee(Snapshot {
                keys: KeySet::default(),
                generation: 0,
                refresh_at: Duration::ZERO,
                fetched_at: Duration::ZERO,
                max_age: Duration::ZERO,
            }),
            uri,
            http,
            clock,
            options,
            fetch_state: Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
            counts: FetchCounts::default(),
        };
        let mut state = cache.fetch_state.lock().await;
        cache
            .fetch(&mut state, FetchCause::Startup)
            .await
            .map_err(|err| match err {
                RefreshError::Fetch(source) => InitError::Fetch {
                    url: cache.uri.to_string(),
                    source,
                },
                RefreshError::NotAJwks(reason) => InitError::BadDocument {
                    url: cache.uri.to_string(),
                    what: "JWKS",
                    reason,
                },
                RefreshError::NoUsableKeys => InitError::NoUsableKeys {
                    url: cache.uri.to_string(),
                },
            })?;
        drop(state);
        Ok(cache)
    }

    /// The key for `kid` if the current snapshot has it. Lock-free.
    pub fn key(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.snapshot.load().keys.get(kid).cloned()
    }

    /// Whether the current snapshot has `kid`. Lock-free.
    pub fn contains(&self, kid: &str) -> bool {
        self.snapshot.load().keys.contains(kid)
    }

    /// The kids of the current snapshot.
    pub fn kids(&self) -> Vec<String> {
        self.snapshot
            .load()
            .keys
            .kids()
            .map(str::to_owned)
            .collect()
    }

    /// How many fetches this cache has started (including failed ones).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The fetches so far (and the ones not made), by cause and result.
    pub fn fetch_counts(&self) -> &FetchCounts {
        &self.counts
    }

    /// How many keys are held and how old they are. Lock-free.
    pub fn freshness(&self) -> Freshness {
        let snapshot = self.snapshot.load();
        Freshness {
            keys: snapshot.keys.len(),
            age: self.clock.now().saturating_sub(snapshot.fetched_at),
            max_age: snapshot.max_age,
        }
    }

    /// The key for `kid`, fetching the JWKS again (once, shared, rate
    /// limited) if the current snapshot does not have it.
    pub async fn key_for(&self, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        let seen = {
            let snapshot = self.snapshot.load();
            if let Some(key) = snapshot.keys.get(kid) {
                return Ok(key.clone());
            }
            snapshot.generation
        };

        let mut state = self.fetch_state.lock().await;
        {
            let snapshot = self.snapshot.load();
            if snapshot.generation != seen {
                // Someone fetched while this request waited: their answer
                // is as fresh as ours would be.
                return snapshot
                    .keys
                    .get(kid)
                    .cloned()
                    .ok_or(AuthError::InvalidToken(TokenError::UnknownKid));
            }
        }
        let now = self.clock.now();
        if let Some(last) = state.last_unknown_kid_fetch {
            let next_allowed = last + self.options.refetch_cooldown;
            if now < next_allowed {
                self.counts
                    .add(FetchCause::UnknownKid, FetchResult::RateLimited);
                // Cooling down. If the last fetch failed the key may well
                // exist, so the honest answer is "try later", not "no".
                return Err(if state.last_failed {
                    AuthError::KeysUnavailable {
                        retry_after: ceil_secs(next_allowed - now),
                    }
                } else {
                    AuthError::InvalidToken(TokenError::UnknownKid)
                });
            }
        }
        state.last_unknown_kid_fetch = Some(now);
        match self.fetch(&mut state, FetchCause::UnknownKid).await {
            Ok(()) => self
                .key(kid)
                .ok_or(AuthError::InvalidToken(TokenError::UnknownKid)),
            Err(err) => {
                tracing::error!(jwks_uri = %self.uri, error = %err, "cannot refetch the JWKS for an unknown kid");
                Err(AuthError::KeysUnavailable {
                    retry_after: ceil_secs(self.options.refetch_cooldown),
                })
            }
        }
    }

    /// Fetches the JWKS now (for the background refresh).
    pub async fn refresh(&self) -> Result<(), RefreshError> {
        let mut state = self.fetch_state.lock().await;
        self.fetch(&mut state, FetchCause::Scheduled).await
    }

    /// Refreshes if the snapshot's refresh time has come; `None` if not.
    pub async fn refresh_if_due(&self) -> Option<Result<(), RefreshError>> {
        if self.next_refresh_in() > Duration::ZERO {
            return None;
        }
        let result = self.refresh().await;
        if result.is_err() {
            // Keep the keys, try again soon; without this the due time
            // stays in the past and the background task would spin.
            let retry_at = self.clock.now() + self.options.retry_after_failure;
            self.snapshot.rcu(|current| current.retry_at(retry_at));
        }
        Some(result)
    }

    /// Time until the background refresh is due.
    pub fn next_refresh_in(&self) -> Duration {
        self.snapshot
            .load()
            .refresh_at
            .saturating_sub(self.clock.now())
    }

    /// Runs the background refresh until the returned task is aborted.
    pub fn spawn_refresh(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.next_refresh_in()).await;
                match self.refresh_if_due().await {
                    Some(Err(err)) => {
                        tracing::error!(jwks_uri = %self.uri, error = %err, "JWKS refresh failed; keeping the current keys");
                    }
                    Some(Ok(())) => {
                        tracing::debug!(jwks_uri = %self.uri, "JWKS refreshed");
                    }
                    None => {}
                }
            }
        })
    }

    /// One fetch; the caller holds the fetch mutex (`state`).
    async fn fetch(&self, state: &mut FetchState, cause: FetchCause) -> Result<(), RefreshError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch_keys(state.etag.as_deref()).await;
        self.counts.add(cause, FetchResult::of(&result));
        state.last_failed = result.is_err();
        let current = self.snapshot.load_full();
        let (keys, max_age) = match result? {
            Fresh::Keys {
                keys,
                max_age,
                etag,
            } => {
                state.etag = etag;
                (keys, max_age)
            }
            Fresh::Unchanged { max_age } => (current.keys.clone(), max_age),
        };
        let now = self.clock.now();
        let lifetime = refresh_interval(max_age, &self.options);
        let delay = refresh_delay(max_age, &self.options, rand::random::<f64>());
        tracing::debug!(jwks_uri = %self.uri, keys = ?keys, next_refresh_s = delay.as_secs(), "JWKS loaded");
        // A 304 bumps the generation too: a waiter for an unknown kid
        // learns that the issuer was just asked, and does not ask again.
        self.snapshot.store(Arc::new(Snapshot {
            keys,
            generation: current.generation + 1,
            refresh_at: now + delay,
            fetched_at: now,
            max_age: lifetime,
        }));
        Ok(())
    }

    async fn fetch_keys(&self, etag: Option<&str>) -> Result<Fresh, RefreshError> {
        let fetched = match self
            .http
            .get_if_none_match(&self.uri, etag)
            .await
            .map_err(RefreshError::Fetch)?
        {
            Conditional::Modified(fetched) => fetched,
            Conditional::NotModified { max_age } => return Ok(Fresh::Unchanged { max_age }),
        };
        let keys = KeySet::from_jwks_json(&fetched.body).map_err(RefreshError::NotAJwks)?;
        // An empty set is far more likely a broken issuer than a revocation
        // of every key; keeping the old keys is the safer reading.
        if keys.is_empty() {
            return Err(RefreshError::NoUsableKeys);
        }
        Ok(Fresh::Keys {
            keys,
            max_age: fetched.max_age,
            etag: fetched.etag,
        })
    }
}

/// Why a fetch of the JWKS did not produce a new snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Fetch(FetchError),
    #[error("the response is not a JWKS: {0}")]
    NotAJwks(String),
    #[error("the JWKS has no RS256 signing key with a kid")]
    NoUsableKeys,
}

/// How long a fetched key set counts as fresh: `max_age` (or the default)
/// clamped to the configured bounds.
pub fn refresh_interval(max_age: Option<Duration>, options: &CacheOptions) -> Duration {
    max_age
        .unwrap_or(options.default_refresh)
        .clamp(options.min_refresh, options.max_refresh)
}

/// The interval until the next background refresh: [`refresh_interval`]
/// less `jitter` (0..1) times 10 %.
pub fn refresh_delay(max_age: Option<Duration>, options: &CacheOptions, jitter: f64) -> Duration {
    let base = refresh_interval(max_age, options);
    let jitter = jitter.clamp(0.0, 1.0) * MAX_JITTER;
    base.mul_f64(1.0 - jitter)
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_follows_max_age_within_bounds() {
        let opts = CacheOptions::default();
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(
            refresh_delay(secs(3600), &opts, 0.0),
            Duration::from_secs(3600)
        );
        assert_eq!(
            refresh_delay(secs(10), &opts, 0.0),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_delay(Some(Duration::ZERO), &opts, 0.0),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_delay(secs(999_999), &opts, 0.0),
            Duration::from_secs(86_400)
        );
        assert_eq!(refresh_delay(None, &opts, 0.0), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_only_shortens_by_at_most_ten_percent() {
        let opts = CacheOptions::default();
        let max_age = Some(Duration::from_secs(1000));
        assert_eq!(refresh_delay(max_age, &opts, 1.0), Duration::from_secs(900));
        assert_eq!(refresh_delay(max_age, &opts, 0.5), Duration::from_secs(950));
        assert_eq!(refresh_delay(max_age, &opts, 7.0), Duration::from_secs(900));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(29_001)), 30);
        assert_eq!(ceil_secs(Duration::from_secs(30)), 30);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }
}
