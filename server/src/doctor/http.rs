//! The doctor's own requests to the endpoints a browser calls (authorize,
//! and the token endpoint's CORS preflight): sent as a browser would send
//! them, but following no redirect (the answer itself is what is checked)
//! and keeping no cookie (so the issuer sees a signed-out browser), with
//! the server's timeouts. Discovery and the JWKS go through the bearer
//! module's client, as the server fetches them.

use crate::bearer::fetch::error_chain;
use crate::bearer::HttpOptions;

/// A client that follows no redirect and keeps no cookie.
pub fn client(http: &HttpOptions) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(http.connect_timeout)
        .timeout(http.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("okta-implicit-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| err.to_string())
}

/// At most `max` bytes of `response`'s body, as text (an error page is
/// read only to tell which setting it blames).
pub async fn body_start(mut response: reqwest::Response, max: usize) -> Result<String, String> {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => return Err(error_chain(&err)),
        }
    }
    body.truncate(max);
    Ok(String::from_utf8_lossy(&body).into_owned())
}
