//! Server-side state a browser refers to by a random id in a cookie or a
//! form field: sign-in sessions and pending sign-in requests. Both live in
//! memory, expire, and are bounded in number, so a flood of requests cannot
//! grow them without limit. Also the few cookie helpers the server needs.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// 256 bits from the operating system's CSPRNG (getrandom), base64url:
/// 43 characters. Session ids, sign-in bindings and authorization codes.
pub fn random_id() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `id` could have come from [`random_id`]; anything else is not
/// looked up at all.
pub fn is_well_formed_id(id: &str) -> bool {
    id.len() == 43
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A map from random ids to values that expire after a fixed time, holding
/// at most `capacity` entries (the one closest to expiry goes first).
pub struct ExpiringMap<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
    ttl: Duration,
    capacity: usize,
}

impl<V: Clone> ExpiringMap<V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// Stores `value` under a new random id. `None` only if the system
    /// random generator fails.
    pub fn insert(&self, value: V) -> Option<String> {
        let id = random_id()?;
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires, _)| *expires > now);
        }
        if entries.len() >= self.capacity {
            let soonest = entries
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                entries.remove(&k);
            }
        }
        entries.insert(id.clone(), (now + self.ttl, value));
        Some(id)
    }

    /// The live value under `id`.
    pub fn get(&self, id: &str) -> Option<V> {
        if !is_well_formed_id(id) {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(id) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(id);
                None
            }
            None => None,
        }
    }

    /// Removes `id` and returns its value if it was still live: single use.
    pub fn take(&self, id: &str) -> Option<V> {
        let (expires, value) = self.lock().remove(id)?;
        (expires > Instant::now()).then_some(value)
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Removes every entry whose value `matches`; returns how many.
    pub fn remove_where(&self, matches: impl Fn(&V) -> bool) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, (_, value)| !matches(value));
        before - entries.len()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    // Each operation is a single map call, so a poisoned lock still holds a
    // consistent map.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub login: String,
    /// Unix seconds of the password check: the ID token's `auth_time`.
    pub auth_time: u64,
}

/// The value of cookie `name` in the request, the first if there are several.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The session cookie's `SameSite` attribute (with `Secure` where it can
/// have it), as Okta sets its own: `None; Secure`, so it goes with the
/// hidden renewal iframe's request even when the app is another site than
/// the issuer, unless the browser blocks third-party cookies; that is the
/// behaviour the app must live with against a real org. Browsers take a
/// `Secure` cookie over plain http only from loopback, so a server reached
/// over http elsewhere (`DEV_IDP=1`) keeps `Lax`.
pub fn session_same_site(origin: &url::Url) -> &'static str {
    let loopback = match origin.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if origin.scheme() == "https" || loopback {
        "None; Secure"
    } else {
        "Lax"
    }
}

/// `Set-Cookie` for a cookie that holds a random id. No `Max-Age`: it dies
/// with the browser, and the server side expires it anyway.
pub fn set_cookie(name: &str, value: &str, same_site: &str, path: &str) -> String {
    format!("{name}={value}; HttpOnly; SameSite={same_site}; Path={path}")
}

/// `Set-Cookie` that deletes cookie `name`.
pub fn clear_cookie(name: &str, same_site: &str, path: &str) -> String {
    format!("{name}=; HttpOnly; SameSite={same_site}; Path={path}; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_cross_site_like_oktas_where_browsers_allow_it() {
        let same_site = |origin: &str| session_same_site(&url::Url::parse(origin).unwrap());
        assert_eq!(same_site("http://localhost:3100/"), "None; Secure");
        assert_eq!(same_site("http://127.0.0.1:3160/"), "None; Secure");
        assert_eq!(same_site("http://[::1]:3100/"), "None; Secure");
        assert_eq!(same_site("https://idp.example/"), "None; Secure");
        assert_eq!(same_site("http://192.168.1.5:3100/"), "Lax");
        assert_eq!(
            set_cookie("sid", "abc", "None; Secure", "/"),
            "sid=abc; HttpOnly; SameSite=None; Secure; Path=/"
        );
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_ne!(a, b);
        assert!(is_well_formed_id(&a));
        assert!(!is_well_formed_id("short"));
        assert!(!is_well_formed_id(&format!("{}!", &a[..42])));
    }

    #[test]
    fn entries_expire_and_are_single_use_on_take() {
        let map = ExpiringMap::new(Duration::from_secs(60), 10);
        let id = map.insert(7).unwrap();
        assert_eq!(map.get(&id), Some(7));
        assert_eq!(map.take(&id), Some(7));
        assert_eq!(map.get(&id), None);

        let expired = ExpiringMap::new(Duration::ZERO, 10);
        let id = expired.insert(1).unwrap();
        assert_eq!(expired.get(&id), None);
    }

    #[test]
    fn capacity_is_bounded() {
        let map = ExpiringMap::new(Duration::from_secs(60), 3);
        let first = map.insert(0).unwrap();
        for i in 1..10 {
            map.insert(i).unwrap();
        }
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&first), None);
    }

    #[test]
    fn reads_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=1; sid=abc; b=2".parse().unwrap());
        headers.append("cookie", "sid=later".parse().unwrap());
        assert_eq!(read_cookie(&headers, "sid"), Some("abc"));
        assert_eq!(read_cookie(&headers, "b"), Some("2"));
        assert_eq!(read_cookie(&headers, "missing"), None);
    }
}
