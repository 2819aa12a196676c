//! The verified-token cache: a token seen and fully validated before is
//! answered from here, skipping the RSA check.
//!
//! Keyed by the SHA-256 of the token, so the cache holds no token. An
//! entry is served only while the token's `exp` is in the future (no
//! leeway) and while the key that signed it is still in the issuer's key
//! set, so a cached answer is never one a fresh validation would refuse
//! for those reasons.
//!
//! Bounded by two generations of at most half the capacity each: new
//! entries go into the young one; when it is full it becomes the old one
//! and the old one is dropped whole. Making room is a swap of two maps
//! under the lock, the same few nanoseconds every time, and the dropped
//! generation is freed after the lock is released, so no request ever
//! waits on another one's eviction. A token used again while in the old
//! generation moves to the young one, so tokens in use stay while
//! one-off tokens pass through. Expired entries are never served and
//! leave with their generation.
//!
//! A DPoP-bound token's entry keeps the thumbprint of its key: the token
//! is checked once, its proof on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use app::api::AccessClaims;
use aws_lc_rs::digest;

/// The cache key: SHA-256 of the token.
pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// A token that checked out: its claims, and the DPoP key it is bound to
/// (`cnf.jkt`), which every request then proves it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub claims: Arc<AccessClaims>,
    pub jkt: Option<Arc<str>>,
}

impl From<Arc<AccessClaims>> for Verified {
    /// An unbound token's.
    fn from(claims: Arc<AccessClaims>) -> Self {
        Verified { claims, jkt: None }
    }
}

#[derive(Clone)]
struct Entry {
    verified: Verified,
    kid: Arc<str>,
}

type Generation = HashMap<TokenHash, Entry>;

#[derive(Default)]
struct Generations {
    young: Generation,
    old: Generation,
}

