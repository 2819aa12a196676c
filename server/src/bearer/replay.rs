//! The DPoP replay cache (RFC 9449 §11.1): the proofs accepted recently,
//! so that a proof is accepted once.
//!
//! A proof is remembered by a 128-bit digest of its key's thumbprint and
//! its `jti` (so one client's `jti` never collides with another's), until
//! its `iat` leaves the acceptance window: after that the proof is refused
//! as stale anyway, so forgetting it reopens nothing. Entries are kept in
//! buckets by the second they may be forgotten, a few seconds wide, and a
//! bucket is dropped whole once its time has passed; no request ever
//! sweeps the whole cache.
//!
//! Memory is bounded: at most `capacity` proofs are held. When the cache is
//! full of proofs that are all still inside their window, a new proof is
//! refused ([`ReplayError::Full`], answered 503 with `Retry-After`) rather
//! than forgetting one that could then be replayed, or growing without
//! bound. The cache is split in shards, each with its own lock and share
//! of the capacity, so concurrent requests rarely wait on each other.
//!
//! The cache is per process: behind several instances, a proof replayed
//! to another instance within its window is not in that instance's cache.
//! See the README ("DPoP behind several instances") for the two ways to
//! close that gap.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_lc_rs::digest;

/// How many shards the cache is split into.
const SHARDS: usize = 8;
/// The width of a bucket, in seconds: entries are forgotten at most this
/// late.
const BUCKET_SECS: i64 = 5;
/// The most proofs held unless configured otherwise: 16 bytes each plus
/// the hash set's overhead, about 15 MB when full; with proofs remembered
/// about two minutes, room for 4,000 new proofs a second per instance.
pub const DEFAULT_CAPACITY: usize = 500_000;

/// A proof, as remembered.
type Key = [u8; 16];

/// Why a proof cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the DPoP proof has been used before")]
    Replayed,
    /// The cache holds `capacity` proofs, none of them forgettable yet;
    /// the earliest can be forgotten in `retry_after` seconds.
    #[error("too many DPoP proofs are being remembered; retry in {retry_after} s")]
    Full { retry_after: u64 },
}

/// The proofs seen recently. Cheap to share behind an `Arc`.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    /// By bucket number (the second an entry may go, divided by
    /// [`BUCKET_SECS`]), oldest first, without gaps or repeats.
    buckets: VecDeque<(i64, HashSet<Key>)>,
    len: usize,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayCache {
    /// A cache of at most about `capacity` proofs (at least one a shard).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Remembers the proof `jti` made with the key of thumbprint `jkt`
    /// until `forget_at` (Unix seconds: the first second at which the
    /// proof is refused as stale, [`super::dpop::stale_from`]), unless it
    /// was seen before. `now` is the current time.
    pub fn check_and_remember(
        &self,
        jkt: &str,
        jti: &str,
        forget_at: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        let key = key_of(jkt, jti);
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        let mut shard = lock(shard);
        shard.forget_until(now);
        if shard.buckets.iter().any(|(_, set)| set.contains(&key)) {
            return Err(ReplayError::Replayed);
        }
        if forget_at <= now {
            // Outside its window already: the caller refuses it as stale,
            // and there is nothing to remember.
            return Ok(());
        }
        if shard.len >= self.per_shard {
            let earliest = shard
                .buckets
                .front()
                .map_or(now + BUCKET_SECS, |(n, _)| (n + 1) * BUCKET_SECS);
            return Err(ReplayError::Full {
                retry_after: u64::try_from(earliest - now).unwrap_or(1).max(1),
            });
        }
        shard.insert(forget_at.div_euclid(BUCKET_SECS), key);
        Ok(())
    }

    /// How many proofs are remembered (expired buckets included until the
    /// next call touches their shard).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Drops every bucket whose time is up at `now`.
    fn forget_until(&mut self, now: i64) {
        while let Some((number, set)) = self.buckets.front() {
            if (number + 1) * BUCKET_SECS > now {
                break;
            }
            self.len -= set.len();
            self.buckets.pop_front();
        }
    }

    fn insert(&mut self, number: i64, key: Key) {
        // Buckets are few (the window divided by their width), so a linear
        // search from the back, where new entries mostly go, is enough.
        let position = self
            .buckets
            .iter()
            .rposition(|(n, _)| *n <= number)
            .map_or(0, |i| i + 1);
        if position > 0 && self.buckets[position - 1].0 == number {
            self.buckets[position - 1].1.insert(key);
        } else {
            self.buckets
                .insert(position, (number, HashSet::from([key])));
        }
        self.len += 1;
    }
}

