//! Fixtures for driving the dev authorization server over real HTTP: a
//! server shared by the tests that do not change it, servers of their own
//! for those that do, and a tiny "browser" that does not follow redirects
//! and keeps cookies by hand, so every hop can be checked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use server::dev_idp::{self, DevIdpOptions, RunningDevIdp};

pub const APP_ORIGIN: &str = "http://app.test";
pub const REDIRECT_URI: &str = "http://app.test/login/callback";
pub const POST_LOGOUT_URI: &str = "http://app.test/";
pub const CLIENT_ID: &str = "0oa-dev-spa";

/// Where a dev authorization server under test answers.
#[derive(Debug, Clone)]
pub struct Idp {
    pub issuer: String,
    pub client_id: String,
}

impl Idp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// `http://host:port` of the issuer.
    pub fn origin(&self) -> String {
        self.issuer
            .trim_end_matches(dev_idp::ISSUER_PATH)
            .to_owned()
    }
}

fn options(addr: &str, enable_control: bool) -> DevIdpOptions {
    DevIdpOptions {
        addr: addr.into(),
        config_path: None,
        app_origin: APP_ORIGIN.into(),
        enable_control,
    }
}

/// One server for every test that only reads: it lives on a runtime of its
/// own, since each `#[tokio::test]` runtime ends with its test. Its
/// control is off.
pub fn shared() -> Idp {
    static SHARED: OnceLock<Idp> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().expect("test runtime");
                runtime.block_on(async move {
                    let running = dev_idp::start(options("127.0.0.1:0", false))
                        .await
                        .expect("start the shared dev authorization server");
                    tx.send(Idp {
                        issuer: running.issuer.clone(),
                        client_id: running.client_id.clone(),
                    })
                    .expect("report the shared server");
                    running.wait().await;
                });
            });
            rx.recv().expect("the shared server started")
        })
        .clone()
}

/// A server of the test's own, on the test's runtime.
pub async fn own(addr: &str, enable_control: bool) -> (Idp, RunningDevIdp) {
    let running = dev_idp::start(options(addr, enable_control))
        .await
        .expect("start a dev authorization server");
    let idp = Idp {
        issuer: running.issuer.clone(),
        client_id: running.client_id.clone(),
    };
    (idp, running)
}

/// A server of the test's own, on the test's runtime, with the demo config
/// changed by `change` (written to a file of its own, read at start-up)
/// and its control on.
pub async fn own_with_config(change: impl FnOnce(&mut Value)) -> (Idp, RunningDevIdp) {
    static FILES: AtomicU64 = AtomicU64::new(0);
    let mut config: Value = serde_json::from_str(dev_idp::DEMO_CONFIG).expect("demo config");
    change(&mut config);
    let path = std::env::temp_dir().join(format!(
        "dev-idp-test-{}-{}.json",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, config.to_string()).expect("write the test config");
    let started = dev_idp::start(DevIdpOptions {
        config_path: Some(path.clone()),
        ..options("127.0.0.1:0", true)
    })
    .await;
    let _ = std::fs::remove_file(&path);
    let running = started.expect("start a dev authorization server");
    let idp = Idp {
        issuer: running.issuer.clone(),
        client_id: running.client_id.clone(),
    };
    (idp, running)
}

/// The parameters of an authorization request, in order, repeats allowed.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    params: Vec<(String, String)>,
}

impl AuthRequest {
    /// `id_token token` for `openid profile email`, with state and nonce.
    pub fn new(state: &str) -> Self {
        Self {
            params: vec![
                ("client_id".into(), CLIENT_ID.into()),
                ("redirect_uri".into(), REDIRECT_URI.into()),
                ("response_type".into(), "id_token token".into()),
                ("scope".into(), "openid profile email".into()),
                ("state".into(), state.into()),
                ("nonce".into(), format!("nonce-{state}")),
            ],
        }
    }

