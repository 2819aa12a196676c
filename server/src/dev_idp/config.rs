//! The dev authorization server's clients, users, scopes and lifetimes: the
//! JSON file format (`server/dev-idp.json` is the demo, also built in), its
//! checks, and the typed [`Config`] the handlers read.
//!
//! ```json
//! {
//!   "comment": "free text, ignored",
//!   "app_client_id": "0oa-dev-spa",          // gets <app origin>/login/callback and <app origin>/
//!   "audience": "api://default",             // aud of access tokens
//!   "idp": "00o-dev-idp",                    // idp claim of ID tokens
//!   "scopes_supported": ["openid", "profile", "email", "reports:read"],
//!   "access_token_lifetime_secs": 3600,      // 1..=86400
//!   "id_token_lifetime_secs": 3600,          // 1..=86400
//!   "session_lifetime_secs": 28800,          // 60..=604800
//!   "jwks_max_age_secs": 300,                // Cache-Control of /v1/keys and discovery, 0..=86400
//!   "trusted_origins": ["http://localhost:8080"], // CORS, besides the redirect URIs' origins (default: none)
//!   "clients": [{ "client_id": "…", "name": "…", "redirect_uris": ["…"],
//!                 "post_logout_redirect_uris": ["…"],
//!                 "response_types": ["id_token", "token"],  // default: both
//!                 "scopes": ["openid", …] }],               // default: scopes_supported
//!   "users": [{ "id": "00u…", "login": "…", "name": "…", "email": "… (default: login)",
//!               "password_hash": "pbkdf2-sha256$…", "demo_password": "… (shown on the sign-in page)",
//!               "scopes": ["openid", …] }]
//! }
//! ```
//! (The real file has no comments: JSON has none.) Unknown fields are
//! errors, so a misspelt field is not silently ignored.
//!
//! A client's `response_types` and `scopes` play the part of Okta's app
//! settings and access policy rule: `response_types` are the app's "Allow ID
//! Token / Allow Access Token with implicit grant type" boxes (a request is
//! allowed when each of its words is listed, so both allow `id_token
//! token`), and `scopes` the scopes the rule lets this client have. Asking
//! for more is refused as Okta refuses it: `unsupported_response_type`,
//! and `access_denied` "Policy evaluation failed…".
//!
//! The origins that may call the endpoints a browser app reads with
//! `fetch` (discovery, keys, userinfo, revoke, introspect) are Okta's
//! *Trusted Origins* of type CORS: here every client's redirect URIs'
//! origins, plus `trusted_origins` for pages that sign in elsewhere but
//! call these endpoints (see [`super::cors`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::password::{PasswordHash, PasswordHashError};
use super::response_type::ResponseType;

/// The demo configuration, built in so the server runs with no file.
pub const DEMO_CONFIG: &str = include_str!("../../dev-idp.json");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the dev authorization server config {path} (DEV_IDP_CONFIG): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin} is not valid: {source}")]
    Json {
        origin: String,
        source: serde_json::Error,
    },
    #[error("{origin} is not valid: {problem}")]
    Invalid { origin: String, problem: String },
    #[error("the app origin {0:?} is not an http(s) origin such as http://localhost:3000")]
    AppOrigin(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    #[allow(dead_code)] // documentation for people, not for the server
    comment: Option<String>,
    app_client_id: String,
    #[serde(default = "default_audience")]
    audience: String,
    #[serde(default = "default_idp")]
    idp: String,
    scopes_supported: Vec<String>,
    #[serde(default = "default_token_lifetime")]
    access_token_lifetime_secs: u64,
    #[serde(default = "default_token_lifetime")]
    id_token_lifetime_secs: u64,
    #[serde(default = "default_session_lifetime")]
    session_lifetime_secs: u64,
    #[serde(default = "default_jwks_max_age")]
    jwks_max_age_secs: u64,
    #[serde(default)]
    trusted_origins: Vec<String>,
    clients: Vec<ClientFile>,
    users: Vec<UserFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    client_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Default: `id_token` and `token`.
    #[serde(default)]
    response_types: Option<Vec<String>>,
    /// Default: every scope in `scopes_supported`.
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    id: String,
    login: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    password_hash: String,
    #[serde(default)]
    demo_password: Option<String>,
    scopes: Vec<String>,
}

