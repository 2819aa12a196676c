//! Refresh tokens (RFC 6749 §6) as Okta gives them to a browser app: with
//! "Rotate token after every use" (RFC 9700 §4.14.2), a grace period for
//! token rotation, and reuse detection.
//!
//! A sign-in that grants `offline_access` starts a *family*: the first
//! refresh token, and every token that replaces it. Each use of the
//! family's current token gets a new one (the next *generation*) and the
//! used one stays good for the client's grace period (0–60 s, default
//! 30 s), so a client whose answer was lost can ask again; within it, the
//! previous token gets the token that replaced it. Any other use of an
//! older token is reuse: someone else has a copy, so the whole family is
//! revoked, with the access tokens it issued (Okta: "invalidates the most
//! recently issued refresh token and all access tokens issued since the
//! user authenticated").
//!
//! A family dies when its lifetime since the sign-in is over, when its
//! current token has not been used for the idle time, when it is revoked
//! (`/v1/revoke`, reuse), and when its session ends (logout, the test
//! control).
//!
//! A token is `base64url(family id ‖ generation ‖ HMAC-SHA256)`, 70
//! characters, under a key made at start-up. The tag makes tokens
//! unforgeable and lets the server tell which generation of which family a
//! token is without storing each token: the family holds only its current
//! generation, however often it rotates. The generation's token can be
//! recomputed, which is what the grace period hands back.
//!
//! Times are milliseconds since the Unix epoch, so that a grace period of
//! one second means one second.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::config::RefreshPolicy;

/// The length of a refresh token: 52 bytes in base64url.
const TOKEN_LEN: usize = 70;
const ID_LEN: usize = 16;
/// At most this many access tokens are remembered per family, to revoke
/// with it; expired ones are dropped first. A family renewed as its access
/// tokens expire has one or two live at a time.
const MAX_ACCESS_TOKENS_PER_FAMILY: usize = 64;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Identifies a family; a part of each of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId([u8; ID_LEN]);

/// What a sign-in granted, which every token of its family carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    pub login: String,
    /// The session that signed in: ending it revokes the family.
    pub session_id: String,
    /// The scopes granted at sign-in; a refresh may ask for fewer.
    pub scopes: Vec<String>,
    pub auth_time: u64,
    /// The thumbprint of the DPoP key the family is bound to (RFC 9449
    /// §5: a public client's refresh token obtained with a proof), which
    /// every refresh must then prove it holds.
    pub jkt: Option<String>,
}

#[derive(Debug)]
struct Family {
    grant: Grant,
    /// The end of its lifetime, whatever the use.
    absolute_exp: u64,
    generation: u32,
    /// When the current generation was issued, and when it dies unused.
    issued: u64,
    idle_exp: u64,
    /// When the previous generation was issued, if there is one.
    previous_issued: Option<u64>,
    /// The access tokens issued from it: (`jti`, `exp` in seconds).
    access_tokens: Vec<(String, u64)>,
}

impl Family {
    fn exp(&self) -> u64 {
        self.idle_exp.min(self.absolute_exp)
    }

    /// Until when the previous generation is still good.
    fn previous_good_until(&self, grace_secs: u64) -> Option<u64> {
        self.previous_issued?;
        Some(
            self.issued
                .saturating_add(grace_secs.saturating_mul(1000))
                .min(self.exp()),
        )
    }
}

/// What using a refresh token gives.
#[derive(Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub family: FamilyId,
    /// The refresh token to answer with: the next generation, or, for the
    /// previous token within the grace period, the current one.
    pub refresh_token: String,
    /// Whether a new generation was made.
    pub rotated: bool,
    pub grant: Grant,
}

