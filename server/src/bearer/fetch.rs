//! Bounded HTTP GETs of the issuer's documents (discovery, JWKS).
//!
//! Every fetch has a connect timeout, a total timeout and a body-size cap,
//! and follows no redirects, so a slow, huge or redirecting issuer can cost
//! a request at most the timeout and the server at most the cap. URLs are
//! checked before use: `https`, or `http` to a loopback host only.

use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

use super::error::{FetchError, InitError};

/// Limits of every fetch.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub connect_timeout: Duration,
    /// From sending the request to the last byte of the body.
    pub timeout: Duration,
    /// Bodies larger than this are refused (JWKS and discovery documents are
    /// a few KiB).
    pub max_body: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body: 1024 * 1024,
        }
    }
}

/// A fetched document.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the response had one.
    pub max_age: Option<Duration>,
    /// The response's `ETag`, for a conditional request next time.
    pub etag: Option<String>,
}

/// The HTTP client the validator fetches with; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body: usize,
}

impl HttpClient {
    pub fn new(options: &HttpOptions) -> Result<Self, InitError> {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            // A redirect could lead to a host the URL checks never saw.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("okta-implicit-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| InitError::HttpClient(error_chain(&err)))?;
        Ok(HttpClient {
            client,
            max_body: options.max_body,
        })
    }

    /// GETs `url`, reading at most the configured number of bytes.
    pub async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        match self.get_if_none_match(url, None).await? {
            Conditional::Modified(fetched) => Ok(fetched),
            // Only asked for with an ETag.
            Conditional::NotModified { .. } => Err(FetchError::Status(304)),
        }
    }

    /// GETs `url`; with `etag`, as a conditional request
    /// (`If-None-Match`), which the issuer may answer 304 Not Modified.
    pub async fn get_if_none_match(
        &self,
        url: &Url,
        etag: Option<&str>,
    ) -> Result<Conditional, FetchError> {
        let mut request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Conditional::NotModified { max_age });
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
        {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_ETAG_LEN)
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Conditional::Modified(Fetched {
            body,
            max_age,
            etag,
        }))
    }
}

/// Longer entity tags are not kept (nor sent back).
const MAX_ETAG_LEN: usize = 256;

/// The answer to a conditional GET.
#[derive(Clone, Debug)]
pub enum Conditional {
    Modified(Fetched),
    /// 304: the document is the one the ETag names; `max_age` is the new
    /// freshness lifetime, if the answer gave one.
    NotModified {
        max_age: Option<Duration>,
    },
}

fn transport(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        FetchError::Timeout(error_chain(&err))
    } else {
        FetchError::Transport(error_chain(&err))
    }
}

/// The freshness lifetime a `Cache-Control` value gives: `max-age=N`, or
/// zero for `no-store`/`no-cache` (the caller clamps it to its minimum).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            found = value
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// Parses `value` as the URL of `what` and refuses anything but `https`, or
/// `http` to a loopback host (the embedded development server).
pub fn checked_url(what: &'static str, value: &str) -> Result<Url, InitError> {
    let url = Url::parse(value).map_err(|err| InitError::BadUrl {
        what,
        url: value.to_string(),
        reason: err.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(InitError::InsecureUrl {
            what,
            url: value.to_string(),
        }),
    }
}

/// `localhost` (RFC 6761 reserves it for loopback) or a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => {
            domain.eq_ignore_ascii_case("localhost")
                || domain.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// reqwest's top-level message ("error sending request") hides the cause;
/// join the whole chain so the one line says what actually happened.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(max_age("max-age=3600"), Some(Duration::from_secs(3600)));
        assert_eq!(
            max_age("public, MAX-AGE=60, must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("max-age=\"90\""), Some(Duration::from_secs(90)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=10, no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(checked_url("ISSUER", "https://dev-1.okta.com/oauth2/default").is_ok());
        assert!(checked_url("ISSUER", "http://localhost:3100/oauth2/default").is_ok());
        assert!(checked_url("ISSUER", "http://LOCALHOST:3100/x").is_ok());
        assert!(checked_url("ISSUER", "http://127.0.0.1:3100/x").is_ok());
        assert!(checked_url("ISSUER", "http://127.8.9.1/x").is_ok());
        assert!(checked_url("ISSUER", "http://[::1]:3100/x").is_ok());
        assert!(matches!(
            checked_url("ISSUER", "http://dev-1.okta.com/oauth2/default"),
            Err(InitError::InsecureUrl { what: "ISSUER", .. })
        ));
        assert!(matches!(
            checked_url("ISSUER", "http://localhost.evil.com/x"),
            Err(InitError::InsecureUrl { .. })
        ));
        assert!(matches!(
            checked_url("ISSUER", "ftp://localhost/x"),
            Err(InitError::InsecureUrl { .. })
        ));
        assert!(matches!(
            checked_url("ISSUER", "not a url"),
            Err(InitError::BadUrl { .. })
        ));
    }
}
