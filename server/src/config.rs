//! The server's settings, read once at start-up from the environment and
//! `.env` (see the configuration table of DESIGN.md).
//!
//! A missing or bad value stops start-up with a [`ConfigError`] whose one
//! line names the variable. Real environment variables win over `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use app::auth::config::TokenStorage;
use app::routes::CALLBACK as CALLBACK_PATH;
use url::Url;

use crate::bearer::fetch::checked_url;
use crate::bearer::{InitError, DEFAULT_LEEWAY, MAX_LEEWAY};
use crate::edge::serve::{default_max_connections, DESCRIPTOR_RESERVE};

/// What the dev authorization server listens on unless `DEV_IDP_ADDR` says
/// otherwise.
pub const DEFAULT_DEV_IDP_ADDR: &str = "localhost:3100";
pub const DEFAULT_AUDIENCE: &str = "api://default";
pub const DEFAULT_SCOPES: &str = "openid profile email";
/// With the dev server the demo's own scope is asked for too, so alice can
/// see the report out of the box. A real Okta org would refuse a scope it
/// does not define, so it is not in [`DEFAULT_SCOPES`].
pub const DEV_IDP_DEFAULT_SCOPES: &str = "openid profile email reports:read";
/// Renewal starts this long before the tokens expire, unless
/// `RENEW_BEFORE_SECS` says otherwise.
pub const DEFAULT_RENEW_BEFORE_SECS: u64 = 60;
/// `HEADER_READ_TIMEOUT_SECS` unless set: a browser sends its request head
/// in one packet, so ten seconds is generous on any network.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `KEEPALIVE_IDLE_SECS` unless set: longer than browsers keep an idle
/// connection open themselves (Chrome: 300 s; Firefox: 115 s) is not
/// needed, shorter than a page's pause between API calls costs handshakes.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// `BODY_READ_TIMEOUT_SECS` unless set (nginx's `client_body_timeout` is
/// 60 s between reads; this one runs from the head, not renewed by each
/// byte): the app's bodies are a few hundred bytes, sent with their head.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `SEND_TIMEOUT_SECS` unless set: the largest answer, the wasm (about
/// 260 KB Brotli-compressed), takes seconds on a slow mobile link.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// `BODY_LIMIT_BYTES` unless set. The server functions take no arguments
/// (their bodies are empty forms) and the dev server's sign-in form has
/// its own 8 KiB limit, so 64 KiB leaves room for a future small form
/// while keeping what one request can make the server buffer small.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// `Strict-Transport-Security` on an https public origin: one year, the
/// value the HSTS preload list asks for.
pub const HSTS_MAX_AGE: &str = "max-age=31536000";
/// `SHUTDOWN_GRACE_SECS` unless set: on SIGTERM the requests in flight get
/// this long to finish. Kubernetes' default `terminationGracePeriodSeconds`
/// is 30, so the server is done before the kubelet's SIGKILL.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// `LOG_FORMAT`: how log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing-subscriber's human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's json formatter).
    Json,
}

/// A setting that stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var} must be set: {reason}")]
    Missing { var: &'static str, reason: String },
    #[error(".env cannot be read: {0}")]
    DotEnv(String),
}

/// The `response_type`s the app supports: the implicit flow's three, and
/// `code`, the authorization code flow with PKCE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    IdTokenToken,
    Token,
    IdToken,
    Code,
}

impl ResponseType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::IdTokenToken => "id_token token",
            ResponseType::Token => "token",
            ResponseType::IdToken => "id_token",
            ResponseType::Code => "code",
        }
    }

    /// Whether an ID token is asked for in the authorize request itself
    /// (the implicit flow); with `code` it comes from the token endpoint
    /// when `openid` is among the scopes.
    pub fn wants_id_token(self) -> bool {
        matches!(self, ResponseType::IdTokenToken | ResponseType::IdToken)
    }

    pub fn is_code(self) -> bool {
        self == ResponseType::Code
    }

    fn parse(value: &str) -> Option<Self> {
        // A space-separated set (OAuth 2.0 Multiple Response Types §3):
        // order does not matter.
        let mut words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
        words.sort_unstable();
        match words.as_slice() {
            ["id_token", "token"] => Some(ResponseType::IdTokenToken),
            ["token"] => Some(ResponseType::Token),
            ["id_token"] => Some(ResponseType::IdToken),
            ["code"] => Some(ResponseType::Code),
            _ => None,
        }
    }
}

/// Where the authorization server puts its answer on the way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
}

impl ResponseMode {
    /// The implicit flow answers in the fragment; Okta answers a code in
    /// the query unless asked otherwise.
    pub fn default_for(response_type: ResponseType) -> ResponseMode {
        if response_type.is_code() {
            ResponseMode::Query
        } else {
            ResponseMode::Fragment
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Query => "query",
            ResponseMode::Fragment => "fragment",
        }
    }
}

/// Settings of the embedded development authorization server, used when
/// `ISSUER` is not set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevIdpSettings {
    /// `DEV_IDP_ADDR`, `host:port`.
    pub addr: String,
    /// `DEV_IDP_CONFIG`: its users and clients file.
    pub config_path: Option<PathBuf>,
    /// `DEV_IDP_CONTROL=1`: the test-control endpoints (key rotation,
    /// short-lived tokens).
    pub enable_control: bool,
    /// `DEV_IDP=1`: run it even where others can reach it (see
    /// [`dev_idp_exposure`]).
    pub on_purpose: bool,
}