fn default_audience() -> String {
    "api://default".into()
}
fn default_idp() -> String {
    "00o-dev-idp".into()
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_session_lifetime() -> u64 {
    8 * 3600
}
fn default_jwks_max_age() -> u64 {
    300
}

/// A registered client (an Okta "app integration").
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The implicit response types it may ask for, as words (`id_token`,
    /// `token`), in the file's order.
    pub response_types: Vec<String>,
    /// The scopes its access policy rule allows.
    pub scopes: Vec<String>,
}

impl Client {
    /// Exact string match, as Okta and RFC 6749 §3.1.2.3 require: no
    /// prefix, case or trailing-slash leniency.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether every word of `response_type` is allowed, as Okta checks a
    /// request against the app's response types.
    pub fn allows_response_type(&self, response_type: ResponseType) -> bool {
        response_type
            .words()
            .iter()
            .all(|word| self.response_types.iter().any(|r| r == word))
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A user who can sign in.
#[derive(Debug, Clone)]
pub struct User {
    /// Okta's user id (`00u…`): `sub` of ID tokens, `uid` of access tokens.
    pub id: String,
    /// What is typed in the username field: `sub` of access tokens.
    pub login: String,
    pub name: String,
    pub email: String,
    pub password: PasswordHash,
    /// Shown on the sign-in page, so people can try the demo.
    pub demo_password: Option<String>,
    /// The scopes this user may be granted (always includes `openid`).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_token_secs: u64,
    pub id_token_secs: u64,
    pub session_secs: u64,
    pub jwks_max_age_secs: u64,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub app_client_id: String,
    pub audience: String,
    pub idp: String,
    pub scopes_supported: Vec<String>,
    pub lifetimes: Lifetimes,
    /// `trusted_origins`, as bare origins (`http://localhost:8080`).
    pub trusted_origins: Vec<String>,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
}

impl Config {
    /// The built-in demo configuration.
    pub fn demo() -> Result<Self, ConfigError> {
        Self::parse(DEMO_CONFIG, "the built-in dev authorization server config")
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(
            &text,
            &format!(
                "the dev authorization server config {} (DEV_IDP_CONFIG)",
                path.display()
            ),
        )
    }

    /// Parses and checks config text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = serde_json::from_str(text).map_err(|source| ConfigError::Json {
            origin: origin.to_owned(),
            source,
        })?;
        file.check().map_err(|problem| ConfigError::Invalid {
            origin: origin.to_owned(),
            problem,
        })
    }

    /// Registers `{origin}/login/callback` and `{origin}/` for the app's
    /// client, on top of whatever the file lists, so the app works on
    /// whatever address it is served from. An empty origin adds nothing.
    pub fn register_app_origin(&mut self, origin: &str) -> Result<(), ConfigError> {
        if origin.is_empty() {
            return Ok(());
        }
        let origin =
            normalize_origin(origin).ok_or_else(|| ConfigError::AppOrigin(origin.into()))?;
        let app_client_id = self.app_client_id.clone();
        let Some(client) = self
            .clients
            .iter_mut()
            .find(|c| c.client_id == app_client_id)
        else {
            // `check` guarantees the app client exists.
            return Ok(());
        };
        push_unique(
            &mut client.redirect_uris,
            format!("{origin}/login/callback"),
        );
        push_unique(&mut client.post_logout_redirect_uris, format!("{origin}/"));
        Ok(())
    }

    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// Logins are compared without regard to ASCII case, as Okta does.
    pub fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.login.eq_ignore_ascii_case(login))
    }

    pub fn is_supported_scope(&self, scope: &str) -> bool {
        self.scopes_supported.iter().any(|s| s == scope)
    }

    /// Every origin that may read the CORS endpoints: `trusted_origins`,
    /// then the origins of the clients' redirect URIs (those that have an
    /// http(s) origin), each once.
    pub fn cors_origins(&self) -> Vec<String> {
        let mut origins = self.trusted_origins.clone();
        let redirect_origins = self
            .clients
            .iter()
            .flat_map(|c| &c.redirect_uris)
            .filter_map(|uri| url::Url::parse(uri).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .map(|url| url.origin().ascii_serialization());
        for origin in redirect_origins {
            push_unique(&mut origins, origin);
        }
        origins
    }
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// `http://localhost:3000/` → `http://localhost:3000`; `None` unless it is a
/// bare http(s) origin.
fn normalize_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    bare.then(|| url.origin().ascii_serialization())
}

/// A scope token per RFC 6749 §3.3 (printable ASCII but space, `"` and `\`).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2).
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URI: {e}"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(format!("{uri:?} must not contain a fragment"));
    }
    Ok(())
}

/// The words of a client's `response_types` (default: both implicit ones).
/// An entry may name both (`"id_token token"`); each word counts alone.
fn client_response_types(listed: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let Some(listed) = listed else {
        return Ok(vec!["id_token".into(), "token".into()]);
    };
    let mut words: Vec<String> = Vec::new();
    for entry in &listed {
        let parsed = ResponseType::parse(entry).ok_or_else(|| {
            format!("{entry:?} is not an implicit response type (id_token, token)")
        })?;
        for word in parsed.words() {
            push_unique(&mut words, (*word).to_owned());
        }
    }
    Ok(words)
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{name} must be between {min} and {max}, not {value}"
        ))
    }
}

