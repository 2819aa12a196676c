//! Who is calling the token, revoke or introspect endpoint: the client
//! authentication of RFC 6749 §2.3, for the public clients this server has
//! (SPAs, Okta's `token_endpoint_auth_method: none`), which identify
//! themselves without proving anything.
//!
//! A client names itself one of two ways, never both:
//!
//! - `client_id` in the form body;
//! - `Authorization: Basic base64(client_id[:])`, which is what okta-auth-js
//!   sends (`btoa(clientId)`: no colon, no secret). Okta accepts it, so
//!   this server does too; `client_id:` with an empty secret is the same.
//!
//! The clients have no secrets, so a request that sends one (a non-empty
//! Basic password, `client_secret`, or a `client_assertion`) is refused as
//! `invalid_client` rather than silently accepted.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::config::{Client, Config};
use super::oauth_error::oauth_error;
use super::params::{decode_component, Params};

/// Longer `Authorization` values are not decoded.
const MAX_BASIC_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientAuthError {
    /// Okta's wording for a request that names no client.
    #[error("No client credentials found.")]
    NoCredentials,
    #[error("The client used both the Authorization header and form parameters to authenticate.")]
    TwoMethods,
    #[error("The Basic authentication header is malformed.")]
    MalformedBasic,
    #[error("The client_id is not registered with this server.")]
    UnknownClient { basic: bool },
    #[error("This client is a public client: it has no secret, and sends none.")]
    SecretSent { basic: bool },
}

impl ClientAuthError {
    /// RFC 6749 §5.2: a malformed request is `invalid_request`; a client
    /// that cannot be authenticated is `401 invalid_client`, with a
    /// `WWW-Authenticate` naming the scheme it tried.
    fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::TwoMethods | Self::MalformedBasic => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::NoCredentials | Self::UnknownClient { .. } | Self::SecretSent { .. } => {
                (StatusCode::UNAUTHORIZED, "invalid_client")
            }
        }
    }
}

impl IntoResponse for ClientAuthError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = oauth_error(status, code, &self.to_string());
        if matches!(
            self,
            Self::UnknownClient { basic: true } | Self::SecretSent { basic: true }
        ) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"dev authorization server\""),
            );
        }
        response
    }
}

/// What the request's `Authorization` header says about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicCredentials {
    None,
    Client { id: String, secret: Option<String> },
}

/// Reads `Authorization: Basic …`. Other schemes are not client
/// authentication and are ignored; a Basic header that does not decode is
/// an error.
pub fn basic_credentials(headers: &HeaderMap) -> Result<BasicCredentials, ClientAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(BasicCredentials::None);
    };
    if values.next().is_some() {
        return Err(ClientAuthError::MalformedBasic);
    }
    let value = value.as_bytes();
    if value.len() > MAX_BASIC_LEN {
        return Err(ClientAuthError::MalformedBasic);
    }
    let (scheme, encoded) = match value.iter().position(|b| *b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Ok(BasicCredentials::None);
    }
    let encoded = encoded.trim_ascii();
    if encoded.is_empty() {
        return Err(ClientAuthError::MalformedBasic);
    }
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| ClientAuthError::MalformedBasic)?;
    let decoded = String::from_utf8(decoded).map_err(|_| ClientAuthError::MalformedBasic)?;
    // RFC 6749 §2.3.1: both halves are form-encoded before base64.
    let (id, secret) = match decoded.split_once(':') {
        Some((id, secret)) => (id, Some(secret)),
        None => (decoded.as_str(), None),
    };
    let id = decode_component(id).map_err(|_| ClientAuthError::MalformedBasic)?;
    let secret = secret
        .map(decode_component)
        .transpose()
        .map_err(|_| ClientAuthError::MalformedBasic)?
        .filter(|s| !s.is_empty());
    Ok(BasicCredentials::Client { id, secret })
}