/// Every setting of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `ISSUER`; `None` starts the embedded development server.
    pub issuer: Option<String>,
    /// `CLIENT_ID`; required with `ISSUER`, else the dev server's client.
    pub client_id: Option<String>,
    /// `AUDIENCE`: the `aud` access tokens must carry.
    pub audience: String,
    /// `SCOPES`: what the app asks for.
    pub scopes: String,
    /// `RESPONSE_TYPE`.
    pub response_type: ResponseType,
    /// `RESPONSE_MODE`, with `RESPONSE_TYPE=code`: where the issuer puts
    /// the code (`query`, Okta's default, or `fragment`).
    pub response_mode: ResponseMode,
    /// `REDIRECT_URI`, default `<public origin>/login/callback`.
    pub redirect_uri: String,
    /// `POST_LOGOUT_REDIRECT_URI`, default `<public origin>/`.
    pub post_logout_redirect_uri: String,
    /// `PUBLIC_ORIGIN`: where browsers reach the app, default derived from
    /// the Leptos site address.
    pub public_origin: String,
    /// `TOKEN_LEEWAY_SECS`: clock skew forgiven on `exp`/`nbf`/`iat`
    /// (default 60, at most 120).
    pub leeway: Duration,
    /// `RENEW_BEFORE_SECS`: how long before the tokens expire the browser
    /// renews them (default 60).
    pub renew_before_secs: u64,
    /// `TOKEN_STORAGE`: `local` (default) or `memory`.
    pub token_storage: TokenStorage,
    pub dev_idp: DevIdpSettings,
    /// `HEADER_READ_TIMEOUT_SECS`: a connection that has not sent a whole
    /// request head this long after it opened (or after the head's first
    /// byte, on a reused connection) is closed (default 10).
    pub header_read_timeout: Duration,
    /// `KEEPALIVE_IDLE_SECS`: an idle keep-alive connection is closed
    /// after this long (default 60).
    pub keepalive_idle: Duration,
    /// `BODY_READ_TIMEOUT_SECS`: a request body not in whole this long
    /// after its head is answered 408 and its connection closed (default
    /// 10).
    pub body_read_timeout: Duration,
    /// `SEND_TIMEOUT_SECS`: an answer the client has not taken whole this
    /// long after it started to go out is abandoned and its connection
    /// closed (default 30).
    pub send_timeout: Duration,
    /// `MAX_CONNECTIONS`; `None` derives the cap from the descriptor limit
    /// at start-up ([`Config::max_connections`]).
    pub max_connections: Option<usize>,
    /// `BODY_LIMIT_BYTES`: larger request bodies are answered 413 unread
    /// (default [`DEFAULT_BODY_LIMIT`]).
    pub body_limit: usize,
    /// `HSTS_INCLUDE_SUBDOMAINS=1`: `includeSubDomains` in the
    /// `Strict-Transport-Security` sent on an https public origin.
    pub hsts_include_subdomains: bool,
    /// `METRICS_ADDR`: where the Prometheus endpoint listens, apart from
    /// the site; `None` (unset) turns metrics off.
    pub metrics_addr: Option<SocketAddr>,
    /// `SHUTDOWN_GRACE_SECS`: on SIGTERM or SIGINT, how long the requests
    /// in flight get to finish (default 20; 0 closes them at once).
    pub shutdown_grace: Duration,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `DPOP`, `REQUIRE_DPOP`, `DPOP_NONCE`, `DPOP_NONCE_SECRET`.
    pub dpop: DpopSettings,
}