impl ConfigFile {
    fn check(self) -> Result<Config, String> {
        let lifetimes = Lifetimes {
            access_token_secs: check_range(
                "access_token_lifetime_secs",
                self.access_token_lifetime_secs,
                1,
                86_400,
            )?,
            id_token_secs: check_range(
                "id_token_lifetime_secs",
                self.id_token_lifetime_secs,
                1,
                86_400,
            )?,
            session_secs: check_range(
                "session_lifetime_secs",
                self.session_lifetime_secs,
                60,
                7 * 86_400,
            )?,
            jwks_max_age_secs: check_range("jwks_max_age_secs", self.jwks_max_age_secs, 0, 86_400)?,
        };
        if self.audience.is_empty() {
            return Err("audience must not be empty".into());
        }
        if self.idp.is_empty() {
            return Err("idp must not be empty".into());
        }
        let mut trusted_origins = Vec::with_capacity(self.trusted_origins.len());
        for origin in &self.trusted_origins {
            let bare = normalize_origin(origin).ok_or_else(|| {
                format!(
                    "trusted_origins: {origin:?} is not a bare http(s) origin \
                     such as http://localhost:8080"
                )
            })?;
            push_unique(&mut trusted_origins, bare);
        }

        for scope in &self.scopes_supported {
            if !is_scope_token(scope) {
                return Err(format!("scopes_supported: {scope:?} is not a scope token"));
            }
        }
        if !self.scopes_supported.iter().any(|s| s == "openid") {
            return Err("scopes_supported must include openid".into());
        }
        let supported: HashSet<&str> = self.scopes_supported.iter().map(String::as_str).collect();

        let mut client_ids = HashSet::new();
        let mut clients = Vec::with_capacity(self.clients.len());
        for c in self.clients {
            if c.client_id.is_empty() || !client_ids.insert(c.client_id.clone()) {
                return Err(format!(
                    "client_id {:?} is empty or listed twice",
                    c.client_id
                ));
            }
            for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                check_redirect_uri(uri).map_err(|e| format!("client {}: {e}", c.client_id))?;
            }
            let response_types = client_response_types(c.response_types)
                .map_err(|e| format!("client {}: response_types: {e}", c.client_id))?;
            let scopes = c.scopes.unwrap_or_else(|| self.scopes_supported.clone());
            if let Some(bad) = scopes.iter().find(|s| !supported.contains(s.as_str())) {
                return Err(format!(
                    "client {}: scope {bad:?} is not in scopes_supported",
                    c.client_id
                ));
            }
            clients.push(Client {
                name: c.name.unwrap_or_else(|| c.client_id.clone()),
                client_id: c.client_id,
                redirect_uris: c.redirect_uris,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
                response_types,
                scopes,
            });
        }
        if !client_ids.contains(&self.app_client_id) {
            return Err(format!(
                "app_client_id {:?} is not one of the clients",
                self.app_client_id
            ));
        }

        let mut ids = HashSet::new();
        let mut logins = HashSet::new();
        let mut users = Vec::with_capacity(self.users.len());
        for u in self.users {
            if u.id.is_empty() || !ids.insert(u.id.clone()) {
                return Err(format!("user id {:?} is empty or listed twice", u.id));
            }
            if u.login.is_empty() || !logins.insert(u.login.to_ascii_lowercase()) {
                return Err(format!("login {:?} is empty or listed twice", u.login));
            }
            if u.name.is_empty() {
                return Err(format!("user {}: name must not be empty", u.login));
            }
            let password: PasswordHash = u
                .password_hash
                .parse()
                .map_err(|e: PasswordHashError| format!("user {}: password_hash: {e}", u.login))?;
            if let Some(demo) = &u.demo_password {
                // The sign-in page shows it: it had better be right.
                if !password.verify(demo) {
                    return Err(format!(
                        "user {}: demo_password does not match password_hash",
                        u.login
                    ));
                }
            }
            if let Some(bad) = u.scopes.iter().find(|s| !supported.contains(s.as_str())) {
                return Err(format!(
                    "user {}: scope {bad:?} is not in scopes_supported",
                    u.login
                ));
            }
            if !u.scopes.iter().any(|s| s == "openid") {
                return Err(format!("user {}: scopes must include openid", u.login));
            }
            users.push(User {
                email: u.email.unwrap_or_else(|| u.login.clone()),
                id: u.id,
                login: u.login,
                name: u.name,
                password,
                demo_password: u.demo_password,
                scopes: u.scopes,
            });
        }
        if users.is_empty() {
            return Err("there must be at least one user".into());
        }

