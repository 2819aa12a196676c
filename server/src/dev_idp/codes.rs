//! Authorization codes (RFC 6749 §4.1.2): issued by the authorization
//! endpoint for `response_type=code`, exchanged once at the token endpoint.
//!
//! A code is 256 random bits (base64url, 43 characters), good for the
//! config's `authorization_code_lifetime_secs` (Okta: 60 s) and for one
//! token request that presents it, whatever that request's outcome: a
//! wrong verifier or redirect URI spends it too, so nobody gets a second
//! guess (a request refused as malformed before the code is looked at does
//! not). It is bound
//! to everything the token request must match or carry on: the client, the
//! redirect URI, the PKCE challenge, and the nonce, scopes, user and
//! session of the authorization.
//!
//! A code presented again is refused, and what its first exchange issued
//! is revoked (§4.1.2, §10.5: the code has leaked). So a spent code is
//! remembered, with what it issued, for [`SPENT_MEMORY`]; if the second
//! presentation overtakes the first while that one is still signing, the
//! first learns of it when it records what it issued ([`CodeStore::finish`])
//! and revokes it at once.
//!
//! The store keeps SHA-256 digests of the codes, never the codes: a lookup
//! by digest reveals nothing about how close a guess came. It is bounded
//! like the sessions: expired entries are swept when it is full, then the
//! one closest to being forgotten goes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::refresh::FamilyId;
use super::session;

/// How long a spent code is remembered, to recognise it if it comes back.
pub const SPENT_MEMORY: Duration = Duration::from_secs(10 * 60);

/// What a code was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The S256 `code_challenge`.
    pub code_challenge: String,
    /// What the token request will grant: already cut down to what the
    /// user and the flow may have.
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub login: String,
    pub auth_time: u64,
    /// The session that authorized it: ending that session before the
    /// code is exchanged spends the code.
    pub session_id: String,
}

/// What the exchange of a code issued: what to revoke if it comes back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Issued {
    /// The access token's `jti` and `exp`.
    pub access_token: Option<(String, u64)>,
    /// The refresh token family it started.
    pub family: Option<FamilyId>,
}

/// The answer to presenting a code.
#[derive(Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The first presentation: the grant, which is now spent. Report what
    /// it issued with [`CodeStore::finish`] and this key.
    First(CodeGrant, CodeKey),
    /// A presentation of a spent code: revoke what the first one issued
    /// (nothing yet if it is still in progress; it will revoke its own).
    Again(Issued),
    /// Not a live code of this server.
    Unknown,
}

/// Identifies a code in the store without being the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeKey([u8; 32]);

impl CodeKey {
    fn of(code: &str) -> Self {
        Self(Sha256::digest(code.as_bytes()).into())
    }
}

#[derive(Debug)]
enum Use {
    Fresh,
    Spent {
        issued: Issued,
        presented_again: bool,
    },
}

#[derive(Debug)]
struct Entry {
    grant: CodeGrant,
    expires: Instant,
    forget_at: Instant,
    used: Use,
}

/// The live and recently spent codes.
#[derive(Debug)]
pub struct CodeStore {
    entries: Mutex<HashMap<CodeKey, Entry>>,
    ttl: Duration,
    capacity: usize,
}