fn key_of(jkt: &str, jti: &str) -> Key {
    let mut context = digest::Context::new(&digest::SHA256);
    // The thumbprint is fixed-length base64url, so no separator is needed
    // to keep (jkt, jti) pairs apart; one is added all the same.
    context.update(jkt.as_bytes());
    context.update(b"\0");
    context.update(jti.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&context.finish().as_ref()[..16]);
    key
}

// Every operation leaves the shard consistent between statements, so a
// poisoned lock still holds a usable shard.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_proof_is_accepted_once_within_its_window() {
        let cache = ReplayCache::new(100);
        assert_eq!(cache.check_and_remember("k", "j1", NOW + 120, NOW), Ok(()));
        assert_eq!(
            cache.check_and_remember("k", "j1", NOW + 120, NOW + 1),
            Err(ReplayError::Replayed)
        );
        // Another key's proof with the same jti is another proof.
        assert_eq!(
            cache.check_and_remember("other", "j1", NOW + 120, NOW),
            Ok(())
        );
        assert_eq!(cache.len(), 2);
        // Still remembered just before its time, forgotten after.
        assert_eq!(
            cache.check_and_remember("k", "j1", NOW + 120, NOW + 119),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            cache.check_and_remember("k", "j1", NOW + 240, NOW + 126),
            Ok(())
        );
    }

    #[test]
    fn proofs_already_outside_their_window_are_not_kept() {
        let cache = ReplayCache::new(100);
        assert_eq!(cache.check_and_remember("k", "old", NOW, NOW), Ok(()));
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets_or_grows() {
        let cache = ReplayCache::new(SHARDS * 2);
        let mut refused = None;
        for i in 0..1000 {
            match cache.check_and_remember("k", &format!("j{i}"), NOW + 60, NOW) {
                Ok(()) => {}
                Err(err) => {
                    refused = Some(err);
                    break;
                }
            }
        }
        let Some(ReplayError::Full { retry_after }) = refused else {
            panic!("never refused: {refused:?}");
        };
        assert!((60..=60 + BUCKET_SECS as u64).contains(&retry_after));
        assert!(cache.len() <= SHARDS * 2);
        // Once the window has passed, there is room again (two proofs fit
        // whichever shards they fall in).
        for i in 1000..1002 {
            assert_eq!(
                cache.check_and_remember("k", &format!("j{i}"), NOW + 200, NOW + 70),
                Ok(())
            );
        }
    }

    #[test]
    fn buckets_stay_ordered_whatever_the_order_of_arrival() {
        let cache = ReplayCache::new(1000);
        for (i, offset) in [50, 10, 30, 10, 70, 20].iter().enumerate() {
            cache
                .check_and_remember("k", &format!("j{i}"), NOW + offset, NOW)
                .unwrap();
        }
        for shard in &cache.shards {
            let shard = lock(shard);
            let numbers: Vec<i64> = shard.buckets.iter().map(|(n, _)| *n).collect();
            let mut sorted = numbers.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(numbers, sorted);
        }
        // At NOW+35 the entries due at +10, +20 and +30 are gone.
        assert_eq!(
            cache.check_and_remember("k", "j1", NOW + 100, NOW + 35),
            Ok(())
        );
        assert_eq!(
            cache.check_and_remember("k", "j0", NOW + 100, NOW + 35),
            Err(ReplayError::Replayed)
        );
    }
}