        Ok(Config {
            app_client_id: self.app_client_id,
            audience: self.audience,
            idp: self.idp,
            scopes_supported: self.scopes_supported,
            lifetimes,
            trusted_origins,
            clients,
            users,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_has_the_demo_users() {
        let config = Config::demo().unwrap();
        assert_eq!(config.app_client_id, "0oa-dev-spa");
        assert_eq!(config.audience, "api://default");
        let alice = config.user_by_login("Alice@Example.com").unwrap();
        // Hashes made by Python's hashlib: an independent PBKDF2.
        assert!(alice.password.verify("alice-password"));
        assert!(alice.scopes.contains(&"reports:read".to_owned()));
        let bob = config.user_by_login("bob@example.com").unwrap();
        assert!(bob.password.verify("bob-password"));
        assert!(!bob.scopes.contains(&"reports:read".to_owned()));
        let carol = config.user_by_login("carol@example.com").unwrap();
        assert!(carol.password.verify("carol-password"));
        assert_eq!(carol.email, "carol@example.com");
    }

    #[test]
    fn app_origin_adds_the_callback_and_logout_uris() {
        let mut config = Config::demo().unwrap();
        config
            .register_app_origin("http://localhost:3000/")
            .unwrap();
        config.register_app_origin("http://localhost:3000").unwrap();
        let client = config.client("0oa-dev-spa").unwrap();
        assert_eq!(
            client.redirect_uris,
            ["http://localhost:3000/login/callback"]
        );
        assert_eq!(client.post_logout_redirect_uris, ["http://localhost:3000/"]);
        assert!(client.has_redirect_uri("http://localhost:3000/login/callback"));
        assert!(!client.has_redirect_uri("http://localhost:3000/login/callback/"));

        for bad in ["localhost:3000", "http://x/path", "ftp://x", "http://x/?q"] {
            assert!(
                matches!(
                    config.register_app_origin(bad),
                    Err(ConfigError::AppOrigin(_))
                ),
                "{bad}"
            );
        }
    }

    fn with(change: impl FnOnce(&mut serde_json::Value)) -> Result<Config, ConfigError> {
        let mut value: serde_json::Value = serde_json::from_str(DEMO_CONFIG).unwrap();
        change(&mut value);
        Config::parse(&value.to_string(), "test config")
    }

    #[test]
    fn rejects_inconsistent_files() {
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 10] = [
            ("unknown field", |v| v["colour"] = "red".into()),
            ("app client", |v| v["app_client_id"] = "nope".into()),
            ("no openid", |v| {
                v["scopes_supported"] = serde_json::json!(["profile"])
            }),
            ("user scope", |v| {
                v["users"][0]["scopes"] = serde_json::json!(["openid", "admin"])
            }),
            ("fragment", |v| {
                v["clients"][0]["redirect_uris"] = serde_json::json!(["http://a/cb#x"])
            }),
            ("relative uri", |v| {
                v["clients"][0]["redirect_uris"] = serde_json::json!(["/cb"])
            }),
            ("demo password", |v| {
                v["users"][0]["demo_password"] = "wrong".into()
            }),
            ("hash", |v| v["users"][0]["password_hash"] = "plain".into()),
            ("duplicate login", |v| {
                v["users"][1]["login"] = "ALICE@example.com".into()
            }),
            ("lifetime", |v| v["access_token_lifetime_secs"] = 0.into()),
        ];
        for (name, change) in cases {
            assert!(with(change).is_err(), "{name} should be rejected");
        }
    }

    #[test]
    fn cors_origins_are_the_trusted_ones_and_the_redirect_uris_origins() {
        let mut config = with(|v| {
            v["trusted_origins"] = serde_json::json!(["http://localhost:8080/", "https://a.test"]);
            v["clients"][0]["redirect_uris"] = serde_json::json!([
                "https://a.test/cb",
                "http://localhost:4000/login/callback",
                "com.example.app:/callback"
            ]);
        })
        .unwrap();
        config.register_app_origin("http://localhost:3000").unwrap();
        assert_eq!(
            config.cors_origins(),
            [
                "http://localhost:8080",
                "https://a.test",
                "http://localhost:4000",
                "http://localhost:3000"
            ]
        );
        for bad in ["localhost:8080", "http://a.test/path", "ftp://a.test", "*"] {
            assert!(
                with(|v| v["trusted_origins"] = serde_json::json!([bad])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_names_the_source() {
        let err = Config::parse("{", "the file x.json").unwrap_err();
        assert!(err.to_string().starts_with("the file x.json is not valid"));
    }
}
