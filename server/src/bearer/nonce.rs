//! Server-issued DPoP nonces (RFC 9449 §8, §9) that need no state: a
//! nonce is the time it was issued and an HMAC-SHA256 tag over it, under a
//! secret every instance of the server shares (`DPOP_NONCE_SECRET`).
//!
//! ```text
//! nonce = base64url( version (1 byte, 1) ‖ issued at (8 bytes, Unix s, big-endian)
//!                    ‖ HMAC-SHA256(secret, "dpop-nonce" ‖ version ‖ issued at) )
//! ```
//!
//! 55 characters of the nonce syntax (§8.1). Any instance with the secret
//! can tell that a nonce is one of theirs and how old it is, so behind a
//! load balancer a proof carrying a nonce is accepted only for
//! [`NONCE_LIFETIME_SECS`] after some instance issued that nonce, whatever
//! its `iat` claims: a client (or a script that can use its key) cannot
//! make proofs for later use. Nonces are unpredictable to anyone without
//! the secret. The tag is compared in constant time.
//!
//! A nonce is good for [`NONCE_LIFETIME_SECS`]; once it is
//! [`RENEW_AFTER_SECS`] old, the next answer carries a fresh one (RFC 9449
//! §8.2), so a client in steady use never meets a refusal. The clock-skew
//! leeway is allowed the other way, for instances whose clocks differ.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// How long a nonce is accepted after it was issued.
pub const NONCE_LIFETIME_SECS: i64 = 300;
/// From this age on, answers carry a fresh nonce.
pub const RENEW_AFTER_SECS: i64 = 180;
/// The shortest secret accepted: the size of the HMAC-SHA256 key block's
/// useful strength.
pub const MIN_SECRET_LEN: usize = 32;

const VERSION: u8 = 1;
/// Domain separation: a tag made for anything else under the same secret
/// is never a nonce.
const LABEL: &[u8] = b"dpop-nonce";
const BODY_LEN: usize = 1 + 8;
const NONCE_LEN: usize = BODY_LEN + 32;

/// What a nonce a client sent back is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by an instance with this secret, and fresh.
    Fresh,
    /// Good, but old enough that the answer should carry a new one.
    Renew,
    /// Not ours (another secret, malformed) or expired.
    Invalid,
}

/// The key nonces are made and checked with.
#[derive(Clone)]
pub struct NonceKey {
    key: hmac::Key,
    leeway_secs: i64,
}

// By hand, so that the secret never reaches a log.
impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey").finish_non_exhaustive()
    }
}

impl NonceKey {
    /// A key from `secret` (at least [`MIN_SECRET_LEN`] bytes), accepting
    /// nonces issued up to `leeway_secs` in the future (another instance's
    /// clock).
    pub fn new(secret: &[u8], leeway_secs: i64) -> Result<NonceKey, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the secret is {} bytes; it must be at least {MIN_SECRET_LEN}",
                secret.len()
            ));
        }
        Ok(NonceKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            leeway_secs: leeway_secs.max(0),
        })
    }

    /// A key from fresh random bytes (the embedded authorization server's,
    /// which runs as one instance). `None` if the system random generator
    /// fails.
    pub fn random(leeway_secs: i64) -> Option<NonceKey> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).ok()?;
        NonceKey::new(&secret, leeway_secs).ok()
    }

    /// A nonce issued at `now` (Unix seconds).
    pub fn issue(&self, now: i64) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[0] = VERSION;
        nonce[1..BODY_LEN].copy_from_slice(&now.to_be_bytes());
        let tag = self.tag(&nonce[..BODY_LEN]);
        nonce[BODY_LEN..].copy_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(nonce)
    }

    /// What `nonce` is worth at `now`.
    pub fn check(&self, nonce: &str, now: i64) -> NonceCheck {
        // The exact length first: nothing longer is decoded.
        if nonce.len() != URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN]).len() {
            return NonceCheck::Invalid;
        }
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceCheck::Invalid;
        };
        let Some((body, tag)) = bytes.split_at_checked(BODY_LEN) else {
            return NonceCheck::Invalid;
        };
        if body[0] != VERSION || hmac::verify(&self.key, &labelled(body), tag).is_err() {
            return NonceCheck::Invalid;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&body[1..]);
        let age = now.saturating_sub(i64::from_be_bytes(issued));
        if age < -self.leeway_secs || age >= NONCE_LIFETIME_SECS {
            NonceCheck::Invalid
        } else if age >= RENEW_AFTER_SECS {
            NonceCheck::Renew
        } else {
            NonceCheck::Fresh
        }
    }

    fn tag(&self, body: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, &labelled(body))
    }
}