// By hand, so that the token never reaches a log through `{:?}`.
impl std::fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshed")
            .field("family", &self.family)
            .field("refresh_token", &"…")
            .field("rotated", &self.rotated)
            .field("grant", &self.grant)
            .finish()
    }
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// Not a live token of this client: unknown, expired, revoked, or
    /// another client's (`invalid_grant`).
    Invalid,
    /// An old token used again: the family is now revoked. Revoke its
    /// access tokens too, and log it (`invalid_grant`).
    Reused {
        // Boxed: a rare path should not make every result large.
        grant: Box<Grant>,
        access_tokens: Vec<(String, u64)>,
    },
    /// `scope` asked for more than was granted (`invalid_scope`); nothing
    /// changed.
    ScopeExceeded,
    /// The family is bound to a DPoP key and the request has no proof
    /// (`invalid_dpop_proof`); nothing changed.
    ProofMissing,
    /// The family is bound to another DPoP key than the proof's
    /// (`invalid_dpop_proof`); nothing changed: a copy of the token is
    /// useless without the key, and its use says nothing about the family.
    WrongKey,
}

/// What a refresh token is, for introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub grant: Grant,
    /// Seconds since the epoch.
    pub iat: u64,
    pub exp: u64,
}

/// The answer to revoking a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One of ours, but its family is gone already (expired, revoked).
    Gone,
    /// A live token of another client: not revoked.
    OtherClient,
    /// Its family is revoked; these access tokens came from it.
    Revoked(Vec<(String, u64)>),
}

/// The live refresh token families.
pub struct RefreshStore {
    key: hmac::Key,
    families: Mutex<HashMap<FamilyId, Family>>,
    capacity: usize,
}

