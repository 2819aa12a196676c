//! Strict reading and writing of `application/x-www-form-urlencoded` text:
//! the authorization and logout query strings, the sign-in form body, and
//! the form bodies posted to revoke, introspect and userinfo.
//!
//! The usual decoders replace bad UTF-8 with U+FFFD and keep the last of a
//! repeated name. An authorization server must not guess: RFC 6749 §3.1 says
//! parameters must not be repeated, and a `state` that silently changed would
//! be handed back to the client changed. So this parser keeps every value and
//! rejects bad percent-escapes, bad UTF-8 and oversized input outright.

use std::collections::BTreeMap;

/// More than this many bytes of parameters is refused before decoding.
/// Real authorization requests are a few hundred bytes.
pub const MAX_INPUT_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("the request parameters are longer than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    #[error("the request parameters are not correctly percent-encoded UTF-8")]
    BadEncoding,
}

/// Why a posted form cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the request body must be application/x-www-form-urlencoded")]
    NotAForm,
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Repeated(#[from] Repeated),
}

/// The parameters of a form body whose `Content-Type` is `content_type`:
/// it must be `application/x-www-form-urlencoded` (parameters such as
/// `charset` allowed), UTF-8, and repeat no parameter (RFC 6749 §3.2).
pub fn parse_form(content_type: Option<&str>, body: &[u8]) -> Result<Params, FormError> {
    let is_form = content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(FormError::NotAForm);
    }
    if body.len() > MAX_INPUT_BYTES {
        return Err(ParamError::TooLarge.into());
    }
    let text = std::str::from_utf8(body).map_err(|_| ParamError::BadEncoding)?;
    let params = Params::parse(text)?;
    if let Some(name) = params.first_repeated() {
        return Err(Repeated(name.to_owned()).into());
    }
    Ok(params)
}

/// A parameter that was sent more than once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the '{0}' parameter was sent more than once")]
pub struct Repeated(pub String);

/// Decoded parameters, every value of every name kept in order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: BTreeMap<String, Vec<String>>,
}

impl Params {
    /// Decodes `a=1&b=2`. Empty pieces (`a=1&&b=2`) are skipped.
    pub fn parse(input: &str) -> Result<Self, ParamError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(ParamError::TooLarge);
        }
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for piece in input.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = decode_component(name)?;
            let value = decode_component(value)?;
            values.entry(name).or_default().push(value);
        }
        Ok(Self { values })
    }

    /// The value of `name`. A parameter sent with an empty value counts as
    /// absent (RFC 6749 §3.1); one sent twice is an error, even if a copy
    /// is empty.
    pub fn get(&self, name: &str) -> Result<Option<&str>, Repeated> {
        match self.values.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) if one.is_empty() => Ok(None),
            Some([one]) => Ok(Some(one.as_str())),
            Some(_) => Err(Repeated(name.to_owned())),
        }
    }

    /// The first name (in sorted order) that was sent more than once.
    pub fn first_repeated(&self) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, v)| v.len() > 1)
            .map(|(k, _)| k.as_str())
    }
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, and the bytes
/// must be UTF-8. A `%` not followed by two hex digits is an error rather
/// than a literal, so that malformed input is never passed on half-read.
pub fn decode_component(text: &str) -> Result<String, ParamError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(ParamError::BadEncoding),
                }
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ParamError::BadEncoding)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
///
/// Spaces become `%20`, not `+`: fragment readers that only percent-decode
/// (rather than form-decode) then still read `scope` correctly.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `name=value&name=value`, each side encoded with [`encode_component`].
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let p = Params::parse("scope=openid+profile%20email&state=a%2Bb").unwrap();
        assert_eq!(p.get("scope").unwrap(), Some("openid profile email"));
        assert_eq!(p.get("state").unwrap(), Some("a+b"));
        assert_eq!(p.get("missing").unwrap(), None);
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse("state=&nonce&&x=1").unwrap();
        assert_eq!(p.get("state").unwrap(), None);
        assert_eq!(p.get("nonce").unwrap(), None);
        assert_eq!(p.get("x").unwrap(), Some("1"));
    }

    #[test]
    fn repeated_names_are_errors() {
        let p = Params::parse("state=a&state=b&x=1").unwrap();
        assert_eq!(p.get("state"), Err(Repeated("state".into())));
        assert_eq!(p.first_repeated(), Some("state"));
        let p = Params::parse("state=a&state=").unwrap();
        assert!(p.get("state").is_err());
    }

    #[test]
    fn rejects_bad_utf8_and_bad_escapes() {
        assert_eq!(
            Params::parse("a=%FF%FE").unwrap_err(),
            ParamError::BadEncoding
        );
        assert_eq!(Params::parse("a=%C3").unwrap_err(), ParamError::BadEncoding);
        assert_eq!(Params::parse("a=%zz").unwrap_err(), ParamError::BadEncoding);
        assert_eq!(Params::parse("a=%4").unwrap_err(), ParamError::BadEncoding);
        assert_eq!(Params::parse("a=%").unwrap_err(), ParamError::BadEncoding);
        assert_eq!(
            Params::parse("a=%C3%A9").unwrap().get("a").unwrap(),
            Some("é")
        );
    }

    #[test]
    fn rejects_oversized_input() {
        let big = format!("a={}", "x".repeat(MAX_INPUT_BYTES));
        assert_eq!(Params::parse(&big).unwrap_err(), ParamError::TooLarge);
    }

    #[test]
    fn encodes_for_fragments() {
        assert_eq!(encode_component("openid profile"), "openid%20profile");
        assert_eq!(encode_component("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(encode_component("é&="), "%C3%A9%26%3D");
        assert_eq!(
            encode_pairs([("error", "access_denied"), ("state", "x y")]),
            "error=access_denied&state=x%20y"
        );
    }

    #[test]
    fn forms_must_be_forms_without_repeats() {
        let form = Some("application/x-www-form-urlencoded; charset=UTF-8");
        let p = parse_form(form, b"token=a.b&token_type_hint=access_token").unwrap();
        assert_eq!(p.get("token").unwrap(), Some("a.b"));
        assert_eq!(
            parse_form(Some("application/json"), b"{}").unwrap_err(),
            FormError::NotAForm
        );
        assert_eq!(
            parse_form(None, b"token=a").unwrap_err(),
            FormError::NotAForm
        );
        assert_eq!(
            parse_form(form, b"token=a&token=b").unwrap_err(),
            FormError::Repeated(Repeated("token".into()))
        );
        assert_eq!(
            parse_form(form, &[0xFF, 0xFE]).unwrap_err(),
            FormError::Params(ParamError::BadEncoding)
        );
        assert!(parse_form(form, b"")
            .unwrap()
            .get("token")
            .unwrap()
            .is_none());
    }

    #[test]
    fn round_trips() {
        let original = "weird &=+%/?#é value";
        let encoded = encode_pairs([("k", original)]);
        let p = Params::parse(&encoded).unwrap();
        assert_eq!(p.get("k").unwrap(), Some(original));
    }
}