/// The registered client the request comes from.
pub fn authenticate<'a>(
    config: &'a Config,
    headers: &HeaderMap,
    form: &Params,
) -> Result<&'a Client, ClientAuthError> {
    // `parse_form` has refused repeated parameters already.
    let field = |name: &str| form.get(name).ok().flatten();
    let form_secret = field("client_secret").is_some() || field("client_assertion").is_some();
    let (id, basic) = match (basic_credentials(headers)?, field("client_id")) {
        (BasicCredentials::Client { .. }, Some(_)) => return Err(ClientAuthError::TwoMethods),
        (BasicCredentials::Client { .. }, None) if form_secret => {
            return Err(ClientAuthError::TwoMethods)
        }
        (
            BasicCredentials::Client {
                secret: Some(_), ..
            },
            None,
        ) => return Err(ClientAuthError::SecretSent { basic: true }),
        (BasicCredentials::Client { id, secret: None }, None) => (id, true),
        (BasicCredentials::None, Some(id)) => (id.to_owned(), false),
        (BasicCredentials::None, None) => return Err(ClientAuthError::NoCredentials),
    };
    let client = config
        .client(&id)
        .ok_or(ClientAuthError::UnknownClient { basic })?;
    if form_secret {
        return Err(ClientAuthError::SecretSent { basic });
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::demo().unwrap()
    }

    fn headers<S: AsRef<str>>(authorization: &[S]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(header::AUTHORIZATION, value.as_ref().parse().unwrap());
        }
        headers
    }

    fn form(text: &str) -> Params {
        Params::parse(text).unwrap()
    }

    fn basic(text: &str) -> String {
        format!("Basic {}", STANDARD.encode(text))
    }

    #[test]
    fn the_sdks_basic_header_without_a_colon_names_the_client() {
        let config = config();
        for value in [
            basic("0oa-dev-spa"),
            basic("0oa-dev-spa:"),
            basic("0oa%2Ddev-spa"),
        ] {
            let client = authenticate(&config, &headers(&[&value]), &form("token=x")).unwrap();
            assert_eq!(client.client_id, "0oa-dev-spa", "{value}");
        }
        let lower = format!("basic {}", STANDARD.encode("0oa-dev-spa"));
        assert!(authenticate(&config, &headers(&[&lower]), &form("")).is_ok());
    }

    #[test]
    fn client_id_in_the_form_names_the_client() {
        let config = config();
        let client = authenticate(&config, &HeaderMap::new(), &form("client_id=0oa-dev-spa"));
        assert_eq!(client.unwrap().client_id, "0oa-dev-spa");
        // A Bearer header is not client authentication.
        let bearer = headers(&["Bearer abc"]);
        assert!(authenticate(&config, &bearer, &form("client_id=0oa-dev-spa")).is_ok());
    }

    #[test]
    fn refusals() {
        use ClientAuthError::*;
        let config = config();
        let none = HeaderMap::new();
        let cases: Vec<(HeaderMap, &str, ClientAuthError)> = vec![
            (none.clone(), "token=x", NoCredentials),
            (
                none.clone(),
                "client_id=nope",
                UnknownClient { basic: false },
            ),
            (
                headers(&[&basic("nope")]),
                "",
                UnknownClient { basic: true },
            ),
            (
                headers(&[&basic("0oa-dev-spa")]),
                "client_id=0oa-dev-spa",
                TwoMethods,
            ),
            (
                headers(&[&basic("0oa-dev-spa")]),
                "client_secret=s",
                TwoMethods,
            ),
            (
                headers(&[&basic("0oa-dev-spa:secret")]),
                "",
                SecretSent { basic: true },
            ),
            (
                none.clone(),
                "client_id=0oa-dev-spa&client_secret=s",
                SecretSent { basic: false },
            ),
            (
                none.clone(),
                "client_id=0oa-dev-spa&client_assertion=x.y.z",
                SecretSent { basic: false },
            ),
            (headers(&["Basic !!!"]), "", MalformedBasic),
            (headers(&["Basic"]), "", MalformedBasic),
            (headers(&["Basic /w=="]), "", MalformedBasic),
            (headers(&[&basic("%zz")]), "", MalformedBasic),
            (
                headers(&[&basic("0oa-dev-spa"), &basic("0oa-dev-spa")]),
                "",
                MalformedBasic,
            ),
        ];
        for (headers, body, expected) in cases {
            assert_eq!(
                authenticate(&config, &headers, &form(body)).unwrap_err(),
                expected,
                "{headers:?} {body}"
            );
        }
    }

    #[test]
    fn invalid_client_after_basic_carries_a_basic_challenge() {
        let response = ClientAuthError::UnknownClient { basic: true }.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let response = ClientAuthError::NoCredentials.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("www-authenticate").is_none());
        let response = ClientAuthError::TwoMethods.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
