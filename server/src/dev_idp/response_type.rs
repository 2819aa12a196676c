//! The `response_type` of an authorization request: which tokens it asks
//! for. The authorization endpoint parses it; a client's settings in the
//! config list the response types it may use.

/// What `response_type` asked for. `code` and the hybrid types are not
/// implemented: this server only speaks the implicit flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseType {
    pub access_token: bool,
    pub id_token: bool,
}

impl ResponseType {
    /// `token`, `id_token`, or both in either order (RFC 6749 §3.1.1: the
    /// order of space-delimited values does not matter).
    pub fn parse(value: &str) -> Option<Self> {
        let mut words: Vec<&str> = value.split(' ').collect();
        words.sort_unstable();
        match words.as_slice() {
            ["token"] => Some(Self {
                access_token: true,
                id_token: false,
            }),
            ["id_token"] => Some(Self {
                access_token: false,
                id_token: true,
            }),
            ["id_token", "token"] => Some(Self {
                access_token: true,
                id_token: true,
            }),
            _ => None,
        }
    }

    /// The words it is made of, `id_token` first.
    pub fn words(self) -> &'static [&'static str] {
        match (self.id_token, self.access_token) {
            (true, true) => &["id_token", "token"],
            (true, false) => &["id_token"],
            (false, true) => &["token"],
            (false, false) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types() {
        let both = Some(ResponseType {
            access_token: true,
            id_token: true,
        });
        assert_eq!(ResponseType::parse("id_token token"), both);
        assert_eq!(ResponseType::parse("token id_token"), both);
        assert!(ResponseType::parse("token").unwrap().access_token);
        assert!(!ResponseType::parse("id_token").unwrap().access_token);
        for bad in [
            "code",
            "",
            "token token",
            "id_token  token",
            "code id_token",
            "TOKEN",
        ] {
            assert_eq!(ResponseType::parse(bad), None, "{bad:?}");
        }
    }
}