    /// Replaces (or adds) `name`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self = self.without(name);
        self.params.push((name.into(), value.into()));
        self
    }

    /// Adds another `name`, keeping any already there.
    pub fn add(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self
    }

    pub fn url(&self, idp: &Idp) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish();
        format!("{}/v1/authorize?{query}", idp.issuer)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header(LOCATION.as_str())
            .unwrap_or_else(|| panic!("no Location; status {} body {}", self.status, self.body))
    }

    /// The fragment of `Location`, decoded, in order.
    pub fn fragment(&self) -> Vec<(String, String)> {
        let location = self.location();
        let (_, fragment) = location
            .split_once('#')
            .unwrap_or_else(|| panic!("no fragment in {location}"));
        url::form_urlencoded::parse(fragment.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn fragment_map(&self) -> BTreeMap<String, String> {
        self.fragment().into_iter().collect()
    }

    /// The query of `Location`, decoded.
    pub fn query_map(&self) -> BTreeMap<String, String> {
        let location = self.location();
        let url = url::Url::parse(location)
            .unwrap_or_else(|e| panic!("Location {location} is not a URL: {e}"));
        assert!(url.fragment().is_none(), "a fragment in {location}");
        url.query_pairs().into_owned().collect()
    }

    /// `Location` up to the fragment.
    pub fn location_base(&self) -> &str {
        self.location().split('#').next().unwrap_or_default()
    }

    /// The id of the pending request in a sign-in page.
    pub fn request_id(&self) -> String {
        let marker = "name=\"request\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("not a sign-in page: {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').expect("end of the request id");
        self.body[start..end].to_owned()
    }

    /// The `Set-Cookie` header for cookie names starting with `prefix`.
    pub fn set_cookie(&self, prefix: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(prefix))
            .map(str::to_owned)
    }

    pub fn assert_error_page(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(self.headers.get(LOCATION).is_none(), "must not redirect");
        assert_eq!(
            self.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(self.body.contains("role=\"alert\""), "{}", self.body);
    }
}

/// An HTTP client that does not follow redirects and keeps cookies by
/// name (the tests talk to one host, so domain and path are ignored).
pub struct Browser {
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("reqwest client"),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn cookie(&self, prefix: &str) -> Option<String> {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
    }

    /// A request on this browser's client (which does not follow
    /// redirects), to finish and pass to [`Browser::send`].
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.send(self.http.get(url)).await
    }

    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_form_with(url, fields, &[]).await
    }

    pub async fn post_form_with(
        &self,
        url: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    pub async fn send(&self, mut request: reqwest::RequestBuilder) -> Reply {
        let cookie_header = {
            let cookies = self.cookies.lock().unwrap();
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !cookie_header.is_empty() {
            request = request.header(COOKIE, cookie_header);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("response body");
        let mut cookies = self.cookies.lock().unwrap();
        for line in headers.get_all(SET_COOKIE).iter() {
            let line = line.to_str().expect("ASCII Set-Cookie");
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attributes.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Opens the sign-in page for `request` and signs in.
    pub async fn sign_in(
        &self,
        idp: &Idp,
        request: &AuthRequest,
        login: &str,
        password: &str,
    ) -> Reply {
        let page = self.get(&request.url(idp)).await;
        assert_eq!(page.status, StatusCode::OK, "sign-in page: {}", page.body);
        self.submit(idp, &page.request_id(), login, password).await
    }

    pub async fn submit(&self, idp: &Idp, request_id: &str, login: &str, password: &str) -> Reply {
        self.post_form(
            &idp.url("/v1/sign-in"),
            &[
                ("request", request_id),
                ("username", login),
                ("password", password),
                ("action", "sign-in"),
            ],
        )
        .await
    }
}

/// The JSON payload of a JWT, read without checking anything.
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// The JSON header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    let part = token.split('.').next().expect("a JWT has a header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

pub async fn jwks(idp: &Idp) -> Value {
    reqwest::get(idp.url("/v1/keys"))
        .await
        .expect("GET keys")
        .json()
        .await
        .expect("JWKS JSON")
}

/// Verifies `token` as an RS256 JWT from `idp` for `audience`, with the key
/// its `kid` names in the published JWKS, and returns its claims.
pub async fn verify(idp: &Idp, token: &str, audience: &str) -> Result<Value, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwks = jwks(idp).await;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| format!("kid {kid} is not published"))?;
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().ok_or("n")?,
        jwk["e"].as_str().ok_or("e")?,
    )
    .map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&idp.issuer]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}