impl std::fmt::Debug for RefreshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshStore")
            .field("families", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl RefreshStore {
    /// A store with a fresh key, holding at most `capacity` families.
    /// `None` only if the system random generator fails.
    pub fn new(capacity: usize) -> Option<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Some(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            families: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        })
    }

    /// Starts a family for `grant` and returns its first token. `None`
    /// only if the system random generator fails.
    pub fn start(
        &self,
        grant: Grant,
        policy: RefreshPolicy,
        now: u64,
    ) -> Option<(FamilyId, String)> {
        let mut id = [0u8; ID_LEN];
        getrandom::fill(&mut id).ok()?;
        let id = FamilyId(id);
        let absolute_exp = now.saturating_add(policy.lifetime_secs.saturating_mul(1000));
        let family = Family {
            grant,
            absolute_exp,
            generation: 0,
            issued: now,
            idle_exp: now
                .saturating_add(policy.idle_secs.saturating_mul(1000))
                .min(absolute_exp),
            previous_issued: None,
            access_tokens: Vec::new(),
        };
        let mut families = self.lock();
        if families.len() >= self.capacity {
            families.retain(|_, f| f.exp() > now);
        }
        if families.len() >= self.capacity {
            // Forgetting a family revokes it: the person signs in again,
            // which is the safe way to fail.
            let soonest = families
                .iter()
                .min_by_key(|(_, f)| f.exp())
                .map(|(k, _)| *k);
            if let Some(k) = soonest {
                families.remove(&k);
            }
        }
        families.insert(id, family);
        Some((id, self.encode(id, 0)))
    }

    /// Uses `token` for `client_id`, with a DPoP proof by the key of
    /// thumbprint `dpop_jkt` if the request had one, asking for `requested`
    /// scopes (all that were granted if `None`). `policy` gives the
    /// family's lifetimes from its user's login, at the moment of use. A
    /// family not yet bound to a key is bound to the proof's.
    pub fn refresh(
        &self,
        token: &str,
        client_id: &str,
        dpop_jkt: Option<&str>,
        requested: Option<&[String]>,
        now: u64,
        policy: impl Fn(&str) -> RefreshPolicy,
    ) -> Result<Refreshed, RefreshError> {
        let (id, generation) = self.decode(token).ok_or(RefreshError::Invalid)?;
        let mut families = self.lock();
        let family = families.get_mut(&id).ok_or(RefreshError::Invalid)?;
        // Bound to its client (RFC 6749 §6): another client cannot use it,
        // and its trying says nothing about a leak of this family.
        if family.grant.client_id != client_id {
            return Err(RefreshError::Invalid);
        }
        if family.exp() <= now {
            families.remove(&id);
            return Err(RefreshError::Invalid);
        }
        // Before reuse is looked at: without the key, a token (current or
        // old) can neither be used nor revoke its family.
        match (family.grant.jkt.as_deref(), dpop_jkt) {
            (Some(_), None) => return Err(RefreshError::ProofMissing),
            (Some(bound), Some(proof)) if bound != proof => return Err(RefreshError::WrongKey),
            _ => {}
        }
        let policy = policy(&family.grant.login);
        let current = generation == family.generation;
        let previous_in_grace = generation.checked_add(1) == Some(family.generation)
            && family
                .previous_good_until(policy.rotation_grace_secs)
                .is_some_and(|until| now < until);
        if !current && !previous_in_grace {
            let Some(family) = families.remove(&id) else {
                return Err(RefreshError::Invalid);
            };
            return Err(RefreshError::Reused {
                grant: Box::new(family.grant),
                access_tokens: family.access_tokens,
            });
        }
        if let Some(requested) = requested {
            if requested.iter().any(|s| !family.grant.scopes.contains(s)) {
                return Err(RefreshError::ScopeExceeded);
            }
        }
        if family.grant.jkt.is_none() {
            family.grant.jkt = dpop_jkt.map(str::to_owned);
        }
        if current {
            let Some(next) = family.generation.checked_add(1) else {
                families.remove(&id);
                return Err(RefreshError::Invalid);
            };
            family.generation = next;
            family.previous_issued = Some(family.issued);
            family.issued = now;
            family.idle_exp = now
                .saturating_add(policy.idle_secs.saturating_mul(1000))
                .min(family.absolute_exp);
        }
        Ok(Refreshed {
            family: id,
            refresh_token: self.encode(id, family.generation),
            rotated: current,
            grant: family.grant.clone(),
        })
    }

    /// Remembers an access token issued from family `id`, to revoke with
    /// it. `false` if the family is gone (revoked meanwhile): the caller
    /// must revoke the token itself.
    pub fn add_access_token(&self, id: FamilyId, jti: &str, exp: u64, now_secs: u64) -> bool {
        let mut families = self.lock();
        let Some(family) = families.get_mut(&id) else {
            return false;
        };
        let tokens = &mut family.access_tokens;
        tokens.retain(|(_, exp)| *exp > now_secs);
        if tokens.len() >= MAX_ACCESS_TOKENS_PER_FAMILY {
            tokens.remove(0);
        }
        tokens.push((jti.to_owned(), exp));
        true
    }

    /// Revokes family `id`; the access tokens it issued, if it was live.
    pub fn revoke_family(&self, id: FamilyId) -> Option<Vec<(String, u64)>> {
        self.lock().remove(&id).map(|f| f.access_tokens)
    }

    /// Whether `token` is a refresh token this server made (live or not).
    pub fn is_ours(&self, token: &str) -> bool {
        self.decode(token).is_some()
    }

    /// Revokes the family of `token` (any generation) for `client_id`.
    pub fn revoke(&self, token: &str, client_id: &str) -> Revocation {
        let Some((id, _)) = self.decode(token) else {
            return Revocation::Gone;
        };
        let mut families = self.lock();
        match families.get(&id) {
            None => Revocation::Gone,
            Some(f) if f.grant.client_id != client_id => Revocation::OtherClient,
            Some(_) => families
                .remove(&id)
                .map_or(Revocation::Gone, |f| Revocation::Revoked(f.access_tokens)),
        }
    }

    /// Revokes every family whose grant `matches` (its session or its
    /// user's sessions ended); returns how many.
    pub fn revoke_where(&self, matches: impl Fn(&Grant) -> bool) -> usize {
        let mut families = self.lock();
        let before = families.len();
        families.retain(|_, f| !matches(&f.grant));
        before - families.len()
    }

    /// What `token` is, if it is usable now by `client_id`: the current
    /// generation, or the previous one within the grace period.
    pub fn describe(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        policy: impl Fn(&str) -> RefreshPolicy,
    ) -> Option<Description> {
        let (id, generation) = self.decode(token)?;
        let families = self.lock();
        let family = families.get(&id)?;
        if family.grant.client_id != client_id || family.exp() <= now {
            return None;
        }
        let (issued, exp) = if generation == family.generation {
            (family.issued, family.exp())
        } else if generation.checked_add(1) == Some(family.generation) {
            let grace = policy(&family.grant.login).rotation_grace_secs;
            let until = family.previous_good_until(grace)?;
            if now >= until {
                return None;
            }
            (family.previous_issued?, until)
        } else {
            return None;
        };
        Some(Description {
            grant: family.grant.clone(),
            iat: issued / 1000,
            exp: exp / 1000,
        })
    }

    fn encode(&self, id: FamilyId, generation: u32) -> String {
        let mut bytes = Vec::with_capacity(52);
        bytes.extend_from_slice(&id.0);
        bytes.extend_from_slice(&generation.to_be_bytes());
        let tag = hmac::sign(&self.key, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The family and generation of a token this server made; `None` for
    /// anything else. The tag is checked in constant time.
    fn decode(&self, token: &str) -> Option<(FamilyId, u32)> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (body, tag) = bytes.split_at_checked(ID_LEN + 4)?;
        hmac::verify(&self.key, body, tag).ok()?;
        let (id, generation) = body.split_at(ID_LEN);
        Some((
            FamilyId(id.try_into().ok()?),
            u32::from_be_bytes(generation.try_into().ok()?),
        ))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    // Every operation leaves the map consistent at each step, so a
    // poisoned lock still holds a usable map.
    fn lock(&self) -> MutexGuard<'_, HashMap<FamilyId, Family>> {
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RefreshPolicy = RefreshPolicy {
        lifetime_secs: 3600,
        idle_secs: 600,
        rotation_grace_secs: 30,
    };
    const T0: u64 = 1_000_000_000_000;

    fn grant() -> Grant {
        Grant {
            client_id: "0oa-dev-spa".into(),
            login: "alice@example.com".into(),
            session_id: "s1".into(),
            scopes: vec!["openid".into(), "offline_access".into(), "email".into()],
            auth_time: 1,
            jkt: None,
        }
    }

    fn policy(_: &str) -> RefreshPolicy {
        POLICY
    }

    fn refresh(store: &RefreshStore, token: &str, at: u64) -> Result<Refreshed, RefreshError> {
        store.refresh(token, "0oa-dev-spa", None, None, at, policy)
    }

    #[test]
    fn each_use_rotates_and_the_previous_token_gets_the_current_one_in_grace() {
        let store = RefreshStore::new(10).unwrap();
        let (_, t0) = store.start(grant(), POLICY, T0).unwrap();
        assert_eq!(t0.len(), TOKEN_LEN);
        let r1 = refresh(&store, &t0, T0 + 1000).unwrap();
        assert!(r1.rotated);
        assert_ne!(r1.refresh_token, t0);
        assert_eq!(r1.grant, grant());
        // Within 30 s, t0 again: t1 again, no rotation.
        let again = refresh(&store, &t0, T0 + 30_999).unwrap();
        assert!(!again.rotated);
        assert_eq!(again.refresh_token, r1.refresh_token);
        // t1 rotates on.
        let r2 = refresh(&store, &r1.refresh_token, T0 + 31_000).unwrap();
        assert!(r2.rotated);
        assert_ne!(r2.refresh_token, r1.refresh_token);
    }

    #[test]
    fn an_old_token_after_the_grace_period_revokes_the_family() {
        let store = RefreshStore::new(10).unwrap();
        let (id, t0) = store.start(grant(), POLICY, T0).unwrap();
        let r1 = refresh(&store, &t0, T0).unwrap();
        assert!(store.add_access_token(id, "AT.1", T0 / 1000 + 60, T0 / 1000));
        match refresh(&store, &t0, T0 + 30_000) {
            Err(RefreshError::Reused {
                grant: g,
                access_tokens,
            }) => {
                assert_eq!(*g, grant());
                assert_eq!(access_tokens, [("AT.1".to_owned(), T0 / 1000 + 60)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            refresh(&store, &r1.refresh_token, T0 + 30_001),
            Err(RefreshError::Invalid)
        );
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn two_generations_back_is_reuse_even_within_the_grace_period() {
        let store = RefreshStore::new(10).unwrap();
        let (_, t0) = store.start(grant(), POLICY, T0).unwrap();
        let t1 = refresh(&store, &t0, T0).unwrap().refresh_token;
        let _t2 = refresh(&store, &t1, T0 + 1).unwrap();
        assert!(matches!(
            refresh(&store, &t0, T0 + 2),
            Err(RefreshError::Reused { .. })
        ));
    }

    #[test]
    fn no_grace_means_the_used_token_is_dead_at_once() {
        let store = RefreshStore::new(10).unwrap();
        let (_, t0) = store.start(grant(), POLICY, T0).unwrap();
        refresh(&store, &t0, T0).unwrap();
        let no_grace = |_: &str| RefreshPolicy {
            rotation_grace_secs: 0,
            ..POLICY
        };
        assert!(matches!(
            store.refresh(&t0, "0oa-dev-spa", None, None, T0, no_grace),
            Err(RefreshError::Reused { .. })
        ));
    }

    #[test]
    fn idle_and_absolute_lifetimes() {
        let store = RefreshStore::new(10).unwrap();
        let (_, t0) = store.start(grant(), POLICY, T0).unwrap();
        assert_eq!(
            refresh(&store, &t0, T0 + 600_000),
            Err(RefreshError::Invalid),
            "unused for the idle time"
        );
        let (_, mut token) = store.start(grant(), POLICY, T0).unwrap();
        // Used every 9 minutes, it lives an hour and no longer.
        let mut at = T0;
        while at + 540_000 < T0 + 3_600_000 {
            at += 540_000;
            token = refresh(&store, &token, at).unwrap().refresh_token;
        }
        assert_eq!(
            refresh(&store, &token, T0 + 3_600_000),
            Err(RefreshError::Invalid)
        );
    }

    #[test]
    fn other_clients_forgeries_and_wider_scopes_are_refused() {
        let store = RefreshStore::new(10).unwrap();
        let (_, t0) = store.start(grant(), POLICY, T0).unwrap();
        assert_eq!(
            store.refresh(&t0, "0oa-other", None, None, T0, policy),
            Err(RefreshError::Invalid)
        );
        let mut forged = t0.clone().into_bytes();
        forged[TOKEN_LEN - 1] = if forged[TOKEN_LEN - 1] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(refresh(&store, &forged, T0), Err(RefreshError::Invalid));
        assert_eq!(refresh(&store, "short", T0), Err(RefreshError::Invalid));
        let wider = ["openid".to_owned(), "profile".to_owned()];
        assert_eq!(
            store.refresh(&t0, "0oa-dev-spa", None, Some(&wider), T0, policy),
            Err(RefreshError::ScopeExceeded)
        );
        // Refused requests change nothing: t0 is still current.
        let narrower = ["openid".to_owned()];
        let r = store
            .refresh(&t0, "0oa-dev-spa", None, Some(&narrower), T0, policy)
            .unwrap();
        assert!(r.rotated);
        assert_eq!(
            r.grant.scopes,
            grant().scopes,
            "the family keeps its scopes"
        );
    }

    #[test]
    fn a_bound_family_needs_a_proof_by_its_key_and_changes_nothing_otherwise() {
        let store = RefreshStore::new(10).unwrap();
        let bound = Grant {
            jkt: Some("key-a".into()),
            ..grant()
        };
        let (_, t0) = store.start(bound, POLICY, T0).unwrap();
        let with_key = |token: &str, jkt: Option<&str>, at: u64| {
            store.refresh(token, "0oa-dev-spa", jkt, None, at, policy)
        };
        assert_eq!(with_key(&t0, None, T0), Err(RefreshError::ProofMissing));
        assert_eq!(
            with_key(&t0, Some("key-b"), T0),
            Err(RefreshError::WrongKey)
        );
        // Refused requests neither rotated nor revoked: t0 is current.
        let t1 = with_key(&t0, Some("key-a"), T0 + 1).unwrap();
        assert!(t1.rotated);
        assert_eq!(t1.grant.jkt.as_deref(), Some("key-a"));
        // An old token without the key does not revoke the family either.
        assert_eq!(
            with_key(&t0, Some("key-b"), T0 + 60_000),
            Err(RefreshError::WrongKey)
        );
        assert!(with_key(&t1.refresh_token, Some("key-a"), T0 + 60_001).is_ok());

        // An unbound family is bound by its first refresh with a proof.
        let (_, u0) = store.start(grant(), POLICY, T0).unwrap();
        let u1 = with_key(&u0, Some("key-c"), T0).unwrap();
        assert_eq!(u1.grant.jkt.as_deref(), Some("key-c"));
        assert_eq!(
            with_key(&u1.refresh_token, None, T0 + 1),
            Err(RefreshError::ProofMissing)
        );
    }

    #[test]
    fn revocation_and_description() {
        let store = RefreshStore::new(10).unwrap();
        let (_, t0) = store.start(grant(), POLICY, T0).unwrap();
        let t1 = refresh(&store, &t0, T0 + 5000).unwrap().refresh_token;
        let d = store
            .describe(&t1, "0oa-dev-spa", T0 + 6000, policy)
            .unwrap();
        assert_eq!((d.iat, d.exp), ((T0 + 5000) / 1000, (T0 + 605_000) / 1000));
        let d = store
            .describe(&t0, "0oa-dev-spa", T0 + 6000, policy)
            .unwrap();
        assert_eq!((d.iat, d.exp), (T0 / 1000, (T0 + 35_000) / 1000));
        assert_eq!(
            store.describe(&t0, "0oa-dev-spa", T0 + 35_000, policy),
            None
        );
        assert_eq!(store.describe(&t1, "0oa-other", T0 + 6000, policy), None);

        assert_eq!(store.revoke(&t1, "0oa-other"), Revocation::OtherClient);
        assert_eq!(
            store.revoke(&t0, "0oa-dev-spa"),
            Revocation::Revoked(vec![])
        );
        assert_eq!(store.revoke(&t1, "0oa-dev-spa"), Revocation::Gone);
        assert_eq!(refresh(&store, &t1, T0 + 7000), Err(RefreshError::Invalid));
        assert!(store.is_ours(&t1));
        assert!(!store.is_ours("a.b.c"));

        store.start(grant(), POLICY, T0).unwrap();
        let (_, bob) = store
            .start(
                Grant {
                    login: "bob@example.com".into(),
                    session_id: "s2".into(),
                    ..grant()
                },
                POLICY,
                T0,
            )
            .unwrap();
        assert_eq!(store.revoke_where(|g| g.session_id == "s1"), 1);
        assert!(refresh(&store, &bob, T0).is_ok());
    }

    #[test]
    fn the_store_is_bounded_and_tracks_few_access_tokens() {
        let store = RefreshStore::new(3).unwrap();
        let (first, _) = store.start(grant(), POLICY, T0).unwrap();
        for i in 0..10 {
            store.start(grant(), POLICY, T0 + i + 1).unwrap();
        }
        assert_eq!(store.len(), 3);
        assert_eq!(store.revoke_family(first), None);

        let (id, _) = store.start(grant(), POLICY, T0 + 100).unwrap();
        for i in 0..100 {
            assert!(store.add_access_token(id, &format!("AT.{i}"), 2_000_000_000, 1));
        }
        let kept = store.revoke_family(id).unwrap();
        assert_eq!(kept.len(), MAX_ACCESS_TOKENS_PER_FAMILY);
        assert_eq!(kept.last().unwrap().0, "AT.99");
    }
}
