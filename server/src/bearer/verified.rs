//! The verified-token cache: a token seen and fully validated before is
//! answered from here, skipping the RSA check.
//!
//! Keyed by the SHA-256 of the token, so the cache holds no token. Bounded:
//! when full, expired entries go first, then the ones expiring soonest.
//! An entry is served only while the token's `exp` is in the future (no
//! leeway) and while the key that signed it is still in the issuer's key
//! set, so a cached answer is never one a fresh validation would refuse
//! for those reasons.

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

struct Entry {
    claims: Arc<AccessClaims>,
    kid: Arc<str>,
}

/// A bounded map from token hash to checked claims.
pub struct VerifiedCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, Entry>>,
    /// Entries removed to make room, expired or not.
    evictions: AtomicU64,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
            evictions: AtomicU64::new(0),
        }
    }

    /// The claims of a cached token, if it has not expired at `now` (Unix
    /// seconds) and `key_known` still says yes for its kid.
    pub fn get(
        &self,
        hash: &TokenHash,
        now: i64,
        key_known: impl FnOnce(&str) -> bool,
    ) -> Option<Arc<AccessClaims>> {
        let (claims, kid) = {
            let entries = self.lock();
            let entry = entries.get(hash)?;
            (entry.claims.clone(), entry.kid.clone())
        };
        if now >= claims.expires_at || !key_known(&kid) {
            return None;
        }
        Some(claims)
    }

    /// Remembers that the token with `hash`, signed by `kid`, checked out
    /// as `claims`.
    pub fn insert(&self, hash: TokenHash, kid: &str, claims: Arc<AccessClaims>, now: i64) {
        if self.capacity == 0 || now >= claims.expires_at {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&hash) {
            let removed = evict(&mut entries, self.capacity, now);
            self.evictions.fetch_add(removed as u64, Ordering::Relaxed);
        }
        entries.insert(
            hash,
            Entry {
                claims,
                kid: Arc::from(kid),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries have been removed to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Entry>> {
        // The map is always consistent between statements, so a panic
        // elsewhere while holding the lock leaves nothing to repair.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Makes room: drops expired entries, then, if still over 90 % full, the
/// entries expiring soonest. Freeing a tenth at once keeps this O(n) sweep
/// rare. Returns how many entries it removed.
fn evict(entries: &mut HashMap<TokenHash, Entry>, capacity: usize, now: i64) -> usize {
    let before = entries.len();
    entries.retain(|_, e| e.claims.expires_at > now);
    let target = capacity - capacity / 10 - 1;
    if entries.len() <= target {
        return before - entries.len();
    }
    let mut by_expiry: Vec<(i64, TokenHash)> = entries
        .iter()
        .map(|(hash, e)| (e.claims.expires_at, *hash))
        .collect();
    let excess = entries.len() - target;
    by_expiry.select_nth_unstable(excess - 1);
    for (_, hash) in &by_expiry[..excess] {
        entries.remove(hash);
    }
    before - entries.len()
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
    fn stays_bounded_and_evicts_expired_then_soonest() {
        let cache = VerifiedCache::new(100);
        for i in 0..100 {
            // Half of them expire at 1_000, the rest later.
            let exp = if i % 2 == 0 {
                1_000
            } else {
                5_000 + i64::from(i)
            };
            cache.insert(hash(i), "k", claims(exp), 900);
        }
        assert_eq!(cache.len(), 100);
        // At 2_000 the first 50 have expired; inserting sweeps them.
        cache.insert(hash(1_000), "k", claims(9_000), 2_000);
        assert_eq!(cache.len(), 51);
        assert_eq!(cache.evictions(), 50);
        for i in 1_001..1_100 {
            cache.insert(hash(i), "k", claims(9_000), 2_000);
        }
        assert!(cache.len() <= 100);
        // The soonest-expiring survivors went first; the newest stayed.
        assert!(cache.get(&hash(1_099), 2_000, |_| true).is_some());
        assert!(cache.get(&hash(1), 2_000, |_| true).is_none());
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