impl Config {
    /// Reads `.env` (if there is one) into the environment, then the
    /// settings. `site_addr` is the Leptos site address.
    pub fn from_env(site_addr: SocketAddr) -> Result<Config, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(err) if err.not_found() => {}
            Err(err) => return Err(ConfigError::DotEnv(err.to_string())),
        }
        Self::from_lookup(|name| std::env::var(name).ok(), site_addr)
    }

    /// The settings as `lookup` (variable name → value) gives them.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        site_addr: SocketAddr,
    ) -> Result<Config, ConfigError> {
        // An empty value is treated as unset, as most tools do with `.env`.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let issuer = match get("ISSUER") {
            Some(issuer) => {
                checked_url("ISSUER", &issuer).map_err(|err| {
                    let reason = match err {
                        InitError::InsecureUrl { .. } => format!(
                            "{issuer:?} must use https (http:// is only allowed for localhost and loopback addresses)"
                        ),
                        InitError::BadUrl { reason, .. } => {
                            format!("{issuer:?} is not a URL: {reason}")
                        }
                        other => other.to_string(),
                    };
                    invalid("ISSUER", reason)
                })?;
                Some(issuer)
            }
            None => None,
        };
        let client_id = get("CLIENT_ID");
        if issuer.is_some() && client_id.is_none() {
            return Err(ConfigError::Missing {
                var: "CLIENT_ID",
                reason: "ISSUER is set, so the app's client id at that issuer is needed".into(),
            });
        }
        if let Some(id) = &client_id {
            if !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "CLIENT_ID",
                    "it must be printable ASCII without spaces",
                ));
            }
        }

        let audience = get("AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into());

        let response_type = match get("RESPONSE_TYPE") {
            Some(value) => ResponseType::parse(&value).ok_or_else(|| {
                invalid(
                    "RESPONSE_TYPE",
                    format!(
                        "{value:?}; use \"id_token token\", \"token\", \"id_token\" or \"code\""
                    ),
                )
            })?,
            None => ResponseType::IdTokenToken,
        };
        let response_mode = match get("RESPONSE_MODE").as_deref().map(str::trim) {
            None => ResponseMode::default_for(response_type),
            Some(mode) if !response_type.is_code() => {
                return Err(invalid(
                    "RESPONSE_MODE",
                    format!("{mode:?}: it applies to RESPONSE_TYPE=code only (the implicit flow always answers in the fragment)"),
                ))
            }
            Some("query") => ResponseMode::Query,
            Some("fragment") => ResponseMode::Fragment,
            Some(other) => {
                return Err(invalid(
                    "RESPONSE_MODE",
                    format!("{other:?}; use query or fragment"),
                ))
            }
        };

        let default_scopes = match issuer {
            Some(_) => DEFAULT_SCOPES,
            None => DEV_IDP_DEFAULT_SCOPES,
        };
        let scopes = get("SCOPES").unwrap_or_else(|| default_scopes.into());
        let scope_list: Vec<&str> = scopes.split(' ').filter(|s| !s.is_empty()).collect();
        if scope_list.iter().any(|s| {
            !s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        }) {
            return Err(invalid("SCOPES", "scope names are printable ASCII without quotes or backslashes, separated by spaces"));
        }
        if !response_type.is_code() && scope_list.contains(&"offline_access") {
            return Err(invalid(
                "SCOPES",
                format!(
                    "offline_access asks for a refresh token, which only the authorization code flow gets; set RESPONSE_TYPE=code or drop offline_access (RESPONSE_TYPE is {:?})",
                    response_type.as_str()
                ),
            ));
        }
        if response_type.wants_id_token() && !scope_list.contains(&"openid") {
            return Err(invalid(
                "SCOPES",
                format!(
                    "RESPONSE_TYPE {:?} asks for an ID token, which needs the openid scope",
                    response_type.as_str()
                ),
            ));
        }
        let scopes = scope_list.join(" ");

        let public_origin = match get("PUBLIC_ORIGIN") {
            Some(value) => origin_of(&value).map_err(|reason| invalid("PUBLIC_ORIGIN", reason))?,
            None => origin_from_site_addr(site_addr),
        };
        let redirect_uri = match get("REDIRECT_URI") {
            Some(value) => {
                callback_url(&value, &public_origin).map_err(|r| invalid("REDIRECT_URI", r))?
            }
            None => format!("{public_origin}{CALLBACK_PATH}"),
        };
        let post_logout_redirect_uri = match get("POST_LOGOUT_REDIRECT_URI") {
            Some(value) => {
                absolute_http_url(&value).map_err(|r| invalid("POST_LOGOUT_REDIRECT_URI", r))?
            }
            None => format!("{public_origin}/"),
        };

        let leeway = match get("TOKEN_LEEWAY_SECS") {
            Some(value) => Duration::from_secs(whole_number(
                "TOKEN_LEEWAY_SECS",
                &value,
                0..=MAX_LEEWAY.as_secs(),
            )?),
            None => DEFAULT_LEEWAY,
        };
        let renew_before_secs = match get("RENEW_BEFORE_SECS") {
            // A day is far beyond any token lifetime Okta allows.
            Some(value) => whole_number("RENEW_BEFORE_SECS", &value, 0..=86_400)?,
            None => DEFAULT_RENEW_BEFORE_SECS,
        };
        let token_storage = match get("TOKEN_STORAGE").as_deref().map(str::trim) {
            None | Some("local") => TokenStorage::Local,
            Some("memory") => TokenStorage::Memory,
            Some(other) => {
                return Err(invalid(
                    "TOKEN_STORAGE",
                    format!("{other:?}; use local or memory"),
                ))
            }
        };

        let addr = get("DEV_IDP_ADDR").unwrap_or_else(|| DEFAULT_DEV_IDP_ADDR.into());
        check_host_port(&addr).map_err(|reason| invalid("DEV_IDP_ADDR", reason))?;
        let dev_idp = DevIdpSettings {
            addr,
            config_path: get("DEV_IDP_CONFIG").map(PathBuf::from),
            enable_control: switch("DEV_IDP_CONTROL", get("DEV_IDP_CONTROL"))?,
            on_purpose: switch("DEV_IDP", get("DEV_IDP"))?,
        };

        let seconds = |var: &'static str, default: Duration, max: u64| match get(var) {
            Some(value) => whole_number(var, &value, 1..=max).map(Duration::from_secs),
            None => Ok(default),
        };
        let header_read_timeout =
            seconds("HEADER_READ_TIMEOUT_SECS", DEFAULT_HEADER_READ_TIMEOUT, 300)?;
        let keepalive_idle = seconds("KEEPALIVE_IDLE_SECS", DEFAULT_KEEPALIVE_IDLE, 3_600)?;
        let body_read_timeout = seconds("BODY_READ_TIMEOUT_SECS", DEFAULT_BODY_READ_TIMEOUT, 300)?;
        let send_timeout = seconds("SEND_TIMEOUT_SECS", DEFAULT_SEND_TIMEOUT, 3_600)?;
        let max_connections = match get("MAX_CONNECTIONS") {
            // Checked against the descriptor limit at start-up, by
            // `Config::max_connections`.
            Some(value) => Some(whole_number("MAX_CONNECTIONS", &value, 1..=1_000_000)? as usize),
            None => None,
        };
        let body_limit = match get("BODY_LIMIT_BYTES") {
            Some(value) => whole_number("BODY_LIMIT_BYTES", &value, 0..=1 << 30)? as usize,
            None => DEFAULT_BODY_LIMIT,
        };
        let hsts_include_subdomains =
            switch("HSTS_INCLUDE_SUBDOMAINS", get("HSTS_INCLUDE_SUBDOMAINS"))?;
        let metrics_addr = match get("METRICS_ADDR") {
            Some(value) => Some(value.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "METRICS_ADDR",
                    format!("{value:?} is not an IP address and port, e.g. 127.0.0.1:9100"),
                )
            })?),
            None => None,
        };
        let shutdown_grace = match get("SHUTDOWN_GRACE_SECS") {
            Some(value) => {
                Duration::from_secs(whole_number("SHUTDOWN_GRACE_SECS", &value, 0..=3_600)?)
            }
            None => DEFAULT_SHUTDOWN_GRACE,
        };
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("{other:?}; use text or json"),
                ))
            }
        };

        let dpop = DpopSettings::read(&get, response_type)?;

        Ok(Config {
            issuer,
            client_id,
            audience,
            scopes,
            response_type,
            response_mode,
            redirect_uri,
            post_logout_redirect_uri,
            public_origin,
            leeway,
            renew_before_secs,
            token_storage,
            dev_idp,
            header_read_timeout,
            keepalive_idle,
            body_read_timeout,
            send_timeout,
            max_connections,
            body_limit,
            hsts_include_subdomains,
            metrics_addr,
            shutdown_grace,
            log_format,
            dpop,
        })
    }

    /// A warning when the metrics endpoint listens where others can reach
    /// it: it has no authentication, and shows traffic and refusal counts.
    pub fn metrics_exposure_warning(&self) -> Option<String> {
        let addr = self.metrics_addr?;
        (!addr.ip().is_loopback()).then(|| {
            format!(
                "METRICS_ADDR {addr} is not loopback: the metrics endpoint has no authentication, so anyone who reaches that address can read the server's traffic and refusal counts; keep it on loopback or a private network"
            )
        })
    }

    /// How many connections the server may hold open, given the process's
    /// file-descriptor limit `fd_limit` (`ulimit -n`): `MAX_CONNECTIONS`
    /// when it fits under the limit, else [`default_max_connections`].
    pub fn max_connections(&self, fd_limit: u64) -> Result<usize, ConfigError> {
        let Some(wanted) = self.max_connections else {
            return Ok(default_max_connections(fd_limit));
        };
        let room = fd_limit.saturating_sub(DESCRIPTOR_RESERVE);
        if wanted as u64 > room {
            return Err(invalid(
                "MAX_CONNECTIONS",
                format!(
                    "{wanted} does not fit under the file-descriptor limit {fd_limit} (ulimit -n) with {DESCRIPTOR_RESERVE} kept for the server's own files; use at most {room}, or raise the limit"
                ),
            ));
        }
        Ok(wanted)
    }

    /// The `Strict-Transport-Security` value every response carries: only
    /// when browsers reach the app over https (on http the header means
    /// nothing and would be ignored).
    pub fn hsts(&self) -> Option<String> {
        if !self.public_origin.starts_with("https://") {
            return None;
        }
        Some(match self.hsts_include_subdomains {
            true => format!("{HSTS_MAX_AGE}; includeSubDomains"),
            false => HSTS_MAX_AGE.to_string(),
        })
    }

    /// Whether the embedded development server may run with these
    /// settings; only asked when `ISSUER` is unset.
    pub fn dev_idp_exposure(&self) -> DevIdpExposure {
        dev_idp_exposure(
            &self.public_origin,
            &self.dev_idp.addr,
            self.dev_idp.on_purpose,
        )
    }
}