impl CodeStore {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// A new code for `grant`. `None` only if the system random generator
    /// fails.
    pub fn issue(&self, grant: CodeGrant) -> Option<String> {
        let code = session::random_id()?;
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.forget_at > now);
        }
        if entries.len() >= self.capacity {
            let soonest = entries
                .iter()
                .min_by_key(|(_, e)| e.forget_at)
                .map(|(k, _)| *k);
            if let Some(k) = soonest {
                entries.remove(&k);
            }
        }
        let expires = now + self.ttl;
        entries.insert(
            CodeKey::of(&code),
            Entry {
                grant,
                expires,
                forget_at: expires,
                used: Use::Fresh,
            },
        );
        Some(code)
    }

    /// Presents `code`: the first time it is live, its grant (and it is
    /// spent from now on); after that, what the first time issued.
    pub fn redeem(&self, code: &str) -> Redemption {
        if !session::is_well_formed_id(code) {
            return Redemption::Unknown;
        }
        let key = CodeKey::of(code);
        let now = Instant::now();
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&key) else {
            return Redemption::Unknown;
        };
        match &mut entry.used {
            Use::Spent {
                issued,
                presented_again,
            } => {
                *presented_again = true;
                Redemption::Again(issued.clone())
            }
            Use::Fresh if entry.expires <= now => {
                entries.remove(&key);
                Redemption::Unknown
            }
            Use::Fresh => {
                entry.used = Use::Spent {
                    issued: Issued::default(),
                    presented_again: false,
                };
                entry.forget_at = now + SPENT_MEMORY;
                Redemption::First(entry.grant.clone(), key)
            }
        }
    }

    /// Records what the first presentation of the code `key` issued.
    /// `Err` with it when the code was presented again in the meantime (or
    /// forgotten, which only a flood of codes can do): the caller must
    /// revoke it and refuse.
    pub fn finish(&self, key: CodeKey, issued: Issued) -> Result<(), Issued> {
        let mut entries = self.lock();
        match entries.get_mut(&key).map(|e| &mut e.used) {
            Some(Use::Spent {
                issued: slot,
                presented_again: false,
            }) => {
                *slot = issued;
                Ok(())
            }
            _ => Err(issued),
        }
    }

    /// Spends every code not yet exchanged that `matches` (its session
    /// ended); returns how many.
    pub fn spend_where(&self, matches: impl Fn(&CodeGrant) -> bool) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, e| !(matches!(e.used, Use::Fresh) && matches(&e.grant)));
        before - entries.len()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    // Every operation leaves the map consistent at each step, so a
    // poisoned lock still holds a usable map.
    fn lock(&self) -> MutexGuard<'_, HashMap<CodeKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(session_id: &str) -> CodeGrant {
        CodeGrant {
            client_id: "0oa-dev-spa".into(),
            redirect_uri: "http://app.test/login/callback".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scopes: vec!["openid".into()],
            nonce: Some("n".into()),
            login: "alice@example.com".into(),
            auth_time: 1,
            session_id: session_id.into(),
        }
    }

    #[test]
    fn a_code_is_good_once_and_its_replay_reports_what_it_issued() {
        let store = CodeStore::new(Duration::from_secs(60), 10);
        let code = store.issue(grant("s1")).unwrap();
        assert_eq!(code.len(), 43);
        let Redemption::First(got, key) = store.redeem(&code) else {
            panic!("first presentation");
        };
        assert_eq!(got, grant("s1"));
        let issued = Issued {
            access_token: Some(("AT.x".into(), 99)),
            family: None,
        };
        store.finish(key, issued.clone()).unwrap();
        assert_eq!(store.redeem(&code), Redemption::Again(issued.clone()));
        assert_eq!(store.redeem(&code), Redemption::Again(issued));
        assert_eq!(store.redeem("not-a-code"), Redemption::Unknown);
        assert_eq!(
            store.redeem(&session::random_id().unwrap()),
            Redemption::Unknown
        );
    }

    #[test]
    fn a_replay_during_the_first_exchange_makes_it_revoke_its_own() {
        let store = CodeStore::new(Duration::from_secs(60), 10);
        let code = store.issue(grant("s1")).unwrap();
        let Redemption::First(_, key) = store.redeem(&code) else {
            panic!("first presentation");
        };
        assert_eq!(store.redeem(&code), Redemption::Again(Issued::default()));
        let issued = Issued {
            access_token: Some(("AT.y".into(), 99)),
            family: None,
        };
        assert_eq!(store.finish(key, issued.clone()), Err(issued));
    }

    #[test]
    fn codes_expire() {
        let store = CodeStore::new(Duration::ZERO, 10);
        let code = store.issue(grant("s1")).unwrap();
        assert_eq!(store.redeem(&code), Redemption::Unknown);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn ending_a_session_spends_its_codes_but_not_others() {
        let store = CodeStore::new(Duration::from_secs(60), 10);
        let mine = store.issue(grant("s1")).unwrap();
        let other = store.issue(grant("s2")).unwrap();
        assert_eq!(store.spend_where(|g| g.session_id == "s1"), 1);
        assert_eq!(store.redeem(&mine), Redemption::Unknown);
        assert!(matches!(store.redeem(&other), Redemption::First(..)));
    }

    #[test]
    fn the_store_is_bounded() {
        let store = CodeStore::new(Duration::from_secs(60), 3);
        let first = store.issue(grant("s")).unwrap();
        for _ in 0..10 {
            store.issue(grant("s")).unwrap();
        }
        assert_eq!(store.len(), 3);
        assert_eq!(store.redeem(&first), Redemption::Unknown);
    }
}
