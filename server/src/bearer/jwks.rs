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
//! No lock is held on the hot path; the async mutex is held across a fetch
//! only by requests that need a key the snapshot does not have, and every
//! fetch is bounded by the HTTP timeouts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use url::Url;

use super::clock::Clock;
use super::error::{AuthError, FetchError, InitError, TokenError};
use super::fetch::HttpClient;
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

/// One immutable state of the cache.
#[derive(Debug)]
struct Snapshot {
    keys: KeySet,
    /// Bumped by every successful fetch; lets a waiter tell that someone
    /// else fetched while it waited.
    generation: u64,
    /// When the background task should fetch next (clock time).
    refresh_at: Duration,
}

/// Bookkeeping of fetches; only touched under the fetch mutex.
#[derive(Debug, Default)]
struct FetchState {
    /// When the last fetch for an unknown kid started (clock time).
    last_unknown_kid_fetch: Option<Duration>,
    /// Whether the last fetch of any kind failed.
    last_failed: bool,
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
            }),
            uri,
            http,
            clock,
            options,
            fetch_state: Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
        };
        let mut state = cache.fetch_state.lock().await;
        cache.fetch(&mut state).await.map_err(|err| match err {
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
        match self.fetch(&mut state).await {
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
        self.fetch(&mut state).await
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
            self.snapshot.rcu(|current| Snapshot {
                keys: current.keys.clone(),
                generation: current.generation,
                refresh_at: retry_at,
            });
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
    async fn fetch(&self, state: &mut FetchState) -> Result<(), RefreshError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch_keys().await;
        state.last_failed = result.is_err();
        let (keys, max_age) = result?;
        let delay = refresh_delay(max_age, &self.options, rand::random::<f64>());
        let refresh_at = self.clock.now() + delay;
        let generation = self.snapshot.load().generation + 1;
        tracing::debug!(jwks_uri = %self.uri, keys = ?keys, next_refresh_s = delay.as_secs(), "JWKS loaded");
        self.snapshot.store(Arc::new(Snapshot {
            keys,
            generation,
            refresh_at,
        }));
        Ok(())
    }

    async fn fetch_keys(&self) -> Result<(KeySet, Option<Duration>), RefreshError> {
        let fetched = self
            .http
            .get(&self.uri)
            .await
            .map_err(RefreshError::Fetch)?;
        let keys = KeySet::from_jwks_json(&fetched.body).map_err(RefreshError::NotAJwks)?;
        // An empty set is far more likely a broken issuer than a revocation
        // of every key; keeping the old keys is the safer reading.
        if keys.is_empty() {
            return Err(RefreshError::NoUsableKeys);
        }
        Ok((keys, fetched.max_age))
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

/// The interval until the next background refresh: `max_age` (or the
/// default) clamped to the configured bounds, less `jitter` (0..1) times
/// 10 %.
pub fn refresh_delay(max_age: Option<Duration>, options: &CacheOptions, jitter: f64) -> Duration {
    let base = max_age
        .unwrap_or(options.default_refresh)
        .clamp(options.min_refresh, options.max_refresh);
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