/// DPoP (RFC 9449, issue 27): sender-constrained tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DpopSettings {
    /// `DPOP=1`: the browser binds its tokens to a non-extractable key and
    /// proves it on every call. Needs `RESPONSE_TYPE=code`.
    pub browser: bool,
    /// `REQUIRE_DPOP=1`: the protected functions refuse Bearer tokens.
    pub required: bool,
    /// `DPOP_NONCE=1`: proofs must carry a nonce this server (or another
    /// instance with the same secret) issued; the secret is
    /// `DPOP_NONCE_SECRET`'s.
    pub nonce_secret: Option<NonceSecret>,
}

/// `DPOP_NONCE_SECRET`, decoded. Never printed.
#[derive(Clone)]
pub struct NonceSecret(Vec<u8>);

impl NonceSecret {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceSecret(…)")
    }
}

impl PartialEq for NonceSecret {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl Eq for NonceSecret {}

impl DpopSettings {
    fn read(
        get: &impl Fn(&str) -> Option<String>,
        response_type: ResponseType,
    ) -> Result<DpopSettings, ConfigError> {
        let browser = switch("DPOP", get("DPOP"))?;
        if browser && !response_type.is_code() {
            return Err(invalid(
                "DPOP",
                format!(
                    "DPoP binds the tokens the browser gets from the token endpoint, so it needs RESPONSE_TYPE=code (RESPONSE_TYPE is {:?}, whose tokens come in a URL and cannot be bound)",
                    response_type.as_str()
                ),
            ));
        }
        let required = switch("REQUIRE_DPOP", get("REQUIRE_DPOP"))?;
        if required && !browser {
            return Err(invalid(
                "REQUIRE_DPOP",
                "it refuses Bearer tokens, which the app's own browser code sends unless DPOP=1; set DPOP=1 (with RESPONSE_TYPE=code) too",
            ));
        }
        let nonce = switch("DPOP_NONCE", get("DPOP_NONCE"))?;
        let nonce_secret = match (nonce, get("DPOP_NONCE_SECRET")) {
            (true, Some(text)) => Some(NonceSecret(
                crate::bearer::nonce::parse_secret(&text)
                    .map_err(|reason| invalid("DPOP_NONCE_SECRET", reason))?,
            )),
            (true, None) => {
                return Err(ConfigError::Missing {
                    var: "DPOP_NONCE_SECRET",
                    reason: "DPOP_NONCE=1 makes nonces every instance must be able to check, so they share this secret: at least 32 random bytes in hex or base64 (openssl rand -hex 32)".into(),
                })
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "DPOP_NONCE_SECRET",
                    "it is used only with DPOP_NONCE=1; set that too, or remove the secret",
                ))
            }
            (false, None) => None,
        };
        Ok(DpopSettings {
            browser,
            required,
            nonce_secret,
        })
    }
}

/// Whether the embedded development authorization server, which signs in
/// anyone who types a demo user's published password, may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevIdpExposure {
    /// The app's public origin and the dev server's address are both
    /// loopback: only this machine reaches them.
    Loopback,
    /// Reachable from elsewhere, and `DEV_IDP=1` says that is intended:
    /// start, with this warning.
    OnPurpose { warning: String },
    /// Reachable from elsewhere by accident: this one line stops start-up.
    Refused { reason: String },
}

