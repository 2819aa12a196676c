//! The server's settings, read once at start-up from the environment and
//! `.env` (see the configuration table of DESIGN.md).
//!
//! A missing or bad value stops start-up with a [`ConfigError`] whose one
//! line names the variable. Real environment variables win over `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use app::auth::config::TokenStorage;
use url::Url;

use crate::bearer::fetch::checked_url;
use crate::bearer::{InitError, DEFAULT_LEEWAY, MAX_LEEWAY};

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

/// The implicit-flow `response_type`s the app supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    IdTokenToken,
    Token,
    IdToken,
}

impl ResponseType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::IdTokenToken => "id_token token",
            ResponseType::Token => "token",
            ResponseType::IdToken => "id_token",
        }
    }

    pub fn wants_id_token(self) -> bool {
        !matches!(self, ResponseType::Token)
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
            _ => None,
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
                    format!("{value:?}; use \"id_token token\", \"token\" or \"id_token\""),
                )
            })?,
            None => ResponseType::IdTokenToken,
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
            Some(value) => absolute_http_url(&value).map_err(|r| invalid("REDIRECT_URI", r))?,
            None => format!("{public_origin}/login/callback"),
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
        let enable_control = match get("DEV_IDP_CONTROL").as_deref().map(str::trim) {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(invalid("DEV_IDP_CONTROL", format!("{other:?}; use 1 or 0")))
            }
        };
        let dev_idp = DevIdpSettings {
            addr,
            config_path: get("DEV_IDP_CONFIG").map(PathBuf::from),
            enable_control,
        };

        Ok(Config {
            issuer,
            client_id,
            audience,
            scopes,
            response_type,
            redirect_uri,
            post_logout_redirect_uri,
            public_origin,
            leeway,
            renew_before_secs,
            token_storage,
            dev_idp,
        })
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
        assert_eq!(failing_var(&[("RESPONSE_TYPE", "code")]), "RESPONSE_TYPE");
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
        assert_eq!(
            failing_var(&[("POST_LOGOUT_REDIRECT_URI", "x")]),
            "POST_LOGOUT_REDIRECT_URI"
        );
    }

    #[test]
    fn the_error_is_one_line_naming_the_variable() {
        let err = config(&[("RESPONSE_TYPE", "code")])
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
    fn empty_values_count_as_unset() {
        assert_eq!(config(&[("ISSUER", "")]).unwrap().issuer, None);
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
