//! Proof Key for Code Exchange (RFC 7636) as this server requires it of
//! its public clients: the `S256` method only.
//!
//! The client makes a `code_verifier` (43–128 characters of the unreserved
//! set, §4.1), sends `BASE64URL(SHA256(verifier))` as the `code_challenge`
//! with the authorization request (§4.2), and the verifier itself with the
//! code at the token endpoint, where the server recomputes the challenge
//! and compares (§4.6). `plain`, where the challenge is the verifier, is
//! not accepted: the challenge travels through the browser, so `plain`
//! protects nothing against whoever sees the URL (RFC 9700 §2.1.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The only `code_challenge_method`.
pub const S256: &str = "S256";

/// Okta's `error_description` for a public client's code request without
/// a challenge.
pub const REQUIRED: &str =
    "PKCE code challenge is required when the token endpoint authentication method is 'NONE'.";
/// The `error_description` for any method but S256, `plain` included.
pub const METHOD_UNSUPPORTED: &str =
    "The 'code_challenge_method' must be 'S256': 'plain' and other methods are not supported.";

/// Whether `verifier` is a `code_verifier` of RFC 7636 §4.1: 43 to 128
/// characters of `A-Z a-z 0-9 - . _ ~`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `challenge` could be an S256 challenge: the unpadded base64url
/// of 32 bytes, which is 43 characters. Anything else could never match a
/// verifier, so it is refused when the request arrives rather than when
/// the code is exchanged.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// `BASE64URL(SHA256(ASCII(verifier)))`, RFC 7636 §4.2.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well-formed and its S256 challenge is
/// `challenge`. The comparison takes the same time wherever the two
/// differ.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier)
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            s256_challenge(verifier).as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(verify(VERIFIER, CHALLENGE));
        assert!(is_valid_s256_challenge(CHALLENGE));
    }

    #[test]
    fn anything_else_does_not() {
        let other = format!("{}A", &VERIFIER[..42]);
        assert!(!verify(&other, CHALLENGE));
        assert!(!verify(CHALLENGE, CHALLENGE), "plain is not S256");
        assert!(!verify(VERIFIER, &CHALLENGE[..42]));
        assert!(!verify("", CHALLENGE));
    }

    #[test]
    fn verifiers_are_43_to_128_unreserved_characters() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"-._~09AZaz".repeat(13)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        for bad in ['+', '/', '=', ' ', '%', 'é'] {
            let verifier = format!("{}{bad}", "a".repeat(43));
            assert!(!is_valid_verifier(&verifier), "{bad}");
        }
    }

    #[test]
    fn challenges_are_43_base64url_characters_of_32_bytes() {
        assert!(!is_valid_s256_challenge(&CHALLENGE[..42]));
        assert!(!is_valid_s256_challenge(&format!("{CHALLENGE}A")));
        assert!(!is_valid_s256_challenge(&format!("{}=", &CHALLENGE[..42])));
        assert!(!is_valid_s256_challenge(&CHALLENGE.replace('-', "+")));
        // A last character with bits that 32 bytes cannot have.
        assert!(!is_valid_s256_challenge(&format!("{}1", &CHALLENGE[..42])));
    }
}