/// [`DevIdpExposure`] for the public origin `public_origin`, the dev
/// server's `DEV_IDP_ADDR` `dev_idp_addr` and `DEV_IDP=1` (`on_purpose`).
/// Names are not resolved: only `localhost` (and, for the origin,
/// `*.localhost`, which browsers keep on loopback) and loopback addresses
/// count as loopback, so `0.0.0.0` and host names do not.
pub fn dev_idp_exposure(
    public_origin: &str,
    dev_idp_addr: &str,
    on_purpose: bool,
) -> DevIdpExposure {
    let mut exposed = Vec::new();
    if !origin_is_loopback(public_origin) {
        exposed.push(format!("the public origin {public_origin}"));
    }
    if !host_port_is_loopback(dev_idp_addr) {
        exposed.push(format!("DEV_IDP_ADDR {dev_idp_addr}"));
    }
    if exposed.is_empty() {
        return DevIdpExposure::Loopback;
    }
    let exposed = exposed.join(" and ");
    if on_purpose {
        return DevIdpExposure::OnPurpose {
            warning: format!(
                "DEV_IDP=1: running the embedded development authorization server although {exposed} is not loopback; anyone who reaches it can sign in as its demo users, whose passwords are published. Set ISSUER to a real authorization server for anything but a demo"
            ),
        };
    }
    DevIdpExposure::Refused {
        reason: format!(
            "ISSUER is not set and {exposed} is not loopback: the embedded development authorization server would let anyone who reaches it sign in as its demo users, whose passwords are published. Set ISSUER (and CLIENT_ID) to your Okta authorization server, e.g. ISSUER=https://dev-123456.okta.com/oauth2/default, or set DEV_IDP=1 if a reachable demo is what you want"
        ),
    }
}