fn labelled(body: &[u8]) -> Vec<u8> {
    [LABEL, body].concat()
}

/// `DPOP_NONCE_SECRET` as written: hex (an even number of hex digits), or
/// base64 (standard or URL-safe, padded or not). The error says why, and
/// never contains the value.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let bytes = if !text.is_empty()
        && text.len().is_multiple_of(2)
        && text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "it is not hex or base64".to_string())?
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(|| "it is not hex or base64".to_string())?
    };
    if bytes.len() < MIN_SECRET_LEN {
        return Err(format!(
            "it decodes to {} bytes; at least {MIN_SECRET_LEN} random bytes are needed (e.g. openssl rand -hex 32)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn key(byte: u8) -> NonceKey {
        NonceKey::new(&[byte; 32], 60).unwrap()
    }

    #[test]
    fn a_nonce_is_good_for_its_lifetime_at_every_instance_with_the_secret() {
        let nonce = key(1).issue(NOW);
        assert_eq!(nonce.len(), 55);
        assert!(nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        // Another instance: the same secret, its own key object.
        let other = key(1);
        assert_eq!(other.check(&nonce, NOW), NonceCheck::Fresh);
        assert_eq!(
            other.check(&nonce, NOW + RENEW_AFTER_SECS - 1),
            NonceCheck::Fresh
        );
        assert_eq!(
            other.check(&nonce, NOW + RENEW_AFTER_SECS),
            NonceCheck::Renew
        );
        assert_eq!(
            other.check(&nonce, NOW + NONCE_LIFETIME_SECS - 1),
            NonceCheck::Renew
        );
        assert_eq!(
            other.check(&nonce, NOW + NONCE_LIFETIME_SECS),
            NonceCheck::Invalid
        );
        // An instance whose clock is behind, within the leeway.
        assert_eq!(other.check(&nonce, NOW - 60), NonceCheck::Fresh);
        assert_eq!(other.check(&nonce, NOW - 61), NonceCheck::Invalid);
    }

    #[test]
    fn a_nonce_of_another_secret_or_altered_is_invalid() {
        let nonce = key(1).issue(NOW);
        assert_eq!(key(2).check(&nonce, NOW), NonceCheck::Invalid);
        let mut bytes = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        // Claim to be younger.
        bytes[8] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(key(1).check(&altered, NOW), NonceCheck::Invalid);
        for bad in ["", "x", &nonce[1..], &format!("{nonce}A"), &"!".repeat(55)] {
            assert_eq!(key(1).check(bad, NOW), NonceCheck::Invalid, "{bad}");
        }
    }

    #[test]
    fn secrets_are_hex_or_base64_of_at_least_32_bytes() {
        let hex = "00".repeat(32);
        assert_eq!(parse_secret(&hex).unwrap(), vec![0u8; 32]);
        assert_eq!(parse_secret(&"ab".repeat(40)).unwrap(), vec![0xab; 40]);
        let b64 = STANDARD.encode([7u8; 48]);
        assert_eq!(parse_secret(&b64).unwrap(), vec![7u8; 48]);
        let b64url = URL_SAFE_NO_PAD.encode([0xfb; 33]);
        assert_eq!(parse_secret(&b64url).unwrap(), vec![0xfb; 33]);
        let short = parse_secret(&"ab".repeat(31)).unwrap_err();
        assert!(short.contains("31 bytes"), "{short}");
        assert!(parse_secret("not a secret!").is_err());
        assert!(parse_secret("").is_err());
        // The error never repeats the value.
        let secret = "s3cr3t value, not hex nor base64";
        assert!(!parse_secret(secret).unwrap_err().contains(secret));
        assert!(NonceKey::new(&[0; 31], 0).is_err());
        assert!(!format!("{:?}", key(9)).contains('9'));
    }
}
