//! The structure of a compact JWS (RFC 7515 §7.1) and its protected header.
//!
//! Checked here, cheaply and before any key lookup: exactly three non-empty
//! base64url parts, a header that is UTF-8 JSON, `alg` exactly `RS256`, no
//! `crit`, a sane `kid`. Header parameters that point at keys (`jku`,
//! `x5u`, `jwk`, `x5c`) are never read: the key comes from the issuer's
//! JWKS, chosen by `kid` alone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::error::TokenError;

/// Longest `kid` looked up. Okta's are 43 characters; anything much longer
/// is garbage that should not reach the JWKS cache.
pub const MAX_KID_LEN: usize = 128;

/// The three parts of a compact JWS, still encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactJws<'a> {
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

/// Splits `token` into its parts, refusing anything that is not exactly
/// three non-empty parts (JWE has five parts, unsecured JWTs an empty
/// signature). The characters of each part are checked by the base64url
/// decoding that every part goes through next, so they are not scanned
/// twice here.
pub fn split(token: &str) -> Result<CompactJws<'_>, TokenError> {
    // `str::find` with an ASCII char is a vectorised byte search.
    let first = token.find('.').ok_or(TokenError::NotCompactJws)?;
    let second = first
        + 1
        + token[first + 1..]
            .find('.')
            .ok_or(TokenError::NotCompactJws)?;
    let (header, payload, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    if header.is_empty() || payload.is_empty() || signature.is_empty() || signature.contains('.') {
        return Err(TokenError::NotCompactJws);
    }
    Ok(CompactJws {
        signing_input: &token[..second],
        header,
        payload,
        signature,
    })
}

/// The protected header fields this validator reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoseHeader {
    pub kid: String,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    // Any value at all, even an empty list (which RFC 7515 §4.1.11 forbids),
    // means the token relies on extensions this validator does not
    // implement.
    crit: Option<serde::de::IgnoredAny>,
}

/// Decodes and checks the protected header.
pub fn decode_header(encoded: &str) -> Result<JoseHeader, TokenError> {
    let json = decode_part(encoded).ok_or(TokenError::BadHeader)?;
    // Duplicate member names are an error in serde's derived structs, so a
    // header cannot say `alg` twice and have two readers disagree.
    let raw: RawHeader = serde_json::from_slice(&json).map_err(|_| TokenError::BadHeader)?;
    if raw.crit.is_some() {
        return Err(TokenError::UnsupportedCrit);
    }
    // Case-sensitive (RFC 7518 §3.1): "none", "HS256", "rs256" all fail.
    if raw.alg != "RS256" {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    let kid = raw.kid.ok_or(TokenError::BadKid)?;
    if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::BadKid);
    }
    Ok(JoseHeader { kid })
}

/// base64url without padding (RFC 7515 §2), or `None`.
pub fn decode_part(encoded: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(encoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn splits_three_parts() {
        let jws = split("aGVh.cGF5.c2ln").unwrap();
        assert_eq!(jws.signing_input, "aGVh.cGF5");
        assert_eq!(
            (jws.header, jws.payload, jws.signature),
            ("aGVh", "cGF5", "c2ln")
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d.e",
            "a.b.c.d",
            "a..c",
            "a.b.",
            ".b.c",
            "..",
            "...",
        ] {
            assert_eq!(split(bad), Err(TokenError::NotCompactJws), "{bad:?}");
        }
    }

    #[test]
    fn characters_outside_base64url_fail_decoding() {
        // Padding, the standard alphabet and anything else are refused by
        // the decoder each part goes through.
        for bad in ["YQ==", "a+b/", "a b", "a%62", "\u{e9}"] {
            assert_eq!(decode_part(bad), None, "{bad:?}");
        }
        assert_eq!(decode_part("YWJj").as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn reads_an_rs256_header() {
        let header = decode_header(&b64(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#)).unwrap();
        assert_eq!(header.kid, "k1");
    }

    #[test]
    fn only_rs256_is_allowed() {
        for alg in [
            "none", "None", "HS256", "HS512", "RS384", "PS256", "ES256", "rs256", "",
        ] {
            let header = b64(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
            assert_eq!(
                decode_header(&header),
                Err(TokenError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
    }

    #[test]
    fn crit_is_refused_even_when_empty() {
        for crit in [r#"["exp"]"#, "[]", r#"["b64"]"#] {
            let header = b64(&format!(r#"{{"alg":"RS256","kid":"k1","crit":{crit}}}"#));
            assert_eq!(decode_header(&header), Err(TokenError::UnsupportedCrit));
        }
    }

    #[test]
    fn key_pointing_parameters_are_ignored() {
        let header = b64(
            r#"{"alg":"RS256","kid":"k1","jku":"https://evil.example/keys","x5u":"https://evil.example/c","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"},"x5c":["AAAA"]}"#,
        );
        assert_eq!(decode_header(&header).unwrap().kid, "k1");
    }

    #[test]
    fn duplicate_alg_is_refused() {
        let header = b64(r#"{"alg":"RS256","alg":"none","kid":"k1"}"#);
        assert_eq!(decode_header(&header), Err(TokenError::BadHeader));
    }

    #[test]
    fn kid_must_be_present_and_sane() {
        assert_eq!(
            decode_header(&b64(r#"{"alg":"RS256"}"#)),
            Err(TokenError::BadKid)
        );
        assert_eq!(
            decode_header(&b64(r#"{"alg":"RS256","kid":""}"#)),
            Err(TokenError::BadKid)
        );
        let long = "k".repeat(MAX_KID_LEN + 1);
        assert_eq!(
            decode_header(&b64(&format!(r#"{{"alg":"RS256","kid":"{long}"}}"#))),
            Err(TokenError::BadKid)
        );
        assert_eq!(
            decode_header(&b64(r#"{"alg":"RS256","kid":"a b"}"#)),
            Err(TokenError::BadKid)
        );
        // Path characters are only unusual, not malformed: such a kid is
        // simply not in the key set (see the validator's tests).
        assert_eq!(
            decode_header(&b64(r#"{"alg":"RS256","kid":"../../etc/passwd"}"#))
                .unwrap()
                .kid,
            "../../etc/passwd"
        );
    }

    #[test]
    fn header_must_be_utf8_json() {
        assert_eq!(decode_header("!!!"), Err(TokenError::BadHeader));
        assert_eq!(decode_header(&b64("not json")), Err(TokenError::BadHeader));
        assert_eq!(
            decode_header(&URL_SAFE_NO_PAD.encode([b'{', 0xff, 0xfe, b'}'])),
            Err(TokenError::BadHeader)
        );
        assert_eq!(
            decode_header(&b64(r#"["RS256"]"#)),
            Err(TokenError::BadHeader)
        );
        assert_eq!(
            decode_header(&b64(r#"{"alg":256}"#)),
            Err(TokenError::BadHeader)
        );
    }
}
