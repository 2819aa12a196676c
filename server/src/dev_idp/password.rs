//! Password hashes of the configured users.
//!
//! Format: `pbkdf2-sha256$<iterations>$<salt>$<hash>`, salt and hash in
//! base64url without padding, the hash 32 bytes of PBKDF2-HMAC-SHA256
//! (aws-lc-rs). Make one with `dev-idp --hash-password` (reads the password
//! from standard input). The demo users' passwords are public anyway; the
//! hashing is there so that a config file never holds a password in the
//! clear by habit.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::LazyLock;

use aws_lc_rs::pbkdf2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const SCHEME: &str = "pbkdf2-sha256";
const HASH_LEN: usize = 32;
const MIN_SALT_LEN: usize = 8;
const MAX_ITERATIONS: u32 = 10_000_000;

/// Iterations for new hashes. Low for PBKDF2 today on purpose: this server
/// only ever holds demo passwords, and every sign-in in the test suites
/// pays for it.
pub const DEFAULT_ITERATIONS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashError {
    #[error("a password hash must look like pbkdf2-sha256$<iterations>$<salt>$<hash>")]
    Shape,
    #[error("the iteration count must be between 1 and {MAX_ITERATIONS}")]
    Iterations,
    #[error("the salt must be base64url (no padding) of at least {MIN_SALT_LEN} bytes")]
    Salt,
    #[error("the hash must be base64url (no padding) of {HASH_LEN} bytes")]
    Hash,
}

/// A parsed password hash.
#[derive(Clone)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl FromStr for PasswordHash {
    type Err = PasswordHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split('$');
        let (Some(SCHEME), Some(iterations), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(PasswordHashError::Shape);
        };
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_ITERATIONS)
            .and_then(NonZeroU32::new)
            .ok_or(PasswordHashError::Iterations)?;
        let salt = URL_SAFE_NO_PAD
            .decode(salt)
            .ok()
            .filter(|s| s.len() >= MIN_SALT_LEN)
            .ok_or(PasswordHashError::Salt)?;
        let hash = URL_SAFE_NO_PAD
            .decode(hash)
            .ok()
            .filter(|h| h.len() == HASH_LEN)
            .ok_or(PasswordHashError::Hash)?;
        Ok(Self {
            iterations,
            salt,
            hash,
        })
    }
}

impl PasswordHash {
    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &str) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

impl std::fmt::Display for PasswordHash {
    /// The config file format, which `from_str` reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{SCHEME}${}${}${}",
            self.iterations,
            URL_SAFE_NO_PAD.encode(&self.salt),
            URL_SAFE_NO_PAD.encode(&self.hash)
        )
    }
}

/// Hashes `password` with a fresh random salt, in the config file format.
pub fn hash_password(password: &str) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)?;
    Ok(derive(password, &salt, DEFAULT_ITERATIONS).to_string())
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> PasswordHash {
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    let mut hash = vec![0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut hash,
    );
    PasswordHash {
        iterations,
        salt: salt.to_vec(),
        hash,
    }
}

/// Checked against when the login is unknown, so that a wrong login takes
/// as long as a wrong password and the timing does not tell them apart.
pub fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: LazyLock<PasswordHash> =
        LazyLock::new(|| derive("not a password", b"dev-idp-dummy-salt", DEFAULT_ITERATIONS));
    &DUMMY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let text = hash_password("s3cret").unwrap();
        assert!(text.starts_with("pbkdf2-sha256$10000$"));
        let hash: PasswordHash = text.parse().unwrap();
        assert!(hash.verify("s3cret"));
        assert!(!hash.verify("s3cret "));
        assert!(!hash.verify(""));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
    }

    #[test]
    fn rejects_malformed_hashes() {
        let good = derive("pw", b"12345678", 5).to_string();
        assert!(good.parse::<PasswordHash>().is_ok());
        for (bad, err) in [
            ("", PasswordHashError::Shape),
            ("sha256$1$AAAAAAAAAAA$x", PasswordHashError::Shape),
            (&format!("{good}$extra"), PasswordHashError::Shape),
            (
                &good.replacen("$5$", "$0$", 1),
                PasswordHashError::Iterations,
            ),
            (
                &good.replacen("$5$", "$x$", 1),
                PasswordHashError::Iterations,
            ),
            ("pbkdf2-sha256$5$c2FsdA$AAAA", PasswordHashError::Salt),
            ("pbkdf2-sha256$5$MTIzNDU2Nzg$AAAA", PasswordHashError::Hash),
        ] {
            assert_eq!(bad.parse::<PasswordHash>().unwrap_err(), err, "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_hash() {
        let hash: PasswordHash = derive("pw", b"12345678", 5).to_string().parse().unwrap();
        let shown = format!("{hash:?}");
        assert!(!shown.contains("salt") && !shown.contains("hash:"));
    }

    #[test]
    fn dummy_matches_nothing_ordinary() {
        assert!(!dummy_hash().verify(""));
        assert!(!dummy_hash().verify("alice-password"));
    }
}
