//! Time as the validator sees it.
//!
//! Every decision that depends on the time — `exp`/`nbf`/`iat`, how long a
//! verified token stays cached, when the JWKS is refreshed, the cool-down
//! between refetches for unknown `kid`s — reads a [`Clock`], so tests move
//! time forward instead of sleeping through a TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, as a duration since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;

    /// Whole seconds since the Unix epoch: the unit of JWT NumericDates.
    fn now_secs(&self) -> i64 {
        i64::try_from(self.now().as_secs()).unwrap_or(i64::MAX)
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A clock before 1970 is a broken machine; treating it as the epoch
        // makes every token look expired, which fails closed.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at(secs: u64) -> Self {
        ManualClock {
            millis: AtomicU64::new(secs.saturating_mul(1000)),
        }
    }

    /// A clock standing at the system's current time.
    pub fn starting_now() -> Self {
        let now = SystemClock.now();
        ManualClock {
            millis: AtomicU64::new(u64::try_from(now.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }

    pub fn set(&self, secs: u64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now_secs(), 1_000);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now_secs(), 1_090);
        clock.set(5);
        assert_eq!(clock.now(), Duration::from_secs(5));
    }
}