/// A bounded map from token hash to checked claims.
pub struct VerifiedCache {
    /// Most entries in one generation: half the capacity.
    per_generation: usize,
    generations: Mutex<Generations>,
    /// Entries dropped with an old generation, expired or not.
    evictions: AtomicU64,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &(2 * self.per_generation))
            .field("len", &self.len())
            .finish()
    }
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0 disables it; an odd
    /// capacity holds one fewer).
    pub fn new(capacity: usize) -> Self {
        let per_generation = capacity / 2;
        VerifiedCache {
            per_generation,
            generations: Mutex::new(Generations {
                young: HashMap::with_capacity(per_generation),
                old: HashMap::new(),
            }),
            evictions: AtomicU64::new(0),
        }
    }

    /// What a cached token checked out as, if it has not expired at `now`
    /// (Unix seconds) and `key_known` still says yes for its kid.
    pub fn get(
        &self,
        hash: &TokenHash,
        now: i64,
        key_known: impl FnOnce(&str) -> bool,
    ) -> Option<Verified> {
        let (entry, dropped) = {
            let mut generations = self.lock();
            match generations.young.get(hash) {
                Some(entry) => (entry.clone(), None),
                None => {
                    let entry = generations.old.remove(hash)?;
                    if now >= entry.verified.claims.expires_at {
                        // Expired: it leaves now instead of moving up.
                        return None;
                    }
                    let dropped = self.add_young(&mut generations, *hash, entry.clone());
                    (entry, dropped)
                }
            }
        };
        drop(dropped);
        if now >= entry.verified.claims.expires_at || !key_known(&entry.kid) {
            return None;
        }
        Some(entry.verified)
    }

    /// Remembers that the token with `hash`, signed by `kid`, checked out
    /// as `verified`.
    pub fn insert(&self, hash: TokenHash, kid: &str, verified: impl Into<Verified>, now: i64) {
        let verified = verified.into();
        if self.per_generation == 0 || now >= verified.claims.expires_at {
            return;
        }
        let entry = Entry {
            verified,
            kid: Arc::from(kid),
        };
        let dropped = self.add_young(&mut self.lock(), hash, entry);
        // The lock is released: freeing a whole generation delays only
        // the request that filled the young one.
        drop(dropped);
    }

    /// Puts `entry` in the young generation, first turning a full young
    /// generation into the old one; returns the old generation that was
    /// displaced, for the caller to drop after releasing the lock.
    fn add_young(
        &self,
        generations: &mut Generations,
        hash: TokenHash,
        entry: Entry,
    ) -> Option<Generation> {
        let mut dropped = None;
        if generations.young.len() >= self.per_generation && !generations.young.contains_key(&hash)
        {
            let young = std::mem::replace(
                &mut generations.young,
                HashMap::with_capacity(self.per_generation),
            );
            let old = std::mem::replace(&mut generations.old, young);
            // A token moving up from the old generation is no longer in it.
            generations.old.remove(&hash);
            self.evictions
                .fetch_add(old.len() as u64, Ordering::Relaxed);
            dropped = Some(old);
        }
        generations.young.insert(hash, entry);
        dropped
    }

    pub fn len(&self) -> usize {
        let generations = self.lock();
        generations.young.len() + generations.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries have been dropped to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps are always consistent between statements, so a panic
        // elsewhere while holding the lock leaves nothing to repair.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            sub: "alice".into(),
            uid: None,
            cid: None,
            scopes: vec![],
            issuer: "iss".into(),
            expires_at: exp,
        })
    }

    fn hash(i: u32) -> TokenHash {
        token_hash(&format!("token-{i}"))
    }

    #[test]
    fn serves_until_exp_and_not_after() {
        let cache = VerifiedCache::new(10);
        cache.insert(hash(1), "k1", claims(1_000), 900);
        assert!(cache.get(&hash(1), 999, |_| true).is_some());
        assert!(cache.get(&hash(1), 1_000, |_| true).is_none());
        assert!(cache.get(&hash(2), 999, |_| true).is_none());
    }

    #[test]
    fn never_stores_an_expired_token() {
        let cache = VerifiedCache::new(10);
        cache.insert(hash(1), "k1", claims(1_000), 1_000);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_removed_key_invalidates_its_tokens() {
        let cache = VerifiedCache::new(10);
        cache.insert(hash(1), "k1", claims(1_000), 900);
        assert!(cache.get(&hash(1), 950, |kid| kid != "k1").is_none());
    }

    #[test]
    fn stays_bounded_and_counts_what_it_drops() {
        let cache = VerifiedCache::new(100);
        for i in 0..1_000 {
            cache.insert(hash(i), "k", claims(9_000), 900);
            assert!(cache.len() <= 100, "{} entries after {i}", cache.len());
        }
        assert_eq!(cache.evictions(), 1_000 - cache.len() as u64);
        // The newest are there, the first ones gone.
        assert!(cache.get(&hash(999), 900, |_| true).is_some());
        assert!(cache.get(&hash(0), 900, |_| true).is_none());
    }

    #[test]
    fn a_token_in_use_outlives_one_off_tokens() {
        let cache = VerifiedCache::new(100);
        cache.insert(hash(0), "k", claims(9_000), 900);
        for i in 1..1_000 {
            cache.insert(hash(i), "k", claims(9_000), 900);
            if i % 40 == 0 {
                assert!(cache.get(&hash(0), 900, |_| true).is_some(), "lost at {i}");
            }
        }
        assert!(cache.get(&hash(0), 900, |_| true).is_some());
        // One-off tokens from more than a capacity ago are gone.
        assert!(cache.get(&hash(1), 900, |_| true).is_none());
    }

    #[test]
    fn a_token_used_again_is_in_one_generation_only() {
        let cache = VerifiedCache::new(4);
        cache.insert(hash(1), "k", claims(9_000), 900);
        cache.insert(hash(2), "k", claims(9_000), 900);
        // The young generation (2) is full: 3 turns it old.
        cache.insert(hash(3), "k", claims(9_000), 900);
        assert_eq!(cache.len(), 3);
        // 1 moves from the old generation to the young one, which is
        // then full; inserting it again changes nothing.
        assert!(cache.get(&hash(1), 900, |_| true).is_some());
        assert_eq!(cache.len(), 3);
        cache.insert(hash(1), "k", claims(9_000), 900);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evictions(), 0);
        // 4 turns {3, 1} old and drops {2}.
        cache.insert(hash(4), "k", claims(9_000), 900);
        assert_eq!(cache.evictions(), 1);
        assert!(cache.get(&hash(2), 900, |_| true).is_none());
        for i in [1, 3, 4] {
            assert!(cache.get(&hash(i), 900, |_| true).is_some(), "{i}");
        }
    }

    #[test]
    fn an_expired_entry_is_not_served_even_while_it_is_held() {
        let cache = VerifiedCache::new(10);
        cache.insert(hash(1), "k", claims(1_000), 900);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&hash(1), 5_000, |_| true).is_none());
    }

    #[test]
    fn an_expired_entry_in_the_old_generation_leaves_instead_of_moving_up() {
        let cache = VerifiedCache::new(4);
        cache.insert(hash(1), "k", claims(1_000), 900);
        cache.insert(hash(2), "k", claims(9_000), 900);
        cache.insert(hash(3), "k", claims(9_000), 900);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&hash(1), 1_000, |_| true).is_none());
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&hash(2), 1_000, |_| true).is_some());
    }

    #[test]
    fn a_bound_token_keeps_its_key() {
        let cache = VerifiedCache::new(10);
        let bound = Verified {
            claims: claims(1_000),
            jkt: Some(Arc::from("thumbprint")),
        };
        cache.insert(hash(1), "k", bound.clone(), 900);
        assert_eq!(cache.get(&hash(1), 900, |_| true), Some(bound));
        cache.insert(hash(2), "k", claims(1_000), 900);
        assert_eq!(cache.get(&hash(2), 900, |_| true).unwrap().jkt, None);
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = VerifiedCache::new(0);
        cache.insert(hash(1), "k1", claims(1_000), 900);
        assert!(cache.is_empty());
    }

    #[test]
    fn hash_is_sha256() {
        assert_eq!(token_hash("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