fn origin_is_loopback(origin: &str) -> bool {
    match Url::parse(origin)
        .ok()
        .and_then(|url| url.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn host_port_is_loopback(host_port: &str) -> bool {
    let Some((host, _port)) = host_port.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An on/off setting: `1`/`true` or `0`/`false`; unset is off.
fn switch(var: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(invalid(var, format!("{other:?}; use 1 or 0"))),
    }
}

/// A whole number in `range`, for the settings counted in seconds, bytes
/// or connections.
fn whole_number(
    var: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let number: u64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(var, format!("{value:?} is not a whole number")))?;
    if !range.contains(&number) {
        return Err(invalid(
            var,
            format!("{number} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(number)
}

fn invalid(var: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.to_string(),
    }
}

/// `http://host:port` for a site bound to `addr`. Loopback and unspecified
/// addresses are written `localhost`, so the app and the dev authorization
/// server on `localhost:3100` are the same site for cookies.
pub fn origin_from_site_addr(addr: SocketAddr) -> String {
    let ip = addr.ip();
    let host = if ip.is_loopback() || ip.is_unspecified() {
        "localhost".to_string()
    } else if addr.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("http://{host}:{}", addr.port())
}

/// The origin (`scheme://host[:port]`) of `value`, which must be nothing
/// more than an origin.
fn origin_of(value: &str) -> Result<String, String> {
    let url = Url::parse(value).map_err(|err| format!("{value:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{value:?} is not an http(s) origin"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{value:?} has a path; give only scheme, host and port"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

fn absolute_http_url(value: &str) -> Result<String, String> {
    let url =
        Url::parse(value).map_err(|err| format!("{value:?} is not an absolute URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return Err(format!(
            "{value:?} must be an http(s) URL without a fragment"
        ));
    }
    Ok(value.to_string())
}

/// `REDIRECT_URI`: where the issuer sends the tokens. It must be this
/// app's callback page on its public origin (the page that checks them and
/// the server's answer to the renewal iframe live there and nowhere else),
/// and https unless on loopback, so no token crosses the network in clear.
fn callback_url(value: &str, public_origin: &str) -> Result<String, String> {
    let checked = absolute_http_url(value)?;
    let url = Url::parse(&checked).map_err(|err| err.to_string())?;
    if url.scheme() != "https" && !crate::bearer::fetch::is_loopback(&url) {
        return Err(format!(
            "{value:?} must use https (http:// is only allowed for localhost and loopback addresses)"
        ));
    }
    if url.origin().ascii_serialization() != public_origin {
        return Err(format!(
            "{value:?} is not on the app's public origin {public_origin} (set PUBLIC_ORIGIN to where browsers reach the app)"
        ));
    }
    if url.path() != CALLBACK_PATH || url.query().is_some() {
        return Err(format!(
            "{value:?} must be the app's callback page, {public_origin}{CALLBACK_PATH}"
        ));
    }
    Ok(checked)
}

/// `host:port` with a port number.
fn check_host_port(value: &str) -> Result<(), String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?} is not host:port"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{value:?} is not host:port"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn site() -> SocketAddr {
        "127.0.0.1:3000".parse().unwrap()
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned(), site())
    }

    #[test]
    fn a_real_issuer_is_not_asked_for_the_demo_scope() {
        let c = config(&[
            ("ISSUER", "https://dev-1.okta.com/oauth2/default"),
            ("CLIENT_ID", "0oa1"),
        ])
        .unwrap();
        assert_eq!(c.scopes, "openid profile email");
    }

    fn failing_var(vars: &[(&str, &str)]) -> &'static str {
        match config(vars) {
            Err(ConfigError::Invalid { var, .. } | ConfigError::Missing { var, .. }) => var,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_run_the_dev_server() {
        let c = config(&[]).unwrap();
        assert_eq!(c.issuer, None);
        assert_eq!(c.client_id, None);
        assert_eq!(c.audience, "api://default");
        assert_eq!(c.scopes, "openid profile email reports:read");
        assert_eq!(c.response_type, ResponseType::IdTokenToken);
        assert_eq!(c.public_origin, "http://localhost:3000");
        assert_eq!(c.redirect_uri, "http://localhost:3000/login/callback");
        assert_eq!(c.post_logout_redirect_uri, "http://localhost:3000/");
        assert_eq!(c.leeway, Duration::from_secs(60));
        assert_eq!(c.dev_idp.addr, "localhost:3100");
        assert!(!c.dev_idp.enable_control);
    }

    #[test]
    fn reads_an_okta_configuration() {
        let c = config(&[
            ("ISSUER", "https://dev-1.okta.com/oauth2/default"),
            ("CLIENT_ID", "0oa1"),
            ("AUDIENCE", "api://mine"),
            ("SCOPES", "openid  reports:read"),
            ("RESPONSE_TYPE", "token id_token"),
            ("PUBLIC_ORIGIN", "https://app.example.com"),
            ("TOKEN_LEEWAY_SECS", "120"),
            ("DEV_IDP_CONTROL", "1"),
        ])
        .unwrap();
        assert_eq!(
            c.issuer.as_deref(),
            Some("https://dev-1.okta.com/oauth2/default")
        );
        assert_eq!(c.client_id.as_deref(), Some("0oa1"));
        assert_eq!(c.audience, "api://mine");
        assert_eq!(c.scopes, "openid reports:read");
        assert_eq!(c.response_type, ResponseType::IdTokenToken);
        assert_eq!(c.redirect_uri, "https://app.example.com/login/callback");
        assert_eq!(c.leeway, Duration::from_secs(120));
        assert!(c.dev_idp.enable_control);
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(
            failing_var(&[
                ("ISSUER", "http://dev-1.okta.com/oauth2/default"),
                ("CLIENT_ID", "x")
            ]),
            "ISSUER"
        );
        assert_eq!(
            failing_var(&[("ISSUER", "not a url"), ("CLIENT_ID", "x")]),
            "ISSUER"
        );
        assert_eq!(
            failing_var(&[("ISSUER", "https://dev-1.okta.com/oauth2/default")]),
            "CLIENT_ID"
        );
        assert_eq!(
            failing_var(&[("RESPONSE_TYPE", "code token")]),
            "RESPONSE_TYPE"
        );
        assert_eq!(failing_var(&[("SCOPES", "profile email")]), "SCOPES");
        assert_eq!(failing_var(&[("SCOPES", "openid \"x\"")]), "SCOPES");
        assert_eq!(
            failing_var(&[("TOKEN_LEEWAY_SECS", "121")]),
            "TOKEN_LEEWAY_SECS"
        );
        assert_eq!(
            failing_var(&[("TOKEN_LEEWAY_SECS", "1m")]),
            "TOKEN_LEEWAY_SECS"
        );
        assert_eq!(
            failing_var(&[("DEV_IDP_ADDR", "localhost")]),
            "DEV_IDP_ADDR"
        );
        assert_eq!(
            failing_var(&[("DEV_IDP_CONTROL", "yes")]),
            "DEV_IDP_CONTROL"
        );
        assert_eq!(
            failing_var(&[("PUBLIC_ORIGIN", "https://app.example.com/app")]),
            "PUBLIC_ORIGIN"
        );
        assert_eq!(
            failing_var(&[("REDIRECT_URI", "/login/callback")]),
            "REDIRECT_URI"
        );
        // Hostile or careless callback addresses: off the public origin,
        // plain http off loopback, another page, a fragment.
        let public = [("PUBLIC_ORIGIN", "https://app.example.com")];
        for bad in [
            "https://evil.example/login/callback",
            "https://app.example.com.evil.example/login/callback",
            "http://app.example.com/login/callback",
            "https://app.example.com:8443/login/callback",
            "https://app.example.com/other",
            "https://app.example.com/login/callback?x=1",
            "https://app.example.com/login/callback#x",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                failing_var(&[public[0], ("REDIRECT_URI", bad)]),
                "REDIRECT_URI",
                "{bad}"
            );
        }
        assert_eq!(
            failing_var(&[("REDIRECT_URI", "http://localhost:3999/login/callback")]),
            "REDIRECT_URI"
        );
        assert_eq!(
            failing_var(&[("POST_LOGOUT_REDIRECT_URI", "x")]),
            "POST_LOGOUT_REDIRECT_URI"
        );
    }

    #[test]
    fn the_error_is_one_line_naming_the_variable() {
        let err = config(&[("RESPONSE_TYPE", "code id_token")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("RESPONSE_TYPE is not valid"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn token_only_needs_no_openid() {
        let c = config(&[("RESPONSE_TYPE", "token"), ("SCOPES", "reports:read")]).unwrap();
        assert_eq!(c.response_type, ResponseType::Token);
    }

    #[test]
    fn the_code_flow_takes_a_response_mode_and_offline_access() {
        let c = config(&[("RESPONSE_TYPE", "code")]).unwrap();
        assert_eq!(
            (c.response_type, c.response_mode),
            (ResponseType::Code, ResponseMode::Query)
        );
        assert!(!c.response_type.wants_id_token());
        let c = config(&[
            ("RESPONSE_TYPE", "code"),
            ("RESPONSE_MODE", "fragment"),
            ("SCOPES", "openid profile offline_access"),
        ])
        .unwrap();
        assert_eq!(c.response_mode, ResponseMode::Fragment);
        assert_eq!(c.scopes, "openid profile offline_access");
        // The implicit flow always answers in the fragment, and gets no
        // refresh token.
        assert_eq!(config(&[]).unwrap().response_mode, ResponseMode::Fragment);
        assert_eq!(failing_var(&[("RESPONSE_MODE", "query")]), "RESPONSE_MODE");
        assert_eq!(
            failing_var(&[("RESPONSE_TYPE", "code"), ("RESPONSE_MODE", "form_post")]),
            "RESPONSE_MODE"
        );
        assert_eq!(
            failing_var(&[("SCOPES", "openid offline_access")]),
            "SCOPES"
        );
        assert_eq!(
            failing_var(&[("RESPONSE_TYPE", "code token")]),
            "RESPONSE_TYPE"
        );
    }

    #[test]
    fn dpop_settings_default_off_and_parse() {
        assert_eq!(config(&[]).unwrap().dpop, DpopSettings::default());
        let secret = "ab".repeat(32);
        let c = config(&[
            ("RESPONSE_TYPE", "code"),
            ("DPOP", "1"),
            ("REQUIRE_DPOP", "1"),
            ("DPOP_NONCE", "1"),
            ("DPOP_NONCE_SECRET", &secret),
        ])
        .unwrap();
        assert!(c.dpop.browser && c.dpop.required);
        assert_eq!(
            c.dpop.nonce_secret.as_ref().map(NonceSecret::bytes),
            Some(&[0xab; 32][..])
        );
        // The secret never shows in the configuration's Debug.
        assert!(!format!("{c:?}").contains("171"), "{c:?}");
        // Nonces without DPOP=1 in the browser (other clients may use it).
        let c = config(&[("DPOP_NONCE", "1"), ("DPOP_NONCE_SECRET", &secret)]).unwrap();
        assert!(c.dpop.nonce_secret.is_some());
    }

    #[test]
    fn bad_dpop_settings_name_their_variable_in_one_line() {
        let secret = "ab".repeat(32);
        for (vars, var) in [
            (&[("DPOP", "1")][..], "DPOP"),
            (&[("RESPONSE_TYPE", "token"), ("DPOP", "1")], "DPOP"),
            (&[("RESPONSE_TYPE", "code"), ("DPOP", "yes")], "DPOP"),
            (
                &[("RESPONSE_TYPE", "code"), ("REQUIRE_DPOP", "1")],
                "REQUIRE_DPOP",
            ),
            (&[("DPOP_NONCE", "1")], "DPOP_NONCE_SECRET"),
            (&[("DPOP_NONCE", "on")], "DPOP_NONCE"),
            (
                &[("DPOP_NONCE_SECRET", secret.as_str())],
                "DPOP_NONCE_SECRET",
            ),
            (
                &[("DPOP_NONCE", "1"), ("DPOP_NONCE_SECRET", "c2hvcnQ=")],
                "DPOP_NONCE_SECRET",
            ),
        ] {
            assert_eq!(failing_var(vars), var, "{vars:?}");
            let line = config(vars).unwrap_err().to_string();
            assert!(!line.contains('\n'), "{line}");
        }
        let err = config(&[("DPOP", "1")]).unwrap_err().to_string();
        assert!(err.starts_with("DPOP is not valid"), "{err}");
        assert!(err.contains("RESPONSE_TYPE=code"), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(config(&[("ISSUER", "")]).unwrap().issuer, None);
    }

    #[test]
    fn connection_settings_default_and_parse() {
        let c = config(&[]).unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.keepalive_idle, Duration::from_secs(60));
        assert_eq!(c.body_read_timeout, Duration::from_secs(10));
        assert_eq!(c.send_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections, None);
        assert_eq!(c.body_limit, 64 * 1024);
        let c = config(&[
            ("HEADER_READ_TIMEOUT_SECS", "5"),
            ("KEEPALIVE_IDLE_SECS", "120"),
            ("BODY_READ_TIMEOUT_SECS", "3"),
            ("SEND_TIMEOUT_SECS", "90"),
            ("MAX_CONNECTIONS", "500"),
            ("BODY_LIMIT_BYTES", "1024"),
        ])
        .unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.keepalive_idle, Duration::from_secs(120));
        assert_eq!(c.body_read_timeout, Duration::from_secs(3));
        assert_eq!(c.send_timeout, Duration::from_secs(90));
        assert_eq!(c.max_connections, Some(500));
        assert_eq!(c.body_limit, 1024);
        assert_eq!(config(&[("BODY_LIMIT_BYTES", "0")]).unwrap().body_limit, 0);
    }

    #[test]
    fn bad_connection_settings_name_their_variable() {
        for (var, value) in [
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("HEADER_READ_TIMEOUT_SECS", "301"),
            ("HEADER_READ_TIMEOUT_SECS", "10s"),
            ("KEEPALIVE_IDLE_SECS", "0"),
            ("KEEPALIVE_IDLE_SECS", "3601"),
            ("BODY_READ_TIMEOUT_SECS", "0"),
            ("BODY_READ_TIMEOUT_SECS", "301"),
            ("SEND_TIMEOUT_SECS", "0"),
            ("SEND_TIMEOUT_SECS", "30s"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "-1"),
            ("MAX_CONNECTIONS", "1000001"),
            ("BODY_LIMIT_BYTES", "64KiB"),
            ("BODY_LIMIT_BYTES", "1073741825"),
            ("DEV_IDP", "yes"),
            ("HSTS_INCLUDE_SUBDOMAINS", "on"),
        ] {
            assert_eq!(failing_var(&[(var, value)]), var, "{var}={value}");
        }
    }

    #[test]
    fn the_connection_cap_comes_from_the_descriptor_limit_unless_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.max_connections(20_000).unwrap(), 9_936);
        assert_eq!(c.max_connections(1_024).unwrap(), 448);
        let c = config(&[("MAX_CONNECTIONS", "19936")]).unwrap();
        assert_eq!(c.max_connections(20_000).unwrap(), 19_936);
        let err = c.max_connections(1_024).unwrap_err().to_string();
        assert!(err.starts_with("MAX_CONNECTIONS is not valid"), "{err}");
        assert!(err.contains("at most 960"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn operations_settings_default_and_parse() {
        let c = config(&[]).unwrap();
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.shutdown_grace, Duration::from_secs(20));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.metrics_exposure_warning(), None);
        let c = config(&[
            ("METRICS_ADDR", "127.0.0.1:9100"),
            ("SHUTDOWN_GRACE_SECS", "0"),
            ("LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.metrics_exposure_warning(), None);
        let c = config(&[("METRICS_ADDR", "[::1]:9100"), ("LOG_FORMAT", "text")]).unwrap();
        assert_eq!(c.metrics_addr, Some("[::1]:9100".parse().unwrap()));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(
            config(&[("SHUTDOWN_GRACE_SECS", "3600")])
                .unwrap()
                .shutdown_grace,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn a_metrics_address_others_reach_is_warned_about() {
        for addr in ["0.0.0.0:9100", "[::]:9100", "10.0.0.5:9100"] {
            let warning = config(&[("METRICS_ADDR", addr)])
                .unwrap()
                .metrics_exposure_warning()
                .unwrap_or_else(|| panic!("no warning for {addr}"));
            assert!(
                warning.starts_with(&format!("METRICS_ADDR {addr} is not loopback")),
                "{warning}"
            );
            assert!(!warning.contains('\n'));
        }
    }

    #[test]
    fn bad_operations_settings_name_their_variable() {
        for (var, value) in [
            ("METRICS_ADDR", "localhost:9100"),
            ("METRICS_ADDR", "9100"),
            ("METRICS_ADDR", "127.0.0.1"),
            ("METRICS_ADDR", "127.0.0.1:99999"),
            ("SHUTDOWN_GRACE_SECS", "-1"),
            ("SHUTDOWN_GRACE_SECS", "20s"),
            ("SHUTDOWN_GRACE_SECS", "3601"),
            ("LOG_FORMAT", "JSON5"),
            ("LOG_FORMAT", "logfmt"),
        ] {
            assert_eq!(failing_var(&[(var, value)]), var, "{var}={value}");
        }
        let err = config(&[("LOG_FORMAT", "xml")]).unwrap_err().to_string();
        assert_eq!(err, "LOG_FORMAT is not valid: \"xml\"; use text or json");
    }

    #[test]
    fn hsts_only_on_an_https_public_origin() {
        assert_eq!(config(&[]).unwrap().hsts(), None);
        assert_eq!(
            config(&[("PUBLIC_ORIGIN", "http://app.example.com")])
                .unwrap()
                .hsts(),
            None
        );
        assert_eq!(
            config(&[("PUBLIC_ORIGIN", "https://app.example.com")])
                .unwrap()
                .hsts()
                .as_deref(),
            Some("max-age=31536000")
        );
        assert_eq!(
            config(&[
                ("PUBLIC_ORIGIN", "https://app.example.com"),
                ("HSTS_INCLUDE_SUBDOMAINS", "1")
            ])
            .unwrap()
            .hsts()
            .as_deref(),
            Some("max-age=31536000; includeSubDomains")
        );
        // Nothing to include on http.
        assert_eq!(
            config(&[("HSTS_INCLUDE_SUBDOMAINS", "1")]).unwrap().hsts(),
            None
        );
    }

    fn exposure(vars: &[(&str, &str)]) -> DevIdpExposure {
        config(vars).unwrap().dev_idp_exposure()
    }

    #[test]
    fn the_dev_server_starts_quietly_on_loopback() {
        assert_eq!(exposure(&[]), DevIdpExposure::Loopback);
        for (origin, addr) in [
            ("http://localhost:3000", "localhost:3100"),
            ("http://127.0.0.1:3000", "127.0.0.1:3100"),
            ("http://[::1]:3000", "[::1]:3100"),
            ("http://app.localhost:3000", "LOCALHOST:3100"),
            ("https://localhost", "127.0.0.2:3100"),
        ] {
            assert_eq!(
                exposure(&[("PUBLIC_ORIGIN", origin), ("DEV_IDP_ADDR", addr)]),
                DevIdpExposure::Loopback,
                "{origin} {addr}"
            );
        }
    }

    #[test]
    fn the_dev_server_is_refused_behind_a_public_origin() {
        let DevIdpExposure::Refused { reason } =
            exposure(&[("PUBLIC_ORIGIN", "https://app.example.com")])
        else {
            panic!("not refused");
        };
        assert!(
            reason.starts_with(
                "ISSUER is not set and the public origin https://app.example.com is not loopback"
            ),
            "{reason}"
        );
        assert!(reason.contains("demo users"), "{reason}");
        assert!(reason.contains("Set ISSUER"), "{reason}");
        assert!(reason.contains("DEV_IDP=1"), "{reason}");
        assert!(!reason.contains('\n'));
        // A public origin that merely looks local.
        assert!(matches!(
            exposure(&[("PUBLIC_ORIGIN", "http://localhost.example.com")]),
            DevIdpExposure::Refused { .. }
        ));
    }

    #[test]
    fn the_dev_server_is_refused_on_an_address_others_reach() {
        for addr in [
            "0.0.0.0:3100",
            "[::]:3100",
            "192.168.1.5:3100",
            "idp.example.com:3100",
        ] {
            let DevIdpExposure::Refused { reason } = exposure(&[("DEV_IDP_ADDR", addr)]) else {
                panic!("{addr} not refused");
            };
            assert!(
                reason.starts_with(&format!(
                    "ISSUER is not set and DEV_IDP_ADDR {addr} is not loopback"
                )),
                "{reason}"
            );
        }
        let DevIdpExposure::Refused { reason } = exposure(&[
            ("PUBLIC_ORIGIN", "https://app.example.com"),
            ("DEV_IDP_ADDR", "0.0.0.0:3100"),
        ]) else {
            panic!("not refused");
        };
        assert!(
            reason.contains("https://app.example.com and DEV_IDP_ADDR 0.0.0.0:3100"),
            "{reason}"
        );
    }

    #[test]
    fn dev_idp_1_lets_it_run_exposed_with_a_warning() {
        let DevIdpExposure::OnPurpose { warning } = exposure(&[
            ("PUBLIC_ORIGIN", "https://demo.example.com"),
            ("DEV_IDP_ADDR", "0.0.0.0:3100"),
            ("DEV_IDP", "1"),
        ]) else {
            panic!("not allowed");
        };
        assert!(warning.starts_with("DEV_IDP=1:"), "{warning}");
        assert!(warning.contains("demo users"), "{warning}");
        // On loopback it has nothing to allow.
        assert_eq!(exposure(&[("DEV_IDP", "1")]), DevIdpExposure::Loopback);
        // And 0 is off.
        assert!(matches!(
            exposure(&[
                ("PUBLIC_ORIGIN", "https://app.example.com"),
                ("DEV_IDP", "0")
            ]),
            DevIdpExposure::Refused { .. }
        ));
    }

    #[test]
    fn origin_from_the_site_address() {
        let o = |a: &str| origin_from_site_addr(a.parse().unwrap());
        assert_eq!(o("127.0.0.1:3000"), "http://localhost:3000");
        assert_eq!(o("[::1]:3000"), "http://localhost:3000");
        assert_eq!(o("0.0.0.0:8080"), "http://localhost:8080");
        assert_eq!(o("192.168.1.5:3000"), "http://192.168.1.5:3000");
        assert_eq!(o("[2001:db8::1]:3000"), "http://[2001:db8::1]:3000");
    }
}
